"""Time the core engine: predictions per second for a GEMM and the three attention cascades.

Run: python benchmarks/bench_predict.py
"""
from __future__ import annotations

import time

import simlib
from simlib.hardware import load_hardware
from simlib.workload import load_workload


def rate(workload: str, hardware: str, repeats: int, **params) -> float:
    wl, hw = load_workload(workload), load_hardware(hardware)
    start = time.perf_counter()
    for i in range(repeats):
        simlib.predict(wl, hw, **{**params, **({"seq_q": 1024 * (1 + i % 8)} if "seq_q" in params else {})})
    return repeats / (time.perf_counter() - start)


def main() -> None:
    start = time.perf_counter()
    load_workload("attention-1pass")
    print(f"parse + pass analysis of attention-1pass: {1e3 * (time.perf_counter() - start):.1f} ms")
    print(f"gemm on a100:            {rate('gemm', 'a100', 2000, M=4096, N=4096, K=4096):8.0f} predictions/s")
    for name in ("attention-3pass", "attention-2pass", "attention-1pass"):
        print(f"{name} on h100: {rate(name, 'h100', 300, seq_q=1024, seq_kv=4096, heads=16):8.0f} predictions/s")


if __name__ == "__main__":
    main()
