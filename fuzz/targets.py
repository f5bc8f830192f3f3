"""Byte-level fuzz targets, one per parser, for the coverage-guided campaign.

Each target turns one fuzzer input (bytes) into calls on a ``patter_core``
parser and checks the one property every parser owes its peer: the input
parses, or it raises the error we declared for bad input
(:class:`RemoteProtocolError` and its subclasses, with a status or close code
in range). Any other exception escaping is a finding.

The harnesses of the Hypothesis fuzzers (``fuzz_media.run_scenario``,
``fuzz_router.check``, ...) do the checking; this module only decodes bytes
into their arguments, so the invariants live in one place. Inputs that carry
several messages separate them with a newline (compact JSON never contains
one); the first byte, when a target needs a choice, selects the mode.

Nothing here needs a fuzzing engine: ``tests/test_fuzz_corpus.py`` replays the
committed corpus through these same functions on every test run.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from nacl.signing import SigningKey

from fuzz import fuzz_media, fuzz_pipeline, fuzz_providers, fuzz_router
from fuzz.fuzz_webhooks import FORM_FIELDS
from patter_core import LocalProtocolError, RemoteProtocolError
from patter_core.http import HttpResponse
from patter_core.providers.pipeline._deepgram import parse_deepgram_message
from patter_core.providers.pipeline._llm import ChatStreamReader
from patter_core.providers.pipeline._openai_stt import parse_transcription
from patter_core.providers.pipeline._tts_ws import parse_tts_ws_message
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

__all__ = ["TARGETS", "Target", "corpus_name"]


@dataclass(frozen=True, slots=True)
class Target:
    """A fuzz target: ``run`` takes one input; ``seeds`` start an empty corpus."""

    name: str
    run: Callable[[bytes], None]
    seeds: list[bytes]
    # Words worth splicing into inputs (a libFuzzer dictionary).
    tokens: list[str] = field(default_factory=list)
    # Source files (under patter_core/) the line-coverage figure is over.
    sources: list[str] = field(default_factory=list)


def _declared(error: RemoteProtocolError) -> None:
    """A declared error must still say what to answer with."""
    assert 400 <= error.http_status < 600, error.http_status
    assert 1000 <= error.close_code < 5000, error.close_code


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _messages(data: bytes) -> list[str | bytes]:
    """WebSocket messages: a line starting with NUL is a binary frame, others text.

    Text frames are valid UTF-8 by the time wsproto hands them over, so
    undecodable bytes become U+FFFD as they would never reach us raw.
    """
    return [
        line[1:] if line[:1] == b"\x00" else line.decode("utf-8", "replace")
        for line in _lines(data)
    ]


def _texts(messages: list[str | bytes]) -> list[str]:
    """The same messages for a reader that only takes text."""
    return [m if isinstance(m, str) else m.decode("utf-8", "replace") for m in messages]


def _compact(*frames: object) -> bytes:
    return b"\n".join(json.dumps(f, separators=(",", ":")).encode() for f in frames)


def _keys(*objects: object) -> list[str]:
    """Every dict key and string value in ``objects``, as dictionary words."""
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                found.add(str(key))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) < 40:
            found.add(value)

    for obj in objects:
        walk(obj)
    return sorted(found)


# -- media streams -------------------------------------------------------------


def _media(carrier: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        if not data:
            return
        # Fresh, after connected, or after start (most of the parser is there).
        prelude = data[0] % 3
        fuzz_media.run_scenario(carrier, prelude, _messages(data[1:]))

    return run


def _media_seeds(carrier: str) -> list[bytes]:
    templates = fuzz_media.TEMPLATES[carrier]
    return [bytes([p]) + _compact(t) for p in (0, 2) for t in templates] + [
        b"\x00" + _compact(*templates)
    ]


# -- Twilio webhooks: forms and signatures ---------------------------------------

_TWILIO = TwilioSignatureValidator("fuzz-token", shared_keys={"k1": "shared"})
_FORM_PARSERS = (
    parse_incoming_call,
    parse_call_status,
    parse_amd_callback,
    parse_recording_status,
    parse_stream_status,
)
_FORM_FIELDS = [*FORM_FIELDS, "Direction", "CallerName", "Timestamp"]


def _headers(blob: bytes) -> list[tuple[str, str]]:
    """``name:value`` lines; h11 hands headers over as latin-1-decodable bytes."""
    pairs = []
    for line in _lines(blob):
        name, _, value = line.partition(b":")
        pairs.append((name.decode("latin-1"), value.decode("latin-1")))
    return pairs


def _twilio_webhook(data: bytes) -> None:
    """Mode byte: bits 0-2 pick a form parser; bit 3 signs the request correctly.

    The rest is ``url NUL headers NUL body``, so the fuzzer reaches the form
    parsers through the signature check as well as directly.
    """
    if not data:
        return
    mode, rest = data[0], data[1:]
    url_bytes, _, rest = rest.partition(b"\x00")
    header_blob, _, body = rest.partition(b"\x00")
    url = url_bytes.decode("utf-8", "replace")
    headers = _headers(header_blob) if header_blob else []
    try:
        form = parse_form(body)
        _FORM_PARSERS[mode % 8 % len(_FORM_PARSERS)](form)
    except RemoteProtocolError as exc:
        _declared(exc)
    if mode & 8:
        with contextlib.suppress(RemoteProtocolError):
            signed = parse_form(body)
            headers.append(("x-twilio-signature", _TWILIO.compute_signature(url, signed)))
    try:
        _TWILIO.validate_request(url=url, headers=headers, body=body)
    except RemoteProtocolError as exc:
        _declared(exc)


def _twilio_seeds() -> list[bytes]:
    form = (
        b"CallSid=CA1&AccountSid=AC1&From=%2B15550001&To=%2B15550002&CallStatus=ringing"
        b"&Direction=inbound&CallDuration=3&SequenceNumber=0&AnsweredBy=human"
        b"&RecordingSid=RE1&RecordingStatus=completed&StreamSid=MZ1&StreamEvent=stream-started"
    )
    head = b"content-type:application/x-www-form-urlencoded"
    return [
        bytes([m]) + b"https://example.com/webhooks/twilio/voice\x00" + head + b"\x00" + form
        for m in range(13)
    ] + [
        b"\x00https://example.com/w?bodySHA256=x\x00content-type:application/json\n"
        b"x-twilio-webhooks-signature-settings:key=k1,algorithm=HMAC_SHA256\x00{}"
    ]


# -- Telnyx webhooks: JSON and Ed25519 ---------------------------------------------

_TELNYX_SIGNER = SigningKey(bytes(range(32)))
_TELNYX = TelnyxSignatureVerifier(base64.b64encode(bytes(_TELNYX_SIGNER.verify_key)).decode())
_TELNYX_NOW = 1_700_000_000.0


def _telnyx_webhook(data: bytes) -> None:
    """Mode byte: bit 0 signs ``body`` with the verifier's key; the rest is
    ``headers NUL body`` and the body also goes to the REST answer parsers."""
    if not data:
        return
    mode, rest = data[0], data[1:]
    header_blob, _, body = rest.partition(b"\x00")
    headers = _headers(header_blob) if header_blob else []
    if mode & 1:
        stamp = str(int(_TELNYX_NOW) - mode % 7)
        signature = _TELNYX_SIGNER.sign(stamp.encode() + b"|" + body).signature
        headers += [
            ("telnyx-timestamp", stamp),
            ("telnyx-signature-ed25519", base64.b64encode(signature).decode()),
        ]
    try:
        _TELNYX.verify(headers=headers, body=body, now=_TELNYX_NOW)
        parse_telnyx_webhook(body)
    except RemoteProtocolError as exc:
        _declared(exc)
    response = HttpResponse(status=200 + mode % 4 * 100, body=body)
    for parse in (parse_telnyx_response, parse_twilio_call):
        try:
            parse(response)
        except RemoteProtocolError as exc:
            _declared(exc)


def _telnyx_seeds() -> list[bytes]:
    payload = {
        "call_control_id": "v3:1",
        "call_leg_id": "l1",
        "call_session_id": "s1",
        "client_state": base64.b64encode(b'{"a":1}').decode(),
        "from": "+15550001",
        "to": "+15550002",
        "direction": "incoming",
        "digit": "5",
        "hangup_cause": "normal_clearing",
        "result": "human",
        "stream_url": "wss://x/ws",
    }
    events = [
        "call.initiated",
        "call.answered",
        "call.hangup",
        "streaming.started",
        "streaming.stopped",
        "streaming.failed",
        "call.machine.detection.ended",
        "call.dtmf.received",
    ]
    bodies = [
        json.dumps(
            {"data": {"event_type": e, "id": "1", "occurred_at": "t", "payload": payload}},
            separators=(",", ":"),
        ).encode()
        for e in events
    ]
    unsigned = b"telnyx-timestamp:1700000000\ntelnyx-signature-ed25519:" + base64.b64encode(
        bytes(64)
    )
    return (
        [b"\x01\x00" + b for b in bodies]
        + [b"\x00" + unsigned + b"\x00" + bodies[0]]
        + [
            b"\x01\x00" + b'{"data":{"call_control_id":"v3:1","result":"ok"}}',
            b"\x03\x00" + b'{"errors":[{"code":"90018","title":"t","detail":"d"}]}',
            b"\x01\x00" + b'{"sid":"CA1","status":"queued"}',
        ]
    )


# -- provider messages -------------------------------------------------------------


def _openai(data: bytes) -> None:
    fuzz_providers.check_openai(_messages(data))


def _elevenlabs(data: bytes) -> None:
    """Mode byte: even, Conversational AI messages; odd, stream-input TTS messages."""
    if not data:
        return
    messages = _messages(data[1:])
    if data[0] & 1:
        for message in messages:
            try:
                parse_tts_ws_message(message)
            except RemoteProtocolError as exc:
                _declared(exc)
        fuzz_pipeline.check_tts_ws(_texts(messages), [data[0] & 2 == 2] * len(messages))
    else:
        fuzz_providers.check_elevenlabs(messages)


def _deepgram(data: bytes) -> None:
    """Each line a Deepgram message: alone, then all through a live pipeline session."""
    messages = _messages(data)
    for message in messages:
        try:
            parse_deepgram_message(message)
        except RemoteProtocolError as exc:
            _declared(exc)
    fuzz_pipeline.check_session(_texts(messages), [], b"")


def _sse(data: bytes) -> None:
    """Mode byte: 0 SSE parser cut at the next bytes' offsets, 1 chat-completions
    stream, 2 transcription answer."""
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    if mode == 0:
        cuts, body = list(rest[:3]), rest[3:]
        fuzz_pipeline.check_sse(body, cuts)
        return
    try:
        if mode == 1:
            reader = ChatStreamReader()
            for chunk in rest.split(b"\x00"):
                reader.feed(chunk)
            reader.end_of_body()
        else:
            parse_transcription(rest)
    except RemoteProtocolError as exc:
        _declared(exc)


def _sse_seeds() -> list[bytes]:
    chat = b"".join(
        b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n"
        for c in fuzz_pipeline.CHAT
    )
    return [
        b"\x00\x05\x0a\x14event: message\nid: 7\nretry: 10\ndata: a\ndata: b\n\n: c\r\n\r\n",
        b"\x01" + chat + b"data: [DONE]\n\n",
        b"\x01" + chat.replace(b"\n\n", b"\n\n\x00", 2),
        b'\x02{"text":"Hello there."}',
    ]


# -- stream tokens and echoed client state ---------------------------------------------

_TOKENS = StreamTokens(b"fuzz-secret-0123456789", previous_secrets=[b"fuzz-old-secret-98765"])


def _stream_token(data: bytes) -> None:
    """``token NUL call id NUL client_state``; mode bit 0 swaps in a token issued
    for ``call id`` (so the fuzzer reaches the MAC and expiry checks), the other
    bits move ``now`` around the token's life."""
    if not data:
        return
    mode, rest = data[0], data[1:]
    token_bytes, _, rest = rest.partition(b"\x00")
    call_bytes, _, state = rest.partition(b"\x00")
    token = token_bytes.decode("utf-8", "replace")
    call_id = call_bytes.decode("utf-8", "replace")
    now = 1_000.0 + (mode >> 1) * 10.0
    if mode & 1 and call_id:
        with contextlib.suppress(LocalProtocolError):
            token = _TOKENS.issue(call_id, 1_000.0) + token
    for check in (
        lambda: _TOKENS.verify(token, call_id, now),
        lambda: decode_client_state(state.decode("utf-8", "replace")),
    ):
        try:
            check()
        except RemoteProtocolError as exc:
            _declared(exc)


