"""A scripted call through the bridge on a float clock: greeting, turns,
agent audio, barge-in, DTMF, tools, transfers, voicemail."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from patter_core.audio import ULAW_8K
from patter_core.bridge import (
    BridgeConfig,
    CloseCarrier,
    ProviderIo,
    RunTool,
    SetTimer,
    ToolSpec,
)
from patter_core.bridge._voicemail import QUIET_SECONDS, START_SECONDS
from patter_core.http import HttpRequest
from patter_core.providers import (
    AudioOut,
    Cancel,
    CloseSocket,
    HoldBargeIn,
    OpenSocket,
    ProviderError,
    ResponseDone,
    Say,
    SendAudio,
    SendText,
    SessionReady,
    SocketClosed,
    ToolCall,
    ToolResult,
    Transcript,
    Truncate,
    UserSpeechStarted,
)

from .test_bridge_support import (
    CALL_SID,
    FakeControl,
    FakeSession,
    Rig,
    callbacks,
    carrier_frames,
    connected,
    dtmf,
    http_calls,
    mark,
    media,
    peak_hz,
    provider_io,
    start,
    tone,
    ulaw_decode,
    ulaw_encode,
)

LOOKUP = ToolSpec(name="lookup_order", parameters={"type": "object", "properties": {}})


def marks_sent(frames: list[dict[str, object]]) -> list[str]:
    return [f["mark"]["name"] for f in frames if f["event"] == "mark"]  # type: ignore[index]


def play_agent(rig: Rig, item: str, chunks: int, now: float, chunk_ms: int = 100) -> list[str]:
    """The agent sends ``chunks`` x ``chunk_ms`` of 440 Hz; returns the mark names."""
    audio = tone(440, chunk_ms * chunks)
    size = len(audio) // chunks
    events = [AudioOut(audio=audio[i * size : (i + 1) * size], item_id=item) for i in range(chunks)]
    return marks_sent(carrier_frames(rig.provider(list(events), now)))


def test_start_fills_prompt_and_greets_after_ready() -> None:
    config = BridgeConfig(
        instructions="You answer {callee} for {caller}. Keep {unknown}.",
        first_message="Hello {caller}!",
        record=True,
        tools=(LOOKUP,),
    )
    rig = Rig(config)
    out = rig.carrier(connected(), 1.0) + rig.carrier(start(), 1.5)
    (info,) = rig.infos
    assert info.instructions == "You answer +18005550199 for +14155550100. Keep {unknown}."
    assert info.first_message == "Hello +14155550100!"
    assert [t.name for t in info.tools] == ["lookup_order", "end_call"]
    (started,) = callbacks(out, "on_call_start")
    assert started["call_id"] == CALL_SID and started["carrier"] == "twilio"
    assert started["caller"] == "+14155550100" and started["callee"] == "+18005550199"
    assert [h.purpose for h in http_calls(out)] == ["recording"]
    assert provider_io(out) == [OpenSocket(channel="main", url="wss://provider.invalid/")]
    assert rig.session.commands == []  # nothing spoken before the session is ready
    rig.provider([SessionReady()], 2.0)
    assert rig.session.commands == [Say(text="Hello +14155550100!")]
    rig.provider([SessionReady()], 2.1)  # a second ready does not greet twice
    assert rig.session.commands == [Say(text="Hello +14155550100!")]


def test_native_first_message_is_left_to_the_session() -> None:
    rig = Rig(BridgeConfig(first_message="Hi", first_message_native=True))
    rig.connect()
    assert rig.infos[0].first_message == "Hi"
    assert rig.session.commands == []


def test_caller_audio_is_held_until_ready_then_sent_in_order() -> None:
    rig = Rig()
    rig.connect(ready=False)
    # Three frames of rising pitch before the session is ready: none is sent
    # yet, all three go out, in order and converted, the moment it is.
    frames = [ulaw_encode(tone(hz, 20, rate=8000)) for hz in (300, 500, 700)]
    for i, frame in enumerate(frames):
        assert provider_io(rig.carrier(media(frame), 0.1 + i * 0.02)) == []
    assert rig.session.commands == []
    out = rig.provider([SessionReady()], 0.2)
    sent = [c for c in rig.session.commands if isinstance(c, SendAudio)]
    assert [len(c.audio) for c in sent] == [640, 640, 640]  # 20 ms at 16 kHz each
    assert len(provider_io(out)) == 3
    out = rig.carrier(media(frames[0]), 0.3)
    assert len(rig.session.commands) == 4 and len(provider_io(out)) == 1
    ended = callbacks(rig.bridge.carrier_closed(0.4), "on_call_end")[0]
    assert (ended["frames_in"], ended["frames_buffered"], ended["frames_dropped"]) == (4, 3, 0)


def test_held_caller_audio_is_bounded_oldest_dropped_and_counted() -> None:
    rig = Rig(BridgeConfig(max_held_audio_ms=100))
    rig.connect(ready=False)
    for i in range(8):  # 160 ms of audio, 100 ms kept
        rig.carrier(media(ulaw_encode(tone(300 + 100 * i, 20, rate=8000))), 0.1 + i * 0.02)
    rig.provider([SessionReady()], 0.5)
    sent = [c.audio for c in rig.session.commands if isinstance(c, SendAudio)]
    assert len(sent) == 5
    # The newest five survive: the first one sent is the fourth frame's 600 Hz.
    assert abs(peak_hz(sent[0], 16000) - 600) < 60
    ended = callbacks(rig.bridge.carrier_closed(0.6), "on_call_end")[0]
    assert (ended["frames_in"], ended["frames_buffered"], ended["frames_dropped"]) == (8, 8, 3)


def test_agent_audio_reaches_carrier_as_frames_with_a_mark_per_chunk() -> None:
    rig = Rig()
    rig.connect()
    names = play_agent(rig, "item1", 10, 1.0)
    frames = carrier_frames(rig.actions)
    media_frames = [f for f in frames if f["event"] == "media"]
    assert len(media_frames) == 50  # 1000 ms in 20 ms frames
    assert all(f["streamSid"] for f in media_frames)
    payload = b"".join(base64.b64decode(f["media"]["payload"]) for f in media_frames)
    assert len(payload) == 8000  # mu-law 8 kHz, 1 s
    assert abs(peak_hz(ulaw_decode(payload), 8000) - 440) < 5
    assert names == [f"{i + 1}:item1:{(i + 1) * 100}" for i in range(10)]
    # All of one input's carrier frames come in one action, marks in order.
    assert [f["event"] for f in frames][:6] == ["media"] * 5 + ["mark"]


def test_barge_in_clears_cancels_and_truncates_at_played_position() -> None:
    rig = Rig()
    rig.connect()
    names = play_agent(rig, "item1", 10, 1.0)
    for name in names[:4]:
        rig.carrier(mark(name), 1.5)
    assert rig.stream.played_ms == 400 and rig.stream.sent_ms == 1000
    rig.session.commands.clear()
    out = rig.provider([UserSpeechStarted(item_id="u1")], 1.6)
    assert [f["event"] for f in carrier_frames(out)] == ["clear"]
    assert rig.session.commands == [Cancel(), Truncate(item_id="item1", played_ms=400)]
    # Late audio of the cancelled item is dropped; a new item plays.
    assert (
        carrier_frames(rig.provider([AudioOut(audio=tone(440, 100), item_id="item1")], 1.7)) == []
    )
    new = carrier_frames(rig.provider([AudioOut(audio=tone(440, 100), item_id="item2")], 1.8))
    assert [f["event"] for f in new] == ["media"] * 5 + ["mark"]
    # The new item starts where the clear left the stream (sent back to played).
    assert new[-1]["mark"]["name"] == "11:item2:500"


def test_barge_in_truncates_each_item_with_unplayed_audio() -> None:
    rig = Rig()
    rig.connect()
    first = play_agent(rig, "a", 3, 1.0)  # 0..300 ms
    play_agent(rig, "b", 3, 1.1)  # 300..600 ms
    rig.carrier(mark(first[2]), 1.2)  # 300 ms played: "a" complete
    rig.session.commands.clear()
    rig.provider([UserSpeechStarted()], 1.3)
    assert rig.session.commands == [Cancel(), Truncate(item_id="b", played_ms=0)]


def test_no_barge_in_when_everything_played() -> None:
    rig = Rig()
    rig.connect()
    names = play_agent(rig, "a", 2, 1.0)
    rig.carrier(mark(names[-1]), 1.3)
    rig.session.commands.clear()
    out = rig.provider([UserSpeechStarted()], 1.4)
    assert carrier_frames(out) == [] and rig.session.commands == []


def test_unnamed_audio_after_barge_in_dropped_until_response_done() -> None:
    rig = Rig()
    rig.connect()
    rig.provider([AudioOut(audio=tone(440, 200))], 1.0)
    rig.provider([UserSpeechStarted()], 1.1)
    assert carrier_frames(rig.provider([AudioOut(audio=tone(440, 100))], 1.2)) == []
    rig.provider([ResponseDone()], 1.3)
    assert carrier_frames(rig.provider([AudioOut(audio=tone(440, 100))], 1.4)) != []


def test_response_done_flushes_the_last_partial_frame_and_marks_it() -> None:
    rig = Rig(session=FakeSession(ULAW_8K))  # an audio/pcmu session: passthrough
    rig.connect()
    out = rig.provider([AudioOut(audio=b"\x00" * 240, item_id="i")], 1.0)  # 30 ms
    assert [f["event"] for f in carrier_frames(out)] == ["media", "mark"]
    out = rig.provider([ResponseDone(item_id="i")], 1.1)
    frames = carrier_frames(out)
    assert [f["event"] for f in frames] == ["media", "mark"]
    assert base64.b64decode(frames[0]["media"]["payload"]) == b"\x00" * 80
    assert frames[1]["mark"]["name"] == "2:i:30"


def test_small_chunks_are_marked_every_100_ms_and_at_the_answer_end() -> None:
    # A provider sending 20 ms deltas: a mark per chunk would double the
    # carrier's messages; one per 100 ms of audio is sent instead.
    rig = Rig(session=FakeSession(ULAW_8K))  # passthrough: bytes as sent
    rig.connect()
    sent: list[dict[str, Any]] = []
    for i in range(12):
        chunk = bytes([i]) * 160  # 20 ms, tagged
        sent += carrier_frames(rig.provider([AudioOut(audio=chunk, item_id="i")], 1.0 + i / 50))
    sent += carrier_frames(rig.provider([ResponseDone(item_id="i")], 1.3))
    media_frames = [f for f in sent if f["event"] == "media"]
    assert [base64.b64decode(f["media"]["payload"]) for f in media_frames] == [
        bytes([i]) * 160 for i in range(12)
    ]
    names = marks_sent(sent)
    assert names == ["1:i:20", "2:i:120", "3:i:220", "4:i:240"]  # the last: the answer's end
    # Each mark follows the frame it names (frames 1, 6, 11 and 12).
    events = [f["event"] for f in sent]
    assert [k for k, event in enumerate(events) if event == "mark"] == [1, 7, 13, 15]
    # A barge-in between marks truncates at the last echoed one (120 ms),
    # under 100 ms short of what was sent then (220 ms).
    rig.carrier(mark(names[0]), 1.31)
    rig.carrier(mark(names[1]), 1.4)
    assert (rig.stream.played_ms, rig.stream.sent_ms) == (120, 240)
    rig.session.commands.clear()
    out = rig.provider([UserSpeechStarted(item_id="u1")], 1.45)
    assert [f["event"] for f in carrier_frames(out)] == ["clear"]
    assert rig.session.commands == [Cancel(), Truncate(item_id="i", played_ms=120)]


def test_every_mark_echoed_means_everything_played() -> None:
    rig = Rig(session=FakeSession(ULAW_8K))
    rig.connect()
    names: list[str] = []
    for _ in range(7):  # 140 ms in 20 ms chunks, then the answer's end
        names += marks_sent(
            carrier_frames(rig.provider([AudioOut(audio=b"\xff" * 160, item_id="i")], 1.0))
        )
    names += marks_sent(carrier_frames(rig.provider([ResponseDone(item_id="i")], 1.2)))
    assert names == ["1:i:20", "2:i:120", "3:i:140"]
    for name in names:
        rig.carrier(mark(name), 1.5)
    assert rig.stream.played_ms == rig.stream.sent_ms == 140
    rig.session.commands.clear()
    out = rig.provider([UserSpeechStarted()], 1.6)
    assert carrier_frames(out) == [] and rig.session.commands == []  # nothing left to cut


def test_transcripts_fire_for_final_segments() -> None:
    rig = Rig()
    rig.connect()
    out = rig.provider(
        [
            Transcript(role="user", text="hel", final=False),
            Transcript(role="user", text="hello", final=True),
            Transcript(role="assistant", text="hi there"),
        ],
        3.0,
    )
    assert [(p["role"], p["text"], p["time"]) for p in callbacks(out, "on_transcript")] == [
        ("user", "hello", 3.0),
        ("assistant", "hi there", 3.0),
    ]


def test_dtmf_reaches_the_agent_and_the_transcript() -> None:
    rig = Rig()
    rig.connect()
    out = rig.carrier(dtmf("5"), 2.0)
    assert rig.session.commands == [SendText(text="The caller pressed 5 on the phone keypad.")]
    (payload,) = callbacks(out, "on_transcript")
    assert payload["role"] == "user" and payload["text"] == "[DTMF 5]"
    assert payload["call_id"] == CALL_SID


def test_dtmf_before_ready_is_held() -> None:
    rig = Rig()
    rig.connect(ready=False)
    rig.carrier(dtmf("#"), 0.5)
    assert rig.session.commands == []
    rig.provider([SessionReady()], 0.6)
    assert rig.session.commands == [SendText(text="The caller pressed # on the phone keypad.")]


def test_user_tool_round_trip() -> None:
    rig = Rig(BridgeConfig(tools=(LOOKUP,)))
    rig.connect()
    out = rig.provider([ToolCall(call_id="c1", name="lookup_order", arguments='{"n": 7}')], 2.0)
    assert [a for a in out if isinstance(a, RunTool)] == [
        RunTool(call_id="c1", name="lookup_order", arguments={"n": 7})
    ]
    rig.bridge.tool_result("c1", '{"status": "shipped"}', 2.5)
    assert rig.session.commands == [ToolResult(call_id="c1", output='{"status": "shipped"}')]
    assert rig.session.commands[0].is_error is False  # type: ignore[union-attr]
    # A handler that failed: the runner says so, and the flag travels on.
    rig.bridge.tool_result("c2", '{"error": "boom"}', 2.6, is_error=True)
    assert rig.session.commands[-1] == ToolResult(
        call_id="c2", output='{"error": "boom"}', is_error=True
    )


@pytest.mark.parametrize(
    ("name", "arguments", "error"),
    [
        ("nope", "{}", "unknown tool 'nope'"),
        ("lookup_order", "{not json", "arguments are not valid JSON"),
        ("lookup_order", "[1, 2]", "arguments must be a JSON object"),
        ("transfer_call", '{"number": "+14155550123"}', "transfers are disabled"),
    ],
)
def test_bad_tool_calls_answer_with_an_error(name: str, arguments: str, error: str) -> None:
    rig = Rig(BridgeConfig(tools=(LOOKUP,)))
    rig.connect()
    out = rig.provider([ToolCall(call_id="c9", name=name, arguments=arguments)], 2.0)
    assert not [a for a in out if isinstance(a, RunTool)]
    assert rig.session.commands == [
        ToolResult(call_id="c9", output=f'{{"error": "{error}"}}', is_error=True)
    ]


def test_transfer_allowed_only_to_allowlisted_numbers() -> None:
    rig = Rig(BridgeConfig(transfer_allowlist=frozenset({"+1 415 555 0123"})))
    rig.connect()
    assert [t.name for t in rig.infos[0].tools] == ["end_call", "transfer_call"]
    out = rig.provider(
        [ToolCall(call_id="t1", name="transfer_call", arguments='{"number": "+19005550000"}')], 2.0
    )
    assert http_calls(out) == []
    assert "not one the call may be transferred to" in rig.session.commands[-1].output  # type: ignore[union-attr]
    assert rig.session.commands[-1].is_error  # type: ignore[union-attr]
    out = rig.provider(
        [ToolCall(call_id="t2", name="transfer_call", arguments='{"number": "+14155550123"}')], 2.1
    )
    (call,) = http_calls(out)
    assert call.purpose == "transfer" and call.request.body == b"+14155550123"
    assert rig.session.commands[-1] == ToolResult(call_id="t2", output='{"status": "transferring"}')
    end = rig.carrier('{"event":"stop","streamSid":"MZ","stop":{}}', 9.0)
    (ended,) = callbacks(end, "on_call_end")
    assert ended["reason"] == "carrier_stop" and ended["transferred_to"] == "+14155550123"


def _transferring(rig: Rig) -> None:
    rig.connect()
    out = rig.provider(
        [ToolCall(call_id="t", name="transfer_call", arguments='{"number": "+14155550123"}')], 2.0
    )
    assert [h.purpose for h in http_calls(out)] == ["transfer"]


@pytest.mark.parametrize(
    "ending",
    [
        lambda rig: rig.provider(
            [ToolCall(call_id="e", name="end_call", arguments="{}"), ResponseDone()], 3.0
        ),
        lambda rig: rig.provider([ProviderError(message="boom", fatal=True)], 3.0),
        lambda rig: rig.bridge.provider_result(
            SocketClosed(channel="main", code=1011, reason="gone"), 3.0
        ),
        lambda rig: rig.bridge.hangup("app", 3.0),
    ],
    ids=["end_call", "provider_error", "provider_closed", "hangup"],
)
def test_no_rest_hangup_once_a_transfer_was_requested(ending: Any) -> None:
    rig = Rig(BridgeConfig(transfer_allowlist=frozenset({"+14155550123"})))
    _transferring(rig)
    out = ending(rig)
    (ended,) = callbacks(out, "on_call_end")
    assert ended["transferred_to"] == "+14155550123"
    assert http_calls(out) == []  # a Status=completed would cut the transfer


def test_end_call_waits_for_the_goodbye_to_play() -> None:
    rig = Rig()
    rig.connect()
    names = play_agent(rig, "bye", 3, 5.0)
    out = rig.provider([ToolCall(call_id="e1", name="end_call", arguments="{}")], 5.1)
    assert callbacks(out, "on_call_end") == []
    assert SetTimer(deadline=15.1) in out  # end_call_grace_seconds
    assert callbacks(rig.provider([ResponseDone(item_id="bye")], 5.2), "on_call_end") == []
    assert callbacks(rig.carrier(mark(names[2]), 5.4), "on_call_end") == []
    # The resampler's tail went out at ResponseDone, behind one more mark.
    (last,) = rig.stream.pending_marks
    out = rig.carrier(mark(last), 5.5)
    (ended,) = callbacks(out, "on_call_end")
    assert ended["reason"] == "end_call" and ended["ended_at"] == 5.5
    assert [h.purpose for h in http_calls(out)] == ["hangup"]
    assert CloseCarrier(code=1000, reason="end_call") in out
    assert CloseSocket(channel="main") in provider_io(out)
    # The model is answered (so it can say goodbye when it has not).
    (result,) = [c for c in rig.session.commands if isinstance(c, ToolResult)]
    assert result.call_id == "e1" and "goodbye" in result.output


def test_end_call_hangs_up_at_the_grace_deadline() -> None:
    rig = Rig(BridgeConfig(end_call_grace_seconds=4.0))
    rig.connect()
    play_agent(rig, "bye", 3, 5.0)
    rig.provider([ToolCall(call_id="e1", name="end_call", arguments="")], 5.1)
    assert rig.bridge.next_deadline() == 9.1
    assert callbacks(rig.bridge.handle_timer(9.0), "on_call_end") == []
    assert not rig.bridge.ended
    out = rig.bridge.handle_timer(9.1)
    (ended,) = callbacks(out, "on_call_end")
    assert ended["reason"] == "end_call"
    assert SetTimer(deadline=None) in out


def test_voicemail_drop_cuts_the_answer_speaks_its_own_then_hangs_up() -> None:
    rig = Rig(BridgeConfig(voicemail_message="Please call us back."))
    rig.connect()
    assert rig.bridge.amd_result("human", 1.0) == []
    assert rig.bridge.amd_result("machine_start", 1.1) == []
    # The agent is answering the machine's greeting; 300 ms of it was heard.
    names = play_agent(rig, "reply", 10, 1.5)
    for name in names[:3]:
        rig.carrier(mark(name), 1.8)
    rig.session.commands.clear()
    out = rig.bridge.amd_result("machine_end_beep", 2.0)
    assert [f["event"] for f in carrier_frames(out)] == ["clear"]
    assert rig.session.commands == [
        Cancel(),
        Truncate(item_id="reply", played_ms=300),
        HoldBargeIn(),
        Say(text="Please call us back."),
    ]
    assert SetTimer(deadline=2.0 + START_SECONDS) in out  # its start, then at most 62.0
    # Late audio of the cancelled answer is dropped; its end says nothing
    # about the message (it is another answer's end).
    assert (
        carrier_frames(rig.provider([AudioOut(audio=tone(440, 100), item_id="reply")], 2.1)) == []
    )
    rig.provider([ResponseDone(item_id="reply", status="cancelled")], 2.1)
    vm = play_agent(rig, "vm", 2, 2.5)
    rig.provider([UserSpeechStarted()], 2.6)  # the machine's noise does not cut it
    assert Cancel() not in rig.session.commands[4:]
    for name in vm:
        assert callbacks(rig.carrier(mark(name), 2.8), "on_call_end") == []
    rig.provider([ResponseDone(item_id="vm")], 2.9)  # the message's own end
    *_, tail = rig.stream.pending_marks
    assert not rig.bridge.ended  # its last frame is not played yet
    out = rig.carrier(mark(tail), 3.0)
    (ended,) = callbacks(out, "on_call_end")
    assert ended["reason"] == "voicemail"
    assert [h.purpose for h in http_calls(out)] == ["hangup"]


def test_voicemail_end_of_an_older_answer_does_not_end_the_message() -> None:
    """ElevenLabs infers an answer's end when the next one's audio starts: the
    end of the interrupted answer arrives with the message's first chunk."""
    rig = Rig(BridgeConfig(voicemail_message="Call back."))
    rig.connect()
    play_agent(rig, "7", 3, 1.0)
    rig.bridge.amd_result("machine_end_silence", 2.0)
    first = AudioOut(audio=tone(440, 100), item_id="8")
    rig.provider([ResponseDone(item_id="7"), first], 2.1)
    for name in rig.stream.pending_marks:
        rig.carrier(mark(name), 2.3)
    assert not rig.bridge.ended
    rest = [AudioOut(audio=tone(440, 100), item_id="8") for _ in range(5)]
    names = marks_sent(carrier_frames(rig.provider(rest, 2.4)))
    for name in names[:-1]:
        rig.carrier(mark(name), 2.6)
    assert not rig.bridge.ended
    # No "answer finished" ever comes: once all of it played and nothing more
    # arrived for QUIET_SECONDS, the message is over.
    rig.carrier(mark(names[-1]), 2.9)
    assert rig.bridge.next_deadline() == 2.9 + QUIET_SECONDS
    assert callbacks(rig.bridge.handle_timer(4.8), "on_call_end") == []
    (ended,) = callbacks(rig.bridge.handle_timer(2.9 + QUIET_SECONDS), "on_call_end")
    assert ended["reason"] == "voicemail"
    assert rig.stream.played_ms == rig.stream.sent_ms == 600  # all of the message


