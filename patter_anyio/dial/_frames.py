"""Dial's carriers: :mod:`patter_core.media`'s carrier role, with the caller's codec.

The frames (``connected``, ``start``, ``media``, ``dtmf``, ``mark`` echoes,
``stop``, Telnyx's ``error``) and the reading of the agent's frames are the
core's :class:`TwilioCarrierSide` and :class:`TelnyxCarrierSide`. What dial
adds is its own audio format: it takes and gives the caller's audio as
μ-law 8 kHz, so :class:`TelnyxCarrierFrames` converts to L16 (or G.722,
with the optional ``g722`` package) on the way out and the agent's L16 back
to μ-law, and stamps DTMF with the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Literal, Protocol

from patter_core.audio import PCM16_16K, ULAW_8K, AudioFormat, Encoding, Transcoder
from patter_core.media import AgentEvent, TelnyxCarrierSide, TwilioCarrierSide

__all__ = ["CarrierFrames", "TelnyxCarrierFrames", "TwilioCarrierFrames"]


class CarrierFrames(Protocol):
    """What the call loop needs from a carrier: its frames, and the agent's audio in μ-law."""

    def connected(self) -> str: ...
    def start(self, custom_parameters: Mapping[str, str] | None = None) -> str: ...
    def media(self, payload: bytes, timestamp_ms: int | None = None) -> str: ...
    def dtmf(self, digit: str) -> str: ...
    def mark(self, name: str) -> str: ...
    def stop(self) -> str: ...
    def error(self) -> str | None: ...
    def receive(self, message: str | bytes) -> AgentEvent: ...
    def agent_audio(self, payload: bytes) -> bytes: ...


class TwilioCarrierFrames(TwilioCarrierSide):
    """Twilio's carrier role: μ-law 8 kHz both ways (PROTOCOLS.md §3), nothing to convert."""

    def agent_audio(self, payload: bytes) -> bytes:
        return payload


class TelnyxCarrierFrames(TelnyxCarrierSide):
    """Telnyx's carrier role, taking the caller's μ-law and giving the agent's back in μ-law.

    With ``codec`` ``"L16"`` the caller's μ-law is sent as 16-bit PCM at
    ``sample_rate`` in ``l16_byte_order`` (the docs do not state it, §4.4;
    the server's default is big-endian). ``back_codec``/``back_rate``: what
    the agent must send (the ``stream_bidirectional_codec`` it started the
    stream with), which may differ from ``codec`` when Telnyx falls back to
    the call's own codec.
    """

    def __init__(
        self,
        *,
        call_control_id: str,
        call_session_id: str,
        user_id: str,
        stream_id: str,
        from_number: str,
        to_number: str,
        auth_token: str | None = None,
        codec: Literal["PCMU", "L16", "G722"] = "PCMU",
        sample_rate: int = 8000,
        l16_byte_order: Literal["big", "little"] = "big",
        back_codec: Literal["PCMU", "L16"] | None = None,
        back_rate: int | None = None,
        client_state: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        rate = {"L16": sample_rate, "G722": 16000}.get(codec, 8000)
        super().__init__(
            call_control_id=call_control_id,
            stream_id=stream_id,
            call_session_id=call_session_id,
            user_id=user_id,
            from_number=from_number,
            to_number=to_number,
            codec=codec,
            sample_rate=rate,
            auth_token=auth_token,
            client_state=client_state,
        )
        self._clock = clock
        self._to_carrier: Transcoder | None = None
        self._from_agent: Transcoder | None = None
        order = Encoding.PCM16BE if l16_byte_order == "big" else Encoding.PCM16LE
        self._encode: Callable[[bytes], bytes] | None = None
        if codec == "L16":
            self._to_carrier = Transcoder(ULAW_8K, AudioFormat(encoding=order, sample_rate=rate))
        elif codec == "G722":
            from ..calls._codecs import g722_encoder

            self._encode = g722_encoder()
            if self._encode is None:
                raise ValueError("G.722 needs the optional g722 package")
            self._to_carrier = Transcoder(ULAW_8K, PCM16_16K)
        back = codec if back_codec is None else back_codec
        if back == "L16":
            # An agent may split a sample across messages; keep the odd byte.
            self._from_agent = Transcoder(
                AudioFormat(encoding=order, sample_rate=back_rate or rate),
                ULAW_8K,
                carry_odd_byte=True,
            )

    def media(self, payload: bytes, timestamp_ms: int | None = None) -> str:
        """One frame of the caller's μ-law, in the stream's codec."""
        if self._to_carrier is not None:
            payload = self._to_carrier.convert(payload)
        if self._encode is not None:
            payload = self._encode(payload)
        return super().media(payload, timestamp_ms)

    def dtmf(self, digit: str, now: float | None = None, *, sequence: int | None = None) -> str:
        """A key press, stamped with the wall clock unless ``now`` is given."""
        return super().dtmf(digit, self._clock() if now is None else now, sequence=sequence)

    def agent_audio(self, payload: bytes) -> bytes:
        """The agent's media payload as μ-law 8 kHz."""
        if self._from_agent is None:
            return payload
        return self._from_agent.convert(payload)
