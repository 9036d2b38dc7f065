"""Time the Kinetics cost model on 1 000 000 (model, generation length, samples, budget) points in one
vectorized call per attention variant; ``frontier_table`` on a 3000-row accuracy table (one ``tts_cost`` call per
(model, attention), a sort-based Pareto frontier: about 9 s before, as a loop of load_model + tts_cost per row and
an O(n²) frontier); and ``decode_seconds`` over the longest generation ``predict tts`` accepts (2**26 steps, in
bounded chunks).

Run: python benchmarks/bench_kinetics.py
"""
from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from simlib.models.kinetics import decode_seconds, tts_cost
from simlib.models.kinetics_cli import MAX_GEN_LEN, model_shape
from simlib.plots.tts_figures import frontier_table
from simlib.workload.model_spec import load_model

MODELS = ("qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b")


def main(points: int = 1_000_000) -> None:
    rng = np.random.default_rng(0)
    shapes = [model_shape(load_model(m)) for m in MODELS]
    pick = rng.integers(0, len(shapes), points)
    arrays = {k: np.array([s[k] for s in shapes], dtype=np.float64)[pick] for k in shapes[0]}
    args = dict(prompt_len=rng.integers(100, 4000, points), gen_len=rng.integers(256, 32768, points),
                samples=rng.integers(1, 65, points), intensity=562.5)
    budget = rng.integers(64, 4096, points)
    for attention, extra in (("dense", {}), ("topk", {"budget": budget}),
                             ("blocktopk", {"block_size": 16, "block_topk": budget // 16, "local": 64})):
        start = time.perf_counter()
        tts_cost(**arrays, **args, attention=attention, **extra)
        elapsed = time.perf_counter() - start
        print(f"{attention:9s} {points} points: {elapsed:.3f} s")
    frontier(rng)
    decode()


def frontier(rng, rows: int = 3000) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "accuracy.csv"
        with path.open("w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["model", "strategy", "samples", "gen_len", "accuracy"])
            for model, samples, length, accuracy in zip(rng.choice(["qwen3-0.6b", "qwen3-8b"], rows),
                                                        rng.integers(1, 65, rows), rng.integers(256, 32768, rows),
                                                        rng.uniform(0, 1, rows).round(4)):
                out.writerow([model, "bon", samples, length, accuracy])
        start = time.perf_counter()
        table = frontier_table(path, 562.5)
        elapsed = time.perf_counter() - start
    print(f"frontier  {rows} rows: {elapsed:.3f} s ({int(table['frontier'].sum())} on the frontier)")


def decode() -> None:
    shape = model_shape(load_model("qwen3-8b"))
    start = time.perf_counter()
    decode_seconds(peak_flops=4.5e15, bandwidth=8e12, parameter_bytes=8.19e9, active_parameters=8.19e9,
                   heads=shape["heads"], kv_heads=shape["kv_heads"], head_dim=shape["head_dim"],
                   layers=shape["layers"], prompt_len=1000, gen_len=MAX_GEN_LEN, samples=8, attention="duo",
                   window=4096, full_fraction=0.25)
    print(f"decode    {MAX_GEN_LEN} steps (duo): {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
