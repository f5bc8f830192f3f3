"""ElevenLabs ``client_tool_result.is_error`` over loopback: true for an
unknown tool, refused arguments or a handler that raised, false for a
success, as the official SDK sends it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.carrier import (
    carrier_stream,
    local_ws_url,
    run_in_asyncio_thread,
    stream_signature,
)
from tests.fakes.fake_elevenlabs import FakeElevenLabs
from tests.fakes.provider_servers import provider_server
from tests.test_e2e_echo import AUTH_TOKEN, CALL_SID
from tests.test_e2e_realtime import (
    Recorded,
    answer_call,
    of_type,
    serving,
    twilio_phone,
    twilio_rest,
)

pytestmark = pytest.mark.anyio


def lookup(arguments: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    return {"order": arguments["order_number"], "status": "shipped"}


def explode(arguments: dict[str, Any], call: dict[str, Any]) -> str:
    raise RuntimeError("inventory database is down")


CALLS = [
    ("lookup_order", {"order_number": "42"}, "ok"),
    ("explode", {}, "raised"),
    ("no_such_tool", {}, "unknown"),
    ("transfer_call", {"number": "+19005550000"}, "refused"),  # not on the allowlist
    ("lookup_order", ["42"], "bad arguments"),  # parameters that are not an object
]


async def test_elevenlabs_tool_results_carry_the_error_flag(anyio_backend: str) -> None:
    fake = FakeElevenLabs(agent_id="agent_tools")
    seen = Recorded()
    with provider_server(fake) as provider, twilio_rest() as rest:
        phone = twilio_phone(rest, elevenlabs_base_url=provider.base_url)
        agent = phone.agent(
            provider="elevenlabs",
            agent_id="agent_tools",
            tools=[
                {"name": "lookup_order", "handler": lookup},
                {"name": "explode", "handler": explode},
            ],
            transfer_allowlist=["+14155550123"],
        )
        async with serving(phone, agent, seen) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> list[dict[str, Any]]:
                async with carrier_stream(
                    local_ws_url(port, stream_url),
                    headers={"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)},
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await provider.wait_for(of_type("conversation_initiation_client_data"))
                    results = []
                    for name, parameters, call_id in CALLS:
                        provider.push(
                            lambda n=name, p=parameters, c=call_id: fake.tool_call(n, p, c)
                        )
                        results.append(
                            await provider.wait_for(
                                lambda m, c=call_id: (
                                    m.get("type") == "client_tool_result"
                                    and m.get("tool_call_id") == c
                                )
                            )
                        )
                    await call.stop()
                    await call.wait(call.closed.is_set, what="the server closing the stream")
                    return results

            results = await run_in_asyncio_thread(carrier)
            await seen.wait_ended()
    flags = {r["tool_call_id"]: r["is_error"] for r in results}
    assert flags == {
        "ok": False,
        "raised": True,
        "unknown": True,
        "refused": True,
        "bad arguments": True,
    }
    by_id = {r["tool_call_id"]: r["result"] for r in results}
    assert by_id["ok"] == '{"order": "42", "status": "shipped"}'
    assert "inventory database is down" in by_id["raised"]
    assert "unknown tool 'no_such_tool'" in by_id["unknown"]
    assert "arguments must be a JSON object" in by_id["bad arguments"]
