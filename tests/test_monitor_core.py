"""The pure parts of the dashboard and /metrics: the Prometheus text (read
back by prometheus_client's own parser), the call board, server-sent event
framing, the access rule and the routes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from patter_core.bridge._config import default_transcoder
from patter_core.bridge._inbound import CallerAudio
from patter_core.http import Endpoint, Reject, Route, Router
from patter_core.monitor import CallBoard, Family, MonitorAccess, Sample
from patter_core.monitor._access import is_loopback, token_problem
from patter_core.monitor._board import sse_event
from patter_core.monitor._prometheus import histogram, render

TOKEN = "dashboard-token-0123456789"


def parse(text: bytes) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text.decode("utf-8")):
        out[family.name] = [(s.name, dict(s.labels), s.value) for s in family.samples]
    return out


def test_render_escapes_and_parses_back() -> None:
    text = render(
        [
            Family(
                name="x_events",
                help="odd help \\ with\nnewline",
                kind="counter",
                samples=(Sample(labels=(("reason", 'a "quoted"\\ \nvalue'),), value=3),),
            ),
            Family(name="x_level", help="g", kind="gauge", samples=(Sample(value=0.25),)),
            Family(
                name="x_seconds",
                help="h",
                kind="histogram",
                samples=histogram((0.1, 1.0), [1, 0, 2], 7.5),
            ),
        ]
    )
    assert b'x_events_total{reason="a \\"quoted\\"\\\\ \\nvalue"} 3\n' in text
    families = parse(text)
    assert families["x_events"] == [("x_events_total", {"reason": 'a "quoted"\\ \nvalue'}, 3.0)]
    assert families["x_level"] == [("x_level", {}, 0.25)]
    assert families["x_seconds"] == [
        ("x_seconds_bucket", {"le": "0.1"}, 1.0),
        ("x_seconds_bucket", {"le": "1"}, 1.0),
        ("x_seconds_bucket", {"le": "+Inf"}, 3.0),
        ("x_seconds_sum", {}, 7.5),
        ("x_seconds_count", {}, 3.0),
    ]
    with pytest.raises(ValueError):
        histogram((1.0,), [1], 0.0)
    assert (
        render([Family(name="n", help="", kind="gauge", samples=(Sample(value=math.inf),))])[-5:]
        == b"+Inf\n"
    )


def call_start(call_id: str, stream_id: str) -> dict[str, object]:
    return {
        "call_id": call_id,
        "stream_id": stream_id,
        "caller": "+14155550100",
        "callee": "+18005550199",
        "carrier": "twilio",
        "custom_parameters": {"secret": "not shown"},
    }


def call_end(
    call_id: str, stream_id: str, reason: str, latencies: list[float]
) -> dict[str, object]:
    return {
        "call_id": call_id,
        "stream_id": stream_id,
        "reason": reason,
        "transcript": [{"role": "user", "text": "hello", "time": 1.0}],
        "frames_dropped": 2,
        "metrics": {"turns": [{"latency_ms": ms} for ms in latencies]},
    }


def test_board_follows_a_call_and_counts() -> None:
    board = CallBoard(max_finished=2)
    start = board.observe("on_call_start", call_start("CA1", "MZ1"), 100.0)
    assert start is not None and start.kind == "call_start" and start.id == 1
    assert json.loads(start.data)["caller"] == "+14155550100"
    assert "secret" not in start.data
    line = board.observe(
        "on_transcript", {"call_id": "CA1", "role": "user", "text": "hi\nthere"}, 101.0
    )
    assert line is not None and line.kind == "transcript"
    # A line break in the text cannot end the event early: JSON escapes it.
    assert line.encode().count(b"\n\n") == 1 and line.encode().endswith(b"\n\n")
    assert json.loads(board.calls_json(102.0))["live"][0]["duration_s"] == 2.0
    barge = board.observe("barge_in", {"call_id": "CA1"}, 102.0)
    assert barge is not None and barge.kind == "barge_in"
    assert json.loads(barge.data) == {"id": "MZ1", "barge_ins": 1}
    assert board.observe("barge_in", {"call_id": "CA-gone"}, 102.0) is None
    assert board.live_count == 1
    end = board.observe(
        "on_call_end", call_end("CA1", "MZ1", "carrier_stop", [250.0, 900.0]), 103.0
    )
    assert end is not None and end.kind == "call_end"
    record = json.loads(end.data)
    assert (record["id"], record["status"], record["duration_s"]) == ("MZ1", "finished", 3.0)
    assert board.live_count == 0
    # The list has no transcript; the call by id has it.
    assert "transcript" not in json.loads(board.calls_json(104.0))["finished"][0]
    one = board.call_json("CA1", 104.0)
    assert one is not None and json.loads(one)["transcript"][0]["text"] == "hello"
    assert board.call_json("CA-unknown", 104.0) is None
    # A stream that never started: counted by reason, not listed.
    assert board.observe("on_call_end", call_end("", "", "token_rejected", []), 105.0) is None
    board.refused("too many concurrent streams from this address")
    board.event_dropped()
    for n in (2, 3, 4):
        board.observe("on_call_start", call_start(f"CA{n}", f"MZ{n}"), 200.0)
        board.observe("on_call_end", call_end(f"CA{n}", f"MZ{n}", "provider_error", []), 201.0)
    # The ring keeps the last two.
    assert [c["id"] for c in json.loads(board.calls_json(300.0))["finished"]] == ["MZ4", "MZ3"]
    content_type, body = board.prometheus()
    assert content_type.startswith("text/plain; version=0.0.4")
    families = parse(body)
    assert families["patter_live_calls"] == [("patter_live_calls", {}, 0.0)]
    ended = {s[1]["reason"]: s[2] for s in families["patter_calls_ended"]}
    assert ended == {"carrier_stop": 1.0, "token_rejected": 1.0, "provider_error": 3.0}
    assert families["patter_provider_errors"][0][2] == 3.0
    assert families["patter_frames_dropped"][0][2] == 10.0
    assert families["patter_dashboard_events_dropped"][0][2] == 1.0
    refused = families["patter_upgrades_refused"]
    assert refused == [
        (
            "patter_upgrades_refused_total",
            {"reason": "too many concurrent streams from this address"},
            1.0,
        )
    ]
    buckets = {s[1]["le"]: s[2] for s in families["patter_response_latency_seconds"] if s[1]}
    assert buckets["0.2"] == 0 and buckets["0.3"] == 1 and buckets["1"] == 2
    assert buckets["+Inf"] == 2
    total = [s[2] for s in families["patter_response_latency_seconds"] if s[0].endswith("_sum")]
    assert total == [pytest.approx(1.15)]


def test_sse_event_framing() -> None:
    assert sse_event("call_start", '{"a":1}', 7) == b'id: 7\nevent: call_start\ndata: {"a":1}\n\n'
    assert sse_event("x", "one\ntwo") == b"event: x\ndata: one\ndata: two\n\n"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_access_rule() -> None:
    open_ = MonitorAccess(bind_host="127.0.0.1")
    assert open_.check((), "").allowed and open_.startup_message() is None
    off = MonitorAccess(bind_host="0.0.0.0")
    assert off.check((("authorization", f"Bearer {TOKEN}"),), "").status == 404
    assert "PATTER_DASHBOARD_TOKEN" in (off.startup_message() or "")
    guarded = MonitorAccess(bind_host="0.0.0.0", token=TOKEN)
    assert guarded.check((), "").status == 401
    assert guarded.check((("authorization", "Bearer wrong-token-0123456789"),), "").status == 401
    assert guarded.check((("authorization", f"Bearer {TOKEN}"),), "").allowed
    assert guarded.check((("cookie", f"a=b; patter_dashboard={TOKEN}"),), "").allowed
    assert guarded.check((("cookie", "patter_dashboard=nope"),), "").status == 401
    by_query = guarded.check((), f"x=1&token={TOKEN}")
    assert by_query.allowed
    assert by_query.set_cookie == (f"patter_dashboard={TOKEN}; HttpOnly; SameSite=Strict; Path=/")
    # A token set on a loopback bind (behind a proxy on this machine) is required too.
    behind_proxy = MonitorAccess(bind_host="127.0.0.1", token=TOKEN)
    assert behind_proxy.check((), "").status == 401
    assert token_problem("short") is not None
    assert token_problem("has;semicolon-0123456789") is not None
    assert token_problem(TOKEN) is None
    with pytest.raises(ValueError):
        MonitorAccess(bind_host="0.0.0.0", token="bad token with spaces 123")


def test_routes() -> None:
    router = Router(access=MonitorAccess(bind_host="0.0.0.0", token=TOKEN))
    auth = (("authorization", f"Bearer {TOKEN}"),)
    for path, endpoint in [
        ("/metrics", Endpoint.METRICS),
        ("/dashboard", Endpoint.DASHBOARD),
        ("/api/calls", Endpoint.API_CALLS),
        ("/api/calls/events", Endpoint.API_EVENTS),
        ("/api/calls/MZ1", Endpoint.API_CALL),
        ("/api/recordings/MZ1", Endpoint.API_RECORDING),
    ]:
        route = router.route("GET", path, auth, "10.0.0.9")
        assert isinstance(route, Route) and route.endpoint is endpoint, path
        denied = router.route("GET", path, (), "10.0.0.9")
        assert isinstance(denied, Reject) and denied.status == 401, path
        assert ("www-authenticate", "Bearer") in denied.headers
    one = router.route("GET", "/api/calls/MZ1", auth, "10.0.0.9")
    assert isinstance(one, Route) and one.call_id == "MZ1"
    assert isinstance(router.route("GET", "/api/calls/..%2F", auth, "1.2.3.4"), Reject)
    post = router.route("POST", "/metrics", auth, "10.0.0.9")
    assert isinstance(post, Reject) and post.status == 405
    cookie = router.route("GET", f"/dashboard?token={TOKEN}", (), "10.0.0.9")
    assert isinstance(cookie, Route) and cookie.set_cookie is not None
    # No access rule at all: the pages do not exist.
    nothing = Router().route("GET", "/metrics", (), "127.0.0.1")
    assert isinstance(nothing, Reject) and nothing.status == 404
    # A refused stream upgrade is marked as one (for /metrics), others not.
    stream = Router().route("GET", "/ws/stream/CA1", (), "127.0.0.1")
    assert isinstance(stream, Reject) and stream.status == 426 and stream.stream
    assert not nothing.stream


def test_latency_summary_matches_numpy_percentiles() -> None:
    from patter_core.bridge._metrics import CallMetricsRecorder, LatencySummary

    values = [120.0, 340.5, 90.0, 800.0, 410.0, 95.5, 233.0]
    summary = LatencySummary.of(values)
    assert summary.p50 == round(float(np.percentile(values, 50)), 1)
    assert summary.p95 == round(float(np.percentile(values, 95)), 1)
    assert summary.max == 800.0
    assert LatencySummary.of([]).as_dict() == {"p50": None, "p95": None, "max": None}

    rec = CallMetricsRecorder(max_turns=2)
    rec.agent_audio(1.0)  # audio with no end of speech before it: no turn
    for stopped, audio in ((2.0, 2.25), (5.0, 5.5), (8.0, 8.1)):
        rec.speech_stopped(stopped)
        rec.agent_audio(audio)
        rec.agent_audio(audio + 0.02)  # only the first audio after it counts
    rec.barge_in(6.0)
    rec.cut_confirmed(6.05)
    rec.cut_confirmed(6.5)  # a later echo does not move it
    rec.usage({"total_tokens": 10})
    rec.usage({"total_tokens": 5, "input_tokens": 4})
    inbound = CallerAudio(default_transcoder, max_held_ms=5000)
    inbound.frames_in, inbound.frames_held, inbound.ms_sent = 400, 10, 7840.0
    report = rec.report(started_at=1.0, now=9.0, inbound=inbound).as_dict()
    assert [t["latency_ms"] for t in report["turns"]] == [250.0, 500.0]  # bounded at 2
    assert report["latency_ms"] == {"p50": 375.0, "p95": 487.5, "max": 500.0}
    assert report["barge_ins"] == 1
    assert report["barge_in_details"] == [{"at": 6.0, "quiet_ms": 50.0}]
    assert report["usage"] == {"total_tokens": 15, "input_tokens": 4, "input_audio_ms": 7840}
    assert report["duration_s"] == 8.0 and report["frames_in"] == 400


def test_a_slow_subscriber_misses_events_and_they_are_counted() -> None:
    from patter_anyio.net._monitor import _QUEUE_SIZE, Monitor

    monitor = Monitor(clock=lambda: 0.0)
    subscription = monitor.subscribe()
    assert subscription is not None
    assert subscription.first.startswith(b"id: 0\nevent: snapshot\n")
    for n in range(_QUEUE_SIZE + 5):
        monitor.observe("on_call_start", call_start(f"CA{n}", f"MZ{n}"), 1.0)
    assert monitor.board.events_dropped == 5
    subscription.close()
    monitor.observe("on_call_start", call_start("CAx", "MZx"), 1.0)
    assert monitor.board.events_dropped == 5  # a closed page is simply gone


def test_turn_timings_follow_the_providers_steps() -> None:
    from patter_core.bridge._metrics import CallMetricsRecorder

    rec = CallMetricsRecorder()
    rec.stage("llm_first_token", 0.5)  # no turn open: not counted
    rec.speech_stopped(1.0)
    rec.stage("stt_final", 1.12)
    rec.stage("llm_first_token", 1.4)
    rec.stage("tts_request", 1.5)
    rec.stage("tts_request", 1.6)  # the first report of a step counts
    rec.agent_audio(1.75)
    rec.speech_stopped(3.0)
    rec.stage("response_created", 3.2)
    rec.agent_audio(3.25)
    inbound = CallerAudio(default_transcoder, max_held_ms=5000)
    first, second = rec.report(started_at=0.0, now=4.0, inbound=inbound).as_dict()["turns"]
    assert first["provider_ms"] == {"stt_final": 120.0, "llm_first_token": 400.0, "tts_request": 500.0}
    assert first["tts_ttfb_ms"] == 250.0 and "provider_ttfb_ms" not in first
    assert second["provider_ms"] == {"response_created": 200.0}
    assert second["provider_ttfb_ms"] == 50.0 and second["latency_ms"] == 250.0
