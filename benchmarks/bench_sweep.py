"""Time a 1 000 000-point FlashAttention sweep in this process on one core (chunks of 10 000 points, each one
vectorized call per kernel), written to Parquet; and a 25 600-point GNA sweep (strides x dilations of a 2-D
layout: each point's shapes parsed, then one vectorized simulation per chunk).

Run: python benchmarks/bench_sweep.py
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from simlib.sweeps.run import run_sweep
from simlib.sweeps.spec import load_spec, point_count

SPEC = {"workload": "attention", "hardware": ["a100", "h100", "b200"],
        "axes": {"seq": {"logrange": [512, 131072], "num": 1200}, "head_dim": [64, 128], "block_q": [64, 128],
                 "block_kv": [32, 64, 128, 256], "batch": [1, 2, 4, 8, 16, 32], "heads": [8, 16, 32]},
        "fixed": {"dtype": "bf16", "kernel": "flash2", "causal": False}}


GNA_SPEC = {"workload": "gna", "hardware": ["h100"],
            "axes": {"stride": [f"{a}x{b}" for a in range(1, 81) for b in range(1, 81)],
                     "causal": [False, True], "heads": [8, 24]},
            "fixed": {"shape": "256x256", "window": "80x80", "head_dim": 128}}


def main() -> None:
    spec = load_spec(SPEC)
    points = point_count(spec)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        frame = run_sweep(spec, out=Path(folder) / "sweep.parquet")
        elapsed = time.perf_counter() - start
    print(f"{points} points ({len(frame)} rows) in {elapsed:.1f} s: {points / elapsed:,.0f} points/s")
    gna = load_spec(GNA_SPEC)
    start = time.perf_counter()
    frame = run_sweep(gna)
    elapsed = time.perf_counter() - start
    print(f"gna: {point_count(gna)} points in {elapsed:.1f} s: {point_count(gna) / elapsed:,.0f} points/s")


if __name__ == "__main__":
    main()
