"""The energy VAD (patter_core.audio._vad): onset and offset at the exact frame,
pre-roll, hysteresis, the cap, noise at a given SNR, and any split of the
input giving the same events."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core import LocalProtocolError
from patter_core.audio import EnergyVad, VadConfig, VadEvent, VadSpeechEnded, VadSpeechStarted

FRAME = 640  # 20 ms of 16 kHz PCM16
RATE = 16000


def tone(frames: int, rms: float, hz: float = 300.0, phase: int = 0) -> np.ndarray:
    """A sine of the given RMS, ``frames`` 20 ms frames long (300 Hz: whole cycles per frame)."""
    t = (np.arange(frames * FRAME // 2) + phase) / RATE
    return rms * math.sqrt(2) * np.sin(2 * np.pi * hz * t)


def silence(frames: int) -> np.ndarray:
    return np.zeros(frames * FRAME // 2)


def noise(frames: int, rms: float, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, rms, frames * FRAME // 2)


def pcm(*parts: np.ndarray) -> bytes:
    return np.clip(np.round(np.concatenate(parts)), -32768, 32767).astype("<i2").tobytes()


def by_frame(vad: EnergyVad, audio: bytes) -> list[tuple[int, VadEvent]]:
    """Feed one frame at a time; each event with the index of the frame that caused it."""
    return [
        (index // FRAME, event)
        for index in range(0, len(audio), FRAME)
        for event in vad.feed(audio[index : index + FRAME])
    ]


def one_turn(vad: EnergyVad, audio: bytes) -> tuple[int, int, bytes]:
    """The frames of the one onset and the one offset in ``audio``, and the utterance."""
    events = by_frame(vad, audio)
    assert [type(event) for _, event in events] == [VadSpeechStarted, VadSpeechEnded]
    (onset, _), (offset, ended) = events
    assert isinstance(ended, VadSpeechEnded)
    return onset, offset, ended.audio


def test_onset_and_offset_are_frame_exact() -> None:
    # Defaults: onset after 3 loud frames, offset after 35 quiet ones, 10 frames of pre-roll.
    lead, speech, tail = 50, 40, 60
    audio = pcm(silence(lead), tone(speech, 2000.0), silence(tail))
    # Pre-roll (200 ms of the silence before) and the speech; the hangover is left out.
    assert one_turn(EnergyVad(), audio) == (
        lead + 3 - 1,
        lead + speech + 35 - 1,
        audio[(lead - 10) * FRAME : (lead + speech) * FRAME],
    )


def test_speech_in_noise_at_20_db_snr() -> None:
    """Speech at RMS 2000 over line noise at RMS 200 (20 dB SNR): the same frames."""
    lead, speech, tail = 30, 25, 50
    background = noise(lead + speech + tail, 200.0)
    signal = np.concatenate([silence(lead), tone(speech, 2000.0), silence(tail)])
    audio = pcm(signal + background)
    assert one_turn(EnergyVad(), audio) == (
        lead + 3 - 1,
        lead + speech + 35 - 1,
        audio[(lead - 10) * FRAME : (lead + speech) * FRAME],
    )


@pytest.mark.parametrize("rms", [20.0, 100.0, 299.0, 480.0])
def test_noise_and_quiet_tones_below_the_onset_level_never_start(rms: float) -> None:
    vad = EnergyVad()
    assert vad.feed(pcm(noise(100, rms), tone(100, rms))) == []
    assert not vad.in_speech


def test_clicks_shorter_than_the_onset_run_never_start() -> None:
    """40 ms clicks every 60 ms for two seconds: loud two thirds of the time, never 60 ms in a row."""
    click = np.concatenate([tone(2, 8000.0), silence(1)])
    vad = EnergyVad()
    assert vad.feed(pcm(*[click] * 33)) == []
    # The same loudness for one frame more is speech.
    assert vad.feed(pcm(tone(3, 8000.0))) == [VadSpeechStarted()]


def test_hysteresis_keeps_a_soft_tail_inside() -> None:
    """After the onset, frames between end_rms (300) and start_rms (500) are still speech."""
    audio = pcm(tone(10, 2000.0), tone(50, 400.0), silence(40))
    vad = EnergyVad(VadConfig(preroll_ms=0))
    assert one_turn(vad, audio) == (2, 60 + 35 - 1, audio[: 60 * FRAME])


def test_a_pause_shorter_than_the_hangover_does_not_end_the_turn() -> None:
    audio = pcm(tone(10, 2000.0), silence(34), tone(10, 2000.0), silence(35))
    vad = EnergyVad(VadConfig(preroll_ms=0))
    assert one_turn(vad, audio) == (2, 54 + 35 - 1, audio[: 54 * FRAME])


def test_the_cap_cuts_and_detection_starts_afresh() -> None:
    config = VadConfig(preroll_ms=0, max_utterance_ms=1000)
    audio = pcm(tone(60, 2000.0))
    events = by_frame(EnergyVad(config), audio)
    assert [(index, type(event)) for index, event in events] == [
        (2, VadSpeechStarted),
        (49, VadSpeechEnded),  # 50 frames = 1 s
        (52, VadSpeechStarted),  # three loud frames later
    ]
    ended = events[1][1]
    assert isinstance(ended, VadSpeechEnded) and ended.audio == audio[: 50 * FRAME]


def test_the_preroll_counts_towards_the_cap() -> None:
    config = VadConfig(max_utterance_ms=1000)  # 10 frames of pre-roll
    events = by_frame(EnergyVad(config), pcm(silence(20), tone(60, 2000.0)))
    ended = [(index, e) for index, e in events if isinstance(e, VadSpeechEnded)]
    assert [index for index, _ in ended] == [20 + 40 - 1]
    assert len(ended[0][1].audio) == 50 * FRAME


def test_reset_forgets_the_utterance_but_not_the_frame_alignment() -> None:
    vad = EnergyVad(VadConfig(preroll_ms=0))
    audio = pcm(tone(10, 2000.0))
    assert vad.feed(audio + b"\x00" * 100) == [VadSpeechStarted()]
    vad.reset()
    assert not vad.in_speech
    assert vad.feed(pcm(silence(50))[100:]) == []  # no end for a forgotten turn
    later = pcm(tone(10, 2000.0), silence(35))
    events = vad.feed(later)
    assert events[0] == VadSpeechStarted()
    assert events[1] == VadSpeechEnded(audio=later[: 10 * FRAME])


def test_the_pipeline_utterance_has_its_preroll() -> None:
    """One second of quiet, 800 ms of speech, one second of quiet: 200 ms of pre-roll + the speech."""
    speech = pcm(tone(40, 5600.0))
    stream = pcm(silence(50)) + speech + pcm(silence(50))
    events = EnergyVad().feed(stream)
    assert events == [
        VadSpeechStarted(),
        VadSpeechEnded(audio=pcm(silence(10)) + speech),
    ]


def test_documented_levels() -> None:
    config = VadConfig()
    assert round(20 * math.log10(config.start_rms / 32767)) == -36
    assert round(20 * math.log10(config.end_rms / 32767)) == -41
    # 20 dB SNR in the noise test: 2000 against 200.
    assert 20 * math.log10(2000 / 200) == 20


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start_rms": 0.0},
        {"end_rms": 0.0},
        {"end_rms": 600.0},  # above start_rms: no hysteresis, the wrong way round
        {"start_ms": 10},
        {"end_silence_ms": 0},
        {"max_utterance_ms": 19},
        {"preroll_ms": -20},
    ],
)
def test_bad_config(kwargs: dict[str, float]) -> None:
    with pytest.raises(LocalProtocolError):
        VadConfig(**kwargs)  # type: ignore[arg-type]


_segments = st.lists(
    st.tuples(st.sampled_from([0.0, 150.0, 400.0, 3000.0]), st.integers(1, 45)),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(_segments, st.lists(st.integers(0, 3000), max_size=10))
def test_any_split_gives_the_same_well_formed_events(
    segments: list[tuple[float, int]], cuts: list[int]
) -> None:
    audio = pcm(*[tone(frames, level) for level, frames in segments])
    whole = EnergyVad(VadConfig(max_utterance_ms=600)).feed(audio)
    split = EnergyVad(VadConfig(max_utterance_ms=600))
    events: list[VadEvent] = []
    edges = sorted({min(c * 2, len(audio)) for c in cuts} | {0, len(audio)})
    for begin, end in itertools.pairwise(edges):
        events += split.feed(audio[begin:end])
    assert events == whole
    # Started and ended alternate, starting with a start; each utterance is a
    # whole-frame slice of the input, at most the cap long.
    for index, event in enumerate(events):
        assert isinstance(event, VadSpeechStarted if index % 2 == 0 else VadSpeechEnded)
        if isinstance(event, VadSpeechEnded):
            assert 0 < len(event.audio) <= 30 * FRAME and len(event.audio) % FRAME == 0
            assert event.audio in audio
