"""Time the GNA simulator: one 3-D problem (30x48x80), the full search over strides, dilations and tile shapes
of that layout, and the long 1-D searches a review timed (before the chunked, closed-form simulator: causal
32768 / 2048 took 35-66 s and 6.5 GB; 1048576 / 8192 took 214-228 s and 15 GB; window 4, over 900 s).

Run: python benchmarks/bench_gna.py [--long]   (--long adds the 1048576-token searches, about half a minute)
"""
from __future__ import annotations

import sys
import time
import tracemalloc

from simlib.hardware import load_hardware
from simlib.models.gna import predict_gna, search_gna


def best_of(fn, repeats=5):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def timed_with_peak(fn) -> tuple[float, float]:
    """Seconds and peak traced memory (numpy's buffers) in MB of one call."""
    tracemalloc.start()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    b200, h100 = load_hardware("b200"), load_hardware("h100")
    single = best_of(lambda: predict_gna(b200, shape=(30, 48, 80), window=(18, 24, 24), stride=(16, 8, 8),
                                         q_tile=(4, 8, 8), kv_tile=(2, 8, 8), heads=24))
    print(f"one 30x48x80 problem: {single * 1e3:.2f} ms")
    points = 18 * 24 * 24 * 2 * 3                                  # strides x dilations per tile pair
    sweep = best_of(lambda: search_gna(b200, shape=(30, 48, 80), window=(18, 24, 24), heads=24), repeats=1)
    print(f"search of 30x48x80 / 18x24x24 ({points} stride/dilation points x every tile pair): {sweep:.2f} s")
    cases = [("causal 32768 / 2048", dict(shape=(32768,), window=(2048,), causal=(True,)))]
    if "--long" in sys.argv:
        cases += [("1048576 / 8192", dict(shape=(1 << 20,), window=(8192,))),
                  ("1048576 / 4", dict(shape=(1 << 20,), window=(4,)))]
    for name, problem in cases:
        seconds, peak = timed_with_peak(lambda: search_gna(h100, top=3, **problem))
        print(f"search of {name} on h100: {seconds:.2f} s, peak {peak:.0f} MB")


if __name__ == "__main__":
    main()
