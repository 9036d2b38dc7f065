"""The FuseMax paper's figure set from the spatial-array model, and a Pareto sweep over the PE array size.

* Attention speedup of FuseMax over the unfused baseline and FLAT against sequence length, per model.
* Energy of FuseMax relative to FLAT and to unfused.
* 2D and 1D array utilization of each design.
* Per-Einsum cycles on FuseMax's 2D array.
* Pareto: latency at 256K tokens against an area estimate (PEs × PE area + buffer bytes × SRAM area, Accelergy
  figures from the hardware YAML) for square 2D arrays of 16…512 PEs a side, the buffer scaled with the PE count.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from simlib.models.spatial_attention import predict_design
from simlib.models.spatial_cli import run_design
from simlib.models.spatial_design import design_hardware, design_workload, load_design
from simlib.workload.model_spec import load_model

MODELS = ("bert", "trxl", "t5", "xlm")
SEQS = (1024, 4096, 16384, 65536, 262144, 1048576)
DESIGNS = ("unfused", "flat", "fusemax")


def design_table(models=MODELS, seqs=SEQS, batch: int = 64) -> pd.DataFrame:
    rows = []
    for model in models:
        for seq in seqs:
            params = {"model": model, "seq_q": seq, "seq_kv": seq, "batch": batch, "dtype": "fp16"}
            for design in DESIGNS:
                r = run_design(design, params)
                rows.append({"model": model, "seq": seq, "design": design, "time_s": r["time_s"],
                             "energy_j": r["energy_j"], "dram_bytes": r["bytes"]["dram"],
                             **{f"util_{a}": u for a, u in r["utilization"].items()}})
    return pd.DataFrame(rows)


def _per_model(table: pd.DataFrame, value: str, ratio_to: tuple[str, ...], ylabel: str, invert=False):
    fig, axes = plt.subplots(1, len(table["model"].unique()), figsize=(4 * len(table["model"].unique()), 3.5),
                             squeeze=False)
    for ax, (model, frame) in zip(axes[0], table.groupby("model", sort=False)):
        pivot = frame.pivot(index="seq", columns="design", values=value)
        for base in ratio_to:
            ratio = pivot["fusemax"] / pivot[base] if invert else pivot[base] / pivot["fusemax"]
            ax.plot(pivot.index, ratio, marker="o", label=f"vs {base}")
        ax.set_xscale("log", base=2)
        ax.set_title(model)
        ax.set_xlabel("sequence length")
        ax.set_ylabel(ylabel)
        ax.legend()
    fig.tight_layout()
    return fig


def utilization_figure(table: pd.DataFrame, model: str = "bert"):
    frame = table[table["model"] == model]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for design in DESIGNS:
        part = frame[frame["design"] == design]
        ax.plot(part["seq"], part["util_pe_2d"], marker="o", label=f"{design} 2D")
        ax.plot(part["seq"], part["util_pe_1d"], marker="x", linestyle="--", label=f"{design} 1D")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length")
    ax.set_ylabel("utilization")
    ax.set_title(f"{model}: array utilization")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def einsum_breakdown_figure(model: str = "bert", seq: int = 65536):
    r = run_design("fusemax", {"model": model, "seq_q": seq, "seq_kv": seq, "batch": 64, "dtype": "fp16"})
    rows = [e for e in r["per_einsum"] if e["array"] == "pe_2d"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([e["einsum"] for e in rows], [e["cycles"] / sum(x["cycles"] for x in rows) for e in rows])
    ax.set_ylabel("share of 2D-array cycles")
    ax.set_title(f"FuseMax 2D array, {model}, {seq} tokens")
    fig.tight_layout()
    return fig


def pareto_sweep(sides=(16, 32, 64, 128, 256, 512), model: str = "bert", seq: int = 262144,
                 batch: int = 64) -> pd.DataFrame:
    """FuseMax with an s × s 2D array, s 1D PEs, the buffer scaled by (s / 256)²."""
    design = load_design("fusemax")
    base = design_hardware(design)
    shape = load_model(model)
    buffer_index = next(i for i, m in enumerate(base.memory) if m.kind == "scratchpad")
    rows = []
    for side in sides:
        compute = {"pe_2d": base.compute["pe_2d"].model_copy(update={"mesh": [side, side]}),
                   "pe_1d": base.compute["pe_1d"].model_copy(update={"mesh": [side]})}
        memory = list(base.memory)
        buffer = memory[buffer_index]
        memory[buffer_index] = buffer.model_copy(update={"capacity_bytes": buffer.capacity_bytes * (side / 256) ** 2})
        hw = base.model_copy(update={"compute": compute, "memory": memory})
        sized = design.model_copy(update={"tile": {"M0": side, "P0": side}})
        r = predict_design(sized, design_workload(design), hw, batch=batch, heads=shape.heads, seq_q=seq,
                           seq_kv=seq, head_dim=shape.head_dim)
        pes = side * side + side
        area_mm2 = (pes * base.compute["pe_2d"].area_um2_per_pe
                    + memory[buffer_index].capacity_bytes * buffer.area_um2_per_byte) / 1e6
        rows.append({"side": side, "time_s": r["time_s"], "area_mm2": area_mm2, "energy_j": r["energy_j"]})
    table = pd.DataFrame(rows)
    table["pareto"] = [not ((table["time_s"] <= t) & (table["area_mm2"] <= a) &
                            ((table["time_s"] < t) | (table["area_mm2"] < a))).any()
                       for t, a in zip(table["time_s"], table["area_mm2"])]
    return table


def pareto_figure(table: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(table["area_mm2"], table["time_s"], marker="o")
    for row in table.itertuples():
        ax.annotate(f"{row.side}²", (row.area_mm2, row.time_s), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("area estimate (mm²)")
    ax.set_ylabel("attention latency (s), 256K tokens")
    ax.set_title("FuseMax: PE array size sweep")
    fig.tight_layout()
    return fig


def fusemax_report(out: str | Path) -> list[Path]:
    """Write the figure set and the sweep table into ``out``; returns the files written."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    table = design_table()
    sweep = pareto_sweep()
    figures = {"fusemax_speedup": _per_model(table, "time_s", ("unfused", "flat"), "attention speedup"),
               "fusemax_energy_ratio": _per_model(table, "energy_j", ("unfused", "flat"), "energy relative",
                                                  invert=True),
               "fusemax_utilization": utilization_figure(table),
               "fusemax_einsum_breakdown": einsum_breakdown_figure(),
               "fusemax_pareto": pareto_figure(sweep)}
    written = []
    for stem, fig in figures.items():
        fig.savefig(folder / f"{stem}.png", dpi=120)
        plt.close(fig)
        written.append(folder / f"{stem}.png")
    table.to_csv(folder / "fusemax_designs.csv", index=False)
    sweep.to_csv(folder / "fusemax_pareto.csv", index=False)
    return written + [folder / "fusemax_designs.csv", folder / "fusemax_pareto.csv"]
