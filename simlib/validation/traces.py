"""Traces: measured timings, one row per (op, shape, backend), from ``simlib measure`` or from published tables
(``traces/published``), checked against the models.

A trace is a CSV whose ``#`` lines carry metadata (``# hardware: NAME`` names the YAML it was taken on) and whose
columns include ``op`` and ``measured_s``; the rest depend on the op. Each op has one predictor:

* ``gemm`` (m, n, k, dtype): the ``gemm`` cascade's roofline.
* ``attention_unfused`` (batch, heads, seq_q, seq_kv, head_dim, dtype): ``attention-torch-unfused``, unfused (the
  kernels ``simlib measure`` runs for it: QK, the scale multiply, a 3-pass softmax, PV).
* ``sdpa``: on a GPU with the attention model's memory levels, the FlashAttention tile model with the kernel a
  backend runs (math: standard; flash and efficient: flash2; cudnn: flash3 where the part supports it; or a kernel
  name; a decode query, seq_q = 1: flash splits the K/V as FlashAttention-2 does, the others run flash2);
  elsewhere the cascades (math: ``attention-torch-math``, the kernels PyTorch's math backend runs, unfused;
  flash: 1-pass fused).
* ``gna`` (shape, window, stride, heads, head_dim): the GNA simulator.
* ``spatial`` (backend = design, model, seq_q, batch): the spatial-array model on the design's hardware.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from simlib.api import predict
from simlib.catalog_paths import PROJECT_ROOT
from simlib.dtypes import dtype_bytes
from simlib.errors import SimlibInputError
from simlib.hardware.catalog import load_hardware_beside, load_hardware_given
from simlib.hardware.schema import HardwareSpec
from simlib.models.attention_cli import KERNELS, predict_attention, supported_kernels
from simlib.models.gna import predict_gna
from simlib.models.gna_cli import gna_parameters
from simlib.models.spatial_cli import run_design

TRACE_DIR = PROJECT_ROOT / "traces"
REQUIRED = ("op", "measured_s")
SDPA_BACKENDS = {"math": "standard", "flash": "flash2", "efficient": "flash2", "cudnn": "flash3"}


def read_trace(path: str | Path) -> tuple[dict, pd.DataFrame]:
    """(metadata, rows) of a CSV trace (metadata from its ``# key: value`` lines) or a Parquet trace (metadata
    in the file's key-value metadata, as ``simlib measure`` writes it). Blank rows are skipped; every row needs
    an op and a positive measured time."""
    path = Path(path)
    if path.suffix == ".parquet":
        meta, table = _read_parquet(path)
    else:
        meta, table = _read_csv(path)
    table = table.dropna(how="all").reset_index(drop=True)
    if table.empty:
        raise SimlibInputError(str(path), None, "the trace has no rows")
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise SimlibInputError(str(path), missing[0], f"missing column; a trace needs {', '.join(REQUIRED)}")
    measured = pd.to_numeric(table["measured_s"], errors="coerce")
    for number, (op, seconds) in enumerate(zip(table["op"], measured), start=1):
        if not isinstance(op, str) or not op.strip():
            raise SimlibInputError(str(path), f"row {number}", "expected an op name in the op column")
        if not (seconds > 0 and math.isfinite(seconds)):
            raise SimlibInputError(str(path), f"row {number}", f"measured_s: expected a positive, finite time "
                                                               f"in seconds, got {table['measured_s'][number - 1]}")
    table["measured_s"] = measured
    for column in FLAG_COLUMNS:
        if column in table.columns:
            table[column] = _flags(table[column], path, column)
    return meta, table


FLAG_COLUMNS = ("causal",)
TRUE_WORDS, FALSE_WORDS = {"true", "1", "1.0", "yes"}, {"false", "0", "0.0", "no", "", "nan"}


def _flags(values: pd.Series, path: Path, column: str) -> pd.Series:
    """A yes/no column as booleans: true/1/yes or false/0/no (any case; an empty cell is false), anything else
    an input error naming the row, so that a typo cannot silently read as false."""
    words = _words(values)
    for number, word in enumerate(words, start=1):
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise SimlibInputError(str(path), f"row {number}", f"{column}: expected true or false (or 1/0, yes/no), "
                                                               f"got {values.iloc[number - 1]!r}")
    return words.isin(TRUE_WORDS)


def _read_csv(path: Path) -> tuple[dict, pd.DataFrame]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SimlibInputError(str(path), None, f"cannot read the trace as CSV text: {exc}") from None
    meta = {}
    for line in text.splitlines():
        if line.startswith("#") and ":" in line:
            key, value = line[1:].split(":", 1)
            meta[key.strip()] = value.strip()
    body = "\n".join(line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    if not body:
        raise SimlibInputError(str(path), None, "the trace has no rows")
    rows = list(csv.reader(io.StringIO(body)))
    for number, row in enumerate(rows[1:], start=1):
        if len(row) > len(rows[0]):
            # pandas would take the extra cell for an index column and shift every value one column left
            raise SimlibInputError(str(path), f"row {number}", f"{len(row)} cells, but the header names "
                                                               f"{len(rows[0])} columns; expected one cell per column")
    try:
        return meta, pd.read_csv(io.StringIO(body))
    except pd.errors.ParserError as exc:
        raise SimlibInputError(str(path), None, f"not a CSV table: {str(exc).splitlines()[0]}") from None


def _read_parquet(path: Path) -> tuple[dict, pd.DataFrame]:
    import pyarrow
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(path)
    except (OSError, pyarrow.ArrowException) as exc:
        raise SimlibInputError(str(path), None, f"cannot read the trace as Parquet: {exc}") from None
    meta = {k.decode(errors="replace"): v.decode(errors="replace")
            for k, v in (table.schema.metadata or {}).items() if not k.startswith(b"pandas")}
    return meta, table.to_pandas()


def is_true(values) -> np.ndarray:
    """A trace's yes/no column as booleans (``read_trace`` has already checked and converted it)."""
    return np.asarray(_words(pd.Series(values)).isin(TRUE_WORDS))


def _words(values: pd.Series) -> pd.Series:
    return values.map(lambda v: "" if pd.isna(v) else str(v).strip().lower())


def _int(row, name):
    if isinstance(row[name], (bool, np.bool_)):        # a True cell in a size column is not the size 1
        raise ValueError(f"{name}: expected a whole number, got {row[name]!r}")
    value = float(row[name])
    if not value.is_integer():
        raise ValueError(f"{name}: expected a whole number, got {row[name]!r}")
    return int(value)


def _cascade_attention(row, hw: HardwareSpec, workload: str, execution: str) -> float:
    """The cascade's roofline; the 1-pass cascade streams K/V in blocks of up to 256 keys that divide seq_kv.
    The cascades count every score, so a causal row is refused rather than predicted as the full matrix."""
    if "causal" in row and is_true([row["causal"]])[0]:
        raise SimlibInputError(None, "causal", f"causal rows are predicted on GPUs by the attention model only; "
                                               f"the {workload} cascade on {hw.name} counts every score")
    extra = {"block_kv": math.gcd(_int(row, "seq_kv"), 256)} if workload == "attention-1pass" else {}
    return predict(workload, hw, batch=_int(row, "batch"), heads=_int(row, "heads"), seq_q=_int(row, "seq_q"),
                   seq_kv=_int(row, "seq_kv"), head_dim=_int(row, "head_dim"), head_dim_v=_int(row, "head_dim"),
                   dtype=row["dtype"], execution=execution, **extra).time_s


def _sdpa(row, hw: HardwareSpec, path) -> float:
    backend = str(row["backend"])
    if backend not in SDPA_BACKENDS and backend not in KERNELS:
        raise SimlibInputError(str(path), "backend", f"unknown backend {backend!r} (expected one of: "
                                                     f"{', '.join([*SDPA_BACKENDS, *KERNELS])})")
    if hw.family == "gpu" and hw.level("smem") is not None:
        kernel = SDPA_BACKENDS.get(backend, backend)
        if kernel not in supported_kernels(hw):
            kernel = "flash2"
        settings = {"batch": _int(row, "batch"), "heads": _int(row, "heads"), "seq_q": _int(row, "seq_q"),
                    "seq_kv": _int(row, "seq_kv"), "head_dim": _int(row, "head_dim"), "dtype": row["dtype"],
                    "causal": bool(is_true([row.get("causal", False)])[0]), "kernel": kernel}
        if settings["seq_q"] == 1 and kernel != "standard":
            # PyTorch's flash backend runs FlashAttention-2's mha_fwd, which splits the K/V of a decode query by
            # its own heuristic (set_params_splitkv) and runs its split kernel when that gives more than one
            # split; the memory-efficient and cuDNN kernels keep one block per head
            settings["kernel"] = "flash2"
            if backend == "flash":
                split = predict_attention(hw, {**settings, "kernel": "flashdecoding"})
                if split["splits"] > 1:
                    return split["time_s"]
        return predict_attention(hw, settings)["time_s"]
    if backend == "math":
        return _cascade_attention(row, hw, "attention-torch-math", "unfused")
    if SDPA_BACKENDS.get(backend, backend) == "standard":
        return _cascade_attention(row, hw, "attention-3pass", "unfused")
    return _cascade_attention(row, hw, "attention-1pass", "fused")


def _gna(row, hw: HardwareSpec, path) -> float:
    """The GNA simulator, with the checks ``simlib predict gna`` applies to its settings."""
    settings = {k: str(row[k]) for k in ("shape", "window", "stride")}
    settings.update(heads=_int(row, "heads"), head_dim=_int(row, "head_dim"), dtype=row.get("dtype", "bf16"))
    return predict_gna(hw, **gna_parameters(hw, settings))["time_s"]


def _spatial(row, hw: HardwareSpec, path) -> float:
    return run_design(str(row["backend"]), {"model": row["model"], "seq_q": _int(row, "seq_q"),
                                            "seq_kv": _int(row, "seq_kv"), "batch": _int(row, "batch"),
                                            "dtype": "fp16"})["time_s"]


PREDICTORS = {
    "gemm": lambda row, hw, path: predict("gemm", hw, M=_int(row, "m"), N=_int(row, "n"), K=_int(row, "k"),
                                          dtype=row["dtype"]).time_s,
    "attention_unfused": lambda row, hw, path: _cascade_attention(row, hw, "attention-torch-unfused", "unfused"),
    "sdpa": _sdpa, "gna": _gna, "spatial": _spatial,
}


def hardware_mismatch(path: str | Path, hardware: str | None) -> str | None:
    """A warning when ``--hardware`` is not the part a trace was measured on (its ``# hardware:`` line or
    ``hardware`` column, compared by the loaded YAML's ``name``), else None. The override is allowed, as it is for
    any trace, but the errors then compare different parts."""
    if hardware is None:
        return None
    meta, table = read_trace(path)
    measured = set(table["hardware"].dropna().astype(str)) if "hardware" in table else set()
    measured |= {meta["hardware"]} if meta.get("hardware") else set()
    if not measured:
        return None

    def name_of(value: str) -> str:
        try:
            return load_hardware_beside(path, value).name
        except SimlibInputError:            # a trace naming a YAML that is not shipped with it: its written name
            return value

    given, names = load_hardware_given(path, hardware).name, sorted({name_of(m) for m in measured})
    if given in names:
        return None
    return (f"{path}: predicting {given} against measurements taken on {', '.join(names)}; the errors compare "
            f"different hardware (omit --hardware to use the trace's own)")


def validate_trace(path: str | Path, hardware: str | None = None) -> pd.DataFrame:
    """Every row predicted: the trace's columns plus ``predicted_s`` and ``error`` (predicted / measured - 1)."""
    meta, table = read_trace(path)
    unknown = sorted(set(table["op"]) - set(PREDICTORS))
    if unknown:
        raise SimlibInputError(str(path), "op", f"unknown op {unknown[0]!r} (expected one of: "
                                                f"{', '.join(PREDICTORS)})")
    cache: dict[str, HardwareSpec] = {}
    predicted = []
    for number, (_, row) in enumerate(table.iterrows(), start=1):
        name = hardware or (row["hardware"] if "hardware" in row and isinstance(row["hardware"], str) else None) \
            or meta.get("hardware")
        if name is None:
            raise SimlibInputError(str(path), "hardware", "no hardware column or '# hardware:' line; give --hardware")
        if name not in cache:
            cache[name] = load_hardware_given(path, name) if hardware else load_hardware_beside(path, name)
        try:
            predicted.append(PREDICTORS[row["op"]](row, cache[name], path))
        except SimlibInputError as exc:
            if exc.source == str(path):
                raise
            # an error of the model the row reaches: name the trace and row, and the field as the model did
            raise SimlibInputError(str(path), f"row {number}", f"{row['op']}: "
                                   + ": ".join(p for p in (exc.field, exc.message) if p)) from None
        except (KeyError, ValueError, TypeError) as exc:
            raise SimlibInputError(str(path), f"row {number}", f"{row['op']} needs a value here: {exc}") from None
    table["predicted_s"] = predicted
    table["error"] = table["predicted_s"] / table["measured_s"] - 1
    return table


def mape_by_group(table: pd.DataFrame) -> pd.DataFrame:
    """Mean absolute percentage error per (op, backend), and over all rows."""
    keys = ["op", "backend"] if "backend" in table.columns else ["op"]
    groups = table.groupby(keys, dropna=False)["error"].agg(lambda e: float(np.mean(np.abs(e)))).reset_index()
    groups = groups.rename(columns={"error": "mape"})
    groups["rows"] = table.groupby(keys, dropna=False).size().values
    total = pd.DataFrame([{**{k: "all" for k in keys}, "mape": float(np.mean(np.abs(table["error"]))),
                           "rows": len(table)}])
    return pd.concat([groups, total], ignore_index=True)


def arithmetic_intensity(table: pd.DataFrame) -> np.ndarray:
    """Matmul FLOPs per byte of the op's inputs and outputs moved once (the roofline's x axis): a GEMM's
    2mnk / (mk + kn + mn) elements, attention's 4·sq·skv·d / (2·sq·d + 2·skv·d) elements per (batch, head),
    the FLOPs halved for causal rows; NaN for other ops and for decode (seq_q = 1, which is memory-bound by
    construction)."""
    flops = size_of(table)
    elements = np.full(len(table), np.nan)
    cols = set(table.columns)
    if {"m", "n", "k"} <= cols:
        m, n, k = _numbers(table, "m", "n", "k")
        elements = np.where(table["op"] == "gemm", m * k + k * n + m * n, elements)
    if {"batch", "heads", "seq_q", "seq_kv", "head_dim"} <= cols:
        b, h, sq, skv, d = _numbers(table, "batch", "heads", "seq_q", "seq_kv", "head_dim")
        prefill = table["op"].isin(["sdpa", "attention_unfused"]).to_numpy() & (sq > 1)
        elements = np.where(prefill, b * h * (2 * sq * d + 2 * skv * d), elements)
    if "causal" in cols:
        flops = np.where(is_true(table["causal"]), flops / 2, flops)
    width = (table["dtype"].map(lambda name: dtype_bytes(name) if isinstance(name, str) else 2.0).to_numpy(float)
             if "dtype" in cols else np.full(len(table), 2.0))
    return flops / (elements * width)


def compute_bound_half(table: pd.DataFrame) -> np.ndarray:
    """The GEMM and attention rows in the upper half of arithmetic intensity within their trace (where the table
    has several), op and backend: the shapes a roofline calls compute-bound first, whose time the compute rates
    should predict."""
    intensity = pd.Series(arithmetic_intensity(table), index=table.index)
    keys = [table[c].astype(str) for c in ("trace", "op", "backend") if c in table.columns]
    groups = keys[0].str.cat(keys[1:], sep="/") if len(keys) > 1 else keys[0]
    return (intensity >= intensity.groupby(groups).transform("median")).to_numpy()   # NaN rows: never chosen


def _numbers(table: pd.DataFrame, *names: str) -> list[np.ndarray]:
    """Columns as floats; a cell an op does not use may hold filler text, which becomes NaN."""
    return [pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=float) for name in names]


