"""Time the tile-level attention model on 100 000 (shape, tile) points in one vectorized call, and the tile choice
``simlib predict attention`` and sweeps make for points without tiles (the kernels' own, else the search).

Run: python benchmarks/bench_flash_attention.py
"""
from __future__ import annotations

import time

import numpy as np

from simlib.hardware import load_hardware
from simlib.models.attention_cli import search_tiles
from simlib.models.flash_attention import attention_forward


def main(points: int = 100_000) -> None:
    rng = np.random.default_rng(0)
    hw = load_hardware("h100")
    args = dict(batch=rng.choice([1, 2, 4, 8], points), heads=rng.choice([8, 16, 32], points),
                seq_q=rng.choice([512, 1024, 2048, 4096, 8192, 16384], points),
                head_dim=rng.choice([64, 128], points), causal=rng.integers(0, 2, points).astype(bool),
                block_q=rng.choice([64, 128], points), block_kv=rng.choice([64, 128], points))
    args["seq_kv"] = args["seq_q"]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        attention_forward(hw, kernel="flash2", **args)
        best = min(best, time.perf_counter() - start)
    print(f"{points} (shape, tile) points: {best:.3f} s ({points / best:,.0f} points/s)")


def tile_choice(points: int = 20_000) -> None:
    """Points without tiles: flash2/flash3 take their launch templates' tiles; fp8 flash3 is searched."""
    rng = np.random.default_rng(0)
    hw = load_hardware("h100")
    shape = dict(batch=rng.choice([1, 2, 4, 8], points), heads=rng.choice([8, 16, 32], points),
                 seq_q=rng.choice([512, 2048, 8192], points), head_dim=rng.choice([64, 128], points),
                 causal=rng.integers(0, 2, points).astype(bool))
    shape.update(seq_kv=shape["seq_q"], kv_heads=shape["heads"], head_dim_v=shape["head_dim"])
    for kernel, dtype in (("flash2", "bf16"), ("flash3", "bf16"), ("flash3", "fp8")):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            chosen, _ = search_tiles(hw, kernel, dtype=dtype, efficiency=None, backward=False, dropout=False,
                                     **shape)
            best = min(best, time.perf_counter() - start)
        print(f"{points} points without tiles, {kernel} {dtype} ({chosen['tile_source'][0]}): {best:.3f} s")


if __name__ == "__main__":
    main()
    tile_choice()
