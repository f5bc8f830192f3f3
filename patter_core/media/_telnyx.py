"""Telnyx media streaming over a WebSocket, sans-IO.

Wire format: PROTOCOLS.md section 4.4 (developers.telnyx.com, "stream call
media over WebSocket"). Same shape as Twilio's with snake_case names:
``stream_id`` is top-level, ``call_control_id`` sits in ``start``, and there is
an ``error`` frame. Differences that matter here:

* the inbound codec follows ``start.media_format``: PCMU (older docs:
  ``audio/x-mulaw``), PCMA, or L16 at the configured rate;
* "Media frame order is not guaranteed", so media frames pass through a
  small reorder window per track (:mod:`._reorder`);
* outgoing frames carry no ``stream_id`` and, in RTP mode, each chunk must
  hold at least 20 ms of audio, so a flushed remainder is padded with silence;
* what we send must be in ``stream_bidirectional_codec``, a setting separate
  from the codec Telnyx streams to us: ``stream_codec`` "falls back to the
  codec from the call when transcoding is not possible" (PROTOCOLS.md
  section 4.4), so a stream asked for in L16 may arrive in PCMU. Given the
  bidirectional codec, the stream sends in it whatever arrives
  (:attr:`send_format`);
* ``error`` frames come in two shapes (the guide's ``payload`` with an integer
  code, the AsyncAPI's ``error`` with a string code); neither ends the stream,
  and each is counted in ``errors_received``;
* DTMF frames "may arrive out of order": they are put back in
  ``sequence_number`` order within a small window (:class:`._reorder.DigitReorder`);
* the streaming auth token may sit in ``connected`` at the top level or
  nested under ``connected`` (two independent implementations read it there).

G.722, Opus and AMR-WB (HD SIP and WebRTC legs) need a decoder the core
does not have. One can be handed in (:class:`PayloadDecoder`; the runtime
offers G.722 when the optional ``g722`` package is installed): the stream
then decodes each frame after reordering (the codecs carry state from frame
to frame) and reports the decoded format as ``media_format``. A stream in a
codec without a decoder is refused (close 1003) with a message that names
the codecs a leg must use. Our ``streaming_start`` always asks for PCMU or
L16 explicitly, so a leg arrives in another codec only on Telnyx's fallback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from .._errors import LocalProtocolError, RemoteProtocolError
from .._json import JSON_PLAIN_STR
from ..audio._format import ALAW_8K, ULAW_8K, AudioFormat, Encoding
from ._base import FRAME_MS, CarrierStream
from ._events import Connected, Mark, Media, MediaEvent, Start, Stop, StreamError
from ._limits import MediaLimits
from ._reorder import DigitReorder, ReorderBuffer
from ._twilio import parse_digit, parse_tracks
from ._wire import (
    CLOSE_POLICY,
    CLOSE_UNSUPPORTED,
    JsonObject,
    bad,
    decode_audio,
    decode_payload,
    get_counter,
    get_object,
    get_str,
    media_head,
)

__all__ = ["PayloadDecoder", "TelnyxMediaStream"]

# A stream carries the inbound track, the outbound track, or both
# (``stream_track``); a few spare slots tolerate other names without letting
# a peer make us keep a reorder buffer per arbitrary string.
MAX_TRACKS = 4

_G711 = {
    "pcmu": ULAW_8K,
    "audio/x-mulaw": ULAW_8K,
    "pcma": ALAW_8K,
    "audio/x-alaw": ALAW_8K,
}
_L16 = {"l16", "audio/l16"}
# What ``streaming_start`` can ask for beyond these (PROTOCOLS.md section 4.3).
_UNDECODABLE = {"g722": "G.722", "opus": "Opus", "amr-wb": "AMR-WB"}
_TOKEN = "x-telnyx-streaming-auth-token"

# A media message exactly as Telnyx documents it (PROTOCOLS.md section 4.4),
# compact and in its key order, is read without a dict
# (``CarrierStream._media_shape``): the head up to the payload, then the
# payload up to its closing quote, then the tail, whose stream_id may be
# any plain string: it is not compared (the docs spell one id in two cases).
_MEDIA_HEAD = media_head("sequence_number")
_MEDIA_TAIL = re.compile('"},"stream_id":"' + JSON_PLAIN_STR + '"}')


@dataclass(frozen=True, slots=True, kw_only=True)
class PayloadDecoder:
    """A codec the core cannot decode by itself, handed in by its owner.

    ``new()`` makes one decoder for one track (codecs such as G.722 keep
    state from frame to frame): a function from one frame's payload to the
    audio in ``output`` (e.g. PCM16LE at 16 kHz for G.722).
    """

    output: AudioFormat
    new: Callable[[], Callable[[bytes], bytes]]


def _custom_parameters(value: object) -> dict[str, str]:
    """``custom_parameters``: an object, or the ``[{"name", "value"}]`` list the REST API takes."""
    if value is None:
        return {}
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = []
        for entry in value:
            if not isinstance(entry, dict):
                raise bad("'custom_parameters' entries must be objects")
            items.append((entry.get("name"), entry.get("value")))
    else:
        raise bad("'custom_parameters' must be an object or a list")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in items):
        raise bad("custom parameter names and values must be strings")
    return dict(items)


class TelnyxMediaStream(CarrierStream):
    """One Telnyx media streaming WebSocket, as a state machine.

    ``l16_byte_order``: PROTOCOLS.md section 4.4 [R] -- the L16 byte order is
    not stated in the Telnyx docs read; RFC 3551 says network order
    (big-endian, as pipecat treats it) while another project claims
    little-endian. So it is configurable and applies both ways; verify on a
    live call. Payloads are passed through untouched and ``media_format``
    says which order they are in.
    """

    _EVENTS: ClassVar[frozenset[str]] = frozenset(
        {"connected", "start", "media", "dtmf", "mark", "stop", "error"}
    )
    _PAD_FLUSH: ClassVar[bool] = True  # RTP mode wants chunks of 20 ms or more

    def __init__(
        self,
        *,
        limits: MediaLimits = MediaLimits(),  # noqa: B008
        l16_byte_order: Literal["big", "little"] = "big",
        bidirectional_codec: Literal["PCMU", "PCMA", "L16"] | None = None,
        bidirectional_sampling_rate: int = 8000,
        decoders: Mapping[str, PayloadDecoder] | None = None,
    ) -> None:
        super().__init__(limits=limits)
        # By lower-case codec name as in media_format ("g722", "opus").
        self._decoders = {k.lower(): v for k, v in (decoders or {}).items()}
        self._decoder: PayloadDecoder | None = None
        self._track_decoders: dict[str, Callable[[bytes], bytes]] = {}
        if l16_byte_order not in ("big", "little"):
            raise LocalProtocolError("l16_byte_order must be 'big' or 'little'")
        self._l16 = Encoding.PCM16BE if l16_byte_order == "big" else Encoding.PCM16LE
        self._bidirectional: AudioFormat | None = None
        if bidirectional_codec is not None:
            try:
                self._bidirectional = self._format_of(
                    bidirectional_codec.lower(), bidirectional_sampling_rate
                )
            except RemoteProtocolError as exc:
                raise LocalProtocolError(f"bidirectional codec: {exc}") from None
        self._sample_bytes = 1
        self._tracks: dict[str, ReorderBuffer] = {}
        self._digits = DigitReorder(limits.dtmf_reorder_window)
        #: ``error`` frames received (each also comes out as a StreamError).
        self.errors_received = 0

    # -- counters of the reorder window --------------------------------------

    @property
    def frames_late(self) -> int:
        """Frames dropped because they arrived after their slot had passed."""
        return sum(t.late for t in self._tracks.values())

    @property
    def frames_duplicate(self) -> int:
        """Frames dropped because their chunk had already arrived."""
        return sum(t.duplicate for t in self._tracks.values())

    @property
    def frames_lost(self) -> int:
        """Slots skipped because the frame had not come when the window filled."""
        return sum(t.lost for t in self._tracks.values())

    @property
    def digits_late(self) -> int:
        """DTMF digits that came after a later digit had been delivered."""
        return self._digits.late

    def drain_held(self) -> list[MediaEvent]:
        """Deliver the frames held for reordering (done by itself on ``stop``)."""
        out: list[MediaEvent] = []
        for track in self._tracks.values():
            out += track.drain()
        if self._decoder is not None:
            out = self._decode(out)
        out += self._digits.drain()
        return out

    # -- receiving -----------------------------------------------------------

    def _dispatch(self, event: str, obj: JsonObject) -> list[MediaEvent]:
        if event == "mark":
            name = get_str(get_object(obj, "mark"), "name")
            self._on_mark_echo(name)
            out: list[MediaEvent] = []
            if self._digits.holding:
                out += self._digits.seen(get_counter(obj, "sequence_number"))
            out.append(Mark(name=name))
            return out
        if event == "dtmf":
            return self._on_dtmf(obj)
        if event == "error":
            return [self._on_error(obj)]
        if event == "start":
            return [self._on_start(obj)]
        if event == "connected":
            return [self._on_connected(obj)]
        events: list[MediaEvent] = list(self.drain_held())  # "stop"
        events.append(Stop())
        return events

    def _on_connected(self, obj: JsonObject) -> Connected:
        token = obj.get(_TOKEN)
        nested = obj.get("connected")
        if token is None and isinstance(nested, dict):
            token = nested.get(_TOKEN)
        if token is not None and not isinstance(token, str):
            raise bad(f"{_TOKEN!r} must be a string")
        return Connected(version=get_str(obj, "version", ""), auth_token=token)

    def _on_dtmf(self, obj: JsonObject) -> list[MediaEvent]:
        digit = parse_digit(obj)
        if "sequence_number" not in obj or not self._digits.window:
            return [digit]
        return list(self._digits.push(get_counter(obj, "sequence_number"), digit))

    def _on_error(self, obj: JsonObject) -> StreamError:
        # The guide's shape puts the body under "payload" with an integer
        # code; the AsyncAPI's under "error" with a string code. A frame in
        # neither shape is still an error report, not a reason to hang up.
        body = obj.get("payload")
        if not isinstance(body, dict):
            body = obj.get("error")
        if not isinstance(body, dict):
            body = {}
        code = body.get("code", "")
        if isinstance(code, int) and not isinstance(code, bool):
            code = str(code)
        title, detail = body.get("title", ""), body.get("detail", "")
        self.errors_received += 1
        return StreamError(
            title=title if isinstance(title, str) else "",
            code=code if isinstance(code, str) else "",
            detail=detail if isinstance(detail, str) else "",
        )

    def _parse_format(self, body: JsonObject) -> AudioFormat:
        media_format = get_object(body, "media_format")
        encoding = get_str(media_format, "encoding").lower()
        rate = media_format.get("sample_rate")
        channels = media_format.get("channels", 1)
        if rate is not None and (not isinstance(rate, int) or isinstance(rate, bool)):
            raise bad("'sample_rate' must be an integer")
        if channels != 1:
            raise bad(f"{channels!r} channels: only mono is carried", CLOSE_UNSUPPORTED)
        return self._format_of(encoding, rate)

    def _format_of(self, encoding: str, rate: int | None) -> AudioFormat:
        if encoding in _G711:
            if rate not in (None, 8000):
                raise bad(f"G.711 at {rate} Hz", CLOSE_UNSUPPORTED)
            return _G711[encoding]
        if encoding in _L16:
            # 20 ms frames must be whole samples, and AudioFormat's range applies.
            if rate is None or rate % (1000 // FRAME_MS) or not 8000 <= rate <= 48000:
                raise bad(f"L16 at {rate!r} Hz is not supported", CLOSE_UNSUPPORTED)
            return AudioFormat(encoding=self._l16, sample_rate=rate)
        name = encoding.removeprefix("audio/")
        decoder = self._decoders.get(name)
        if decoder is not None and self._bidirectional is not None:
            # Decoded here; our replies go in the bidirectional codec.
            self._decoder = decoder
            return decoder.output
        name = _UNDECODABLE.get(name, repr(encoding))
        raise bad(
            f"media encoding {name} cannot be decoded here: the leg must stream PCMU, "
            "PCMA or L16 (ask for stream_codec PCMU or L16)",
            CLOSE_UNSUPPORTED,
        )

    def _outgoing_format(self, incoming: AudioFormat) -> AudioFormat:
        return self._bidirectional or incoming

    def _on_start(self, obj: JsonObject) -> Start:
        body = get_object(obj, "start")
        stream_id = get_str(obj, "stream_id", "") or get_str(body, "stream_id", "")
        call_id = get_str(body, "call_control_id", "")
        if not stream_id or not call_id:
            raise bad("'start' needs a stream_id and a call_control_id")
        client_state = body.get("client_state")
        if client_state is not None and not isinstance(client_state, str):
            raise bad("'client_state' must be a string")
        start = Start(
            stream_id=stream_id,
            call_id=call_id,
            media_format=self._parse_format(body),
            account_id=get_str(body, "user_id", ""),
            tracks=parse_tracks(body.get("tracks")),
            custom_parameters=_custom_parameters(body.get("custom_parameters")),
            caller=get_str(body, "from", ""),
            callee=get_str(body, "to", ""),
            client_state=client_state,
        )
        self._sample_bytes = (
            1 if self._decoder is not None else start.media_format.encoding.bytes_per_sample
        )
        self._begin(start)
        return start

    def _on_media(self, obj: JsonObject) -> list[MediaEvent]:
        if self._decoder is None:
            return self._on_wire_media(obj)
        return self._decode(self._on_wire_media(obj))

    def _decode(self, events: list[MediaEvent]) -> list[MediaEvent]:
        """Frames of a handed-in codec, decoded in order, one decoder per track."""
        assert self._decoder is not None
        out: list[MediaEvent] = []
        for event in events:
            if isinstance(event, Media):
                decode = self._track_decoders.get(event.track)
                if decode is None:
                    decode = self._track_decoders[event.track] = self._decoder.new()
                event = Media(
                    payload=decode(event.payload),
                    track=event.track,
                    chunk=event.chunk,
                    timestamp=event.timestamp,
                )
            out.append(event)
        return out

    def _on_wire_media(self, obj: JsonObject) -> list[MediaEvent]:
        # The top-level stream_id is not compared with start's: the docs' own
        # examples spell one id in upper and lower case.
        media = get_object(obj, "media")
        frame = Media(
            payload=decode_payload(media, self._limits.max_payload_bytes, self._sample_bytes),
            track=get_str(media, "track", "inbound"),
            chunk=get_counter(media, "chunk"),
            timestamp=get_counter(media, "timestamp"),
        )
        sequence = get_counter(obj, "sequence_number") if self._digits.holding else None
        return self._arrived(frame, sequence, "chunk" in media)

    def _arrived(self, frame: Media, sequence: int | None, ordered: bool) -> list[MediaEvent]:
        """What a media frame read from the wire lets out: the digits held
        before its ``sequence`` (when digits are held), then the frame
        through its track's reorder window (``ordered``: it has a chunk)."""
        out: list[MediaEvent] = []
        if sequence is not None:
            out += self._digits.seen(sequence)
        if not ordered:
            out.append(frame)  # nothing to order by: pass it on as it came
            return out
        track = self._tracks.get(frame.track)
        if track is None:
            if len(self._tracks) >= MAX_TRACKS:
                raise bad("too many media tracks", CLOSE_POLICY)
            track = self._tracks[frame.track] = ReorderBuffer(self._limits.reorder_window)
        if out:
            out += track.push(frame)
            return out
        return list(track.push(frame))

    def _media_shape(self, message: str) -> list[MediaEvent] | None:
        # The payload ends at the first quote and has no escape, so it is the
        # JSON string's value; the tail closes the message. Nothing of the
        # stream changes before the frame is known good.
        match = _MEDIA_HEAD.match(message)
        if match is None:
            return None
        end = message.find('"', match.end())
        if end < 0 or _MEDIA_TAIL.fullmatch(message, end) is None:
            return None
        text = message[match.end() : end]
        track = match["track"]
        if "\\" in text or (track not in self._tracks and len(self._tracks) >= MAX_TRACKS):
            return None  # the general path refuses these in its own words
        try:
            payload = decode_audio(text, self._limits.max_payload_bytes, self._sample_bytes)
        except RemoteProtocolError:
            return None
        frame = Media(
            payload=payload, track=track, chunk=int(match["chunk"]), timestamp=int(match["ts"])
        )
        sequence = int(match["seq"]) if self._digits.holding else None
        events = self._arrived(frame, sequence, True)
        # A handed-in codec's decoder may refuse a frame: as on the general path.
        return events if self._decoder is None else self._decode(events)

    # -- outgoing (PROTOCOLS.md section 4.4: no stream_id on client frames) ----

    def _media_template(self) -> tuple[str, str]:
        return '{"event":"media","media":{"payload":"', '"}}'

    def _render_mark(self, name: str) -> str:
        return '{"event":"mark","mark":{"name":' + json.dumps(name) + "}}"

    def _render_clear(self) -> str:
        return '{"event":"clear"}'