def _tokens(values: pd.Series) -> np.ndarray:
    """Elements of a GNA layout written as ``32768`` or ``16x16x16``; NaN where it is not one."""
    def product(text):
        try:
            return float(math.prod(int(x) for x in str(text).split("x")))
        except ValueError:
            return np.nan
    return values.map(product).to_numpy(dtype=float)


def size_of(table: pd.DataFrame) -> np.ndarray:
    """A size per row for the error-vs-size plot: FLOPs of the op's matmuls where the columns allow it (GNA:
    4 x heads x tokens x window x head_dim, the window's full score count)."""
    size = np.full(len(table), np.nan)
    cols = set(table.columns)
    if {"m", "n", "k"} <= cols:
        m, n, k = _numbers(table, "m", "n", "k")
        size = np.where(table["op"] == "gemm", 2.0 * m * n * k, size)
    if {"batch", "heads", "seq_q", "seq_kv", "head_dim"} <= cols:
        b, h, sq, skv, d = _numbers(table, "batch", "heads", "seq_q", "seq_kv", "head_dim")
        size = np.where(table["op"].isin(["sdpa", "attention_unfused", "spatial"]), 4.0 * b * h * sq * skv * d, size)
    if {"shape", "window", "heads", "head_dim"} <= cols:
        h, d = _numbers(table, "heads", "head_dim")
        gna = 4.0 * h * _tokens(table["shape"]) * _tokens(table["window"]) * d
        size = np.where(table["op"] == "gna", gna, size)
    return size


