"""Stream tokens: a short-lived HMAC that admits one call's media stream.

The webhook answer hands the carrier a token for that call id (a TwiML
``<Parameter>``, a Telnyx ``stream_auth_token``); the media WebSocket is
accepted only with a valid one, so nobody can open ``/ws/stream/anything``
and spend the user's AI credits (DESIGN.md, security model).

Format, all URL-safe ASCII (``[A-Za-z0-9._-]``)::

    v1.<expiry: decimal Unix seconds>.<base64url, unpadded, of HMAC-SHA256>

The MAC covers a domain label, the length-prefixed UTF-8 call id and the
expiry, so a token for one call never opens another, and cutting bytes off
one field cannot move them into the next. Nothing else is stored: any
instance configured with the same secret verifies any other's tokens, which
is what lets the webhook land on one server and the media on another.
Secrets can be rotated: verify with the new secret and the old ones
(``previous_secrets``) while issuing with the new. Configured as one text,
the secrets are a comma-separated list, newest first
(:meth:`StreamTokens.from_list`). A roll that never refuses a stream, on a
fleet updated one instance at a time: (1) every instance to ``old,new``
(issues with old, accepts both), (2) every instance to ``new,old`` (issues
with new: every instance already accepts it), (3) once the last old token
has expired (5 minutes), every instance to ``new``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from collections.abc import Iterable

from .._errors import LocalProtocolError, SignatureError

__all__ = ["DEFAULT_STREAM_TOKEN_TTL_S", "StreamTokens"]

#: The carrier opens the media WebSocket within a second or two of reading
#: our answer (Telnyx: of our streaming_start). Five minutes covers a slow
#: network, an answer that waits on call setup and clock skew between the
#: instances that issue and verify, while a token leaked from a log is dead
#: soon after.
DEFAULT_STREAM_TOKEN_TTL_S = 300.0
# HMAC-SHA256 keys shorter than 16 bytes give less than 128-bit security.
_MIN_SECRET_BYTES = 16
_LABEL = b"patter-stream-token-v1\x00"
_VERSION = "v1"
# "v1." + 12 digits + "." + 43 base64url characters is 59; refuse anything
# much longer before doing any work.
_MAX_TOKEN_CHARS = 96
_MAX_EXPIRY_DIGITS = 12


def _mac(secret: bytes, call_id: str, expiry: int) -> str:
    try:
        cid = call_id.encode("utf-8")
    except UnicodeEncodeError:
        raise SignatureError("call id is not encodable") from None
    message = _LABEL + len(cid).to_bytes(4, "big") + cid + expiry.to_bytes(8, "big")
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class StreamTokens:
    """Issues and verifies stream tokens under a configured secret.

    ``now`` is wall-clock Unix seconds on every call (instances must agree
    on it, so a monotonic clock will not do).
    """

    def __init__(self, secret: bytes, *, previous_secrets: Iterable[bytes] = ()) -> None:
        secrets = [secret, *previous_secrets]
        if any(len(s) < _MIN_SECRET_BYTES for s in secrets):
            raise LocalProtocolError(
                f"a stream token secret needs at least {_MIN_SECRET_BYTES} bytes"
            )
        self._secret = secret
        self._all = tuple(secrets)

    @classmethod
    def from_list(cls, secrets: bytes) -> StreamTokens:
        """``b"new,old,older"``: issue with the first, accept any."""
        parts = secrets.split(b",")
        if any(not part for part in parts):
            raise LocalProtocolError("a stream secret list has an empty entry")
        return cls(parts[0], previous_secrets=parts[1:])

    def issue(self, call_id: str, now: float, ttl: float = DEFAULT_STREAM_TOKEN_TTL_S) -> str:
        """A token for ``call_id`` valid until ``now + ttl`` (rounded up to a second)."""
        if not call_id:
            raise LocalProtocolError("a stream token needs a call id")
        if not (ttl > 0 and math.isfinite(now) and math.isfinite(ttl)):
            raise LocalProtocolError("ttl must be positive and times finite")
        expiry = math.ceil(now + ttl)
        if not 0 <= expiry < 10**_MAX_EXPIRY_DIGITS:
            raise LocalProtocolError("expiry out of range")
        try:
            mac = _mac(self._secret, call_id, expiry)
        except SignatureError:
            raise LocalProtocolError("call id is not encodable as UTF-8") from None
        return f"{_VERSION}.{expiry}.{mac}"

    def verify(self, token: str, call_id: str, now: float) -> None:
        """Return ``None`` if ``token`` admits ``call_id`` at ``now``; else
        raise :class:`SignatureError` (malformed, foreign or expired)."""
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
            raise SignatureError("malformed stream token")
        version, _, rest = token.partition(".")
        expiry_text, _, mac = rest.partition(".")
        if (
            version != _VERSION
            or not (expiry_text.isascii() and expiry_text.isdigit())
            or len(expiry_text) > _MAX_EXPIRY_DIGITS
            or not mac.isascii()
        ):
            raise SignatureError("malformed stream token")
        expiry = int(expiry_text)
        # The expiry is re-serialised, so "0300" cannot pose as "300".
        if str(expiry) != expiry_text:
            raise SignatureError("malformed stream token")
        given = mac.encode("ascii")
        ok = False
        for secret in self._all:
            ok |= hmac.compare_digest(_mac(secret, call_id, expiry).encode("ascii"), given)
        if not ok:
            raise SignatureError("stream token is not valid for this call")
        # Written so that a NaN clock counts as expired, not as valid.
        if not now <= expiry:
            raise SignatureError("stream token expired")