@pytest.mark.parametrize("answered_by", ["machine_end_other", "unknown"])
def test_voicemail_before_the_session_is_ready_is_said_by_the_carrier(answered_by: str) -> None:
    rig = Rig(BridgeConfig(voicemail_message="Call back."))
    rig.connect(ready=False)
    out = rig.bridge.amd_result(answered_by, 2.0)
    (say,) = http_calls(out)
    assert say.purpose == "voicemail" and say.request.body == b"Call back."
    (ended,) = callbacks(out, "on_call_end")
    assert ended["reason"] == "voicemail"
    # The carrier ends the stream once it runs the new TwiML: closing the
    # socket first would hang up before the message.
    assert [a for a in out if isinstance(a, CloseCarrier)] == []


class _NoCarrierSpeech(FakeControl):
    def leave_message(self, call_id: str, text: str) -> HttpRequest | None:
        return None


@pytest.mark.parametrize("carrier_can_say_it", [True, False])
def test_voicemail_the_session_never_starts_is_left_to_the_carrier(
    carrier_can_say_it: bool,
) -> None:
    """The session was asked for the message but says nothing (a refused
    request): after START_SECONDS the carrier says it and hangs up."""
    rig = Rig(BridgeConfig(voicemail_message="Call back."))
    if not carrier_can_say_it:
        rig.bridge._control = _NoCarrierSpeech()
    rig.connect()
    out = rig.bridge.amd_result("machine_end_beep", 2.0)
    assert SetTimer(deadline=2.0 + START_SECONDS) in out
    assert rig.bridge.handle_timer(2.0 + START_SECONDS - 0.1) == []
    out = rig.bridge.handle_timer(2.0 + START_SECONDS)
    if carrier_can_say_it:
        assert [h.purpose for h in http_calls(out)] == ["voicemail"]
        (ended,) = callbacks(out, "on_call_end")
        assert ended["reason"] == "voicemail"
        assert [a for a in out if isinstance(a, CloseCarrier)] == []
    else:
        # Nothing else to try: wait for it, up to voicemail_max_seconds.
        assert http_calls(out) == [] and not rig.bridge.ended
        assert rig.bridge.next_deadline() == 62.0
        (ended,) = callbacks(rig.bridge.handle_timer(62.0), "on_call_end")
        assert ended["reason"] == "voicemail"


