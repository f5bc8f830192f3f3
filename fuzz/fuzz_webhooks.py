"""Fuzz the carrier webhook parsers and signature checks.

Property: for any input, every entry point either returns a value or raises
one of our declared errors (a :class:`PatterError` subclass). Any other
exception (KeyError, TypeError, binascii.Error, RecursionError...) is a bug.

Run: ``python -m fuzz.fuzz_webhooks --examples 5000``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patter_core import PatterError
from patter_core.http import HttpResponse
from patter_core.webhooks import (
    StreamTokens,
    TelnyxSignatureVerifier,
    TwilioSignatureValidator,
    parse_amd_callback,
    parse_call_status,
    parse_form,
    parse_incoming_call,
    parse_recording_status,
    parse_stream_status,
    parse_telnyx_response,
    parse_telnyx_webhook,
    parse_twilio_call,
)
from patter_core.webhooks._telnyx_events import decode_client_state
from patter_core.webhooks._telnyx_signature import verify_telnyx_signature

_TWILIO = TwilioSignatureValidator("fuzz-token", shared_keys={"k1": "shared"})
_TELNYX_KEY = base64.b64encode(bytes(range(32))).decode()
_TELNYX = TelnyxSignatureVerifier(_TELNYX_KEY)
_TOKENS = StreamTokens(b"fuzz-secret-0123456789")
_PARSERS = (
    parse_incoming_call,
    parse_call_status,
    parse_amd_callback,
    parse_recording_status,
    parse_stream_status,
)

#: The Twilio form fields a webhook parser reads.
FORM_FIELDS = [
    "CallSid",
    "AccountSid",
    "From",
    "To",
    "CallStatus",
    "CallDuration",
    "SequenceNumber",
    "SipResponseCode",
    "AnsweredBy",
    "MachineDetectionDuration",
    "RecordingSid",
    "RecordingStatus",
    "RecordingDuration",
    "RecordingChannels",
    "StreamSid",
    "StreamEvent",
]
_FIELD_NAMES = st.sampled_from(FORM_FIELDS)
_FORM_BYTES = st.binary(max_size=300) | st.lists(
    st.tuples(_FIELD_NAMES | st.text(max_size=5), st.text(max_size=12) | st.binary(max_size=6)),
    max_size=12,
).map(
    lambda pairs: b"&".join(
        k.encode("utf-8", "surrogatepass")
        + b"="
        + (v if isinstance(v, bytes) else v.encode("utf-8", "surrogatepass"))
        for k, v in pairs
    )
)
_HEADER_NAMES = st.sampled_from(
    [
        "x-twilio-signature",
        "X-Twilio-Webhooks-Signature-Settings",
        "content-type",
        "telnyx-signature-ed25519",
        "telnyx-timestamp",
    ]
)
_HEADER_VALUES = (
    st.text(max_size=100)
    | st.binary(max_size=100)
    | st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "key=k1,algorithm=HMAC_SHA256",
            "algorithm=nope",
            "1700000000",
            "1e9",
            base64.b64encode(bytes(64)).decode(),
            "==",
        ]
    )
)
_HEADERS = st.lists(st.tuples(_HEADER_NAMES | st.text(max_size=8), _HEADER_VALUES), max_size=6)
_JSON: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)
_EVENT_TYPES = st.sampled_from(
    [
        "call.initiated",
        "call.answered",
        "call.hangup",
        "streaming.started",
        "streaming.stopped",
        "streaming.failed",
        "call.machine.detection.ended",
        "call.machine.greeting.ended",
        "call.dtmf.received",
        "other.thing",
    ]
)
_PAYLOAD = st.dictionaries(
    st.sampled_from(
        ["call_control_id", "client_state", "digit", "from", "to", "hangup_cause", "result"]
    )
    | st.text(max_size=6),
    _JSON,
    max_size=6,
)
_ENVELOPE = st.builds(
    lambda et, payload, extra: json.dumps(
        {"data": {"event_type": et, "payload": payload, **extra}}
    ).encode(),
    _EVENT_TYPES | _JSON,
    _PAYLOAD | _JSON,
    st.dictionaries(st.sampled_from(["id", "occurred_at"]), _JSON, max_size=2),
)
_URLS = st.text(max_size=60) | st.builds(
    lambda s, h, p: f"{s}://{h}{p}",
    st.sampled_from(["https", "http", "wss"]),
    st.text(max_size=15),
    st.text(max_size=20),
)


def _allowed(fn: Callable[[], object]) -> None:
    with contextlib.suppress(PatterError):
        fn()


def _fuzz_twilio_forms(body: bytes, which: int) -> None:
    try:
        form = parse_form(body)
    except PatterError:
        return
    _allowed(lambda: _PARSERS[which](form))


def _fuzz_twilio_request(url: str, headers: list[tuple[str, Any]], body: bytes) -> None:
    _allowed(lambda: _TWILIO.validate_request(url=url, headers=headers, body=body))


def _fuzz_telnyx_envelope(body: bytes) -> None:
    _allowed(lambda: parse_telnyx_webhook(body))


def _fuzz_telnyx_signature(
    headers: list[tuple[str, Any]], body: bytes, now: float, key: Any
) -> None:
    _allowed(lambda: _TELNYX.verify(headers=headers, body=body, now=now))
    _allowed(lambda: verify_telnyx_signature(public_key=key, headers=headers, body=body, now=now))


def _fuzz_tokens(token: str, call_id: str, now: float, state: str) -> None:
    _allowed(lambda: _TOKENS.verify(token, call_id, now))
    _allowed(lambda: decode_client_state(state))


def _fuzz_rest_responses(status: int, body: bytes) -> None:
    response = HttpResponse(status=status, body=body)
    _allowed(lambda: parse_twilio_call(response))
    _allowed(lambda: parse_telnyx_response(response))


# name -> (property, its strategies). Each run wraps them afresh, since
# Hypothesis refuses settings applied twice to one test.
TARGETS: dict[str, tuple[Callable[..., None], dict[str, Any]]] = {
    "twilio_forms": (
        _fuzz_twilio_forms,
        dict(body=_FORM_BYTES, which=st.integers(0, len(_PARSERS) - 1)),
    ),
    "twilio_request": (
        _fuzz_twilio_request,
        dict(url=_URLS, headers=_HEADERS, body=_FORM_BYTES | st.binary(max_size=100)),
    ),
    "telnyx_envelope": (
        _fuzz_telnyx_envelope,
        dict(
            body=st.binary(max_size=200) | _ENVELOPE | _JSON.map(lambda j: json.dumps(j).encode())
        ),
    ),
    "telnyx_signature": (
        _fuzz_telnyx_signature,
        dict(
            headers=_HEADERS,
            body=st.binary(max_size=100),
            now=st.floats(allow_nan=True, allow_infinity=True) | st.integers(0, 2**40),
            key=st.just(_TELNYX_KEY) | st.text(max_size=50) | st.binary(max_size=40),
        ),
    ),
    "tokens": (
        _fuzz_tokens,
        dict(
            token=st.text(max_size=100) | st.just(_TOKENS.issue("CA1", 1.0)),
            call_id=st.text(max_size=20),
            now=st.floats(allow_nan=True),
            state=st.text(max_size=30),
        ),
    ),
    "rest_responses": (
        _fuzz_rest_responses,
        dict(
            status=st.integers(0, 999),
            body=st.binary(max_size=100) | _JSON.map(lambda j: json.dumps(j).encode()),
        ),
    ),
}


def run_target(name: str, examples: int) -> None:
    """Run one target for ``examples`` examples; raise on the first bug."""
    body, strategies = TARGETS[name]
    settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )(given(**strategies)(body))()


def check(examples: int) -> None:
    """Run every target; raise on the first bug."""
    for name in TARGETS:
        run_target(name, examples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=3000, help="examples per target")
    args = parser.parse_args(argv)
    for name in TARGETS:
        try:
            run_target(name, args.examples)
        except Exception:
            print(f"FAIL {name}: an undeclared exception escaped", file=sys.stderr)
            traceback.print_exc()
            return 1
        print(f"ok   {name}: {args.examples} examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
