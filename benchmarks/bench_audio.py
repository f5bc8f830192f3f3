"""CPU cost of the audio paths of a call, per 20 ms frame.

    python -m benchmarks.bench_audio [--frames 2000] [--repeats 7]

For each transcoder path it prints the median CPU time (``time.process_time``,
so helper threads are counted) per 20 ms frame, the same conversion done by
CPython's ``audioop`` (``ulaw2lin`` + ``ratecv`` and so on, where the
interpreter still has it) and the ratio. Note that ``audioop.ratecv`` only
interpolates linearly, without an anti-aliasing filter: it is the cost floor
of the original SDK's approach, not an equal in quality.

Budget: <= 12 us per frame for mu-law 8 kHz -> PCM16 16 kHz and for PCM16
24 kHz -> mu-law 8 kHz on one core.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from patter_core.audio import (
    ALAW_8K,
    PCM16_16K,
    PCM16_24K,
    ULAW_8K,
    AudioFormat,
    Encoding,
    Transcoder,
)


def _load_audioop() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module("audioop")
    except ImportError:  # removed in Python 3.13
        return None


audioop: Any = _load_audioop()

L16_BE = AudioFormat(encoding=Encoding.PCM16BE, sample_rate=16000)
PCM_22K = AudioFormat(encoding=Encoding.PCM16LE, sample_rate=22050)
PCM_44K = AudioFormat(encoding=Encoding.PCM16LE, sample_rate=44100)

BUDGET_US = 12.0
BUDGETED = {("ulaw@8000", "pcm16le@16000"), ("pcm16le@24000", "ulaw@8000")}

PATHS: list[tuple[AudioFormat, AudioFormat]] = [
    (ULAW_8K, PCM16_16K),  # Twilio -> bus
    (PCM16_16K, ULAW_8K),  # bus -> Twilio
    (PCM16_24K, ULAW_8K),  # OpenAI -> Twilio
    (ULAW_8K, PCM16_24K),  # Twilio -> OpenAI
    (PCM16_24K, PCM16_16K),  # OpenAI -> bus
    (PCM16_16K, PCM16_24K),  # bus -> OpenAI
    (ALAW_8K, PCM16_16K),  # Telnyx PCMA -> bus
    (L16_BE, PCM16_16K),  # Telnyx L16 -> bus
    (PCM_22K, PCM16_16K),  # TTS 22.05 kHz -> bus
    (PCM_44K, ULAW_8K),  # TTS 44.1 kHz -> Twilio
    (ULAW_8K, ULAW_8K),  # passthrough
]


def name(fmt: AudioFormat) -> str:
    return f"{fmt.encoding.value}@{fmt.sample_rate}"


def frame_for(fmt: AudioFormat) -> Any:
    """20 ms of a speech-like signal (two tones and noise) in ``fmt``."""
    n = fmt.sample_rate // 50
    t = np.arange(n) / fmt.sample_rate
    rng = np.random.default_rng(0)
    x = 6000 * np.sin(2 * np.pi * 440 * t) + 3000 * np.sin(2 * np.pi * 1300 * t)
    pcm = (x + rng.normal(0, 300, n)).astype(np.int16)
    if fmt.encoding is Encoding.PCM16LE:
        return pcm.astype("<i2").tobytes()
    if fmt.encoding is Encoding.PCM16BE:
        return pcm.astype(">i2").tobytes()
    le = pcm.astype("<i2").tobytes()
    if audioop is not None:
        return audioop.lin2ulaw(le, 2) if fmt.encoding is Encoding.ULAW else audioop.lin2alaw(le, 2)
    from patter_core.audio._g711 import alaw_encode, ulaw_encode

    return ulaw_encode(le) if fmt.encoding is Encoding.ULAW else alaw_encode(le)


def audioop_path(src: AudioFormat, dst: AudioFormat) -> Callable[[bytes], Any] | None:
    """The same conversion with audioop (decode, ratecv, encode), or None."""
    if audioop is None or src == dst:
        return None
    state: list[Any] = [None]
    ao = audioop

    def convert(data: bytes) -> Any:
        if src.encoding is Encoding.ULAW:
            data = ao.ulaw2lin(data, 2)
        elif src.encoding is Encoding.ALAW:
            data = ao.alaw2lin(data, 2)
        elif src.encoding is Encoding.PCM16BE:
            data = ao.byteswap(data, 2)
        if src.sample_rate != dst.sample_rate:
            data, state[0] = ao.ratecv(data, 2, 1, src.sample_rate, dst.sample_rate, state[0])
        if dst.encoding is Encoding.ULAW:
            data = ao.lin2ulaw(data, 2)
        elif dst.encoding is Encoding.ALAW:
            data = ao.lin2alaw(data, 2)
        elif dst.encoding is Encoding.PCM16BE:
            data = ao.byteswap(data, 2)
        return data

    return convert


def measure(func: Callable[[bytes], Any], frame: bytes, frames: int, repeats: int) -> float:
    """Median over ``repeats`` of the CPU microseconds per call, ``frames`` calls each."""
    for _ in range(min(frames, 200)):  # warm caches and the filter state
        func(frame)
    samples = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(frames):
            func(frame)
        samples.append((time.process_time() - start) / frames * 1e6)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000, help="frames per repeat")
    parser.add_argument("--repeats", type=int, default=7, help="repeats (the median is shown)")
    args = parser.parse_args(argv)
    print(f"CPU us per 20 ms frame, median of {args.repeats} x {args.frames} frames")
    print(f"{'path':34} {'patter':>8} {'audioop':>8} {'ratio':>6}")
    over_budget = []
    for src, dst in PATHS:
        frame = frame_for(src)
        ours = measure(Transcoder(src, dst).convert, frame, args.frames, args.repeats)
        ref_func = audioop_path(src, dst)
        ref = measure(ref_func, frame, args.frames, args.repeats) if ref_func else None
        label = f"{name(src)} -> {name(dst)}"
        ref_text = f"{ref:8.2f}" if ref is not None else f"{'-':>8}"
        ratio = f"{ours / ref:6.2f}" if ref else f"{'-':>6}"
        mark = ""
        if (name(src), name(dst)) in BUDGETED:
            ok = ours <= BUDGET_US
            mark = f"  budget {BUDGET_US:g} us: {'ok' if ok else 'OVER'}"
            if not ok:
                over_budget.append(label)
        print(f"{label:34} {ours:8.2f} {ref_text} {ratio}{mark}")
    if audioop is None:
        print("(audioop is not available on this Python: no reference column)")
    if over_budget:
        print("over budget: " + ", ".join(over_budget))
    return 0


if __name__ == "__main__":
    sys.exit(main())
