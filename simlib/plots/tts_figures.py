"""Test-time-scaling studies on the Kinetics cost model.

* ``frontier_table``: users' own accuracy results (CSV: model, strategy, samples, gen_len, accuracy; optional
  prompt_len, attention and its settings) priced in eFLOPs per request, with the cost–accuracy Pareto frontier
  per model (no other point of the model is both cheaper and at least as accurate).
* ``cost_vs_length_figure``: eFLOPs per sample against generation length for each model, split into the
  parameter part and the attention part (the paper's point: attention overtakes, sooner for small models).
* ``sparse_vs_dense_figure``: dense against block top-k attention.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from simlib.cli.values import parse_value
from simlib.errors import SimlibInputError
from simlib.models.kinetics import tts_cost
from simlib.models.kinetics_cli import model_shape, sparse_settings, tts_parameters
from simlib.workload.model_spec import load_model

REQUIRED = ("model", "strategy", "samples", "gen_len", "accuracy")
QWEN3 = ("qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b")


def frontier_table(path: str | Path, intensity: float, prompt_len: int = 1000) -> pd.DataFrame:
    path = Path(path)
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SimlibInputError(str(path), None, f"cannot read the accuracy table as CSV text: {exc}") from None
    if not rows:
        raise SimlibInputError(str(path), None, "the accuracy table has no rows")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise SimlibInputError(str(path), missing[0], f"missing column; expected {', '.join(REQUIRED)}")
    out = []
    for number, row in enumerate(rows, start=2):
        where = f"{path}, line {number}"
        if None in row or any(row[c] is None for c in REQUIRED):
            fields = len([k for k in rows[0] if k is not None])
            raise SimlibInputError(where, None, f"expected {fields} comma-separated fields, as in the header")
        try:
            accuracy = float(row["accuracy"])
        except ValueError:
            accuracy = math.nan
        if not 0 <= accuracy <= 100:
            raise SimlibInputError(where, "accuracy", f"expected a number from 0 to 1 (or a percentage), got "
                                                      f"{row['accuracy']!r}")
        settings = {k: parse_value(v) for k, v in row.items() if v not in (None, "") and k not in
                    ("strategy", "accuracy")}
        if isinstance(settings.get("gen_len"), list):
            raise SimlibInputError(where, "gen_len", "expected one generation length per row (list each length "
                                                     "on its own row)")
        settings.setdefault("prompt_len", prompt_len)
        try:
            params = tts_parameters(settings)
            cost = tts_cost(**model_shape(load_model(params["model"])), prompt_len=params["prompt_len"],
                            gen_len=params["gen_len"][0], samples=params["samples"], intensity=intensity,
                            attention=params["attention"], **sparse_settings(params))
        except SimlibInputError as exc:
            raise SimlibInputError(f"{path}, line {number}", exc.field, exc.message) from None
        out.append({"model": params["model"], "strategy": row["strategy"], "samples": params["samples"],
                    "gen_len": params["gen_len"][0], "attention": params["attention"],
                    "accuracy": accuracy, "eflops": float(cost["eflops"])})
    table = pd.DataFrame(out)
    table["frontier"] = False
    for _, group in table.groupby("model"):
        for i, row in group.iterrows():
            dominated = ((group["eflops"] <= row.eflops) & (group["accuracy"] >= row.accuracy)
                         & ((group["eflops"] < row.eflops) | (group["accuracy"] > row.accuracy))).any()
            table.loc[i, "frontier"] = not dominated
    return table.sort_values(["model", "eflops"]).reset_index(drop=True)


def frontier_figure(table: pd.DataFrame):
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, group in table.groupby("model"):
        points = ax.scatter(group["eflops"], group["accuracy"], s=14, alpha=0.5)
        front = group[group["frontier"]].sort_values("eflops")
        ax.plot(front["eflops"], front["accuracy"], marker="o", color=points.get_facecolor()[0], label=model)
    ax.set_xscale("log")
    ax.set_xlabel("cost per request (eFLOPs)")
    ax.set_ylabel("accuracy")
    ax.set_title("cost-accuracy frontier")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _per_model_lines(intensity, models, prompt_len, lengths, pairs, ylabel):
    """One solid and one dashed/dotted line per model, log-log against generation length; ``pairs(shape)``
    gives (solid values, label, other values, other line style)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for model in models:
        solid, label, other, style = pairs(model_shape(load_model(model)), model)
        line = ax.plot(lengths, solid, label=label)[0]
        ax.plot(lengths, other, color=line.get_color(), linestyle=style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("generated tokens per sample")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def cost_vs_length_figure(intensity: float, models=QWEN3, prompt_len: int = 1000,
                          lengths=np.geomspace(256, 32768, 25)):
    def pairs(shape, model):
        cost = tts_cost(**shape, prompt_len=prompt_len, gen_len=lengths, samples=1, intensity=intensity)
        return cost["attention_eflops"], model, cost["parameter_eflops"], "--"
    return _per_model_lines(intensity, models, prompt_len, lengths, pairs,
                            "eFLOPs per sample (solid: attention, dashed: parameters)")


def sparse_vs_dense_figure(intensity: float, models=QWEN3, prompt_len: int = 1000,
                           lengths=np.geomspace(256, 32768, 25), block_size=16, block_topk=64, local=64):
    def pairs(shape, model):
        common = dict(prompt_len=prompt_len, gen_len=lengths, samples=1, intensity=intensity)
        dense = tts_cost(**shape, **common)["eflops"]
        sparse = tts_cost(**shape, **common, attention="blocktopk", block_size=block_size, block_topk=block_topk,
                          local=local)["eflops"]
        return dense, f"{model} dense", sparse, ":"
    return _per_model_lines(intensity, models, prompt_len, lengths, pairs,
                            f"eFLOPs per sample (dotted: block top-k, budget {local + block_size * block_topk})")
