"""Predicted against published forward TFLOP/s of FlashAttention-2 and -3 on H100 (the FlashAttention-3 paper's
benchmark grid, kept as a trace in traces/published), one row per published bar, with the relative error.

The published FLOP count is 4 · seq² · head_dim · heads · batch, halved when causal; the prediction uses the
same count over the model's time, so only the time is compared. Tiles are chosen as ``simlib predict attention``
chooses them: the kernels' own launch-template tiles, as the measured kernels ran.
"""
from __future__ import annotations

import pandas as pd

from simlib.hardware.catalog import load_hardware
from simlib.models.attention_cli import predict_attention
from simlib.validation.traces import TRACE_DIR, is_true, read_trace

TRACE = "published/flash-h100-fa3-paper.csv"
TOTAL_TOKENS = 16384
HIDDEN = 2048


def published_throughput() -> pd.DataFrame:
    """The FlashAttention-3 paper's bars (traces/published): kernel, head_dim, causal, seq, published_tflops."""
    _, trace = read_trace(TRACE_DIR / TRACE)
    return pd.DataFrame({"kernel": trace["backend"], "head_dim": trace["head_dim"].astype(int),
                         "causal": is_true(trace["causal"]), "seq": trace["seq_q"].astype(int),
                         "published_tflops": trace["published_tflops"].astype(float)})


def throughput_table(hardware: str = "h100", dtype: str = "bf16") -> pd.DataFrame:
    hw = load_hardware(hardware)
    table = published_throughput()
    predicted = []
    for row in table.itertuples():
        batch, heads = TOTAL_TOKENS // row.seq, HIDDEN // row.head_dim
        result = predict_attention(hw, {"batch": batch, "heads": heads, "seq": row.seq, "head_dim": row.head_dim,
                                        "dtype": dtype, "causal": bool(row.causal), "kernel": row.kernel})
        flops = 4 * row.seq ** 2 * row.head_dim * heads * batch / (2 if row.causal else 1)
        predicted.append((batch, heads, flops / result["time_s"] / 1e12, result["block_q"], result["block_kv"],
                          result["bound"]))
    extra = pd.DataFrame(predicted, columns=["batch", "heads", "predicted_tflops", "block_q", "block_kv", "bound"])
    table = pd.concat([table.reset_index(drop=True), extra], axis=1)
    table["tflops_error"] = table["predicted_tflops"] / table["published_tflops"] - 1
    return table
