"""Local stereo recordings of real calls through the echo agent (Twilio,
over loopback): the caller's tone on the left, its echo on the right where
the carrier played it, and a cleared answer cut where the caller stopped
hearing it; then the bad inputs (an unwritable directory, a full disk)."""

from __future__ import annotations

import errno
import json
import logging
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from patter_anyio import InvalidOption, Patter
from tests.fakes.carrier import (
    CarrierStream,
    carrier_stream,
    local_ws_url,
    run_in_asyncio_thread,
    stream_signature,
    ulaw_silence,
    ulaw_tone,
)
from tests.test_e2e_echo import AUTH_TOKEN, CALL_SID
from tests.test_e2e_realtime import Recorded, answer_call, serving, twilio_phone, twilio_rest
from tests.test_monitor_server import aget

pytestmark = pytest.mark.anyio

RATE = 8000


def read_wav(path: str) -> np.ndarray:
    with wave.open(path) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE)
        frames = w.readframes(w.getnframes())
    return np.frombuffer(frames, dtype="<i2").reshape(-1, 2)


def loud_ms(channel: np.ndarray, hz: float) -> list[int]:
    """The 20 ms frames (as their start, in ms) where a tone of ``hz`` dominates."""
    out = []
    for start in range(0, len(channel) - 160 + 1, 160):
        frame = channel[start : start + 160].astype(np.float64)
        if np.sqrt(np.mean(frame**2)) < 1000:
            continue
        spectrum = np.abs(np.fft.rfft(frame * np.hanning(160)))
        peak = np.argmax(spectrum) * RATE / 160
        if abs(peak - hz) <= 50:
            out.append(start // 8)
    return out


async def echo_call(
    tmp_path: Path, caller_audio: bytes, *, dashboard: list[Any] | None = None, **options: Any
) -> tuple[dict[str, Any], CarrierStream]:
    """One call; with ``dashboard``, what the call API and the recording
    endpoint answer after it, appended there."""
    seen = Recorded()
    with twilio_rest() as rest:
        phone = twilio_phone(rest)
        async with serving(phone, phone.agent(provider="echo"), seen, **options) as port:
            stream_url, params = await answer_call(port)

            async def carrier() -> CarrierStream:
                async with carrier_stream(
                    local_ws_url(port, stream_url),
                    headers={"X-Twilio-Signature": stream_signature(stream_url, AUTH_TOKEN)},
                ) as call:
                    await call.start(call_id=CALL_SID, custom_parameters=params)
                    await call.send_audio(caller_audio)  # real time: the recording's clock
                    await call.stop()
                    await call.wait(call.closed.is_set, what="server closes after stop")
                    return call

            call = await run_in_asyncio_thread(carrier, timeout=40)
            end = await seen.wait_ended()
            if dashboard is not None:
                listing = await aget(port, "/api/calls")
                dashboard.append(json.loads(listing[2])["finished"][0])
                dashboard.append(await aget(port, f"/api/recordings/{call.stream_id}"))
                dashboard.append(await aget(port, "/api/recordings/MZ-no-such-stream"))
    return end, call


async def test_tone_left_and_its_echo_right_where_it_played(
    anyio_backend: str, tmp_path: Path
) -> None:
    audio = ulaw_silence(100) + ulaw_tone(300, 600) + ulaw_silence(1600)
    dashboard: list[Any] = []
    end, call = await echo_call(
        tmp_path, audio, dashboard=dashboard, local_recording=tmp_path / "rec"
    )
    path = end["recording_path"]
    assert path == str(tmp_path / "rec" / f"{CALL_SID}.wav")
    stereo = read_wav(path)
    # The whole call, on the caller's clock (2.3 s of caller audio).
    assert abs(len(stereo) / 8 - 2300) <= 40
    left = loud_ms(stereo[:, 0], 300)
    assert left[0] == 100 and left[-1] == 680 and len(left) == 30
    right = loud_ms(stereo[:, 1], 300)
    # The echo agent answers after 600 ms of silence (end of tone at 700 ms):
    # the carrier played its echo from about 1300 ms, for 600 ms.
    assert abs(right[0] - 1300) <= 60, right
    assert abs((right[-1] + 20 - right[0]) - 600) <= 40, right
    # Each side holds its own: no echo on the left, no caller tone on the right.
    assert not loud_ms(stereo[1000 * 8 :, 0], 300)
    assert not loud_ms(stereo[: 1200 * 8, 1], 300)
    assert call.marks and not call.clears
    # The dashboard serves the file (its path on this machine stays here).
    finished, (status, headers, body), (missing, _, _) = dashboard
    assert finished["recording_url"] == f"api/recordings/{call.stream_id}"
    assert "recording_path" not in finished
    assert status == 200 and headers["content-type"] == "audio/wav"
    assert body == Path(path).read_bytes()
    assert missing == 404


async def test_cleared_answer_is_cut_where_the_caller_stopped_hearing_it(
    anyio_backend: str, tmp_path: Path
) -> None:
    # A 1 s utterance; its echo starts about 600 ms after it ends; the caller
    # talks over it (500 Hz) and the echo agent's barge-in clears it.
    audio = (
        ulaw_silence(100)
        + ulaw_tone(300, 1000)
        + ulaw_silence(1100)
        + ulaw_tone(500, 300)
        + ulaw_silence(1200)
    )
    end, call = await echo_call(tmp_path, audio, local_recording=str(tmp_path))
    assert len(call.clears) == 1
    heard_ms = call.clears[0] / 8  # echo audio the carrier had played at the clear
    assert 300 <= heard_ms <= 900, heard_ms
    stereo = read_wav(end["recording_path"])
    echo = loud_ms(stereo[:, 1], 300)
    assert echo, "the echo is missing from the recording"
    length = echo[-1] + 20 - echo[0]
    assert abs(length - heard_ms) <= 40, (length, heard_ms)
    # It was cut while the caller was talking over it (500 Hz from 2200 ms).
    interruption = loud_ms(stereo[:, 0], 500)
    assert interruption[0] == 2200
    assert interruption[0] < echo[-1] + 20 <= interruption[0] + 400
    assert end["metrics"]["barge_ins"] == 1
    # The carrier echoes the cleared marks at once: the agent went quiet quickly.
    (barge_in,) = end["metrics"]["barge_in_details"]
    assert barge_in["quiet_ms"] is not None and 0 <= barge_in["quiet_ms"] < 200, barge_in


async def test_unwritable_directory_is_refused_before_serving(
    anyio_backend: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    phone = Patter()
    with pytest.raises(InvalidOption, match="cannot write recordings in"):
        await phone.serve(phone.agent(provider="echo"), None, local_recording=blocker / "rec")
    with pytest.raises(InvalidOption, match="local_recording must be True or a directory"):
        await phone.serve(phone.agent(provider="echo"), None, local_recording=3)  # type: ignore[arg-type]


def test_cli_unwritable_directory_exits_2_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "patter_anyio", "serve", "--local-recording", str(blocker)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "patter-local: error: --local-recording: cannot write recordings in"
    ), lines


async def test_full_disk_stops_the_recording_not_the_call(
    anyio_backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from patter_anyio.calls import _recording

    writes = {"n": 0}
    real_write = _recording.RecordingWriter._write

    def failing_write(self: Any, data: bytes) -> None:
        writes["n"] += 1
        if writes["n"] >= 2:  # the first second is written, then the disk is full
            self._fail(OSError(errno.ENOSPC, "No space left on device"))
            return
        real_write(self, data)

    monkeypatch.setattr(_recording.RecordingWriter, "_write", failing_write)
    audio = ulaw_silence(100) + ulaw_tone(300, 600) + ulaw_silence(2400)
    with caplog.at_level(logging.WARNING, logger="patter_anyio.recording"):
        end, call = await echo_call(tmp_path, audio, local_recording=tmp_path)
    # The call went on to its normal end, the echo played whole.
    assert end["reason"] == "carrier_stop" and call.close_code == 1000
    assert len(call.heard) >= 600 * 8
    lines = [r.getMessage() for r in caplog.records if r.name == "patter_anyio.recording"]
    assert len(lines) == 1 and "No space left on device" in lines[0]
    # What was written before is a valid, shorter file.
    stereo = read_wav(end["recording_path"])
    assert 0 < len(stereo) < 3100 * 8


async def test_telnyx_call_is_recorded_the_same_way(anyio_backend: str, tmp_path: Path) -> None:
    from tests.fakes.servers import rest_server, telnyx_responder
    from tests.test_e2e_telnyx import CALL_ID, answer_and_stream, telnyx_phone

    seen = Recorded()
    with rest_server(telnyx_responder) as rest:
        phone = telnyx_phone(rest)
        agent = phone.agent(provider="echo")
        async with serving(phone, agent, seen, local_recording=tmp_path) as port:
            stream = await answer_and_stream(port, rest)

            async def carrier() -> CarrierStream:
                async with carrier_stream(
                    local_ws_url(port, stream["stream_url"]),
                    headers={"x-telnyx-streaming-auth-token": stream["stream_auth_token"]},
                    carrier="telnyx",
                ) as call:
                    await call.start(call_id=CALL_ID)
                    await call.send_audio(
                        ulaw_silence(100) + ulaw_tone(300, 600) + ulaw_silence(1600)
                    )
                    await call.stop()
                    await call.wait(call.closed.is_set, what="server closes after stop")
                    return call

            await run_in_asyncio_thread(carrier, timeout=40)
            end = await seen.wait_ended()
    # The call id's ":" is not carried into the file name.
    assert end["recording_path"] == str(tmp_path / "v3_e2e-call-control-id-0001.wav")
    stereo = read_wav(end["recording_path"])
    left, right = loud_ms(stereo[:, 0], 300), loud_ms(stereo[:, 1], 300)
    assert (left[0], left[-1]) == (100, 680)
    assert abs(right[0] - 1300) <= 60 and abs((right[-1] + 20 - right[0]) - 600) <= 40, right
