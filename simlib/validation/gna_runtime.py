"""Predicted GNA kernel times against NATTEN's published H100 measurements (1-D, 32768 tokens; a trace in
traces/published), one row per measurement with the relative error."""
from __future__ import annotations

import pandas as pd

from simlib.hardware.catalog import load_hardware
from simlib.models.gna import predict_gna
from simlib.validation.traces import TRACE_DIR, read_trace

TRACE = "published/gna-h100-natten.csv"
TOKENS = 32768


def gna_runtime_table(hardware: str = "h100", dtype: str = "bf16") -> pd.DataFrame:
    hw = load_hardware(hardware)
    _, trace = read_trace(TRACE_DIR / TRACE)
    table = pd.DataFrame({"case": trace["case"], "window": trace["window"].astype(int),
                          "stride": trace["stride"].astype(int), "measured_us": trace["measured_s"] * 1e6})
    predicted = [predict_gna(hw, shape=(TOKENS,), window=(row.window,), stride=(row.stride,), head_dim=128,
                             dtype=dtype) for row in table.itertuples()]
    table["predicted_us"] = [p["time_s"] * 1e6 for p in predicted]
    table["tiles_per_q_tile"] = [p["max_tiles"] for p in predicted]
    table["fully_block_sparse"] = [p["fully_block_sparse"] for p in predicted]
    table["error"] = table["predicted_us"] / table["measured_us"] - 1
    return table
