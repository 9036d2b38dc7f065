"""Decode-phase attention on GPUs: one new token per sequence against a long KV cache, vectorized.

With grouped-query attention the g = heads / kv_heads query heads sharing a KV head form one Q tile, so the
natural grid has batch × kv_heads thread blocks — often far fewer than SMs (reference/flash.md, FlashDecoding).

* ``flash2`` — one block per (batch, kv head) streams the whole cache.
* ``flashdecoding`` — split-KV: the cache of each (batch, kv head) is cut into ``splits`` chunks processed by
  separate blocks, then a reduction kernel rescales the partial results by their maxima and sums them.
  Automatic splits: FlashAttention-2's own heuristic, see :func:`auto_splits`.
* ``lean`` — Lean Attention (Sanovar et al. 2024): the (batch, kv head, K/V tile) work units are dealt out
  stream-K style, an equal share to every SM; heads cut across SMs are fixed up by the associative softmax
  reduction.

Memory time: the whole grid cannot beat the HBM bandwidth, and one SM cannot pull more than it keeps in flight
over the DRAM latency (Little's law): a block streaming the cache keeps one K tile and one V tile
(block_kv × (d + dv) × s bytes) in flight, so per_sm_bw = that × the blocks streaming on the SM at once (as many
as its shared memory and registers hold, at most those dealt to it) / latency. The busiest SM's bytes over that rate
is a second floor, which is what leaves FlashAttention-2 slow when batch × kv_heads is far below the SM count.
Without a latency in the YAML an SM is assumed to pull its 1/SMs share. Compute is quantized per SM as in
flash_attention.
"""
from __future__ import annotations

import numpy as np

from simlib.dtypes import dtype_bytes
from simlib.hardware.schema import HardwareSpec
from simlib.models.flash_attention import STATS_BYTES, check_inputs, sram_per_block, tile_seconds

DECODE_KERNELS = ("flash2", "flashdecoding", "lean")
MAX_SPLITS = 128
# Q block rows the kernels' matrix instructions run on, whatever number of query rows is real: FlashAttention-2's
# forward kernel uses 128-row Q blocks for head dims up to 128, its split-KV kernel (and kernels built from it)
# 64-row blocks (flash-attention sources, kernel traits). A decode query has 1 row per head (g with GQA packing),
# so the rest is padding the tensor cores compute anyway.
Q_BLOCK_ROWS = {"flash2": 128, "split": 64}


# The split-KV heuristic's constants (FlashAttention-2, flash_api.cpp: num_splits_heuristic and
# set_params_splitkv, which PyTorch's flash SDPA backend also runs): two blocks of its 128-thread split kernel per
# SM, at most 128 splits, one split when the blocks already fill 80 % of those slots, and the K/V block its split
# kernel streams (256 keys for head dims up to 64, 128 up to 128, 64 beyond).
SPLIT_BLOCKS_PER_SM = 2
SPLIT_FILL_FRACTION = 0.8
SPLIT_EFFICIENCY_FRACTION = 0.85


def split_block_kv(head_dim):
    """Keys per K/V block of FlashAttention-2's split-KV kernel for a head dim (its kBlockN)."""
    d = np.asarray(head_dim)
    return np.select([d <= 64, d <= 128], [256, 128], 64)


def auto_splits(units, tiles, sms):
    """FlashAttention-2's split count for ``units`` = batch x kv heads x 64-row Q blocks over ``tiles`` K/V blocks.

    With slots = 2 blocks per SM x SMs: one split when units >= 0.8 slots; else, over the eligible counts
    1..min(128, slots, tiles) (a count is eligible when it changes ceil(tiles / count), so no two counts give
    the same chunks), the wave efficiency w / ceil(w) with w = units x count / slots, and the smallest count
    within 85 % of the best (flash_api.cpp, num_splits_heuristic). The efficiencies are single-precision floats
    there, compared against 0.85 x the best in double precision; so here, so that ties fall the same way."""
    units = np.asarray(units, dtype=float)[..., None]
    tiles = np.asarray(tiles, dtype=float)[..., None]
    slots = SPLIT_BLOCKS_PER_SM * sms
    counts = np.arange(1, MAX_SPLITS + 1, dtype=float).reshape((1,) * (units.ndim - 1) + (-1,))
    allowed = (counts <= np.minimum(slots, tiles)) & (
        (counts == 1) | (np.ceil(tiles / counts) != np.ceil(tiles / np.maximum(counts - 1, 1))))
    waves = (units * counts).astype(np.float32) / np.float32(slots)
    efficiency = np.where(allowed, waves / np.ceil(waves), np.float32(0.0)).astype(np.float64)
    good = efficiency >= SPLIT_EFFICIENCY_FRACTION * efficiency.max(axis=-1, keepdims=True)
    chosen = np.argmax(good & allowed, axis=-1) + 1.0
    filled = units[..., 0].astype(np.float32) >= np.float32(SPLIT_FILL_FRACTION) * np.float32(slots)
    return np.where(filled, 1.0, chosen)


