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
from simlib.models.gna import default_tiles, predict_gna_many, window_bounds


def speedup_vs_stride(hw: HardwareSpec, shape, window, q_tile=None, kv_tile=None, heads=1, head_dim=128, *,
                      dilation=None, causal=None, batch=1, dtype="bf16"):
    """Bounds and predicted speedup for strides 1..max(window), the same in every dimension (capped by its
    window), each point as ``predict_gna`` gives it for the problem's dilation, causal flags, batch, heads and
    dtype (causal problems against causal self attention)."""
    ndim = len(shape)
    q_tile, kv_tile = default_tiles(hw, ndim, q_tile, kv_tile)
    dilation = dilation or (1,) * ndim
    causal = causal or (False,) * ndim
    steps = np.arange(1, max(window) + 1)
    strides = [np.minimum(steps, w) for w in window]
    sim = predict_gna_many(hw, shape=[np.full(steps.shape, n) for n in shape],
                           window=[np.full(steps.shape, w) for w in window], stride=strides,
                           dilation=[np.full(steps.shape, d) for d in dilation],
                           causal=[np.full(steps.shape, bool(c)) for c in causal],
                           q_tile=[np.full(steps.shape, t) for t in q_tile],
                           kv_tile=[np.full(steps.shape, t) for t in kv_tile], batch=np.full(steps.shape, batch),
                           heads=np.full(steps.shape, heads), head_dim=np.full(steps.shape, head_dim), dtype=dtype)
    predicted = np.broadcast_to(sim["speedup"], steps.shape)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, np.broadcast_to(sim["speedup_bound"], steps.shape), label="FLOP-wise bound")
    ax.plot(steps, np.broadcast_to(sim["tile_speedup_bound"], steps.shape), label="tile-wise bound (slowest Q tile)")
    ax.plot(steps, predicted, marker=".", label=f"predicted ({hw.name})")
    sparse = np.broadcast_to(sim["fully_block_sparse"], steps.shape)
    ax.scatter(steps[sparse], predicted[sparse], color="k", zorder=3, s=12, label="fully block-sparse")
    ax.set_xlabel("stride (every dimension, capped by its window)")
    ax.set_ylabel("speedup over self attention")
    extras = "".join([f", dilation {'x'.join(map(str, dilation))}" if any(d > 1 for d in dilation) else "",
                      ", causal " + "x".join("T" if c else "F" for c in causal) if any(causal) else ""])
    ax.set_title(f"{'x'.join(map(str, shape))}, window {'x'.join(map(str, window))}{extras}, "
                 f"tiles {'x'.join(map(str, q_tile))}/{'x'.join(map(str, kv_tile))}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    return fig, {"stride": steps, "predicted": predicted, **sim}


def visited_tiles_2d(shape, window, stride, q_tile, kv_tile, q_tile_index=None, dilation=None, causal=None):
    """Per KV tile of a 2-D layout: 0 skipped, 1 visited with masking, 2 visited and fully unmasked, for the Q
    tile at ``q_tile_index`` (the middle one by default). A dilated dimension is split into its dilation groups
    (every δ-th token), each an undilated problem of its own; the map shows the first, longest group
    (⌈n/δ⌉ tokens). Causal dimensions use the causal window (keys up to the query)."""
    dilation = dilation or (1, 1)
    causal = causal or (False, False)
    shape = tuple(-(-n // d) for n, d in zip(shape, dilation))
    index = q_tile_index or tuple(math.ceil(n / t) // 2 for n, t in zip(shape, q_tile))
    states = []
    for n, w, s, tq, tk, a, c in zip(shape, window, stride, q_tile, kv_tile, index, causal):
        q0, q1 = a * tq, min(a * tq + tq, n) - 1
        lo0, hi0 = window_bounds(q0, n, w, s, c)
        lo1, hi1 = window_bounds(q1, n, w, s, c)
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
    group = f"\ndilation group 0 ({shape[0]}x{shape[1]} tokens)" if any(d > 1 for d in dilation) else ""
    ax.set_title(f"one Q tile (black): KV tiles unmasked (green),\nmasked (orange){group}", fontsize=9)
    fig.tight_layout()
    return fig, grid
