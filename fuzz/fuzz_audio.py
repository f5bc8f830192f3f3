"""Fuzz the audio layer: codecs, transcoders and the framer on arbitrary input.

Each example builds a :class:`Transcoder` between two random formats (any
encoding, rates 8/16/22.05/24/44.1 kHz) and feeds it a random sequence of
chunks: arbitrary bytes (odd lengths included), bytearrays, and values of
the wrong type. Every call must either return bytes of a plausible length
or raise :class:`LocalProtocolError`; any other exception is a bug. The
cumulative output never runs ahead of the ideal sample count, and a
:class:`Framer` fed the outputs loses and duplicates nothing.

    python -m fuzz.fuzz_audio --examples 3000
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patter_core import LocalProtocolError
from patter_core.audio import AudioFormat, Encoding, Framer, Transcoder
from patter_core.audio._g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

__all__ = ["check", "main", "one_case", "run"]

formats = st.builds(
    lambda e, r: AudioFormat(encoding=e, sample_rate=r),
    st.sampled_from(list(Encoding)),
    st.sampled_from([8000, 16000, 22050, 24000, 44100]),
)
chunk = st.one_of(
    st.binary(max_size=1200),
    st.binary(max_size=64).map(bytearray),
    st.sampled_from(["text", None, 7, [0, 1], 1.5]),
)


def _feed(tc: Transcoder, chunks: list[Any], framer: Framer) -> None:
    src, dst = tc.src, tc.dst
    fed = 0  # whole source samples accepted
    produced = 0
    framed: list[bytes] = []
    everything = b""
    for data in chunks:
        try:
            out = tc.convert(data)
        except LocalProtocolError:
            continue
        assert isinstance(out, bytes | bytearray | memoryview), type(out)
        fed += len(data)
        produced += len(out)
        everything += bytes(out)
        framed += framer.push(out)
        ideal = (fed // src.encoding.bytes_per_sample) * dst.sample_rate / src.sample_rate
        assert produced % dst.encoding.bytes_per_sample == 0
        assert produced // dst.encoding.bytes_per_sample <= math.ceil(ideal) + 1, (produced, ideal)
    tail = tc.flush()
    assert isinstance(tail, bytes)
    assert len(tail) % dst.encoding.bytes_per_sample == 0
    assert b"".join(framed) + framer.flush() == everything


def _codecs(data: bytes) -> None:
    for decode, encode in ((ulaw_decode, ulaw_encode), (alaw_decode, alaw_encode)):
        pcm = decode(data)
        assert len(pcm) == 2 * len(data)
        codes = encode(pcm)
        assert len(codes) == len(data)
        assert decode(codes) == pcm  # decoded values are fixed points of the quantiser
        if len(data) % 2:
            try:
                encode(data)
            except LocalProtocolError:
                pass
            else:
                raise AssertionError("odd PCM length accepted")


def one_case(
    src: AudioFormat, dst: AudioFormat, carry: bool, chunks: list[Any], frame: int, raw: bytes
) -> None:
    """One example: a transcoder fed ``chunks``, a framer fed its output, the codecs fed ``raw``."""
    _feed(Transcoder(src, dst, carry_odd_byte=carry), chunks, Framer(frame))
    _codecs(raw)


def check(examples: int) -> None:
    """Run ``examples`` fuzz cases; raises (after Hypothesis prints the input) on a failure."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        src=formats,
        dst=formats,
        carry=st.booleans(),
        chunks=st.lists(chunk, max_size=8),
        frame=st.integers(1, 500),
        raw=st.binary(max_size=300),
    )
    def fuzz(
        src: AudioFormat, dst: AudioFormat, carry: bool, chunks: list[Any], frame: int, raw: bytes
    ) -> None:
        one_case(src, dst, carry, chunks, frame, raw)

    fuzz()


def run(examples: int) -> int:
    """0 when every case passed, 1 (after printing the failing input) if not."""
    try:
        check(examples)
    except Exception as exc:
        print(f"fuzz_audio: FAILED: {type(exc).__name__}: {exc}")
        for note in getattr(exc, "__notes__", []):
            print(note)  # Hypothesis attaches the falsifying input here
        traceback.print_exc()
        return 1
    print(f"fuzz_audio: {examples} examples over codecs, transcoders and the framer, no failure")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000, help="number of fuzz cases")
    args = parser.parse_args(argv)
    return run(args.examples)


if __name__ == "__main__":
    sys.exit(main())
