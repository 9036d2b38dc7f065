"""Predicted latency, energy, utilization and DRAM traffic of the unfused, FLAT and FuseMax designs against
the FuseMax artifact's rows (a trace in traces/published), one row per (model, sequence length, quantity) with
the relative error."""
from __future__ import annotations

import pandas as pd

from simlib.models.spatial_cli import run_design
from simlib.validation.traces import TRACE_DIR, read_trace

TRACE = "published/fusemax-artifact.csv"
READERS = {"s": lambda r: r["time_s"], "j": lambda r: r["energy_j"], "util_2d": lambda r: r["utilization"]["pe_2d"],
           "util_1d": lambda r: r["utilization"]["pe_1d"], "gb": lambda r: r["bytes"]["dram"] / 1e9}
COLUMNS = {"s": "measured_s", "j": "energy_j", "util_2d": "util_2d", "util_1d": "util_1d", "gb": "dram_gb"}


def fusemax_table(hardware: str | None = None) -> pd.DataFrame:
    """Long format: model, seq, quantity (design_quantity), published, predicted, error. ``hardware`` is ignored:
    each design runs on its own YAML, as in the artifact (``simlib validate fusemax`` refuses --hardware)."""
    _, trace = read_trace(TRACE_DIR / TRACE)
    rows = []
    for (model, seq), group in trace.groupby(["model", "seq_q"], sort=False):
        params = {"model": model, "seq_q": int(seq), "seq_kv": int(seq), "batch": 64, "dtype": "fp16"}
        for _, published in group.iterrows():
            run = run_design(published["backend"], params)
            for suffix, read in READERS.items():
                expected = published[COLUMNS[suffix]]
                if pd.isna(expected):
                    continue
                value = read(run)
                rows.append({"model": model, "seq": int(seq), "quantity": f"{published['backend']}_{suffix}",
                             "published": float(expected), "predicted": value, "error": value / float(expected) - 1})
    return pd.DataFrame(rows)
