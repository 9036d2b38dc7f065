"""Figures for the GNA simulator.

* Speedup over self attention against the stride (the same stride in every dimension, capped by each window):
  FLOP-wise bound, tile-wise bound and the predicted runtime speedup.
* One Q tile's visited KV tiles on a 2-D layout: fully unmasked, needing masks, or skipped.
"""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Rectangle

from simlib.hardware.schema import HardwareSpec
from simlib.models.gna import default_tile_shape, dimension_stats, gna_runtime, dense_tiles, simulate_tiles, window_bounds


def speedup_vs_stride(hw: HardwareSpec, shape, window, q_tile=None, kv_tile=None, heads=1, head_dim=128):
    ndim = len(shape)
    q_tile = q_tile or default_tile_shape(hw.fmha_tile.q_tokens, ndim)
    kv_tile = kv_tile or default_tile_shape(hw.fmha_tile.kv_tokens, ndim)
    steps = np.arange(1, max(window) + 1)
    strides = [np.minimum(steps, w) for w in window]
    sim = simulate_tiles(shape, window, strides, (1,) * ndim, (False,) * ndim, q_tile, kv_tile)
    common = dict(ndim=ndim, q_tokens=math.prod(q_tile), kv_tokens=math.prod(kv_tile), tokens=math.prod(shape),
                  batch=1, heads=heads, head_dim=head_dim, dtype="bf16")
    predicted = gna_runtime(hw, dense_tiles(shape, q_tile, kv_tile), **common)["time_s"] / \
        gna_runtime(hw, sim, **common)["time_s"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, np.broadcast_to(sim["speedup_bound"], steps.shape), label="FLOP-wise bound")
    ax.plot(steps, sim["tile_speedup_bound"], label="tile-wise bound (slowest Q tile)")
    ax.plot(steps, predicted, marker=".", label=f"predicted ({hw.name})")
    sparse = np.asarray(sim["fully_block_sparse"])
    ax.scatter(steps[sparse], predicted[sparse], color="k", zorder=3, s=12, label="fully block-sparse")
    ax.set_xlabel("stride (every dimension, capped by its window)")
    ax.set_ylabel("speedup over self attention")
    ax.set_title(f"{'x'.join(map(str, shape))}, window {'x'.join(map(str, window))}, "
                 f"tiles {'x'.join(map(str, q_tile))}/{'x'.join(map(str, kv_tile))}")
    ax.legend()
    fig.tight_layout()
    return fig, {"stride": steps, "predicted": predicted, **sim}


def visited_tiles_2d(shape, window, stride, q_tile, kv_tile, q_tile_index=None):
    """Per KV tile of a 2-D layout: 0 skipped, 1 visited with masking, 2 visited and fully unmasked, for the Q
    tile at ``q_tile_index`` (the middle one by default)."""
    index = q_tile_index or tuple(math.ceil(n / t) // 2 for n, t in zip(shape, q_tile))
    states = []
    for n, w, s, tq, tk, a in zip(shape, window, stride, q_tile, kv_tile, index):
        q0, q1 = a * tq, min(a * tq + tq, n) - 1
        lo0, hi0 = window_bounds(q0, n, w, s, False)
        lo1, hi1 = window_bounds(q1, n, w, s, False)
        t = np.arange(math.ceil(n / tk))
        first, last = t * tk, np.minimum(t * tk + tk, n) - 1
        visited = (last >= lo0) & (first <= hi1)
        full = (first >= lo1) & (last <= hi0)
        states.append(np.where(full, 2, np.where(visited, 1, 0)))
    grid = np.minimum.outer(states[0], states[1])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(grid, cmap=ListedColormap(["#eeeeee", "#f4a261", "#2a9d8f"]), vmin=0, vmax=2, origin="upper",
              extent=(0, shape[1], shape[0], 0))
    ax.add_patch(Rectangle((index[1] * q_tile[1], index[0] * q_tile[0]), q_tile[1], q_tile[0], fill=False,
                           edgecolor="k", linewidth=2))
    ax.set_title("one Q tile (black): KV tiles unmasked (green), masked (orange)", fontsize=9)
    fig.tight_layout()
    return fig, grid
