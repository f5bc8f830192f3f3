"""Telnyx: Ed25519 webhook signatures and the webhook envelope."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from patter_core import LocalProtocolError, PatterError, RemoteProtocolError, SignatureError
from patter_core.webhooks import (
    TelnyxCallAnswered,
    TelnyxCallHangup,
    TelnyxCallInitiated,
    TelnyxDtmfReceived,
    TelnyxMachineDetectionEnded,
    TelnyxMachineGreetingEnded,
    TelnyxSignatureVerifier,
    TelnyxStreamingFailed,
    TelnyxStreamingStarted,
    TelnyxStreamingStopped,
    TelnyxUnknownEvent,
    parse_telnyx_webhook,
)
from patter_core.webhooks._telnyx_events import decode_client_state, encode_client_state
from patter_core.webhooks._telnyx_signature import verify_telnyx_signature

# PROTOCOLS.md §4.2, worked example valid_compact
PUBLIC_KEY = "AidcYhK3q5YAA+WEaUfrqVdfaZqifwyfcVWAK/i1cd8="
TIMESTAMP = "1700000000"
SIGNATURE = (
    "iFeGMaWnrH1sJKDaDh5xSzighcCcqlKP6YS3p3OghqiLfdOqhYyRY4dyMPMm94NgDDX8HgoqILN3RquaWl/tBg=="
)
BODY = (
    b'{"data":{"event_type":"call.initiated","id":"0ccc7b54-4df3-4bca-a65a-3da1ecc777f0",'
    b'"occurred_at":"2023-11-14T22:13:20.000000Z","payload":{"call_control_id":'
    b'"v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg","call_leg_id":'
    b'"428c31b6-7af4-4bcb-b7f5-5013ef9657c1","call_session_id":"428c31b6-abf3-3bc1-b7f4-5013ef9657c1",'
    b'"client_state":null,"connection_id":"1234567890","direction":"incoming","from":"+18005550101",'
    b'"to":"+18005550199","start_time":"2023-11-14T22:13:20.000000Z","state":"parked"},'
    b'"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://example.com/telnyx/webhook"}}'
)
HEADERS = {"telnyx-signature-ed25519": SIGNATURE, "telnyx-timestamp": TIMESTAMP}
NOW = 1_700_000_000.0


def test_worked_example_verifies_and_parses() -> None:
    verifier = TelnyxSignatureVerifier(PUBLIC_KEY)
    verifier.verify(headers=HEADERS, body=BODY, now=NOW)
    mixed = {"Telnyx-Signature-Ed25519": SIGNATURE, "Telnyx-Timestamp": TIMESTAMP}
    verifier.verify(headers=mixed, body=BODY, now=NOW)
    verifier.verify(
        headers=[
            (b"telnyx-signature-ed25519", SIGNATURE.encode()),
            (b"TELNYX-TIMESTAMP", b"1700000000"),
        ],
        body=BODY,
        now=NOW,
    )
    verify_telnyx_signature(public_key=PUBLIC_KEY, headers=HEADERS, body=BODY, now=NOW)
    event = parse_telnyx_webhook(BODY)
    assert isinstance(event, TelnyxCallInitiated)
    assert event.call_control_id == "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg"
    assert event.event_id == "0ccc7b54-4df3-4bca-a65a-3da1ecc777f0"
    assert event.connection_id == "1234567890"
    assert (event.direction, event.from_, event.to, event.state) == (
        "incoming",
        "+18005550101",
        "+18005550199",
        "parked",
    )
    assert event.client_state is None
    assert event.payload["start_time"] == "2023-11-14T22:13:20.000000Z"


@pytest.mark.parametrize("offset", [-300, -299.5, 0, 300])
def test_window_accepts(offset: float) -> None:
    TelnyxSignatureVerifier(PUBLIC_KEY).verify(headers=HEADERS, body=BODY, now=NOW + offset)


@pytest.mark.parametrize("offset", [-301, -300.001, 300.001, 301, 10**9])
def test_window_rejects(offset: float) -> None:
    with pytest.raises(SignatureError, match="window"):
        TelnyxSignatureVerifier(PUBLIC_KEY).verify(headers=HEADERS, body=BODY, now=NOW + offset)


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ({}, "missing"),
        ({"telnyx-timestamp": TIMESTAMP}, "missing"),
        ({**HEADERS, "telnyx-timestamp": "1700000000.0"}, "timestamp"),
        ({**HEADERS, "telnyx-timestamp": " 1700000000x"}, "timestamp"),
        ({**HEADERS, "telnyx-timestamp": "+1700000000"}, "timestamp"),
        ({**HEADERS, "telnyx-timestamp": "１７００００００００"}, "timestamp"),
        ({**HEADERS, "telnyx-signature-ed25519": "not base64!"}, "base64"),
        ({**HEADERS, "telnyx-signature-ed25519": "é"}, "base64"),
        ({**HEADERS, "telnyx-signature-ed25519": base64.b64encode(b"x" * 63).decode()}, "64 bytes"),
        ({**HEADERS, "telnyx-signature-ed25519": SIGNATURE[:-3] + "h=="}, "base64"),
        ({**HEADERS, "telnyx-signature-ed25519": SIGNATURE * 2}, "too long"),
    ],
)
def test_clean_rejections(headers: dict[str, str], match: str) -> None:
    with pytest.raises(SignatureError, match=match):
        TelnyxSignatureVerifier(PUBLIC_KEY).verify(headers=headers, body=BODY, now=NOW)


def test_repeated_header_rejected() -> None:
    with pytest.raises(SignatureError):
        TelnyxSignatureVerifier(PUBLIC_KEY).verify(
            headers=[("telnyx-timestamp", TIMESTAMP), ("Telnyx-Timestamp", TIMESTAMP)],
            body=BODY,
            now=NOW,
        )


def test_bad_keys() -> None:
    for key in ("short", base64.b64encode(b"k" * 31).decode(), "%%%"):
        with pytest.raises(LocalProtocolError):
            TelnyxSignatureVerifier(key)
        with pytest.raises(SignatureError):
            verify_telnyx_signature(public_key=key, headers=HEADERS, body=BODY, now=NOW)


# --- properties with keys made by pynacl ----------------------------------------

SIGNER = SigningKey(bytes(range(32)))
OUR_KEY = base64.b64encode(bytes(SIGNER.verify_key)).decode()


def _sign(timestamp: str, body: bytes) -> str:
    return base64.b64encode(SIGNER.sign(timestamp.encode() + b"|" + body).signature).decode()


def _accepts(verifier: TelnyxSignatureVerifier, sig: str, ts: str, body: bytes, now: float) -> bool:
    try:
        verifier.verify(
            headers={"telnyx-signature-ed25519": sig, "telnyx-timestamp": ts}, body=body, now=now
        )
    except SignatureError:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(body=st.binary(min_size=1, max_size=200), ts=st.integers(0, 4_000_000_000), data=st.data())
def test_any_single_byte_change_is_rejected(body: bytes, ts: int, data: st.DataObject) -> None:
    verifier = TelnyxSignatureVerifier(OUR_KEY)
    stamp = str(ts)
    sig = _sign(stamp, body)
    assert _accepts(verifier, sig, stamp, body, float(ts))
    flip = data.draw(st.integers(1, 255))
    # body
    i = data.draw(st.integers(0, len(body) - 1))
    changed = bytearray(body)
    changed[i] ^= flip
    assert not _accepts(verifier, sig, stamp, bytes(changed), float(ts))
    # timestamp (a changed digit, or a non-digit), keeping "now" on the new value
    j = data.draw(st.integers(0, len(stamp) - 1))
    new_char = chr(ord(stamp[j]) ^ flip) if flip < 128 else "x"
    other = stamp[:j] + new_char + stamp[j + 1 :]
    now = float(int(other)) if other.isascii() and other.isdigit() else float(ts)
    assert not _accepts(verifier, sig, other, body, now)
    # signature bytes
    raw = bytearray(base64.b64decode(sig))
    k = data.draw(st.integers(0, 63))
    raw[k] ^= flip
    assert not _accepts(verifier, base64.b64encode(raw).decode(), stamp, body, float(ts))
    # signature text: one character changed
    m = data.draw(st.integers(0, len(sig) - 1))
    replacement = data.draw(st.sampled_from("Ab0+/=é"))
    if replacement != sig[m]:
        assert not _accepts(verifier, sig[:m] + replacement + sig[m + 1 :], stamp, body, float(ts))
    # key
    key = bytearray(bytes(SIGNER.verify_key))
    key[data.draw(st.integers(0, 31))] ^= flip
    assert not _accepts(TelnyxSignatureVerifier(bytes(key)), sig, stamp, body, float(ts))


@settings(max_examples=50, deadline=None)
@given(ts=st.integers(301, 4_000_000_000), frac=st.floats(0, 0.999))
def test_window_boundary_is_exact(ts: int, frac: float) -> None:
    verifier = TelnyxSignatureVerifier(OUR_KEY)
    stamp = str(ts)
    sig = _sign(stamp, b"{}")
    assert _accepts(verifier, sig, stamp, b"{}", ts + 300)
    assert _accepts(verifier, sig, stamp, b"{}", ts - 300)
    assert _accepts(verifier, sig, stamp, b"{}", ts + 299 + frac)
    assert not _accepts(verifier, sig, stamp, b"{}", ts + 301)
    assert not _accepts(verifier, sig, stamp, b"{}", ts - 301)
    assert not _accepts(verifier, sig, stamp, b"{}", ts + 300 + max(frac, 0.001))


# --- envelope -----------------------------------------------------------------------


def _envelope(event_type: str, **payload: object) -> bytes:
    payload.setdefault("call_control_id", "v3:abc")
    return json.dumps(
        {"data": {"event_type": event_type, "id": "e1", "payload": payload, "record_type": "event"}}
    ).encode()


def test_event_types() -> None:
    hangup = parse_telnyx_webhook(
        _envelope(
            "call.hangup",
            hangup_cause="normal_clearing",
            hangup_source="caller",
            sip_hangup_cause="200",
        )
    )
    assert isinstance(hangup, TelnyxCallHangup)
    assert (hangup.hangup_cause, hangup.hangup_source, hangup.sip_hangup_cause) == (
        "normal_clearing",
        "caller",
        "200",
    )
    answered = parse_telnyx_webhook(_envelope("call.answered", client_state="eyJhIjoxfQ=="))
    assert isinstance(answered, TelnyxCallAnswered)
    assert decode_client_state(answered.client_state or "") == b'{"a":1}'
    assert isinstance(parse_telnyx_webhook(_envelope("streaming.started")), TelnyxStreamingStarted)
    assert isinstance(parse_telnyx_webhook(_envelope("streaming.stopped")), TelnyxStreamingStopped)
    failed = parse_telnyx_webhook(_envelope("streaming.failed", failure_reason="connection_failed"))
    assert (
        isinstance(failed, TelnyxStreamingFailed) and failed.failure_reason == "connection_failed"
    )
    amd = parse_telnyx_webhook(_envelope("call.machine.detection.ended", result="machine"))
    assert isinstance(amd, TelnyxMachineDetectionEnded) and amd.result == "machine"
    greeting = parse_telnyx_webhook(
        _envelope("call.machine.greeting.ended", result="beep_detected")
    )
    assert isinstance(greeting, TelnyxMachineGreetingEnded) and greeting.result == "beep_detected"
    dtmf = parse_telnyx_webhook(_envelope("call.dtmf.received", digit="#"))
    assert isinstance(dtmf, TelnyxDtmfReceived) and dtmf.digit == "#"
    other = parse_telnyx_webhook(_envelope("call.recording.saved", recording_urls={"mp3": "u"}))
    assert isinstance(other, TelnyxUnknownEvent)
    assert other.event_type == "call.recording.saved"
    assert other.payload["recording_urls"] == {"mp3": "u"}
    # unknown types need no call_control_id
    assert isinstance(parse_telnyx_webhook(b'{"data":{"event_type":"x.y"}}'), TelnyxUnknownEvent)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"data":[]}',
        b'{"data":{}}',
        b'{"data":{"event_type":7}}',
        b'{"data":{"event_type":"call.hangup","payload":[]}}',
        b'{"data":{"event_type":"call.hangup","payload":{}}}',
        b'{"data":{"event_type":"call.hangup","payload":{"call_control_id":["x"]}}}',
        b'{"data":{"event_type":"call.dtmf.received","payload":{"call_control_id":"c"}}}',
        b'{"data":{"event_type":"call.answered","payload":{"call_control_id":"c","to":{}}}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_malformed_envelopes_are_400(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_telnyx_webhook(body, max_bytes=1_000_000)
    assert info.value.http_status == 400


def test_size_limit_413() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_telnyx_webhook(b" " * 300_000)
    assert info.value.http_status == 413


def test_client_state_helpers() -> None:
    assert encode_client_state("hi") == "aGk="
    assert decode_client_state(encode_client_state(b"\x00\xff")) == b"\x00\xff"
    with pytest.raises(RemoteProtocolError):
        decode_client_state("not base64!")
    with pytest.raises(PatterError):
        decode_client_state("é")
