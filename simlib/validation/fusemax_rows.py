"""Predicted latency, energy, utilization and DRAM traffic of the unfused, FLAT and FuseMax designs against
the FuseMax artifact's rows (shipped in simlib/validation/data), one row per (model, sequence length) with the
relative error of every quantity."""
from __future__ import annotations

import pandas as pd

from simlib.models.spatial_cli import run_design
from simlib.validation.published import read_table

DATA = "fusemax_artifact.csv"
QUANTITIES = {  # column -> (design, how to read it from a prediction)
    "unfused_s": ("unfused", lambda r: r["time_s"]), "flat_s": ("flat", lambda r: r["time_s"]),
    "fusemax_s": ("fusemax", lambda r: r["time_s"]), "flat_j": ("flat", lambda r: r["energy_j"]),
    "fusemax_j": ("fusemax", lambda r: r["energy_j"]),
    "flat_util_2d": ("flat", lambda r: r["utilization"]["pe_2d"]),
    "flat_util_1d": ("flat", lambda r: r["utilization"]["pe_1d"]),
    "fusemax_util_2d": ("fusemax", lambda r: r["utilization"]["pe_2d"]),
    "fusemax_util_1d": ("fusemax", lambda r: r["utilization"]["pe_1d"]),
    "flat_gb": ("flat", lambda r: r["bytes"]["dram"] / 1e9), "fusemax_gb": ("fusemax", lambda r: r["bytes"]["dram"] / 1e9),
}


def fusemax_table(hardware: str | None = None) -> pd.DataFrame:
    """Long format: model, seq, quantity, published, predicted, error. ``hardware`` is ignored: each design runs
    on its own YAML, as in the artifact."""
    published = read_table(DATA)
    rows = []
    for row in published.itertuples():
        params = {"model": row.model, "seq_q": int(row.seq), "seq_kv": int(row.seq), "batch": 64, "dtype": "fp16"}
        runs = {d: run_design(d, params) for d in ("unfused", "flat", "fusemax")}
        for column, (design, read) in QUANTITIES.items():
            value, expected = read(runs[design]), float(getattr(row, column))
            rows.append({"model": row.model, "seq": int(row.seq), "quantity": column, "published": expected,
                         "predicted": value, "error": value / expected - 1})
    return pd.DataFrame(rows)