def _token_seeds() -> list[bytes]:
    token = _TOKENS.issue("CA1", 1_000.0).encode()
    state = base64.b64encode(b'{"to":"+1"}')
    return [
        b"\x00" + token + b"\x00CA1\x00" + state,
        b"\x01\x00CA1\x00" + state,
        b"\x41\x00v3:1\x00=",
        b"\x00" + token + b"\x00CA2\x00" + state[:-1],
    ]


# -- the HTTP router ----------------------------------------------------------------


def _router(data: bytes) -> None:
    """Lines: method, target, peer address, then ``name:value`` headers."""
    lines = _lines(data)
    method, target, peer = [*lines, b"", b""][:3]
    rest = lines[3:]
    fuzz_router.check(
        method.decode("latin-1"),
        target.decode("latin-1"),
        _headers(b"\n".join(rest)) if rest else [],
        peer.decode("latin-1"),
    )


def _router_seeds() -> list[bytes]:
    token = _TOKENS.issue("CA1", 1.0)
    upgrade = (
        b"host:example.com\nupgrade:websocket\nconnection:Upgrade\n"
        b"sec-websocket-key:dGhlIHNhbXBsZSBub25jZQ==\nsec-websocket-version:13"
    )
    return [
        b"GET\n/health\n127.0.0.1\nhost:example.com",
        b"POST\n/webhooks/twilio/voice\n10.1.2.3\ncontent-length:10\nx-forwarded-for:1.2.3.4",
        b"POST\n/webhooks/telnyx/voice?x=1\n::1\ncontent-length:99999999",
        b"GET\n/ws/stream/CA1?token=" + token.encode() + b"\n127.0.0.1\n" + upgrade,
        b"GET\n/ws/telnyx/stream/v3:1\n::ffff:127.0.0.1\n" + upgrade,
        b"HEAD\n*\n127.0.0.1\n",
    ]


