"""Twilio Media Streams over a WebSocket, sans-IO.

Wire format: PROTOCOLS.md section 3 (twilio.com/docs/voice/media-streams/
websocket-messages). Every frame is a JSON text message; counters
(``sequenceNumber``, ``chunk``, ``timestamp``) are decimal strings; audio is
base64 mu-law 8 kHz mono without a header.

Twilio sends ``connected``, ``start`` (once), then ``media``, ``dtmf`` and
``mark`` (echoes of ours), and finally ``stop``. We send ``media``, ``mark``
and ``clear``, each carrying the ``streamSid`` (only on a bidirectional
``<Connect><Stream>``). The order rules and the playback bookkeeping live in
:mod:`._base`; this module knows the field names.
"""

from __future__ import annotations

import json
from typing import ClassVar

from .._errors import RemoteProtocolError
from ..audio._format import ULAW_8K, AudioFormat
from ._base import CarrierStream
from ._events import Connected, Dtmf, Mark, Media, MediaEvent, Start, Stop
from ._limits import MediaLimits
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

__all__ = ["TwilioMediaStream"]

# A media message exactly as Twilio documents it (PROTOCOLS.md section 3),
# compact and in its key order, is read without a dict
# (``CarrierStream._media_shape``): this expression takes it up to the
# payload, the stream's own tail closes it.
_MEDIA_HEAD = media_head("sequenceNumber")

# DTMF digits are one character (0-9, *, #, A-D); a few more are tolerated in
# case a carrier reports a named tone, but not an arbitrary blob.
MAX_DIGIT_CHARS = 8


def parse_custom_parameters(value: object) -> dict[str, str]:
    """``customParameters``: an object of string values (the ``<Parameter>`` elements)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad("'customParameters' must be a JSON object")
    for item in value.values():
        if not isinstance(item, str):
            raise bad("custom parameter values must be strings")
    return dict(value)


def parse_tracks(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise bad("'tracks' must be a list of strings")
    return tuple(value)


def parse_digit(obj: JsonObject) -> Dtmf:
    digit = get_str(get_object(obj, "dtmf"), "digit")
    if not 0 < len(digit) <= MAX_DIGIT_CHARS:
        raise bad("'digit' must be a short non-empty string")
    return Dtmf(digit=digit)


def _twilio_format(obj: JsonObject) -> AudioFormat:
    media_format = get_object(obj, "mediaFormat", required=False)
    if not media_format:
        return ULAW_8K  # Twilio streams are always mu-law 8 kHz mono
    encoding = get_str(media_format, "encoding", "audio/x-mulaw")
    rate = media_format.get("sampleRate", 8000)
    channels = media_format.get("channels", 1)
    if encoding != "audio/x-mulaw" or rate != 8000 or channels != 1:
        raise bad(
            f"unsupported Twilio media format {encoding!r} {rate!r} Hz x{channels!r}",
            CLOSE_UNSUPPORTED,
        )
    return ULAW_8K


class TwilioMediaStream(CarrierStream):
    """One Twilio Media Streams WebSocket, as a state machine.

    Feed every text message to :meth:`receive`; write every string that the
    ``send_*`` methods return, as a text message, in order.
    """

    _EVENTS: ClassVar[frozenset[str]] = frozenset(
        {"connected", "start", "media", "dtmf", "mark", "stop"}
    )
    _PAD_FLUSH: ClassVar[bool] = False  # Twilio plays chunks of any length

    def __init__(self, *, limits: MediaLimits = MediaLimits()) -> None:  # noqa: B008
        super().__init__(limits=limits)
        self._sid_json = ""
        self._media_tail = "\x00"  # what ends our media messages, once started

    def _dispatch(self, event: str, obj: JsonObject) -> list[MediaEvent]:
        if event == "mark":
            name = get_str(get_object(obj, "mark"), "name")
            self._on_mark_echo(name)
            return [Mark(name=name)]
        if event == "dtmf":
            return [parse_digit(obj)]
        if event == "start":
            return [self._on_start(obj)]
        if event == "connected":
            return [
                Connected(
                    protocol=get_str(obj, "protocol", ""), version=get_str(obj, "version", "")
                )
            ]
        return [Stop()]  # "stop": its body repeats accountSid/callSid, nothing new

    def _on_start(self, obj: JsonObject) -> Start:
        body = get_object(obj, "start")
        stream_id = get_str(body, "streamSid", "") or get_str(obj, "streamSid", "")
        call_id = get_str(body, "callSid", "")
        if not stream_id or not call_id:
            raise bad("'start' needs a streamSid and a callSid")
        start = Start(
            stream_id=stream_id,
            call_id=call_id,
            media_format=_twilio_format(body),
            account_id=get_str(body, "accountSid", ""),
            tracks=parse_tracks(body.get("tracks")),
            custom_parameters=parse_custom_parameters(body.get("customParameters")),
        )
        self._sid_json = json.dumps(stream_id)
        self._media_tail = '"},"streamSid":' + self._sid_json + "}"
        self._begin(start)
        return start

    def _on_media(self, obj: JsonObject) -> list[MediaEvent]:
        sid = obj.get("streamSid")
        if sid is not None and sid != self._stream_id:
            raise bad("media for another stream", CLOSE_POLICY)
        media = get_object(obj, "media")
        payload = decode_payload(media, self._limits.max_payload_bytes, 1)
        return [
            Media(
                payload=payload,
                track=get_str(media, "track", "inbound"),
                chunk=get_counter(media, "chunk"),
                timestamp=get_counter(media, "timestamp"),
            )
        ]

    def _media_shape(self, message: str) -> list[MediaEvent] | None:
        # Ending in this stream's tail (else _on_media refuses the streamSid);
        # a payload without quotes or escapes, so that it is the JSON
        # string's value.
        tail = self._media_tail
        if not message.endswith(tail):
            return None
        match = _MEDIA_HEAD.match(message)
        if match is None:
            return None
        text = message[match.end() : len(message) - len(tail)]
        if '"' in text or "\\" in text:
            return None
        try:
            payload = decode_audio(text, self._limits.max_payload_bytes, 1)
        except RemoteProtocolError:
            return None  # the general path says why, in its own words
        return [
            Media(
                payload=payload,
                track=match["track"],
                chunk=int(match["chunk"]),
                timestamp=int(match["ts"]),
            )
        ]

    # -- outgoing: templates with the streamSid baked in (PROTOCOLS.md section 3)

    def _media_template(self) -> tuple[str, str]:
        return '{"event":"media","streamSid":' + self._sid_json + ',"media":{"payload":"', '"}}'

    def _render_mark(self, name: str) -> str:
        return (
            '{"event":"mark","streamSid":'
            + self._sid_json
            + ',"mark":{"name":'
            + json.dumps(name)
            + "}}"
        )

    def _render_clear(self) -> str:
        return '{"event":"clear","streamSid":' + self._sid_json + "}"
