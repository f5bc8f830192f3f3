"""Telnyx webhook signatures: Ed25519 over ``{timestamp}|{raw body}`` (PROTOCOLS.md §4.2).

The rules of the official SDK (telnyx-python ``lib/webhook_verification``):

1. headers ``telnyx-signature-ed25519`` and ``telnyx-timestamp``, any case;
2. the timestamp is an integer (Unix seconds) and nothing else;
3. refuse when ``|now - timestamp| > 300`` (inclusive at 300, both ways):
   a replay window, so a captured webhook cannot be replayed later;
4. the public key decodes to 32 bytes and the signature to 64;
5. Ed25519 verifies over the UTF-8 bytes of ``"<timestamp>|<raw body>"``.

The body must be the raw bytes received: re-serialised JSON never verifies.
Every failure is a :class:`SignatureError` (403), never a decoding error.
"""

from __future__ import annotations

import base64
import binascii

from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from .._errors import LocalProtocolError, RemoteProtocolError, SignatureError
from ._forms import Headers, header_value

__all__ = [
    "DEFAULT_TELNYX_TOLERANCE_S",
    "SIGNATURE_HEADER_ED25519",
    "TIMESTAMP_HEADER",
    "TelnyxSignatureVerifier",
    "verify_telnyx_signature",
]

SIGNATURE_HEADER_ED25519 = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
#: The official SDK's window: webhooks older or newer than five minutes are
#: refused, which bounds replay while tolerating ordinary clock skew.
DEFAULT_TELNYX_TOLERANCE_S = 300
# Unix seconds have 10 digits until the year 2286; 12 keeps int() cheap.
_MAX_TIMESTAMP_DIGITS = 12
# A 64-byte signature is 88 base64 characters.
_MAX_SIGNATURE_CHARS = 128


def _b64(text: str) -> bytes:
    # validate=True refuses characters outside the alphabet instead of
    # silently skipping them; the round trip below also refuses non-zero
    # padding bits, so exactly one spelling of a signature is accepted and
    # any changed character is a rejection. (The official SDK is laxer; no
    # real sender produces a non-canonical encoding.)
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if base64.b64encode(raw) != text.encode("ascii"):
        raise ValueError("non-canonical base64")
    return raw


def _decode_key(public_key: str | bytes) -> VerifyKey:
    try:
        raw = public_key if isinstance(public_key, bytes) else _b64(public_key.strip())
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise SignatureError("Telnyx public key is not base64") from None
    if len(raw) != 32:
        raise SignatureError(f"Telnyx public key must be 32 bytes, got {len(raw)}")
    return VerifyKey(raw)


class TelnyxSignatureVerifier:
    """Verifies Telnyx webhooks against one account public key.

    ``public_key`` is the base64 text from the Telnyx portal (or the 32 raw
    bytes). A key that is not one raises :class:`LocalProtocolError` here,
    since it is configuration, not peer input.
    """

    def __init__(
        self, public_key: str | bytes, *, tolerance_s: int = DEFAULT_TELNYX_TOLERANCE_S
    ) -> None:
        try:
            self._key = _decode_key(public_key)
        except SignatureError as exc:
            raise LocalProtocolError(str(exc)) from None
        self.tolerance_s = tolerance_s

    def verify(self, *, headers: Headers, body: bytes, now: float) -> None:
        """Return ``None`` for an authentic, fresh webhook; else raise SignatureError.

        ``now`` is wall-clock Unix seconds (the runtime's ``time.time()``).
        """
        try:
            signature = header_value(headers, SIGNATURE_HEADER_ED25519)
            timestamp = header_value(headers, TIMESTAMP_HEADER)
        except RemoteProtocolError as exc:
            raise SignatureError(str(exc)) from None
        if signature is None or timestamp is None:
            raise SignatureError("missing Telnyx signature headers")
        self.verify_parts(signature=signature, timestamp=timestamp, body=body, now=now)

    def verify_parts(self, *, signature: str, timestamp: str, body: bytes, now: float) -> None:
        """As :meth:`verify`, with the two header values already extracted."""
        if not (
            timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _MAX_TIMESTAMP_DIGITS
        ):
            raise SignatureError(f"invalid timestamp format: {timestamp[:20]!r}")
        skew = now - int(timestamp)
        if not -self.tolerance_s <= skew <= self.tolerance_s:
            raise SignatureError(f"webhook timestamp outside the window ({skew:.0f}s)")
        if len(signature) > _MAX_SIGNATURE_CHARS:
            raise SignatureError("signature header too long")
        try:
            raw_signature = _b64(signature)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise SignatureError("signature is not base64") from None
        if len(raw_signature) != 64:
            raise SignatureError(f"signature must be 64 bytes, got {len(raw_signature)}")
        try:
            self._key.verify(timestamp.encode("ascii") + b"|" + body, raw_signature)
        except CryptoError:
            raise SignatureError("signature does not match payload") from None


def verify_telnyx_signature(
    *,
    public_key: str | bytes,
    headers: Headers,
    body: bytes,
    now: float,
    tolerance_s: int = DEFAULT_TELNYX_TOLERANCE_S,
) -> None:
    """One-shot :meth:`TelnyxSignatureVerifier.verify`; a bad key is a
    SignatureError here too, as in the official SDK."""
    _decode_key(public_key)  # a bad key is the request's failure here
    TelnyxSignatureVerifier(public_key, tolerance_s=tolerance_s).verify(
        headers=headers, body=body, now=now
    )
