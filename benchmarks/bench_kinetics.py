"""Time the Kinetics cost model on 1 000 000 (model, generation length, samples, budget) points in one
vectorized call per attention variant.

Run: python benchmarks/bench_kinetics.py
"""
from __future__ import annotations

import time

import numpy as np

from simlib.models.kinetics import tts_cost
from simlib.models.kinetics_cli import model_shape
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


if __name__ == "__main__":
    main()
