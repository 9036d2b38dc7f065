"""Plot helpers for sweep results (pandas DataFrames), each returning a matplotlib figure.

* ``roofline``: the hardware's compute roof (peak FLOP/s in a dtype) and memory roof (DRAM bandwidth × intensity),
  with the points placed at their arithmetic intensity (FLOPs / DRAM bytes) and achieved FLOP/s.
* ``heatmap``: a value (e.g. a speedup) over two axes, reduced over the other axes.
* ``pareto``: the lower-left front of two columns per group (e.g. time against area or cost).
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from simlib.hardware.schema import HardwareSpec


def roofline(hw: HardwareSpec, frame: pd.DataFrame, dtype: str = "bf16", flops: str = "flops",
             bytes_col: str = "bytes_dram", time: str = "time_s", label: str | None = None):
    peak = hw.peak_flops(dtype) or 0.0
    bandwidth = hw.dram.bandwidth_bytes_per_s
    intensity = frame[flops] / frame[bytes_col]
    achieved = frame[flops] / frame[time]
    x = np.geomspace(max(intensity.min() / 4, 1e-2), intensity.max() * 4, 200)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, np.minimum(peak, bandwidth * x) / 1e12, color="k", linewidth=1,
            label=f"roof: {peak / 1e12:.0f} TFLOP/s, {bandwidth / 1e12:.2f} TB/s")
    ax.scatter(intensity, achieved / 1e12, s=6, alpha=0.5, label=label or "points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte of DRAM traffic)")
    ax.set_ylabel("achieved TFLOP/s")
    ax.set_title(f"{hw.name} roofline ({dtype})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def heatmap(frame: pd.DataFrame, x: str, y: str, value: str, reduce: str = "median", title: str = "",
            unit: str = ""):
    table = frame.pivot_table(index=y, columns=x, values=value, aggfunc=reduce)
    fig, ax = plt.subplots(figsize=(6, 4))
    image = ax.imshow(table.to_numpy(dtype=float), aspect="auto", origin="lower", cmap="viridis")
    ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns], rotation=45, fontsize=7)
    ax.set_yticks(range(len(table.index)), [str(i) for i in table.index], fontsize=7)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.colorbar(image, ax=ax, label=f"{value}{f' ({unit})' if unit else ''} ({reduce})")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def pareto_front(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Rows no other row beats on both (smaller is better on both), sorted by x."""
    ordered = frame.sort_values([x, y])
    best = np.minimum.accumulate(ordered[y].to_numpy())
    keep = np.r_[True, ordered[y].to_numpy()[1:] < best[:-1]]
    return ordered[keep]


def pareto(frame: pd.DataFrame, x: str, y: str, group: str | None = None, xlabel: str = "", ylabel: str = ""):
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, part in (frame.groupby(group) if group else [("all", frame)]):
        points = ax.scatter(part[x], part[y], s=6, alpha=0.3)
        front = pareto_front(part, x, y)
        ax.plot(front[x], front[y], marker="o", markersize=3, color=points.get_facecolor()[0], label=str(name))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
