"""The warm start: time from the stream's ``start`` to the greeting's first audio.

    python -m benchmarks.bench_prewarm [--runs 5] [--ready-delay 0.3]

Each run is one whole call on 127.0.0.1, as ``tests/test_e2e_percall.py``
plays it: the real server (``Patter.serve``), the fake OpenAI Realtime
server taking ``--ready-delay`` seconds between ``session.update`` and
``session.updated`` (a real provider takes 300 to 1,000 ms), the fake
Twilio REST API, and Twilio's end of the media stream, which posts the
signed voice webhook, waits a second (Twilio starts the stream a second or
so after the answer), then opens the stream and sends ``start``. Runs with
and without ``prewarm`` alternate, so a busy machine hurts both alike.

It prints, per mode, the median, lowest and highest milliseconds from
sending ``start`` to the first agent audio frame arriving at the carrier.
"""

from __future__ import annotations

import argparse
import logging
import statistics

import anyio

from tests.test_e2e_percall import greeting_latency


async def _measure(runs: int, ready_delay: float) -> dict[bool, list[float]]:
    out: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(runs):
        for prewarm in (True, False):
            result = await greeting_latency(prewarm=prewarm, ready_delay=ready_delay)
            out[prewarm].append(result["first_audio_s"] * 1000)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ready-delay", type=float, default=0.3)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the fakes run without signature checks
    results = anyio.run(_measure, args.runs, args.ready_delay)
    print(f"start -> first greeting audio, provider ready after {args.ready_delay * 1000:.0f} ms")
    for prewarm, label in ((False, "cold (prewarm=False)"), (True, "warm (prewarm=True)")):
        ms = results[prewarm]
        print(
            f"  {label:22s} median {statistics.median(ms):7.1f} ms"
            f"   min {min(ms):7.1f}   max {max(ms):7.1f}   ({len(ms)} calls)"
        )


if __name__ == "__main__":
    main()