def decode_forward(hw: HardwareSpec, *, batch, heads, kv_heads, seq_kv, head_dim, head_dim_v=None,
                   dtype="bf16", kernel="flashdecoding", block_kv=None, splits=None) -> dict[str, np.ndarray]:
    """Predict one decode step; every numeric argument may be a numpy array. ``block_kv`` defaults to the K/V
    block of FlashAttention-2's split kernel for the larger head dim (:func:`split_block_kv`); ``splits``
    (flashdecoding) to FlashAttention-2's heuristic (:func:`auto_splits`).

    The g = heads / kv_heads query rows of a (batch, kv head) fill Q blocks of Q_BLOCK_ROWS rows (more than one
    when g exceeds it, FlashAttention-2's grid of Q blocks x splits x batch x kv heads); the Q blocks of one KV
    head run side by side and share its cache through L2, so the cache leaves HBM once."""
    head_dim_v = head_dim if head_dim_v is None else head_dim_v
    block_kv = split_block_kv(np.maximum(head_dim, head_dim_v)) if block_kv is None else block_kv
    b, h, hk, n, d, dv, bkv, kernel = (np.asarray(a) for a in np.broadcast_arrays(
        batch, heads, kv_heads, seq_kv, head_dim, head_dim_v, block_kv, np.asarray(kernel)))
    sizes = {"batch": b, "heads": h, "kv_heads": hk, "seq_kv": n, "head_dim": d, "head_dim_v": dv, "block_kv": bkv}
    check_inputs({**sizes, **({"splits": splits} if splits is not None else {})}, kernel, DECODE_KERNELS,
                 "decode kernel")
    s = dtype_bytes(dtype)
    sms = hw.processors.count
    g = h // hk                                   # query heads per KV head: rows of its Q blocks
    groups = (b * hk).astype(np.float64)
    tiles = np.ceil(n / bkv)
    # every tile runs the matrix instructions on a whole Q block, padded rows included (Q_BLOCK_ROWS)
    rows = np.where(kernel == "flash2", Q_BLOCK_ROWS["flash2"], Q_BLOCK_ROWS["split"])
    units = groups * np.ceil(g / rows)            # (batch, kv head, Q block) triples
    if splits is None:
        split = auto_splits(groups * np.ceil(g / Q_BLOCK_ROWS["split"]), np.ceil(n / split_block_kv(d)), sms)
    else:
        split = np.broadcast_to(np.asarray(splits), groups.shape)
    split = np.where(kernel == "flashdecoding", np.minimum(split, tiles), 1)

    cache = groups * n * (d + dv) * s
    # fp32 partial O, max and sum per real query row and split, written and read back by the combine kernel;
    # with one split no partials are written and no combine kernel runs (the split kernel writes O directly)
    partials = np.where(split > 1, groups * split * g * (dv * 4 + 2 * STATS_BYTES), 0)
    lean_units = units * tiles
    lean_partials = np.minimum(sms, lean_units) * np.minimum(g, rows) * (dv * 4 + 2 * STATS_BYTES)
    extra = np.select([kernel == "flashdecoding", kernel == "lean"], [2 * partials, 2 * lean_partials], 0)
    hbm_read = cache + groups * g * d * s + extra / 2                    # K/V and q read, partials read back
    hbm_written = groups * g * dv * s + extra / 2                        # o and the partials written
    hbm = hbm_read + hbm_written

    blocks = np.where(kernel == "lean", np.minimum(sms, lean_units), units * split)
    active = np.minimum(blocks, sms)
    # K/V tiles on the busiest SM: flash2 / flashdecoding deal whole blocks, lean deals tiles evenly
    tiles_per_block = np.where(kernel == "flashdecoding", np.ceil(tiles / split), tiles)
    busiest_tiles = np.where(kernel == "lean", np.ceil(lean_units / sms),
                             np.ceil(blocks / sms) * tiles_per_block)
    busiest_share = busiest_tiles / lean_units
    tile_s = tile_seconds(hw, dtype, "flash2", rows, bkv, d, dv)
    compute_s = busiest_tiles * tile_s
    macs = groups * g * n * (d + dv)
    hbm_bw = hw.dram.bandwidth_bytes_per_s
    smem, regs = sram_per_block("flash2", rows, bkv, d, dv, s)
    # blocks one SM holds at once (shared memory and registers); Lean runs one persistent block per SM
    resident = np.maximum(1, np.minimum(np.floor_divide(hw.level("smem").capacity_bytes, smem),
                                        np.floor_divide(hw.level("registers").capacity_bytes, regs)))
    resident = np.where(kernel == "lean", 1, resident)
    in_flight = np.minimum(resident, np.ceil(blocks / sms))        # blocks streaming on the busiest SM at once
    if hw.dram.latency_ns:
        per_sm_bw = np.minimum(in_flight * bkv * (d + dv) * s / (hw.dram.latency_ns * 1e-9), hbm_bw)
    else:
        per_sm_bw = hbm_bw / sms
    hbm_s = np.maximum(hbm / hbm_bw, hbm * busiest_share / per_sm_bw)
    time_s = np.maximum(compute_s, hbm_s)
    q_rows = units * rows                               # Q rows computed, padded ones included
    return {"time_s": time_s, "bytes_dram": hbm, "bytes_dram_read": hbm_read, "bytes_dram_written": hbm_written,
            "flops": 2 * macs, "thread_blocks": blocks,
            "active_sms": active, "splits": split, "blocks_per_sm": resident,
            "waves": np.ceil(blocks / (sms * resident)), "compute_s": compute_s, "hbm_s": hbm_s,
            "tflops": 2 * macs / time_s / 1e12, "q_block_rows": rows, "block_kv": bkv,
            "smem_bytes_per_block": smem, "register_bytes_per_block": regs,
            "exp_ops": q_rows * (n + tiles), "other_ops": q_rows * (4 * n + dv * tiles)}
