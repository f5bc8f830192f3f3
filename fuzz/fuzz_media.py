"""Fuzz the Twilio and Telnyx media stream parsers.

Arbitrary text, arbitrary bytes, arbitrary JSON, and documented frames with
fields deleted or replaced by values of the wrong type, fed to a stream that
is fresh, connected or started. The only acceptable outcomes are events or
:class:`RemoteProtocolError` with a WebSocket close code; a ``KeyError``,
``TypeError``, ``binascii.Error``, ``UnicodeDecodeError`` or anything else is
a bug. Invariants of the playback bookkeeping are checked on the way.

    python -m fuzz.fuzz_media --examples 5000
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patter_core import RemoteProtocolError
from patter_core.media import (
    Connected,
    Dtmf,
    Mark,
    Media,
    Start,
    Stop,
    StreamError,
    TelnyxMediaStream,
    TwilioMediaStream,
)

EVENT_TYPES = (Connected, Start, Media, Dtmf, Mark, Stop, StreamError)
CLOSE_CODES = {1002, 1003, 1007, 1008, 1009}

TEMPLATES: dict[str, list[dict[str, Any]]] = {
    "twilio": [
        {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": "AC1",
                "streamSid": "MZ1",
                "callSid": "CA1",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {"a": "b"},
            },
            "streamSid": "MZ1",
        },
        {
            "event": "media",
            "sequenceNumber": "4",
            "media": {"track": "inbound", "chunk": "2", "timestamp": "5", "payload": "no+JhoaJ"},
            "streamSid": "MZ1",
        },
        {"event": "dtmf", "streamSid": "MZ1", "dtmf": {"track": "inbound_track", "digit": "1"}},
        {"event": "mark", "streamSid": "MZ1", "mark": {"name": "m1"}},
        {"event": "stop", "stop": {"accountSid": "AC1", "callSid": "CA1"}, "streamSid": "MZ1"},
    ],
    "telnyx": [
        {"event": "connected", "version": "1.0.0", "x-telnyx-streaming-auth-token": "t"},
        {
            "event": "start",
            "stream_id": "S1",
            "start": {
                "user_id": "U1",
                "call_control_id": "v3:1",
                "from": "+1",
                "to": "+2",
                "client_state": "YQ==",
                "custom_parameters": {"k": "v"},
                "media_format": {"encoding": "L16", "sample_rate": 16000, "channels": 1},
            },
        },
        {
            "event": "media",
            "stream_id": "S1",
            "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "AAAA"},
        },
        {"event": "dtmf", "stream_id": "S1", "dtmf": {"digit": "#"}},
        {"event": "mark", "stream_id": "S1", "mark": {"name": "m1"}},
        {"event": "error", "error": {"title": "t", "code": "100003", "detail": "d"}},
        {"event": "stop", "stream_id": "S1", "stop": {}},
    ],
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.sampled_from(["", "1", "-1", "1e3", "AAAA", "no+J==", "inbound", "PCMU", "L16"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


# Values that confuse a parser expecting a particular type.
confusing: st.SearchStrategy[object] = st.sampled_from(
    [None, 0, -1, True, 1.5, "", " ", "x", "-1", "1e3", "\u00e9", "AAA", "====", [], {}, 2**70]
)


def _fields(obj: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Every (object, key) pair inside a frame, nested objects included."""
    found = []
    for key, value in obj.items():
        if key == "event":
            continue  # keep the frame's type: arbitrary JSON covers unknown events
        found.append((obj, key))
        if isinstance(value, dict):
            found += _fields(value)
    return found


@st.composite
def mutated_frame(draw: st.DrawFn, carrier: str) -> str:
    """A documented frame with some fields deleted or replaced by arbitrary JSON."""
    # Media frames are the hot path and the largest parser: weight them up.
    templates = TEMPLATES[carrier]
    media = [t for t in templates if t["event"] == "media"]
    frame = copy.deepcopy(draw(st.sampled_from(templates + media * 4)))
    for _ in range(draw(st.integers(1, 3))):
        fields = _fields(frame)
        if not fields:
            break
        target, key = draw(st.sampled_from(fields))
        action = draw(st.sampled_from(["delete", "confuse", "replace"]))
        if action == "delete":
            del target[key]
        else:
            target[key] = draw(confusing if action == "confuse" else json_values)
    return json.dumps(frame)


def messages(carrier: str) -> st.SearchStrategy[str | bytes]:
    frames = mutated_frame(carrier)
    return st.one_of(
        st.text(max_size=200) | st.binary(max_size=200),
        json_values.map(json.dumps),
        st.sampled_from(TEMPLATES[carrier]).map(json.dumps),
        frames,
        frames,
        frames,
        frames.map(lambda s: s.encode("utf-8")),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, int, list[str | bytes]]:
    carrier = draw(st.sampled_from(["twilio", "telnyx"]))
    # Fresh, after connected, or (most often: most of the parser is there) after start.
    prelude = draw(st.sampled_from([0, 1, 2, 2, 2]))
    return carrier, prelude, draw(st.lists(messages(carrier), min_size=1, max_size=6))


def run_scenario(carrier: str, prelude: int, inputs: list[str | bytes]) -> None:
    stream: TwilioMediaStream | TelnyxMediaStream
    stream = TwilioMediaStream() if carrier == "twilio" else TelnyxMediaStream()
    for template in TEMPLATES[carrier][:prelude]:
        stream.receive(json.dumps(template))
    if stream.media_format is not None:
        stream.send_media(b"\x00" * 700)
        stream.send_mark("m1")
    played = stream.played_ms
    for message in inputs:
        try:
            events = stream.receive(message)
        except RemoteProtocolError as exc:
            assert exc.close_code in CLOSE_CODES, exc.close_code
            continue
        assert isinstance(events, list)
        assert all(isinstance(e, EVENT_TYPES) for e in events), events
        assert played <= stream.played_ms <= stream.sent_ms
        played = stream.played_ms


def check(examples: int) -> None:
    """Run ``examples`` fuzz cases; raises (after Hypothesis prints the input) on a failure."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(scenarios())
    def fuzz(scenario: tuple[str, int, list[str | bytes]]) -> None:
        run_scenario(*scenario)

    fuzz()


def run(examples: int) -> int:
    """0 when every case passed, 1 (after printing the failing input) if not."""
    try:
        check(examples)
    except Exception as exc:
        print(f"fuzz_media: FAILED: {type(exc).__name__}: {exc}")
        for note in getattr(exc, "__notes__", []):
            print(note)  # Hypothesis attaches the falsifying input here
        return 1
    print(f"fuzz_media: {examples} examples over the Twilio and Telnyx parsers, no failure")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000, help="number of fuzz cases")
    args = parser.parse_args(argv)
    return run(args.examples)


if __name__ == "__main__":
    sys.exit(main())
