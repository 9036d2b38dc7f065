"""``simlib report``: an HTML report of a sweep (a results Parquet file, or a spec that is swept first) — plain
HTML with PNGs and tables, no server: the roofline per hardware (where the results carry FLOPs and bytes), the
best configurations per hardware, and the sensitivity of time to each axis (median time against each axis's
values, the others varying).

The sensitivity curves group rows by hardware, and in a fusemax sweep (rows with a ``design`` column) by design
and the hardware it ran on: several designs run on one architecture (FLAT and the unfused baseline both on
``flat``), so grouping by hardware alone would put two designs in one curve.

The best-configuration table compares choices on one problem, never problems with each other: a sweep's axes
are either *choices* (CHOICE_AXES: kernel, tiles, splits, GNA stride and dilation, the fusemax design) or the
*problem* (every other axis: seq, batch, window, model, gen_len, ...). Per hardware and per problem (one value
of every problem axis) the table lists the row with the best metric over the choices: the lowest for a time or
cost, the highest for a throughput (HIGHER_IS_BETTER). A design brings its own hardware, so in a fusemax sweep
the designs are compared per problem across hardware. Ranking raw time over all rows would always pick the
smallest problem (seq 512, batch 1; the smallest window or model), which says nothing about the choices; a
sweep that varies no choice has nothing to choose, and the report says so instead of a table.
"""
from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from simlib.errors import SimlibInputError
from simlib.hardware.catalog import load_hardware
from simlib.plot import roofline
from simlib.sweeps.evaluators import OUTPUT_COLUMNS
from simlib.sweeps.run import run_sweep
from simlib.sweeps.spec import load_spec, parameter_names

OUTPUTS = set(OUTPUT_COLUMNS)


def _load(source: str | Path) -> tuple[pd.DataFrame, list[str], str]:
    path = Path(source)
    if path.suffix not in (".parquet", ".yaml", ".yml"):
        raise SimlibInputError(str(path), None, "expected a sweep's results (.parquet) or a sweep spec (.yaml)")
    if not path.is_file():
        raise SimlibInputError(str(path), None, "no such file")
    if path.suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise SimlibInputError(str(path), None, f"cannot read the results: {exc}") from None
        axes = [c for c in frame.columns if c not in OUTPUTS and c != "hardware" and frame[c].nunique() > 1]
        return frame, axes, path.stem
    spec = load_spec(path)
    frame = run_sweep(spec)
    axes = [n for n in parameter_names(spec) if n not in spec.fixed]
    return frame, axes, path.stem


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)


def group_columns(frame: pd.DataFrame) -> list[str]:
    """The columns one curve and one best row stand for: ``design`` and ``hardware`` where the rows name a
    design (a fusemax sweep: designs share hardware), else ``hardware``."""
    return ["design", "hardware"] if "design" in frame.columns else ["hardware"]


def _label(columns: list[str], key) -> str:
    values = key if isinstance(key, tuple) else (key,)
    named = dict(zip(columns, map(str, values)))
    return f"{named['design']} on {named['hardware']}" if "design" in named else named.get("hardware", "")


# the axes that are choices for running a problem (the rest describe the problem): attention's kernel, tiles and
# split count, GNA's tiles, stride and dilation, and the fusemax design (which runs on its own hardware)
CHOICE_AXES = ("kernel", "block_q", "block_kv", "splits", "q_tile", "kv_tile", "stride", "dilation", "design")
# metrics where more is better (a throughput or a speedup); every other metric (time, energy, cost) is lower-better
HIGHER_IS_BETTER = ("tflops", "useful_tflops", "speedup", "speedup_vs_unfused", "speedup_vs_flat", "speedup_bound",
                    "tile_speedup_bound")


def choice_axes(axes: list[str]) -> list[str]:
    return [a for a in axes if a in CHOICE_AXES]


def problem_axes(axes: list[str]) -> list[str]:
    """The swept axes that describe the problem: neither a choice (CHOICE_AXES) nor the hardware."""
    return [a for a in axes if a not in CHOICE_AXES and a != "hardware"]


def best_rows(frame: pd.DataFrame, metric: str, axes: list[str] | None = None) -> pd.DataFrame:
    """Per hardware and per problem (one value of each of ``problem_axes(axes)``), the row with the best
    ``metric`` over the choices: the highest where the metric is a throughput (HIGHER_IS_BETTER), else the
    lowest. A design runs on its own hardware, so with a ``design`` column the hardware follows the choice and
    is not a group. ``axes`` defaults to the columns that vary and are not outputs. Rows without the metric are
    skipped; the result is ordered by the groups."""
    if axes is None:
        axes = [c for c in frame.columns if c not in OUTPUTS and c != "hardware" and frame[c].nunique() > 1]
    keys = ([] if "design" in frame.columns else ["hardware"]) + problem_axes(axes)
    rows = frame.dropna(subset=[metric])
    pick = "idxmax" if metric in HIGHER_IS_BETTER else "idxmin"
    if not keys:
        return rows.loc[[getattr(rows[metric], pick)()]]
    return rows.loc[getattr(rows.groupby(keys, sort=True)[metric], pick)().to_numpy()]


