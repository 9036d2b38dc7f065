"""Time the GNA simulator: one 3-D problem (30x48x80), and the full search over strides, dilations and tile
shapes of that layout.

Run: python benchmarks/bench_gna.py
"""
from __future__ import annotations

import time

from simlib.hardware import load_hardware
from simlib.models.gna import predict_gna, search_gna


def best_of(fn, repeats=5):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    b200 = load_hardware("b200")
    single = best_of(lambda: predict_gna(b200, shape=(30, 48, 80), window=(18, 24, 24), stride=(16, 8, 8),
                                         q_tile=(4, 8, 8), kv_tile=(2, 8, 8), heads=24))
    print(f"one 30x48x80 problem: {single * 1e3:.2f} ms")
    points = 18 * 24 * 24 * 2 * 3                                  # strides x dilations per tile pair
    sweep = best_of(lambda: search_gna(b200, shape=(30, 48, 80), window=(18, 24, 24), heads=24), repeats=1)
    print(f"search of 30x48x80 / 18x24x24 ({points} stride/dilation points x every tile pair): {sweep:.2f} s")


if __name__ == "__main__":
    main()
