"""What Twilio and Telnyx media streams share: the order of events, outgoing
framing, and playback bookkeeping with marks.

Theory of operation
-------------------

Incoming messages drive a four-state machine (the table ``_TRANSITIONS``)::

    IDLE --connected--> CONNECTED --start--> STREAMING --stop--> STOPPED
      \\________________start________________/^

``media``, ``dtmf`` and ``mark`` are legal only while STREAMING. A second
``start``, media before ``start`` and anything at all after ``stop`` are the
peer's protocol errors (close 1002). ``connected`` is optional: nothing in it
is needed to carry a call (the Telnyx auth token also arrives as an upgrade
header), and test rigs and proxies are known to start with ``start``, so a
stream that begins with ``start`` is accepted. ``stop`` is accepted in any
state before STOPPED, since a call can end before its stream really starts.
Event types we do not know are ignored and counted in ``unknown_events``, so a
carrier adding a message type does not break calls.

Outgoing audio is cut into 20 ms frames, one JSON text message each, rendered
from a per-stream string template (the stream id is baked in once), because
this is the hot path: about 50 messages a second per call. A remainder
shorter than 20 ms waits for more audio or for :meth:`flush_media`.

Playback bookkeeping, in bytes of the carrier's format:

* ``sent`` -- audio emitted as frames, minus audio discarded by ``clear``;
* each mark remembers the ``sent`` position at which it was sent; when the
  carrier echoes it, the audio before it has played (PROTOCOLS.md section 3:
  "echo of a mark you sent, once the audio before it has played -- or
  immediately when a clear flushes it"), so ``played`` moves up to it;
* ``clear`` makes every pending mark "cleared": its echo still comes out as a
  :class:`Mark` event, but proves nothing about playback, so it never moves
  ``played``. The cleared audio was never heard, so ``sent`` drops back to
  ``played``.

Invariants: ``played <= sent``, and ``played`` never decreases. That is what
barge-in needs to truncate the interrupted answer where the caller stopped
hearing it.
"""

from __future__ import annotations

import binascii
import enum
from collections import deque
from typing import ClassVar

from .._errors import LocalProtocolError
from ..audio._format import AudioFormat, Encoding
from ._events import MediaEvent, Start
from ._limits import MediaLimits
from ._wire import CLOSE_PROTOCOL, JsonObject, bad, load_message

__all__ = ["CarrierStream"]

# Outgoing frames are 20 ms: Telnyx requires chunks of at least 20 ms in RTP
# mode (PROTOCOLS.md section 4.4) and it is the ptime both carriers use.
FRAME_MS = 20

_b2a = binascii.b2a_base64


class _State(enum.Enum):
    IDLE = "idle"
    CONNECTED = "connected"
    STREAMING = "streaming"
    STOPPED = "stopped"


_IDLE, _CONNECTED, _STREAMING, _STOPPED = (
    _State.IDLE,
    _State.CONNECTED,
    _State.STREAMING,
    _State.STOPPED,
)

# (state, event) -> next state. A pair not in the table is a protocol error.
_TRANSITIONS: dict[tuple[_State, str], _State] = {
    (_IDLE, "connected"): _CONNECTED,
    (_IDLE, "start"): _STREAMING,
    (_CONNECTED, "start"): _STREAMING,
    (_STREAMING, "media"): _STREAMING,
    (_STREAMING, "dtmf"): _STREAMING,
    (_STREAMING, "mark"): _STREAMING,
    (_IDLE, "stop"): _STOPPED,
    (_CONNECTED, "stop"): _STOPPED,
    (_STREAMING, "stop"): _STOPPED,
    # Telnyx ``error`` reports a problem without ending the stream.
    (_IDLE, "error"): _IDLE,
    (_CONNECTED, "error"): _CONNECTED,
    (_STREAMING, "error"): _STREAMING,
}


