"""Decode kernels: parallelism by hand (the issue's 132-SM case), split choice, and cache bytes by hand."""
import numpy as np
import pytest

from simlib.hardware import load_hardware
from simlib.models.decode_attention import auto_splits, decode_forward


def test_flash2_decode_uses_at_most_batch_times_kv_heads_sms_and_split_kv_restores_it():
    h100 = load_hardware("h100")          # 132 SMs
    args = dict(batch=1, heads=8, kv_heads=8, seq_kv=65536, head_dim=128)
    fa2 = decode_forward(h100, kernel="flash2", **args)
    split = decode_forward(h100, kernel="flashdecoding", **args)
    lean = decode_forward(h100, kernel="lean", **args)
    assert fa2["active_sms"] <= 8
    assert split["active_sms"] >= 0.9 * 132 and lean["active_sms"] == 132
    assert split["time_s"] < fa2["time_s"] and lean["time_s"] <= split["time_s"]


def test_auto_splits_by_wave_efficiency_by_hand():
    # 8 groups on 132 SMs: the best efficiency is 1.0 (33 splits, 264 blocks = 2 full waves); 14 splits give
    # 112/132 = 0.848 < 0.85, 15 give 120/132 = 0.909: 15 is the smallest within 85 % of the best
    assert auto_splits(np.array(8.0), np.array(512.0), 132) == 15
    # 200 groups: the same rule enumerated here independently of the vectorized implementation
    best = max(200 * k / (np.ceil(200 * k / 132) * 132) for k in range(1, 129))
    expected = next(k for k in range(1, 129) if 200 * k / (np.ceil(200 * k / 132) * 132) >= 0.85 * best)
    assert auto_splits(np.array(200.0), np.array(512.0), 132) == expected
    # never more splits than K/V tiles
    assert auto_splits(np.array(1.0), np.array(4.0), 132) <= 4


def test_decode_bytes_are_the_cache_plus_partials_by_hand():
    a100 = load_hardware("a100")
    b, h, hk, n, d, s = 2, 32, 8, 131072, 128, 2
    fa2 = decode_forward(a100, batch=b, heads=h, kv_heads=hk, seq_kv=n, head_dim=d, kernel="flash2")
    # K and V of every (batch, kv head) once, plus q read and o written for each query head
    assert fa2["bytes_dram"] == b * hk * n * 2 * d * s + b * h * 2 * d * s
    split = decode_forward(a100, batch=b, heads=h, kv_heads=hk, seq_kv=n, head_dim=d, kernel="flashdecoding",
                           splits=4)
    partial = b * hk * 4 * (h // hk) * (d * 4 + 8)      # fp32 partial O, max and sum per split, written + read
    assert split["bytes_dram"] == fa2["bytes_dram"] + 2 * partial


def test_decode_is_memory_bound_on_gpus():
    r = decode_forward(load_hardware("h100"), batch=8, heads=32, kv_heads=8, seq_kv=32768, head_dim=128,
                       kernel="lean")
    assert r["hbm_s"] > r["compute_s"]
    assert r["time_s"] == pytest.approx(r["bytes_dram"] / 3.35e12 * 132 * np.ceil(8 * 8 * 256 / 132) / (8 * 8 * 256))
