"""Fuzz the call bridge with whatever a carrier, a provider and a model might do.

Each example is a sequence of inputs to one :class:`CallBridge` on a Twilio
stream: plausible and mangled carrier frames, arbitrary text, scripted
provider events (audio, barge-in, tool calls with arbitrary argument text,
errors), timers, answering-machine results and socket losses. The bridge
must never raise, and must keep its promises: ``on_call_end`` exactly once
if and only if it ended, nothing at all after the end, no provider I/O for a
stream whose token was refused, and ``played_ms <= sent_ms``.

    python -m fuzz.fuzz_bridge --examples 3000
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patter_core import SignatureError
from patter_core.audio import AudioFormat
from patter_core.bridge import (
    Action,
    BridgeConfig,
    CallBridge,
    CallInfo,
    FireCallback,
    ProviderIo,
    ToolSpec,
)
from patter_core.http import HttpRequest
from patter_core.media import TwilioMediaStream
from patter_core.providers import (
    AudioOut,
    CloseSocket,
    EchoSession,
    IoAction,
    IoResult,
    OpenSocket,
    ProviderError,
    ProviderEvent,
    ResponseDone,
    SessionReady,
    SocketClosed,
    SocketMessage,
    ToolCall,
    Transcript,
    UserSpeechStarted,
)

__all__ = ["check", "main", "steps"]

SID = "MZ1"
CALL = "CA1"


class _Resize:
    """Transcoder stand-in: right length for the target format, zero samples."""

    def __init__(self, src: AudioFormat, dst: AudioFormat) -> None:
        self._ratio = dst.bytes_per_second / src.bytes_per_second

    def convert(self, data: bytes) -> bytes:
        n = int(len(data) * self._ratio)
        return bytes(n - n % 2)

    def flush(self) -> bytes:
        return b""


class _Scripted(EchoSession):
    """The echo session, plus provider events injected by the harness."""

    def __init__(self) -> None:
        super().__init__()
        self.inbox: list[ProviderEvent] = []
        self.opened = False
        self.io: list[IoAction] = []

    def start(self, now: float) -> list[ProviderEvent]:
        self.io.append(OpenSocket(channel="main", url="wss://provider.invalid/"))
        return super().start(now)

    def close(self, now: float) -> None:
        super().close(now)
        self.io.append(CloseSocket(channel="main"))

    def io_to_send(self) -> list[IoAction]:
        io, self.io = self.io, []
        return io

    def receive_io(self, result: IoResult, now: float) -> list[ProviderEvent]:
        if not isinstance(result, SocketMessage):
            return []
        events, self.inbox = self.inbox, []
        return events


class _Control:
    def hangup(self, call_id: str) -> HttpRequest | None:
        return HttpRequest(method="POST", url="https://carrier.invalid/hangup")

    def transfer(self, call_id: str, target: str) -> HttpRequest | None:
        return HttpRequest(method="POST", url="https://carrier.invalid/transfer")

    def start_recording(self, call_id: str) -> HttpRequest | None:
        return None

    def leave_message(self, call_id: str, text: str) -> HttpRequest | None:
        return None


def _verify(token: str, call_id: str, now: float) -> None:
    if token != "good":
        raise SignatureError("bad token")


def _frame(event: str, **fields: Any) -> str:
    return json.dumps({"event": event, "streamSid": SID, **fields})


def _start(token: Any, encoding: Any) -> str:
    params = {"stream_token": token} if token is not None else {}
    return _frame(
        "start",
        start={
            "streamSid": SID,
            "callSid": CALL,
            "mediaFormat": {"encoding": encoding, "sampleRate": 8000, "channels": 1},
            "customParameters": params,
        },
    )


_text = st.text(max_size=24)
_carrier = st.one_of(
    st.just(json.dumps({"event": "connected", "protocol": "Call"})),
    st.builds(
        _start,
        st.one_of(st.just("good"), st.none(), _text),
        st.sampled_from(["audio/x-mulaw", "x"]),
    ),
    st.builds(
        lambda b: _frame("media", media={"payload": b}),
        st.sampled_from(["", "/w==", "////" * 40, "!!", "AAAA" * 100]),
    ),
    st.builds(lambda d: _frame("dtmf", dtmf={"digit": d}), _text),
    st.builds(lambda n: _frame("mark", mark={"name": n}), st.one_of(_text, st.just("1:a:100"))),
    st.just(_frame("stop", stop={})),
    _text,
    st.binary(max_size=16),
)
_events = st.lists(
    st.one_of(
        st.just(SessionReady()),
        st.builds(
            lambda n, i: AudioOut(audio=bytes(2 * n), item_id=i),
            st.integers(0, 3000),
            st.sampled_from(["a", "b", None]),
        ),
        st.just(UserSpeechStarted()),
        st.builds(lambda i: ResponseDone(item_id=i), st.sampled_from(["a", None])),
        st.builds(
            lambda name, args: ToolCall(call_id="c", name=name, arguments=args),
            st.sampled_from(["end_call", "transfer_call", "lookup", "other"]),
            st.one_of(_text, st.just('{"number": "+15550001"}'), st.just("[" * 5000)),
        ),
        st.builds(lambda t: Transcript(role="user", text=t), _text),
        st.builds(lambda f: ProviderError(message="e", fatal=f), st.booleans()),
    ),
    max_size=4,
)
_middle = st.one_of(
    st.tuples(st.just("carrier"), _carrier),
    st.tuples(st.just("provider"), _events),
    st.tuples(st.just("provider"), _events),
    st.tuples(st.just("timer"), st.floats(0, 200, allow_nan=False)),
    st.tuples(st.just("amd"), st.sampled_from(["human", "machine_end_beep"])),
    st.tuples(st.just("tool_result"), _text),
)
_ending = st.one_of(
    st.tuples(st.just("closed"), st.sampled_from(["main", "tts"])),
    st.tuples(st.just("lost"), st.none()),
    st.tuples(st.just("hangup"), _text),
)
_good_start = [("carrier", _start("good", "audio/x-mulaw"))]
#: Most sequences start a call properly, so the harness spends its time on
#: live calls; the rest start with anything at all.
steps = st.builds(
    lambda prefix, middle, end: prefix + middle + end,
    st.sampled_from([_good_start, _good_start, _good_start, []]),
    st.lists(_middle, max_size=30),
    st.lists(_ending, max_size=1),
)


def check(sequence: list[tuple[str, Any]]) -> None:
    """Run one sequence; raise AssertionError (or the bug) if a promise breaks."""
    session = _Scripted()
    stream = TwilioMediaStream()
    bridge = CallBridge(
        stream=stream,
        carrier="twilio",
        session_factory=lambda info: _session_for(info, session),
        verify_token=_verify,
        make_transcoder=_Resize,
        config=BridgeConfig(
            first_message="hi",
            voicemail_message="vm",
            record=True,
            tools=(ToolSpec(name="lookup"),),
            transfer_allowlist=frozenset({"+15550001"}),
        ),
        control=_Control(),
    )
    actions: list[Action] = []
    for now, (kind, value) in enumerate(sequence):
        t = float(now)
        was_ended = bridge.ended
        if kind == "carrier":
            out = bridge.carrier_message(value, t)
        elif kind == "provider":
            session.inbox = list(value)
            out = bridge.provider_result(SocketMessage(channel="main", data="x"), t)
        elif kind == "closed":
            out = bridge.provider_result(SocketClosed(channel=value, code=1006, reason=""), t)
        elif kind == "timer":
            out = bridge.handle_timer(value)
        elif kind == "amd":
            out = bridge.amd_result(value, t)
        elif kind == "tool_result":
            out = bridge.tool_result("c", value, t)
        elif kind == "lost":
            out = bridge.carrier_closed(t)
        else:
            out = bridge.hangup(value, t)
        if was_ended:
            assert out == [], f"output after the end: {out!r}"
        actions += out
        assert stream.played_ms <= stream.sent_ms
    ends = [a for a in actions if isinstance(a, FireCallback) and a.name == "on_call_end"]
    assert len(ends) == (1 if bridge.ended else 0), ends
    if ends and ends[0].payload.as_dict()["reason"] == "token_rejected":
        assert not any(isinstance(a, ProviderIo) for a in actions)


def _session_for(info: CallInfo, session: _Scripted) -> _Scripted:
    assert info.call_id == CALL
    return session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000)
    args = parser.parse_args(argv)
    failure: list[str] = []

    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(steps)
    def prop(sequence: list[tuple[str, Any]]) -> None:
        try:
            check(sequence)
        except Exception:
            failure[:] = [repr(sequence), traceback.format_exc()]
            raise

    try:
        prop()
    except Exception:
        print("fuzz_bridge: FAILED on input:")
        print("\n".join(failure))
        return 1
    print(f"fuzz_bridge: {args.examples} examples of call-bridge input sequences, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
