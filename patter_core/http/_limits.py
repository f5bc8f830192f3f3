"""Finite limits for the embedded server, in one frozen value.

Every number here bounds what one peer can make the server hold or wait for.
The defaults are chosen for a phone-call server: carriers send small webhooks
(a few KiB of form fields or JSON) and 20 ms media frames of a few hundred
bytes, so anything much larger or slower is a mistake or an attack.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import LocalProtocolError

__all__ = ["ServerLimits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLimits:
    """Limits the server enforces on every connection (seconds and bytes)."""

    # Request line plus headers. Carrier webhooks carry a dozen short headers
    # (about 1 KiB); 16 KiB is what common servers allow and leaves room for
    # long proxy chains. Exceeding it answers 431 (RFC 6585 section 5).
    max_head_bytes: int = 16 * 1024
    # Webhook bodies are form fields or a JSON envelope of a few KiB; 1 MiB
    # is generous and still cheap to hold per connection. Exceeding it
    # answers 413 (RFC 9110 section 15.5.14).
    max_body_bytes: int = 1024 * 1024
    # Time from accept (or from the end of the previous response) to a
    # complete request head. Real clients send the head in one packet; a
    # client trickling bytes ("slowloris") is cut off after this.
    header_timeout: float = 10.0
    # Time to receive the whole body once the head is in: 1 MiB at a slow
    # 1 Mbit/s takes about 8 s, so 15 s is ample.
    body_timeout: float = 15.0
    # After an error answer to a client still sending its body (a 413 for a
    # body past the limit), read and discard up to this much for up to this
    # long before closing: closing a socket with unread input makes the
    # kernel send a reset, which can destroy the answer before the client
    # reads it. 4 MiB (four default body limits) drains what a client sends
    # before it looks at our answer; 2 s bounds one that never stops.
    linger_bytes: int = 4 * 1024 * 1024
    linger_timeout: float = 2.0
    # An idle keep-alive connection is closed after this long; carriers open
    # a fresh connection per webhook anyway.
    keepalive_timeout: float = 15.0
    # One WebSocket message. A Twilio or Telnyx media frame is under 1 KiB
    # (base64 of 20 ms of audio); 1 MiB covers any JSON control message with
    # a wide margin. Exceeding it closes with 1009 (RFC 6455 section 7.4.1).
    max_ws_message_bytes: int = 1024 * 1024
    # A media stream sends 50 frames a second; a stream silent for a minute is
    # dead (the carrier hung up without a close), so free its slot.
    ws_idle_timeout: float = 60.0
    # Concurrent WebSockets per client IP: one IP (a carrier's media edge, or
    # one attacker) gets at most this many live media streams; the next
    # upgrade answers 429 (RFC 6585 section 4).
    max_ws_per_ip: int = 10
    # Time to write a response or a frame to a peer that stopped reading.
    send_timeout: float = 10.0
    # On shutdown, live calls get this long to finish before they are closed
    # with 1001 (going away). Calls are long, so this is a compromise between
    # not cutting a caller off and not hanging a deploy.
    shutdown_grace: float = 30.0

    def __post_init__(self) -> None:
        for name in (
            "max_head_bytes",
            "max_body_bytes",
            "max_ws_message_bytes",
            "max_ws_per_ip",
            "linger_bytes",
        ):
            if getattr(self, name) < 1:
                raise LocalProtocolError(f"{name} must be at least 1")
        for name in (
            "header_timeout",
            "body_timeout",
            "linger_timeout",
            "keepalive_timeout",
            "ws_idle_timeout",
            "send_timeout",
            "shutdown_grace",
        ):
            value = getattr(self, name)
            # A NaN or infinite timeout would silently disable the limit.
            if not (0 <= value < float("inf")):
                raise LocalProtocolError(f"{name} must be a finite number of seconds >= 0")
