"""The core's sub-packages export their protocol objects; the wire helpers
under them stay importable from their private modules for our own code."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "patter_core.audio",
    "patter_core.bridge",
    "patter_core.http",
    "patter_core.media",
    "patter_core.monitor",
    "patter_core.providers",
    "patter_core.providers.pipeline",
    "patter_core.recording",
    "patter_core.webhooks",
]

# (package, helper, the private module it lives in)
HELPERS = [
    ("patter_core.audio", "ulaw_encode", "patter_core.audio._g711"),
    ("patter_core.audio", "resample_buffer", "patter_core.audio._resample"),
    ("patter_core.bridge", "e164_number", "patter_core.bridge._config"),
    ("patter_core.bridge", "error_output", "patter_core.bridge._tools"),
    ("patter_core.http", "websocket_accept", "patter_core.http._router"),
    ("patter_core.http", "client_ip", "patter_core.http._clientip"),
    ("patter_core.monitor", "sse_event", "patter_core.monitor._board"),
    ("patter_core.monitor", "render", "patter_core.monitor._prometheus"),
    ("patter_core.providers", "describe_refusal", "patter_core.providers._refusal"),
    ("patter_core.providers.pipeline", "deepgram_url", "patter_core.providers.pipeline._deepgram"),
    ("patter_core.providers.pipeline", "SSEParser", "patter_core.providers.pipeline._sse"),
    ("patter_core.recording", "wav_header", "patter_core.recording._wav"),
    ("patter_core.webhooks", "connect_stream_twiml", "patter_core.webhooks._twiml"),
    ("patter_core.webhooks", "public_url", "patter_core.webhooks._twilio_signature"),
    ("patter_core.webhooks", "decode_client_state", "patter_core.webhooks._telnyx_events"),
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_what_the_package_defines(name: str) -> None:
    package = importlib.import_module(name)
    exported = list(package.__all__)
    assert len(exported) == len(set(exported))
    for item in exported:
        assert hasattr(package, item), f"{name}.__all__ names {item}, which it lacks"
    public = {n for n, v in vars(package).items() if not n.startswith("_") and n != "annotations"}
    public -= {n for n, v in vars(package).items() if type(v).__name__ == "module"}
    assert public == set(exported), "imported but not exported, or the reverse"


@pytest.mark.parametrize(("package", "helper", "module"), HELPERS)
def test_wire_helpers_live_in_their_private_module(package: str, helper: str, module: str) -> None:
    assert helper not in importlib.import_module(package).__all__
    assert not hasattr(importlib.import_module(package), helper)
    assert callable(getattr(importlib.import_module(module), helper))


def test_the_protocol_objects_are_there() -> None:
    from patter_core.audio import EnergyVad, Transcoder
    from patter_core.bridge import CallBridge
    from patter_core.http import Router
    from patter_core.media import TwilioMediaStream
    from patter_core.providers import OpenAIRealtimeSession
    from patter_core.providers.pipeline import PipelineSession, VadConfig
    from patter_core.webhooks import TwilioCallFlow, TwilioSignatureValidator

    assert VadConfig is importlib.import_module("patter_core.audio").VadConfig
    for obj in (EnergyVad, Transcoder, CallBridge, Router, TwilioMediaStream):
        assert isinstance(obj, type)
    for obj in (OpenAIRealtimeSession, PipelineSession, TwilioCallFlow, TwilioSignatureValidator):
        assert isinstance(obj, type)