def sensitivity_curves(frame: pd.DataFrame, axis: str, metric: str) -> dict[str, pd.Series]:
    """Median ``metric`` against ``axis``'s values, one curve per group (``group_columns``), keyed by its label
    ("fusemax on fusemax", "h100"). Where ``axis`` is itself a grouping column (design), each of its values is
    one group, so one curve goes across them, keyed "median over the other axes"."""
    numeric = pd.api.types.is_numeric_dtype(frame[axis]) and not pd.api.types.is_bool_dtype(frame[axis])
    columns = group_columns(frame)
    if axis in columns:
        return {"median over the other axes": frame.groupby(axis, sort=numeric)[metric].median()}
    return {_label(columns, key): part.groupby(axis, sort=numeric)[metric].median()
            for key, part in frame.groupby(columns)}


DEFAULT_METRICS = ("time_s", "eflops")    # the first a sweep's results have: time, else the Kinetics cost


def build_report(source: str | Path, out: str | Path, metric: str | None = None) -> Path:
    """``index.html`` and its PNGs for a sweep; ``metric`` is the column ranked and plotted (default: time_s, or
    eflops for a test-time-scaling sweep, which has no time)."""
    frame, axes, title = _load(source)
    if metric is None:
        metric = next((m for m in DEFAULT_METRICS if m in frame.columns), DEFAULT_METRICS[0])
    if metric not in frame.columns:
        raise SimlibInputError(str(source), metric, f"the results have no '{metric}' column")
    if not pd.api.types.is_numeric_dtype(frame[metric]) or pd.api.types.is_bool_dtype(frame[metric]):
        raise SimlibInputError(str(source), metric, f"'{metric}' is not a numeric column")
    if frame[metric].isna().all():
        raise SimlibInputError(str(source), metric, f"'{metric}' has no values (every row is empty)")
    if "hardware" not in frame.columns:
        raise SimlibInputError(str(source), "hardware", "the results have no 'hardware' column; expected a sweep's "
                                                        "output (simlib sweep)")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    sections = []
    if {"flops", "bytes_dram", "time_s"} <= set(frame.columns):
        for name, part in frame.groupby("hardware"):
            fig = roofline(load_hardware(name), part, dtype=str(part["dtype"].iloc[0]) if "dtype" in part else "bf16",
                           label=f"{len(part)} points")
            image = f"roofline_{Path(name).stem}.png"
            fig.savefig(folder / image, dpi=110)
            plt.close(fig)
            sections.append(f"<h3>Roofline: {html.escape(name)}</h3><img src='{html.escape(image)}'>")
    choices, problem = choice_axes(axes), problem_axes(axes)
    better = "highest" if metric in HIGHER_IS_BETTER else "lowest"
    per = " and ".join(["hardware"] * ("design" not in frame.columns) + [", ".join(problem)] * bool(problem))
    if choices:
        rule = (f"Per {per or 'sweep'}: the choice ({', '.join(choices)}) with the {better} {metric}. Problems "
                f"are not ranked against each other (a smaller problem is not a better configuration).")
        sections.append(f"<h2>Best configuration per {per or 'sweep'}</h2><p>{html.escape(rule)}</p>"
                        + _table_html(best_rows(frame, metric, axes)))
    else:
        sections.append("<h2>Best configuration</h2><p>" + html.escape(
            f"The sweep varies only the problem ({', '.join(problem) or 'no axis'}), no choice "
            f"({', '.join(CHOICE_AXES)}): each row is its own problem, so there is no configuration to pick; "
            f"the sensitivity curves show how {metric} follows each axis.") + "</p>")
    for axis in axes:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        numeric = pd.api.types.is_numeric_dtype(frame[axis]) and not pd.api.types.is_bool_dtype(frame[axis])
        for name, curve in sensitivity_curves(frame, axis, metric).items():
            ax.plot(curve.index if numeric else curve.index.astype(str), curve.values, marker="o", label=name)
        if numeric and frame[axis].min() > 0 and frame[axis].max() / frame[axis].min() > 20:
            ax.set_xscale("log")
        if not numeric:
            ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.set_yscale("log")
        ax.set_xlabel(axis)
        ax.set_ylabel(f"median {metric.replace('_s', ' (s)') if metric.endswith('_s') else metric}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        image = "sensitivity_" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in axis) + ".png"
        fig.savefig(folder / image, dpi=110)
        plt.close(fig)
        sections.append(f"<h3>Sensitivity to {html.escape(axis)}</h3><img src='{html.escape(image)}'>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:1000px;margin:auto} img{max-width:100%} "
            "table{border-collapse:collapse;font-size:12px} td,th{padding:2px 6px;border-bottom:1px solid #ddd}"
            f"</style></head><body><h1>{html.escape(title)}</h1><p>{len(frame)} points; metric {metric}.</p>"
            + "".join(sections) + "</body></html>")
    index = folder / "index.html"
    index.write_text(page)
    return index
