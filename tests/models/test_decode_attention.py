"""Decode kernels: parallelism by hand (the issue's 132-SM case), split choice, and cache bytes by hand."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

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
    assert split["time_s"] < fa2["time_s"] / 10
    assert lean["time_s"] <= split["time_s"] * 1.001      # both saturate HBM; lean writes a few more partials


def _fa2_splits(units, n_blocks, sms):
    """FlashAttention-2's num_splits_heuristic (flash_api.cpp) written out as its loops, scalar by scalar, in its
    arithmetic: the waves and efficiencies are C floats (single precision), 0.85 x the best a double."""
    f32 = np.float32
    slots = 2 * sms
    if f32(units) >= f32(0.8) * f32(slots):
        return 1
    top = min(128, slots, n_blocks)
    eligible = [k == 1 or math.ceil(n_blocks / k) != math.ceil(n_blocks / (k - 1)) for k in range(1, top + 1)]
    eff = [f32(units * k) / f32(slots) / f32(math.ceil(f32(units * k) / f32(slots))) if ok else f32(0.0)
           for k, ok in zip(range(1, top + 1), eligible)]
    best = max(eff)
    return next(k for k, ok in zip(range(1, top + 1), eligible) if ok and float(eff[k - 1]) >= 0.85 * float(best))


def test_auto_splits_follow_flashattention_2_heuristic_by_hand():
    # 8 heads over 512 K/V blocks on 132 SMs (264 slots of two blocks each): efficiency 8k/264 until k = 33,
    # which, like 66 and 99 (the counts filling whole waves), is not eligible (ceil(512/33) = ceil(512/32) = 16).
    # The best is 0.97 (k = 32, 64, 128); 85 % of it is 0.824: k = 28 gives 0.848 but repeats 27's 19-block chunks,
    # so k = 29 (0.879) is the smallest eligible count
    assert auto_splits(np.array(8.0), np.array(512.0), 132) == 29
    # 32 heads over 32 blocks: 7 splits (224 of 264 slots, 0.848 >= 0.85 x 0.97; 6 gives 0.727)
    assert auto_splits(np.array(32.0), np.array(32.0), 132) == 7
    # 212 units fill 80 % of the 264 slots: one split, however few SMs the grid covers
    assert auto_splits(np.array(212.0), np.array(4096.0), 132) == 1
    # never more splits than K/V blocks
    assert auto_splits(np.array(1.0), np.array(4.0), 132) <= 4
    # ties at 85 % of the best fall as in single precision: 61 units over 120 blocks on 108 SMs (double precision
    # would keep 3 splits, 0.847 of the slots), 5 units over 200 blocks (double: 34)
    assert auto_splits(np.array(61.0), np.array(120.0), 108) == _fa2_splits(61, 120, 108) == 7
    assert auto_splits(np.array(5.0), np.array(200.0), 108) == _fa2_splits(5, 200, 108) == 40


@settings(max_examples=200, deadline=None)
@given(units=st.integers(1, 300), n_blocks=st.integers(1, 2048), sms=st.sampled_from([78, 108, 114, 132, 148]))
def test_auto_splits_match_the_heuristic_loops(units, n_blocks, sms):
    assert auto_splits(np.array(float(units)), np.array(float(n_blocks)), sms) == _fa2_splits(units, n_blocks, sms)


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
    # H100, 8 x 32 heads (8 KV heads), 32K context, head dim 128, 128-key tiles, by hand:
    # per tile the 64-row split-KV Q block (4 real rows) costs 64*128*256 MACs at 989.4e12/2 * 0.73 * 0.667 / 132
    # MAC/s per SM, plus 64*129 exps (one per score, one rescale per row) at 3.87e12/132 and 4*64*128 + 64*128
    # other ops (softmax; O rescale) at 33.45e12/132; lean deals
    # ceil(8*8*256/132) = 125 tiles to the busiest SM. The cache (1.07 GB) over 3.35 TB/s takes longer.
    r = decode_forward(load_hardware("h100"), batch=8, heads=32, kv_heads=8, seq_kv=32768, head_dim=128,
                       kernel="lean")
    tile = (64 * 128 * 256 / (989.4e12 / 2 * 0.73 * 0.667 / 132) + 64 * 129 / (16 * 132 * 1.83e9 / 132)
            + (4 * 64 * 128 + 64 * 128) / (66.9e12 / 2 / 132))
    assert r["compute_s"] == pytest.approx(125 * tile, rel=1e-3)
    assert r["hbm_s"] > r["compute_s"]
    assert r["time_s"] == pytest.approx(r["bytes_dram"] / 3.35e12)


def test_flash2_decode_computes_padded_q_blocks_on_few_sms():
    # A100, batch 1, 8 heads, 64K context, head dim 128: 8 blocks, each runs its 512 K/V tiles on a 128-row Q
    # block of which 1 row is real. Per tile: 128*128*256 MACs at 312e12/2 * 0.73 / 108 MAC/s per SM, 128*129 exps
    # at 16 per clock per SM (1.41 GHz), 4*128*128 + 128*128 other ops at 19.5e12/2/108.
    a100 = load_hardware("a100")
    r = decode_forward(a100, batch=1, heads=8, kv_heads=8, seq_kv=65536, head_dim=128, kernel="flash2")
    tile = (128 * 128 * 256 / (312e12 / 2 * 0.73 / 108) + 128 * 129 / (16 * 1.41e9)
            + 5 * 128 * 128 / (19.5e12 / 2 / 108))
    assert r["compute_s"] == pytest.approx(512 * tile, rel=1e-3)
    assert r["time_s"] == r["compute_s"]


def _lean_gain(heads, ctx):
    a100 = load_hardware("a100")
    grid = dict(batch=1, heads=heads, kv_heads=heads, seq_kv=ctx, head_dim=128)
    return decode_forward(a100, kernel="flash2", **grid)["time_s"] / decode_forward(a100, kernel="lean", **grid)["time_s"]


def test_lean_speedup_over_flash2_direction_and_range_at_512k():
    """Lean Attention (Sanovar et al. 2024, via reference/flash.md): up to 8.33x over FlashAttention-2 at 512K
    context on A100. The reference names no head count or batch, so this checks the direction everywhere (Lean
    never slower, its gain largest where batch x heads leaves most SMs idle) and that the published 8.33x lies
    within the model's range over batch 1 and 8-64 heads at 512K."""
    heads = np.array([8, 16, 32, 64, 128])[:, None]
    gain = _lean_gain(heads, np.array([1024, 8192, 65536, 524288])[None, :])
    assert np.all(gain >= 1.0)
    assert np.all(np.diff(gain[:, -1]) <= 1e-4 * gain[:-1, -1]) and gain[-1, -1] < gain[0, -1] / 3
    assert gain[:4, -1].min() < 8.33 < gain[:4, -1].max()


