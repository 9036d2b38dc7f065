"""Test-time-scaling studies on the Kinetics cost model.

* ``frontier_table``: users' own accuracy results (CSV: model, strategy, samples, gen_len, accuracy; optional
  prompt_len, intensity, attention and its settings) priced in eFLOPs per request, with the cost–accuracy Pareto
  frontier per model (no other point of the model is both cheaper and at least as accurate).
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
from simlib.models.kinetics_cli import NEEDS, SPARSE, model_shape, tts_parameters
from simlib.workload.model_spec import load_model

REQUIRED = ("model", "strategy", "samples", "gen_len", "accuracy")
QWEN3 = ("qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b")


# columns of ``predict tts`` that a frontier row cannot use: the frontier prices eFLOPs, which neither changes
REFUSED_COLUMNS = {
    "dtype": "the frontier prices every row at one intensity: choose it with --dtype or --intensity on the "
             "command line, or give a row's own intensity (FLOP per byte) in an intensity column",
    "serving_batch": "the serving batch changes only the time on a GPU (predict tts), not the eFLOPs the frontier "
                     "prices; drop the column",
}


def frontier_table(path: str | Path, intensity: float, prompt_len: int = 1000) -> pd.DataFrame:
    """Each row of an accuracy table priced in eFLOPs per request (``tts_cost``), and whether it is on its model's
    cost-accuracy frontier (``pareto_frontier``).

    A row's own ``prompt_len`` and ``intensity`` (FLOP per byte) are used where given, ``prompt_len`` and
    ``intensity`` otherwise; ``dtype`` and ``serving_batch`` columns are refused (REFUSED_COLUMNS), as is any
    other column ``predict tts`` does not know. Accuracy is a fraction from 0 to 1 or a percentage from 0 to 100,
    one scale for the whole table, reported as given: a table with an accuracy above 1 is in percent, and then a
    row with a non-zero accuracy at or below 1 (which reads as a fraction) is refused rather than guessed (a
    percentage table with rows at or below 1 % is written as fractions). Each line is parsed and checked as
    ``predict tts`` checks its settings (the message names the line); the costs are one vectorized ``tts_cost``
    call per (model, attention variant)."""
    path = Path(path)
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SimlibInputError(str(path), None, f"cannot read the accuracy table as CSV text: {exc}") from None
    if not rows:
        raise SimlibInputError(str(path), None, "the accuracy table has no rows")
    header = reader.fieldnames
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise SimlibInputError(str(path), missing[0], f"missing column; expected {', '.join(REQUIRED)}")
    refused = next((c for c in header if c in REFUSED_COLUMNS), None)
    if refused:
        raise SimlibInputError(str(path), refused, f"column not used by the frontier: {REFUSED_COLUMNS[refused]}")
    records, lines, shapes = [], [], {}
    for number, row in rows:
        where = f"{path}, line {number}"
        if None in row or any(row[c] is None for c in REQUIRED):
            fields = len([k for k in header if k is not None])
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
            if params["model"] not in shapes:
                shapes[params["model"]] = model_shape(load_model(params["model"]))
        except SimlibInputError as exc:
            raise SimlibInputError(where, exc.field, exc.message) from None
        records.append({"model": params["model"], "strategy": row["strategy"], "samples": params["samples"],
                        "gen_len": params["gen_len"][0], "attention": params["attention"],
                        "intensity": float(params["intensity"] or intensity), "accuracy": accuracy,
                        "prompt_len": params["prompt_len"],
                        **{k: np.nan if params[k] is None else float(params[k]) for k in SPARSE}})
        lines.append(number)
    table = pd.DataFrame(records)
    _check_accuracy_scale(table["accuracy"].to_numpy(), np.array(lines), path)
    eflops = np.empty(len(table))
    for (model, attention), rows_of in table.groupby(["model", "attention"], sort=False).indices.items():
        group = table.iloc[rows_of]
        eflops[rows_of] = tts_cost(**shapes[model], prompt_len=group["prompt_len"].to_numpy(float),
                                   gen_len=group["gen_len"].to_numpy(float), samples=group["samples"].to_numpy(float),
                                   intensity=group["intensity"].to_numpy(float), attention=attention,
                                   **{k: group[k].to_numpy(float) for k in NEEDS[attention]})["eflops"]
    table["eflops"] = eflops
    table["frontier"] = pareto_frontier(table["model"].to_numpy(), eflops, table["accuracy"].to_numpy())
    table = table.drop(columns=["prompt_len", *SPARSE])
    return table.sort_values(["model", "eflops"], kind="stable").reset_index(drop=True)


def _check_accuracy_scale(accuracy: np.ndarray, lines: np.ndarray, path: Path) -> None:
    """One scale per table: any accuracy above 1 makes it a percentage table, where a non-zero one at or below 1
    reads as a fraction: refused, naming both lines."""
    percent = accuracy > 1
    fraction = (accuracy > 0) & (accuracy <= 1)
    if percent.any() and fraction.any():
        i, j = int(np.argmax(fraction)), int(np.argmax(percent))
        raise SimlibInputError(f"{path}, line {lines[i]}", "accuracy", f"{accuracy[i]:g} reads as a fraction of 1, "
                                                                       f"but line {lines[j]} gives {accuracy[j]:g}, a "
                                                                       f"percentage: expected one scale for the "
                                                                       f"whole table, fractions from 0 to 1 or "
                                                                       f"percentages from 0 to 100 (a percentage "
                                                                       f"table with rows at or below 1 % is written "
                                                                       f"as fractions)")


def pareto_frontier(model, eflops, accuracy) -> np.ndarray:
    """Whether each point is on its model's cost-accuracy frontier: no point of the same model has eflops <= and
    accuracy >= with one of the two strict. Sorted by (model, eflops ascending, accuracy descending), only an
    earlier point can dominate a point: one of strictly lower eflops with accuracy >= (the running maximum of
    accuracy up to the previous eflops value), or one of equal eflops and higher accuracy (the first of its run
    of equal eflops). O(n log n), no loop over points."""
    model, eflops, accuracy = np.asarray(model), np.asarray(eflops, dtype=float), np.asarray(accuracy, dtype=float)
    if len(eflops) == 0:
        return np.zeros(0, dtype=bool)
    codes = pd.factorize(model)[0]
    order = np.lexsort((-accuracy, eflops, codes))
    m, e, a = codes[order], eflops[order], accuracy[order]
    new_model = np.r_[True, m[1:] != m[:-1]]
    new_run = new_model | np.r_[True, e[1:] != e[:-1]]
    running = pd.Series(a).groupby(m).cummax().to_numpy()
    before = np.where(new_model, -np.inf, np.r_[-np.inf, running[:-1]])   # max accuracy of earlier points
    run = np.cumsum(new_run) - 1
    starts = np.flatnonzero(new_run)
    dominated = (before[starts][run] >= a) | (a[starts][run] > a)
    frontier = np.empty(len(a), dtype=bool)
    frontier[order] = ~dominated
    return frontier


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