def trace_plots(table: pd.DataFrame, out: str | Path, stem: str) -> list[Path]:
    """Predicted against measured (log-log, with the y = x line) and, where the rows give sizes, error against
    size, per op."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    def finish(fig, ax, xlabel, ylabel, name):
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=120)
        return folder / name

    fig, ax = plt.subplots(figsize=(5, 5))
    for op, part in table.groupby("op"):
        ax.scatter(part["measured_s"], part["predicted_s"], s=12, label=op)
    low, high = table[["measured_s", "predicted_s"]].min().min(), table[["measured_s", "predicted_s"]].max().max()
    ax.plot([low, high], [low, high], color="k", linewidth=0.8)
    ax.set_yscale("log")
    first = finish(fig, ax, "measured time (s)", "predicted time (s)", f"{stem}_predicted_vs_measured.png")
    sizes = size_of(table)
    if not np.isfinite(sizes).any():          # no column gives a size (e.g. spatial rows name only the model)
        plt.close("all")
        return [first]
    fig, ax = plt.subplots(figsize=(6, 4))
    for op in table["op"].unique():
        mask = (table["op"] == op).to_numpy() & np.isfinite(sizes)
        if mask.any():
            ax.scatter(sizes[mask], 100 * table["error"].to_numpy()[mask], s=12, label=op)
    ax.axhline(0, color="k", linewidth=0.8)
    second = finish(fig, ax, "size (matmul FLOPs)", "prediction error (%)", f"{stem}_error_vs_size.png")
    plt.close("all")
    return [first, second]
