"""Predicted GNA kernel times against NATTEN's published H100 measurements (1-D, 32768 tokens; a trace in
traces/published), one row per measurement with the relative error.

Each row is predicted as ``simlib predict gna`` predicts its settings (the trace's shape, window, stride, heads,
head dim and dtype through ``gna_parameters``), so a part the model cannot run (no FMHA tile, tiles that do
not fit) is the same input error, naming the trace and row, as ``simlib validate`` on the trace file gives.
"""
from __future__ import annotations

import pandas as pd

from simlib.errors import SimlibInputError
from simlib.hardware.catalog import load_hardware
from simlib.models.gna import predict_gna
from simlib.models.gna_cli import gna_parameters
from simlib.validation.traces import TRACE_DIR, read_trace

TRACE = "published/gna-h100-natten.csv"


def gna_runtime_table(hardware: str = "h100", dtype: str | None = None) -> pd.DataFrame:
    """Per measured case: window, stride, measured and predicted µs, the most KV tiles a Q tile visits, whether
    the mask is fully block-sparse, and the error (predicted / measured − 1). ``dtype`` overrides the trace's."""
    hw = load_hardware(hardware)
    _, trace = read_trace(TRACE_DIR / TRACE)
    predicted = []
    for number, row in enumerate(trace.itertuples(), start=1):
        settings = {"shape": str(row.shape), "window": str(row.window), "stride": str(row.stride),
                    "heads": int(row.heads), "head_dim": int(row.head_dim), "dtype": dtype or row.dtype}
        try:
            predicted.append(predict_gna(hw, **gna_parameters(hw, settings)))
        except SimlibInputError as exc:       # named as validate_trace names a row's model error
            raise SimlibInputError(str(TRACE_DIR / TRACE), f"row {number}",
                                   "gna: " + ": ".join(p for p in (exc.field, exc.message) if p)) from None
    table = pd.DataFrame({"case": trace["case"], "window": trace["window"].astype(int),
                          "stride": trace["stride"].astype(int), "measured_us": trace["measured_s"] * 1e6})
    table["predicted_us"] = [p["time_s"] * 1e6 for p in predicted]
    table["tiles_per_q_tile"] = [p["max_tiles"] for p in predicted]
    table["fully_block_sparse"] = [p["fully_block_sparse"] for p in predicted]
    table["error"] = table["predicted_us"] / table["measured_us"] - 1
    return table