_MEDIA_SOURCES = ["media/_base.py", "media/_wire.py", "media/_limits.py", "media/_events.py"]

TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target(
            "twilio-media",
            _media("twilio"),
            _media_seeds("twilio"),
            _keys(fuzz_media.TEMPLATES["twilio"]),
            ["media/_twilio.py", *_MEDIA_SOURCES],
        ),
        Target(
            "telnyx-media",
            _media("telnyx"),
            _media_seeds("telnyx"),
            _keys(fuzz_media.TEMPLATES["telnyx"]),
            ["media/_telnyx.py", *_MEDIA_SOURCES],
        ),
        Target(
            "twilio-webhook",
            _twilio_webhook,
            _twilio_seeds(),
            [*_FORM_FIELDS, "x-twilio-signature", "x-twilio-webhooks-signature-settings"],
            ["webhooks/_forms.py", "webhooks/_twilio_events.py", "webhooks/_twilio_signature.py"],
        ),
        Target(
            "telnyx-webhook",
            _telnyx_webhook,
            _telnyx_seeds(),
            ["telnyx-timestamp", "telnyx-signature-ed25519", "event_type", "payload", "data"],
            [
                "webhooks/_telnyx_events.py",
                "webhooks/_telnyx_signature.py",
                "webhooks/_telnyx_rest.py",
                "webhooks/_twilio_rest.py",
            ],
        ),
        Target(
            "openai",
            _openai,
            [_compact({"type": t}) for t in fuzz_providers.OPENAI_TYPES]
            + [
                _compact(
                    {"type": "response.output_audio.delta", "delta": "AAAA", "item_id": "i1"},
                    {
                        "type": "response.function_call_arguments.done",
                        "call_id": "c",
                        "name": "f",
                        "arguments": "{}",
                    },
                    {"type": "error", "error": {"type": "x", "code": "c", "message": "m"}},
                )
            ],
            [*fuzz_providers.OPENAI_TYPES, *fuzz_providers.FIELD_NAMES],
            ["providers/_openai_realtime.py", "providers/_base.py", "providers/_session.py"],
        ),
        Target(
            "elevenlabs",
            _elevenlabs,
            [b"\x00" + _compact({"type": t}) for t in fuzz_providers.ELEVENLABS_TYPES]
            + [b"\x01" + _compact(*fuzz_pipeline.TTS_WS)]
            + [
                b"\x00"
                + _compact(
                    {"type": "audio", "audio_event": {"audio_base_64": "AAAA", "event_id": 1}},
                    {
                        "type": "client_tool_call",
                        "client_tool_call": {
                            "tool_name": "t",
                            "tool_call_id": "c",
                            "parameters": {},
                        },
                    },
                    {
                        "type": "conversation_initiation_metadata",
                        "conversation_initiation_metadata_event": {
                            "conversation_id": "x",
                            "agent_output_audio_format": "pcm_16000",
                            "user_input_audio_format": "pcm_16000",
                        },
                    },
                )
            ],
            [
                *fuzz_providers.ELEVENLABS_TYPES,
                *fuzz_providers.FIELD_NAMES,
                *_keys(fuzz_pipeline.TTS_WS),
            ],
            ["providers/_elevenlabs.py", "providers/pipeline/_tts_ws.py", "providers/_base.py"],
        ),
        Target(
            "deepgram",
            _deepgram,
            [_compact(m) for m in fuzz_pipeline.DEEPGRAM] + [_compact(*fuzz_pipeline.DEEPGRAM)],
            _keys(fuzz_pipeline.DEEPGRAM),
            ["providers/pipeline/_deepgram.py", "providers/pipeline/_session.py"],
        ),
        Target(
            "sse",
            _sse,
            _sse_seeds(),
            ["data:", "event:", "id:", "retry:", "[DONE]", *_keys(fuzz_pipeline.CHAT)],
            [
                "providers/pipeline/_sse.py",
                "providers/pipeline/_llm.py",
                "providers/pipeline/_openai_stt.py",
            ],
        ),
        Target(
            "stream-token",
            _stream_token,
            _token_seeds(),
            ["CA1", "v3:1", "."],
            ["webhooks/_tokens.py", "webhooks/_telnyx_events.py"],
        ),
        Target(
            "router",
            _router,
            _router_seeds(),
            [
                "/ws/stream/",
                "/ws/telnyx/stream/",
                "/webhooks/twilio/voice",
                "token=",
                "websocket",
                "Upgrade",
                "x-forwarded-for",
                "sec-websocket-key",
            ],
            ["http/_router.py", "http/_clientip.py", "http/_ratelimit.py", "http/_limits.py"],
        ),
    ]
}


def corpus_name(data: bytes) -> str:
    """A corpus file's name: its content's SHA-1, as libFuzzer names them."""
    return hashlib.sha1(data).hexdigest()
