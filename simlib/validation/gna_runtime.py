"""Predicted GNA kernel times against NATTEN's published H100 measurements (1-D, 32768 tokens), one row per
measurement with the relative error."""
from __future__ import annotations

import pandas as pd

from simlib.hardware.catalog import load_hardware
from simlib.models.gna import predict_gna
from simlib.validation.published import read_table

DATA = "gna_h100_1d.csv"
TOKENS = 32768


def gna_runtime_table(hardware: str = "h100", dtype: str = "bf16") -> pd.DataFrame:
    hw = load_hardware(hardware)
    table = read_table(DATA).astype({"window": int, "stride": int, "measured_us": float})
    predicted = [predict_gna(hw, shape=(TOKENS,), window=(row.window,), stride=(row.stride,), head_dim=128,
                             dtype=dtype) for row in table.itertuples()]
    table["predicted_us"] = [p["time_s"] * 1e6 for p in predicted]
    table["tiles_per_q_tile"] = [p["max_tiles"] for p in predicted]
    table["fully_block_sparse"] = [p["fully_block_sparse"] for p in predicted]
    table["error"] = table["predicted_us"] / table["measured_us"] - 1
    return table
