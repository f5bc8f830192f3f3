"""``CallBridge.provider_result``: every kind of I/O result reaches the session
once, through one entry point, and the events it gives are handled in the
same input; events a command or the start makes come back from that call."""

from __future__ import annotations

import pytest

from patter_core.bridge import BridgeConfig
from patter_core.providers import (
    HandlerReplied,
    HttpData,
    HttpDone,
    HttpFailed,
    HttpStarted,
    IoResult,
    ProviderCommand,
    ProviderEvent,
    ResponseDone,
    SendAudio,
    SendText,
    SessionReady,
    SocketClosed,
    SocketMessage,
    SocketOpened,
    Transcript,
)

from .test_bridge_support import (
    FakeSession,
    Rig,
    callbacks,
    connected,
    dtmf,
    media,
    start,
    stop,
    tone,
    ulaw_encode,
)

RESULTS: list[IoResult] = [
    SocketOpened(channel="tts-1"),
    SocketMessage(channel="main", data='{"type":"x"}'),
    SocketMessage(channel="stt", data=b"\x00\x01"),
    SocketClosed(channel="tts-1", code=1000, reason="done"),
    HttpStarted(channel="llm-2", status=200, headers=(("content-type", "text/event-stream"),)),
    HttpData(channel="llm-2", data=b"data: {}\n\n"),
    HttpDone(channel="llm-2"),
    HttpFailed(channel="llm-3", message="connection reset"),
    HandlerReplied(request_id=4, text="Sure."),
]


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: type(r).__name__)
def test_every_result_reaches_the_session_once_and_its_events_are_handled(
    result: IoResult,
) -> None:
    rig = Rig()
    rig.connect()
    session = rig.session
    session.results.clear()
    session.inbox = [Transcript(role="user", text="hello there", final=True)]
    out = rig.bridge.provider_result(result, 1.0)
    assert session.results == [result]  # the very object, once
    [fired] = callbacks(out, "on_transcript")
    assert fired["text"] == "hello there" and fired["role"] == "user"
    assert not rig.bridge.ended


def test_results_before_the_session_or_after_the_end_go_nowhere() -> None:
    rig = Rig()
    rig.carrier(connected(), 0.0)
    assert rig.bridge.provider_result(SocketMessage(channel="main", data="x"), 0.1) == []
    rig.carrier(start(), 0.2)
    rig.carrier(stop(), 0.3)
    assert rig.bridge.ended
    for result in RESULTS:
        assert rig.bridge.provider_result(result, 0.4) == []
    assert rig.session.results == []


def test_the_main_socket_closing_ends_the_call_once() -> None:
    rig = Rig()
    rig.connect()
    out = rig.bridge.provider_result(SocketClosed(channel="main", code=1011, reason="gone"), 1.0)
    [ended] = callbacks(out, "on_call_end")
    assert ended["reason"] == "provider_closed"
    assert ended["provider_close_code"] == 1011
    again = rig.bridge.provider_result(SocketClosed(channel="main", code=1011, reason="gone"), 1.1)
    assert again == []


def test_a_socket_that_never_opened_is_a_provider_error_in_our_words() -> None:
    rig = Rig()
    rig.carrier(connected(), 0.0)
    rig.carrier(start(), 0.0)
    refused = SocketClosed(channel="main", code=1006, reason="could not connect: refused")
    [ended] = callbacks(rig.bridge.provider_result(refused, 0.5), "on_call_end")
    assert ended["reason"] == "provider_error"
    assert ended["detail"] == "could not connect: refused"


class Replying(FakeSession):
    """A session whose commands and start make events of their own."""

    def __init__(self) -> None:
        super().__init__()
        self.on_start: list[ProviderEvent] = []
        self.on_text: list[ProviderEvent] = []

    def start(self, now: float) -> list[ProviderEvent]:
        super().start(now)
        return self.on_start

    def send(self, command: ProviderCommand, now: float) -> list[ProviderEvent]:
        super().send(command, now)
        if isinstance(command, SendText):
            return self.on_text
        return []


def test_events_from_start_are_handled_in_the_input_that_started_it() -> None:
    session = Replying()
    session.on_start = [SessionReady()]  # nothing to connect (echo, pipeline without socket)
    rig = Rig(session=session)
    rig.carrier(connected(), 0.0)
    rig.carrier(start(), 0.0)
    # Ready at once: the caller's audio goes straight through, nothing held.
    assert not any(isinstance(c, SendAudio) for c in session.commands)
    rig.carrier(media(ulaw_encode(tone(300, 20, rate=8000))), 0.02)
    assert [type(c) for c in session.commands] == [SendAudio]


def test_events_a_command_makes_are_handled_in_the_same_input() -> None:
    session = Replying()
    session.on_text = [
        Transcript(role="assistant", text="You pressed five.", final=True, item_id="a1"),
        ResponseDone(item_id="a1"),
    ]
    rig = Rig(BridgeConfig(), session=session)
    rig.connect()
    out = rig.carrier(dtmf("5"), 1.0)
    texts = [(p["role"], p["text"]) for p in callbacks(out, "on_transcript")]
    assert texts == [("user", "[DTMF 5]"), ("assistant", "You pressed five.")]
    # Nothing was left for a timer to collect.
    deadline = rig.bridge.next_deadline()
    assert deadline is None or deadline > 1.0
