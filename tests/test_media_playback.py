"""Property tests: what we send, a fake carrier plays and echoes, and our
playback bookkeeping agrees with what was really heard.

The fake carrier consumes our outgoing messages the way Twilio and Telnyx
describe (PROTOCOLS.md sections 3 and 4.4): it queues audio and marks, plays
the queue in order, echoes a mark once the audio before it has played, and on
``clear`` drops the queued audio and echoes every queued mark at once.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core.audio import AudioFormat
from patter_core.media import Mark, TelnyxMediaStream, TwilioMediaStream

TWILIO_START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "streamSid": "MZ00",
            "callSid": "CA00",
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": "MZ00",
    }
)


def telnyx_start(encoding: str, rate: int) -> str:
    return json.dumps(
        {
            "event": "start",
            "stream_id": "S1",
            "start": {
                "call_control_id": "v3:x",
                "media_format": {"encoding": encoding, "sample_rate": rate, "channels": 1},
            },
        }
    )


CARRIERS = st.sampled_from(
    [
        ("twilio", None, 0),
        ("telnyx", "PCMU", 8000),
        ("telnyx", "PCMA", 8000),
        ("telnyx", "L16", 16000),
    ]
)


@dataclass
class FakeCarrier:
    kind: str
    fmt: AudioFormat
    queue: list[tuple[str, bytes | str]] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)
    played: int = 0  # bytes the caller really heard
    mark_at: dict[str, int] = field(default_factory=dict)  # carrier position of each mark

    def take(self, message: str) -> list[str]:
        frame = json.loads(message)
        if self.kind == "twilio":
            assert frame.pop("streamSid") == "MZ00"
        else:
            assert "stream_id" not in frame
        event = frame["event"]
        if event == "media":
            assert list(frame) == ["event", "media"] and list(frame["media"]) == ["payload"]
            audio = base64.b64decode(frame["media"]["payload"], validate=True)
            frame_bytes = self.fmt.bytes_for_ms(20)
            if self.kind == "telnyx":
                assert len(audio) == frame_bytes  # RTP mode: at least 20 ms
            else:
                assert 0 < len(audio) <= frame_bytes
            self.received += audio
            self.queue.append(("audio", audio))
            return []
        if event == "mark":
            name = frame["mark"]["name"]
            self.mark_at[name] = self.played + sum(
                len(item) for kind, item in self.queue if kind == "audio"
            )
            self.queue.append(("mark", name))
            return self._echo_ready()
        assert event == "clear" and list(frame) == ["event"]
        names = [str(item) for kind, item in self.queue if kind == "mark"]
        self.queue.clear()
        return [self._echo(name) for name in names]

    def play(self, nbytes: int) -> list[str]:
        out = self._echo_ready()
        while nbytes and self.queue:
            audio = self.queue[0][1]
            assert isinstance(audio, bytes)
            used = min(nbytes, len(audio))
            self.played += used
            nbytes -= used
            if used == len(audio):
                self.queue.pop(0)
            else:
                self.queue[0] = ("audio", audio[used:])
            out += self._echo_ready()
        return out

    def _echo_ready(self) -> list[str]:
        out = []
        while self.queue and self.queue[0][0] == "mark":
            out.append(self._echo(str(self.queue.pop(0)[1])))
        return out

    def _echo(self, name: str) -> str:
        if self.kind == "twilio":
            return json.dumps({"event": "mark", "streamSid": "MZ00", "mark": {"name": name}})
        return json.dumps({"event": "mark", "stream_id": "S1", "mark": {"name": name}})


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("media"), st.integers(0, 900)),
        st.tuples(st.just("mark"), st.just(0)),
        st.tuples(st.just("clear"), st.just(0)),
        st.tuples(st.just("flush"), st.just(0)),
        st.tuples(st.just("play"), st.integers(0, 1200)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(CARRIERS, OPS)
def test_send_play_echo_round_trip(
    carrier: tuple[str, str | None, int], ops: list[tuple[str, int]]
) -> None:
    kind, encoding, rate = carrier
    if kind == "twilio":
        stream: TwilioMediaStream | TelnyxMediaStream = TwilioMediaStream()
        stream.receive(TWILIO_START)
    else:
        stream = TelnyxMediaStream()
        assert encoding is not None
        stream.receive(telnyx_start(encoding, rate))
    fmt = stream.media_format
    assert fmt is not None
    fake = FakeCarrier(kind, fmt)
    frame_bytes = fmt.bytes_for_ms(20)
    bps = fmt.bytes_per_second

    # A model of what we should have put on the wire.
    expected = bytearray()
    remainder = b""
    sent = 0
    played = 0
    played_bytes = 0  # the model's played position
    positions: dict[str, int | None] = {}  # sent position of each mark; None once cleared
    cleared_ever = False
    counter = 0

    def deliver(echoes: list[str]) -> None:
        nonlocal played, played_bytes
        for echo in echoes:
            name = json.loads(echo)["mark"]["name"]
            assert stream.receive(echo) == [Mark(name=name)]
            position = positions.pop(name)
            if position is not None:
                played_bytes = max(played_bytes, position)
            assert stream.played_ms == played_bytes * 1000 // bps
            assert stream.played_ms >= played, "played_ms went backwards"
            played = stream.played_ms
            assert stream.played_ms <= stream.sent_ms
            # Never claim more than the caller really heard.
            assert stream.played_ms <= fake.played * 1000 // bps
            if not cleared_ever:
                assert stream.played_ms == fake.mark_at[name] * 1000 // bps

    for op, size in ops:
        if op == "media":
            audio = bytes((counter + i) % 251 for i in range(size))
            counter += size
            for message in stream.send_media(audio):
                deliver(fake.take(message))
            remainder += audio
            whole = len(remainder) - len(remainder) % frame_bytes
            expected += remainder[:whole]
            sent += whole
            remainder = remainder[whole:]
        elif op == "flush":
            for message in stream.flush_media():
                deliver(fake.take(message))
            if remainder:
                if kind == "telnyx":
                    silence = {"PCMU": b"\xff", "PCMA": b"\xd5", "L16": b"\x00"}[str(encoding)]
                    remainder += silence * (frame_bytes - len(remainder))
                expected += remainder
                sent += len(remainder)
                remainder = b""
        elif op == "mark":
            name = f"m{counter}:{len(fake.mark_at)}"
            positions[name] = sent
            deliver(fake.take(stream.send_mark(name)))
        elif op == "clear":
            cleared_ever = True
            message = stream.send_clear()
            remainder = b""
            sent = played_bytes
            positions = dict.fromkeys(positions)
            deliver(fake.take(message))
        else:
            deliver(fake.play(size))
        assert bytes(fake.received) == bytes(expected)
        assert stream.sent_ms == sent * 1000 // bps
        assert stream.played_ms <= stream.sent_ms
        assert stream.pending_marks == tuple(str(i) for k, i in fake.queue if k == "mark")

    # Play everything out: every mark comes back and, with no clear, the
    # played position reaches the last mark.
    deliver(fake.play(10**9))
    assert stream.pending_marks == ()