@pytest.mark.xfail(strict=True, reason="16 heads gives 10.9x against the published 8.33x (+31 %); the reference "
                                       "gives no configuration to pin the comparison to")
def test_lean_speedup_over_flash2_at_512k_size():
    assert _lean_gain(16, 524288) == pytest.approx(8.33, rel=0.30)


def test_split_blocks_share_sms_in_one_wave_by_hand():
    # A100 (108 SMs, 216 slots), batch 1, 8 heads, 64K keys, head dim 128: 512 K/V blocks of 128; 27 splits fill the
    # slots exactly (eligible: ceil(512/27) = 19 != 20), so 85 % of 1.0 asks for 8k >= 183.6: 23 splits, 184
    # blocks. A 64-row split block holds Q (64 x 128) and one K/V tile (128 x 256) in bf16 = 81 920 B of shared
    # memory, so an SM (167 936 B) holds 2: the 184 blocks run in one wave, and the busiest SM streams two at once
    a100 = load_hardware("a100")
    r = decode_forward(a100, batch=1, heads=8, kv_heads=8, seq_kv=65536, head_dim=128, kernel="flashdecoding")
    assert r["splits"] == 23 and r["thread_blocks"] == 184
    assert r["smem_bytes_per_block"] == 81920 and r["blocks_per_sm"] == 2 and r["waves"] == 1
    # Little's law per SM: two blocks x 64 KiB of K/V tiles in flight over 330 ns (A100 YAML)
    busiest_bytes = r["bytes_dram"] * 2 * 23 / (8 * 512)        # 2 blocks of ceil(512/23) = 23 tiles of 8 x 512
    assert r["hbm_s"] == pytest.approx(max(r["bytes_dram"] / 2.039e12,
                                           busiest_bytes / (2 * 128 * 256 * 2 / 330e-9)), rel=1e-9)
    # each of the 8 x 23 splits writes its query row's fp32 partial O (128 x 4 B), max and sum (4 B each), which
    # the combine kernel reads back before writing o
    partials = 8 * 23 * (128 * 4 + 2 * 4)
    assert r["bytes_dram_written"] == 8 * 128 * 2 + partials
    assert r["bytes_dram_read"] == 8 * 65536 * 256 * 2 + 8 * 128 * 2 + partials


def test_one_split_moves_no_partials_and_many_groups_fill_several_q_blocks():
    h100 = load_hardware("h100")
    # 64 x 8 KV heads = 512 units >= 0.8 x 264 slots: one split, so FlashAttention-2 runs its unsplit kernel and
    # writes no fp32 partials: the split kernel's bytes equal flash2's
    args = dict(batch=64, heads=32, kv_heads=8, seq_kv=4096, head_dim=128)
    split = decode_forward(h100, kernel="flashdecoding", **args)
    assert split["splits"] == 1 and split["bytes_dram"] == decode_forward(h100, kernel="flash2", **args)["bytes_dram"]
    # 64 x 8 K/V heads of 4096 x 256 bf16 read; 64 x 32 query rows of 128 read (q) and written (o)
    assert split["bytes_dram_read"] == 64 * 8 * 4096 * 256 * 2 + 64 * 32 * 128 * 2
    assert split["bytes_dram_written"] == 64 * 32 * 128 * 2
    # 128 query heads on one KV head: two 64-row Q blocks per (batch, kv head); 8192 keys in 64 blocks of 128,
    # 2 units over 264 slots: 64 splits (eligible, 128 / 264 = 0.485 the best) -> 2 x 64 blocks
    mqa = decode_forward(h100, batch=1, heads=128, kv_heads=1, seq_kv=8192, head_dim=128, kernel="flashdecoding")
    assert mqa["q_block_rows"] == 64 and mqa["splits"] == 64 and mqa["thread_blocks"] == 128


@pytest.mark.parametrize("change, fragment", [
    ({"kv_heads": 0}, "kv_heads: expected a positive integer, got 0"),
    ({"splits": -2}, "splits: expected a positive integer, got -2"),
    ({"block_kv": 0}, "block_kv: expected a positive integer, got 0"),
    ({"kernel": "bogus"}, "unknown decode kernel 'bogus'"),
    ({"dtype": "int4"}, "unknown dtype 'int4'"),
])
def test_decode_api_names_bad_input(change, fragment):
    from simlib.errors import SimlibInputError
    args = {**dict(batch=1, heads=8, kv_heads=8, seq_kv=4096, head_dim=128), **change}
    with pytest.raises(SimlibInputError, match=fragment):
        decode_forward(load_hardware("a100"), **args)