def test_fax_hangs_up_at_once_without_agent_audio() -> None:
    rig = Rig(BridgeConfig(voicemail_message="Call back."))
    rig.connect()
    rig.session.commands.clear()
    out = rig.bridge.amd_result("fax", 2.0)
    (ended,) = callbacks(out, "on_call_end")
    assert ended["reason"] == "fax"
    assert [h.purpose for h in http_calls(out)] == ["hangup"]
    assert rig.session.commands == [] and carrier_frames(out) == []


def test_voicemail_without_message_does_nothing() -> None:
    rig = Rig()
    rig.connect()
    assert rig.bridge.amd_result("machine_end_silence", 2.0) == []
    assert rig.session.commands == []


def test_full_transcript_reaches_on_call_end() -> None:
    rig = Rig()
    rig.connect(now=10.0)
    rig.provider([Transcript(role="assistant", text="Hi")], 11.0)
    rig.carrier(dtmf("1"), 12.0)
    rig.provider([Transcript(role="user", text="Bye")], 13.0)
    (ended,) = callbacks(rig.bridge.hangup("done", 14.0), "on_call_end")
    assert ended == {
        "call_id": CALL_SID,
        "stream_id": "MZ00000000000000000000000000000001",
        "caller": "+14155550100",
        "callee": "+18005550199",
        "carrier": "twilio",
        "started_at": 10.0,
        "ended_at": 14.0,
        "reason": "hangup",
        "detail": "done",
        "transcript": [
            {"role": "assistant", "text": "Hi", "time": 11.0},
            {"role": "user", "text": "[DTMF 1]", "time": 12.0},
            {"role": "user", "text": "Bye", "time": 13.0},
        ],
        "frames_in": 0,
        "frames_buffered": 0,
        "frames_dropped": 0,
        "metrics": {
            "duration_s": 4.0,
            "turns": [],
            "latency_ms": {"p50": None, "p95": None, "max": None},
            "barge_ins": 0,
            "barge_in_details": [],
            "frames_in": 0,
            "frames_out": 0,
            "frames_buffered": 0,
            "frames_dropped": 0,
            "usage": {},
        },
    }


def test_provider_io_is_passed_through_in_order() -> None:
    rig = Rig()
    rig.connect()
    out = rig.carrier(media(b"\xff" * 160), 1.0)
    assert [type(a) for a in out] == [ProviderIo]
