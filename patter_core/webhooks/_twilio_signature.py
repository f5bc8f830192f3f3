"""Twilio webhook signatures (``X-Twilio-Signature``), PROTOCOLS.md §1.

Theory of operation. Twilio signs the full URL it requested plus, for a form
POST, every ``name + value`` of the form: names sorted, and for each name its
distinct values sorted (Python string order, i.e. code points). The digest is
``base64(HMAC-SHA1(auth_token, string))``, or HMAC-SHA256 under a SharedKey
secret when the request carries ``X-Twilio-Webhooks-Signature-Settings:
key=<id>,algorithm=HMAC_SHA256`` (§1.2 step 7).

Because Twilio's own back end is inconsistent about ports, the official
validator (twilio-python ``RequestValidator``) accepts the signature over two
spellings of the URL, and so do we, with exactly its rules (§1.2 step 5):

* port-stripped: if the URL has a (non-zero) port, cut the authority at its
  first ``:``; otherwise the URL as re-serialised by ``urllib.parse``;
* default-port-added: if the URL has no port, append ``:443`` for ``https``
  and ``:80`` for every other scheme (``wss`` included, a quirk of the
  official code); otherwise the URL as re-serialised.

JSON bodies are covered through a ``bodySHA256`` query parameter: the body's
SHA-256 must match it and the HMAC is over the URL alone (§1.2 step 6). The
Media Streams WebSocket upgrade is signed over its ``wss://`` URL with no
parameters (§1.2 step 8).

The URL checked must be the *public* URL Twilio called. We rebuild it from
the configured webhook host, never from the request's ``Host`` header, which
the client controls (see :func:`public_url`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from urllib.parse import ParseResult, parse_qs, urlparse

from .._errors import LocalProtocolError, RemoteProtocolError, SignatureError
from ._forms import (
    DEFAULT_MAX_FORM_BYTES,
    DEFAULT_MAX_FORM_FIELDS,
    FormData,
    Headers,
    header_value,
    parse_form,
)

__all__ = [
    "HMAC_SHA1",
    "HMAC_SHA256",
    "SIGNATURE_HEADER",
    "SIGNATURE_SETTINGS_HEADER",
    "TwilioSignatureValidator",
    "media_stream_url",
    "media_stream_urls",
    "public_url",
    "signature_algorithm",
]

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
HMAC_SHA1 = "HMAC_SHA1"
HMAC_SHA256 = "HMAC_SHA256"

_DIGESTS = {HMAC_SHA1: "sha1", HMAC_SHA256: "sha256"}
# A SHA-256 signature is 44 base64 characters; anything much longer is not a
# signature and is refused before any hashing.
_MAX_SIGNATURE_CHARS = 128
# The signed URL is ours (rebuilt from configuration) plus the raw query of a
# request line that h11 already bounds; this cap keeps hashing cheap anyway.
_MAX_URL_CHARS = 16 * 1024
# A SharedKey id travels as ``key=<id>`` inside a comma-separated header whose
# items are stripped: printable ASCII without ``,`` or ``=``. Twilio's ids are
# ``SK`` + 32 hex digits.
_KEY_ID = re.compile(r"[!-+\--<>-~]{1,128}")

Params = FormData | Mapping[str, str | Iterable[str]]


def _host_only(webhook_host: str) -> str:
    # Accept "example.ngrok.app", "https://example.ngrok.app/" alike: the
    # configured value is a host (and optional port), the scheme is ours.
    host = webhook_host.strip()
    for prefix in ("https://", "http://", "wss://", "ws://"):
        if host.lower().startswith(prefix):
            host = host[len(prefix) :]
            break
    host = host.rstrip("/")
    if not host or "/" in host or "?" in host or "#" in host:
        raise LocalProtocolError(f"webhook host must be a host[:port], not {webhook_host!r}")
    return host


def public_url(webhook_host: str, target: str | bytes, *, scheme: str = "https") -> str:
    """The URL Twilio signed for a request: ``https://{webhook_host}{target}``.

    ``target`` is the raw request-target from the request line (path plus
    ``?query`` exactly as sent, e.g. h11's ``Request.target``): the query
    must not be re-ordered or re-encoded (§1.2 step 1).
    """
    raw = target.decode("latin-1") if isinstance(target, bytes) else target
    if not raw.startswith("/"):
        raw = "/" + raw
    return f"{scheme}://{_host_only(webhook_host)}{raw}"


def media_stream_url(webhook_host: str, path: str | bytes) -> str:
    """The ``wss://`` URL Twilio signs on a Media Streams upgrade (§1.2 step 8).

    The ``<Stream url>`` carries no query string (Twilio forbids one), so any
    query on the upgrade request is dropped.
    """
    raw = path.decode("latin-1") if isinstance(path, bytes) else path
    return public_url(webhook_host, raw.split("?", 1)[0], scheme="wss")


def media_stream_urls(webhook_host: str, path: str | bytes) -> tuple[str, str]:
    """The two ``wss://`` URLs a Media Streams upgrade may be signed over.

    Which form Twilio signs is not documented (PROTOCOLS.md section 3);
    OpenAI's own Twilio example accepts the URL with and without a trailing
    ``/``, and so do we: :func:`media_stream_url` and the same with its last
    ``/`` added or removed. Nothing else is accepted.
    """
    url = media_stream_url(webhook_host, path)
    other = url[:-1] if url.endswith("/") else url + "/"
    return url, other


def signature_algorithm(settings: str | None) -> str:
    """The algorithm named in ``X-Twilio-Webhooks-Signature-Settings``.

    Missing or empty (or no ``algorithm=`` item) means the legacy HMAC_SHA1.
    The name is returned upper-cased; it may be one we do not support.
    """
    for part in (settings or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return HMAC_SHA1


def _settings_key_id(settings: str | None) -> str | None:
    for part in (settings or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "key" and value.strip():
            return value.strip()
    return None


def _check_shared_keys(keys: Mapping[str, str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key_id, secret in keys.items():
        if not isinstance(key_id, str) or _KEY_ID.fullmatch(key_id) is None:
            raise LocalProtocolError(
                "a Twilio signing key id must be 1-128 printable characters without ',' or '='"
            )
        if not isinstance(secret, str) or not secret:
            # Never echo the secret; the id is not secret.
            raise LocalProtocolError(f"Twilio signing key {key_id!r} has an empty secret")
        out[key_id] = secret.encode("utf-8")
    return out


def _param_items(params: Params) -> list[tuple[str, list[str]]]:
    grouped: dict[str, list[str]] = {}
    if isinstance(params, FormData):
        for key, value in params.pairs:
            grouped.setdefault(key, []).append(value)
    else:
        for key, given in params.items():
            values = [given] if isinstance(given, str) else list(given)
            grouped.setdefault(key, []).extend(values)
    return sorted(grouped.items())


def _candidate_urls(url: str) -> tuple[str, str]:
    """The port-stripped and the default-port-added spellings (module doc)."""
    try:
        parsed: ParseResult = urlparse(url)
        port = parsed.port  # raises ValueError on a non-numeric or huge port
    except ValueError:
        raise SignatureError("URL cannot be parsed") from None
    if port:
        stripped = parsed._replace(netloc=parsed.netloc.split(":")[0]).geturl()
        added = parsed.geturl()
    else:
        stripped = parsed.geturl()
        default = 443 if parsed.scheme == "https" else 80
        added = parsed._replace(netloc=f"{parsed.netloc}:{default}").geturl()
    return stripped, added


class TwilioSignatureValidator:
    """Checks ``X-Twilio-Signature`` on webhooks and Media Streams upgrades.

    ``auth_token`` is the account Auth Token (HMAC-SHA1 signatures).
    ``shared_keys`` maps a SharedKey id to its secret, for requests that name
    one in ``X-Twilio-Webhooks-Signature-Settings``; a request naming an id
    we do not know is refused. With shared keys only (no auth token), a
    request that names no key is refused. Every failure raises
    :class:`SignatureError` (answer 403, or close the stream with 1008).
    """

    def __init__(
        self, auth_token: str | None, *, shared_keys: Mapping[str, str] | None = None
    ) -> None:
        self._shared = _check_shared_keys(shared_keys or {})
        if not auth_token and not self._shared:
            raise LocalProtocolError("an empty Twilio auth token would accept forged requests")
        self._token = auth_token.encode("utf-8") if auth_token else None

    def compute_signature(
        self,
        url: str,
        params: Params | None = None,
        *,
        algorithm: str = HMAC_SHA1,
        key: bytes | None = None,
    ) -> str:
        """``base64(HMAC(key, url + sorted name/value pairs))`` (§1.2 steps 2-4).

        Raises SignatureError for an unsupported algorithm or text that
        cannot be UTF-8 encoded (a lone surrogate).
        """
        digest = _DIGESTS.get(algorithm.upper())
        if digest is None:
            raise SignatureError(f"unsupported signature algorithm {algorithm!r}")
        parts = [url]
        for name, values in _param_items(params or {}):
            parts.extend(name + value for value in sorted(set(values)))
        try:
            message = "".join(parts).encode("utf-8")
        except UnicodeEncodeError:
            raise SignatureError("signed text is not encodable as UTF-8") from None
        key = self._token if key is None else key
        if key is None:
            raise LocalProtocolError("no key to sign with: the auth token is not configured")
        mac = hmac.new(key, message, digest)
        return base64.b64encode(mac.digest()).decode("ascii")

    def validate(
        self,
        url: str,
        params: Params | None,
        signature: str | None,
        *,
        body: bytes | None = None,
        settings: str | None = None,
    ) -> None:
        """Check one request; return ``None`` or raise :class:`SignatureError`.

        ``url`` is the public URL (:func:`public_url`); ``params`` the decoded
        form, or ``None``/empty for a GET or a WebSocket upgrade. For a JSON
        body pass it raw as ``body`` (and no params): the URL must then carry
        ``bodySHA256`` and the body must hash to it. ``settings`` is the
        ``X-Twilio-Webhooks-Signature-Settings`` header, if any.
        """
        if not signature:
            raise SignatureError(f"missing {SIGNATURE_HEADER}")
        if len(signature) > _MAX_SIGNATURE_CHARS or len(url) > _MAX_URL_CHARS:
            raise SignatureError("signature or URL too long")
        algorithm = signature_algorithm(settings)
        key = self._token
        key_id = _settings_key_id(settings)
        if key_id is not None:
            if key_id not in self._shared:
                raise SignatureError("request signed with an unknown shared key")
            key = self._shared[key_id]
        if key is None:
            raise SignatureError("request names no shared key and no auth token is configured")
        stripped, added = _candidate_urls(url)
        if body is not None:
            params = None
            try:
                query = parse_qs(urlparse(url).query)
            except ValueError:
                raise SignatureError("URL query cannot be parsed") from None
            expected = query.get("bodySHA256", [""])[0]
            # Without bodySHA256 the body would be unsigned: refuse, rather
            # than follow the official code into hashing the body's characters.
            if not expected:
                raise SignatureError("JSON body without bodySHA256 in the URL")
            actual = hashlib.sha256(body).hexdigest()
            if not hmac.compare_digest(actual.encode(), expected.encode("utf-8", "replace")):
                raise SignatureError("body does not match bodySHA256")
        given = signature.encode("utf-8", "replace")
        ok = False
        # Both spellings are always computed, so timing does not tell which.
        for candidate in (stripped, added):
            computed = self.compute_signature(candidate, params, algorithm=algorithm, key=key)
            ok |= hmac.compare_digest(computed.encode("ascii"), given)
        if not ok:
            raise SignatureError(f"{SIGNATURE_HEADER} does not match")

    def validate_upgrade(self, *, urls: tuple[str, ...], headers: Headers) -> None:
        """Check a Media Streams upgrade signed over any one of ``urls``.

        Every candidate is computed (with both port spellings, as
        :meth:`validate`), so timing does not tell which one matched.
        """
        ok = False
        for url in urls:
            try:
                self.validate_request(url=url, headers=headers)
            except SignatureError:
                continue
            ok = True
        if not ok:
            raise SignatureError(f"{SIGNATURE_HEADER} does not match")

    def validate_request(
        self,
        *,
        url: str,
        headers: Headers,
        body: bytes = b"",
        max_form_bytes: int = DEFAULT_MAX_FORM_BYTES,
        max_form_fields: int = DEFAULT_MAX_FORM_FIELDS,
    ) -> FormData:
        """Check a whole request and return its decoded form.

        Reads the signature headers and ``Content-Type`` from ``headers``:
        a form body is decoded (limits as :func:`parse_form`) and signed with
        its fields; a JSON body goes through ``bodySHA256``; an empty body
        (GET, WebSocket upgrade) is signed over the URL alone. Raises
        RemoteProtocolError (400/413/415) for a body we cannot read and
        SignatureError (403) for a bad signature.
        """
        signature = header_value(headers, SIGNATURE_HEADER)
        settings = header_value(headers, SIGNATURE_SETTINGS_HEADER)
        content_type = (header_value(headers, "content-type") or "").split(";")[0]
        content_type = content_type.strip().lower()
        if content_type == "application/json":
            self.validate(url, None, signature, body=body, settings=settings)
            return FormData()
        if content_type == "application/x-www-form-urlencoded" or not body:
            form = parse_form(body, max_bytes=max_form_bytes, max_fields=max_form_fields)
            self.validate(url, form, signature, settings=settings)
            return form
        raise RemoteProtocolError(f"unexpected content type {content_type!r}", http_status=415)