class CarrierStream:
    """Base of :class:`TwilioMediaStream` and :class:`TelnyxMediaStream`."""

    #: Event types this carrier sends; others are ignored and counted.
    _EVENTS: ClassVar[frozenset[str]]
    #: Telnyx refuses chunks under 20 ms, so a flushed remainder is padded.
    _PAD_FLUSH: ClassVar[bool]

    def __init__(self, *, limits: MediaLimits) -> None:
        if not isinstance(limits, MediaLimits):
            raise LocalProtocolError("limits must be a MediaLimits")
        self._limits = limits
        self._state = _IDLE
        self._format: AudioFormat | None = None
        self._send_format: AudioFormat | None = None
        self._stream_id: str | None = None
        self._call_id: str | None = None
        self._frame_bytes = 0
        self._bytes_per_second = 1
        self._silence = b""
        self._prefix = ""
        self._suffix = ""
        self._remainder = b""
        self._sent = 0
        self._played = 0
        # (name, position in bytes); position None once cleared.
        self._marks: deque[tuple[str, int | None]] = deque()
        #: Messages with an ``event`` we do not know, ignored.
        self.unknown_events = 0
        #: Pending marks forgotten because ``max_pending_marks`` was reached.
        self.marks_evicted = 0

    # -- properties -------------------------------------------------------

    @property
    def media_format(self) -> AudioFormat | None:
        """The carrier's audio format, known once ``start`` has arrived."""
        return self._format

    @property
    def send_format(self) -> AudioFormat | None:
        """The format our outgoing media must be in (``media_format`` unless
        the carrier was told otherwise, as Telnyx is by its bidirectional codec)."""
        return self._send_format

    @property
    def stream_id(self) -> str | None:
        return self._stream_id

    @property
    def call_id(self) -> str | None:
        return self._call_id

    @property
    def sent_ms(self) -> int:
        """Milliseconds of audio emitted as frames, minus audio cleared."""
        return self._sent * 1000 // self._bytes_per_second

    @property
    def played_ms(self) -> int:
        """Milliseconds confirmed played by mark echoes (never above ``sent_ms``)."""
        return self._played * 1000 // self._bytes_per_second

    @property
    def pending_marks(self) -> tuple[str, ...]:
        """Names of marks sent and not yet echoed (cleared ones included)."""
        return tuple(name for name, _ in self._marks)

    @property
    def stopped(self) -> bool:
        return self._state is _STOPPED

    # -- receiving --------------------------------------------------------

    def receive(self, message: str | bytes) -> list[MediaEvent]:
        """Take one WebSocket message from the carrier; return the events in it.

        Raises :class:`RemoteProtocolError` whose ``close_code`` is what to
        close the WebSocket with.
        """
        if (
            self._state is _STREAMING
            and type(message) is str
            and len(message) <= self._limits.max_message_bytes // 4  # never refused for size
        ):
            media = self._media_shape(message)
            if media is not None:
                return media
        obj = load_message(message, self._limits.max_message_bytes)
        event = obj.get("event")
        if not isinstance(event, str):
            raise bad("'event' must be a string")
        state = self._state
        if event == "media" and state is _STREAMING:  # the hot path
            return self._on_media(obj)
        if state is _STOPPED:
            raise bad(f"{event[:40]!r} message after stop", CLOSE_PROTOCOL)
        if event not in self._EVENTS:
            self.unknown_events += 1
            return []
        next_state = _TRANSITIONS.get((state, event))
        if next_state is None:
            raise bad(f"{event!r} message not allowed in state {state.value}", CLOSE_PROTOCOL)
        events = self._dispatch(event, obj)
        self._state = next_state
        return events

    def _dispatch(self, event: str, obj: JsonObject) -> list[MediaEvent]:
        raise NotImplementedError

    def _on_media(self, obj: JsonObject) -> list[MediaEvent]:
        raise NotImplementedError

    def _media_shape(self, message: str) -> list[MediaEvent] | None:
        """A media message in exactly the shape the carrier documents, read
        without parsing it into a dict (``_json``'s exact-shape readers): the
        events :meth:`_on_media` would give. None for any other message, and
        for one it cannot vouch for: the general path reads those (and
        refuses them in its own words). ``message`` is short enough that its
        size is never what refuses it."""
        return None

    def _begin(self, start: Start) -> None:
        """Record ``start`` and prepare the outgoing templates."""
        self._format = start.media_format
        fmt = self._send_format = self._outgoing_format(start.media_format)
        self._stream_id = start.stream_id
        self._call_id = start.call_id
        self._bytes_per_second = fmt.bytes_per_second
        self._frame_bytes = fmt.bytes_for_ms(FRAME_MS)
        self._silence = _silence_byte(fmt)
        self._prefix, self._suffix = self._media_template()

    def _outgoing_format(self, incoming: AudioFormat) -> AudioFormat:
        return incoming

    def _on_mark_echo(self, name: str) -> None:
        marks = self._marks
        if marks and marks[0][0] == name:
            position = marks.popleft()[1]
        else:
            index = next((i for i, (pending, _) in enumerate(marks) if pending == name), -1)
            if index < 0:
                return  # not ours (or already forgotten): report it, move nothing
            # Carriers echo in order, so the marks before this one played too;
            # their own echoes, if they ever come, are then unknown and ignored.
            for _ in range(index):
                marks.popleft()
            position = marks.popleft()[1]
        if position is not None and position > self._played:
            self._played = position

    # -- sending ----------------------------------------------------------

    def _media_template(self) -> tuple[str, str]:
        raise NotImplementedError

    def _render_mark(self, name: str) -> str:
        raise NotImplementedError

    def _render_clear(self) -> str:
        raise NotImplementedError

    def _require_streaming(self) -> None:
        if self._state is not _STREAMING:
            when = "after stop" if self._state is _STOPPED else "before start"
            raise LocalProtocolError(f"cannot send on a media stream {when}")

    def send_media(self, payload: bytes | bytearray | memoryview) -> list[str]:
        """Queue audio (in ``send_format``'s encoding); return one message per whole 20 ms frame."""
        self._require_streaming()
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise LocalProtocolError("media payload must be bytes-like")
        size = self._frame_bytes
        if self._remainder:
            data = memoryview(self._remainder + bytes(payload))
        else:
            data = memoryview(payload).cast("B")
        length = len(data)
        whole = length - length % size
        prefix, suffix = self._prefix, self._suffix
        out = [
            prefix + _b2a(data[i : i + size], newline=False).decode("ascii") + suffix
            for i in range(0, whole, size)
        ]
        self._remainder = bytes(data[whole:])
        self._sent += whole
        return out

    def flush_media(self) -> list[str]:
        """Send the buffered remainder (under 20 ms), padded with silence where required."""
        self._require_streaming()
        rest = self._remainder
        if not rest:
            return []
        self._remainder = b""
        if self._PAD_FLUSH:
            rest += self._silence * (self._frame_bytes - len(rest))
        self._sent += len(rest)
        return [self._prefix + _b2a(rest, newline=False).decode("ascii") + self._suffix]

    def send_mark(self, name: str) -> str:
        """A mark at the current sent position (the buffered remainder goes after it)."""
        self._require_streaming()
        if not isinstance(name, str):
            raise LocalProtocolError("a mark name must be a str")
        marks = self._marks
        marks.append((name, self._sent))
        if len(marks) > self._limits.max_pending_marks:
            marks.popleft()
            self.marks_evicted += 1
        return self._render_mark(name)

    def send_clear(self) -> str:
        """Tell the carrier to drop its queued audio; drop ours too."""
        self._require_streaming()
        self._remainder = b""
        self._marks = deque((name, None) for name, _ in self._marks)
        self._sent = self._played
        return self._render_clear()


def _silence_byte(fmt: AudioFormat) -> bytes:
    """One byte of the codec's silence: mu-law 0xFF, A-law 0xD5, PCM zeros."""
    if fmt.encoding is Encoding.ULAW:
        return b"\xff"
    if fmt.encoding is Encoding.ALAW:
        return b"\xd5"
    return b"\x00"
