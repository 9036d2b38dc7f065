"""Time the spatial-array model: the 24 (model, sequence) points x 3 designs (unfused, FLAT, FuseMax) of the
FuseMax paper's evaluation.

Run: python benchmarks/bench_fusemax.py
"""
from __future__ import annotations

import time

from simlib.models.spatial_cli import run_design


def main() -> None:
    start = time.perf_counter()
    count = 0
    for model in ("bert", "trxl", "t5", "xlm"):
        for seq in (1024, 4096, 16384, 65536, 262144, 1048576):
            for design in ("unfused", "flat", "fusemax"):
                run_design(design, {"model": model, "seq_q": seq, "seq_kv": seq, "batch": 64, "dtype": "fp16"})
                count += 1
    elapsed = time.perf_counter() - start
    print(f"{count} configurations: {elapsed:.2f} s ({elapsed / count * 1e3:.1f} ms each)")


if __name__ == "__main__":
    main()
