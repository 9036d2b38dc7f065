"""Tile-level IO and occupancy model of GPU attention kernels (forward pass), vectorized over shapes and tiles.

Kernels, per head (nq queries, nkv keys, head dims d and dv, s bytes per element, fp32 softmax statistics):

* ``standard`` — unfused (Dao et al. 2022, Algorithm 0): S = QKᵀ written to HBM, each elementwise kernel over S
  (causal mask when causal, softmax) reads and writes nq·nkv, P read by the PV product.
  HBM = s·(nq·d + nkv·d + nkv·dv + nq·dv) + s·nq·nkv·(2 + 2·kernels), i.e. Θ(Nd + N²).
* ``flash1`` — FlashAttention (Dao et al. 2022, Algorithm 1): outer loop over K/V blocks, inner over Q blocks;
  K, V read once; every visited tile reads Q_i, O_i, ℓ_i, m_i and writes O_i, ℓ_i, m_i; O, ℓ, m initialised in
  HBM. One thread block per (batch, head). HBM = Θ(N²d²/M) with B_c = ⌈M/4d⌉.
* ``flash2`` — FlashAttention-2 (Dao 2023): outer loop over Q blocks, parallel over batch × heads × Q blocks;
  Q read once, K and V streamed once per visited tile, O and the log-sum-exp written once. The K/V streams of
  Q tiles of one head that run at the same time are served by L2 when the heads in flight fit there, and in the
  share of them L2 holds when they do not.
* ``flash3`` — FlashAttention-3 (Shah et al. 2024): flash2's IO with two K/V pipeline stages in shared memory
  and the softmax of one warpgroup overlapped with the GEMMs of the other (ping-pong).

Time: tensor-core MACs, SFU exps and other vector ops are summed over all thread blocks, every tile computed
whole (a Q block cut short by seq_q, or a K/V block by seq_kv, runs padded; a causal tile holding masked scores
also runs the mask, a compare and a select per score); on an SM a block's work is its
share, so compute time is quantized by waves over the SMs: t = t_total · SMs · ⌈blocks/SMs⌉ / blocks. An SM
pulls from DRAM at most the K/V tiles its resident blocks keep in flight over the latency (Little's law, as in
:mod:`simlib.models.decode_attention`), so a grid of few blocks cannot reach the HBM bandwidth.
flash1/flash2 issue warp-synchronous mma.sync, which on Hopper reaches only part of the peak (the YAML's
``warp_mma_fraction_of_peak``), and run softmax and GEMMs one after the other (compute = tensor + exp + vector).
flash3 issues wgmma; the ping-pong of two warpgroups hides the softmax arithmetic behind the other warpgroup's
GEMMs, but not the exps: the FlashAttention-3 paper's throughput across head dims 64/128/256 follows
tensor + exp, so compute = max(tensor, vector) + exp. Each visited tile streams its K/V block (flash1: its Q/O
block) from L2 into shared memory, and the tensor cores read the K/V operand from shared memory once per MMA row
tile (16 rows for mma.sync, 64 for wgmma; wgmma also reads Q there): those bytes over the L2 and shared-memory
bandwidths (where the YAML gives them) are roofs too. Time = max(compute, HBM, L2, shared memory), plus the
part of every block's prologue and epilogue (first Q and K/V loads, last O store: a DRAM round trip and the bytes
at the SM's share of bandwidth each) that the other blocks resident on its SM do not cover
(``_exposed_block_seconds``); FlashAttention-3 is one persistent block per SM whose producer warpgroup prefetches
the next Q tile, so it pays its consumers' pipeline fill and epilogue per tile instead. The tensor rate is
capped by a per-kernel efficiency ceiling from published measurements (see KERNEL_CEILING). Standard attention is
a sequence of kernels: the sum of each kernel's roofline (``_standard_kernel_seconds``).
"""
from __future__ import annotations

import numpy as np

from simlib.dtypes import dtype_bytes
from simlib.errors import SimlibInputError
from simlib.hardware.schema import HardwareSpec
from simlib.models.tile_counts import tile_counts

KERNELS = ("standard", "flash1", "flash2", "flash3")
TILE_CHOICES = (16, 32, 64, 128, 256)
STATS_BYTES = 4
MASK_OPS_PER_SCORE = 2          # the causal mask: one compare and one select per score of a masked tile
ACCUMULATOR_BYTES = 4

# Fraction of the tensor-core peak a kernel's matmuls reach at best, from published measurements:
#   flash2: 230 of 312 TFLOP/s on A100, forward (FlashAttention-2 paper, via reference/flash.md) -> 0.73 (with the
#     softmax added serially the model then gives ~52 % of the A100 peak at head dim 128, the low end of the
#     paper's 50-73 % range; on H100 it matches the FlashAttention-3 paper's FlashAttention-2 bars);
#   flash3: 740 of 989 TFLOP/s on H100, FP16 forward, head dim 256 (FlashAttention-3 paper, via
#     reference/flash.md). Per score element that run spends 4*256/740e12 = 1.384 ns; the exp takes
#     1/3.87e12 = 0.258 ns of it (flash3 does not hide the exp, below), leaving 1.126 ns for 4*256/989.4e12 =
#     1.035 ns of tensor work -> 0.92;
#   flash1: 25-40 % of A100 peak (FlashAttention-2 paper's statement about FlashAttention) -> 0.40;
#   standard: its GEMMs are cuBLAS calls; the 8192^3 bf16 matmul measured on H200 reaches 770-800 of 989
#   TFLOP/s (reference/hardware.md) -> 0.79.
KERNEL_CEILING = {"standard": 0.79, "flash1": 0.40, "flash2": 0.73, "flash3": 0.92}

# Rows of Q one matrix instruction covers, and so how often a K/V element is read from shared memory:
# mma.sync works on 16-row warp tiles (FlashAttention-1/2 split Q across warps, 16 rows each; Dao 2023 §3.3);
# wgmma on 64-row warpgroup tiles (FlashAttention-3). The smallest Q block searched is one tile per warp of a
# 4-warp block for mma.sync, and one 64-row tile per consumer warpgroup (two) for FlashAttention-3.
MMA_ROWS = {"standard": 16, "flash1": 16, "flash2": 16, "flash3": 64}
MIN_BLOCK_Q = {"standard": 16, "flash1": 64, "flash2": 64, "flash3": 128}


# The tiles (block_q, block_kv) the kernels' own launch templates run in the forward pass, in fp16/bf16, by head
# dim. They are a fixed table in the kernels, not searched at run time:
#   flash2: csrc/flash_attn/src/flash_fwd_launch_template.h (FlashAttention-2), run_mha_fwd_hdim32..256 for
#     compute capability 8.0 and 9.x, without and with dropout; it dispatches on the head dim rounded up to the
#     next listed one. Head dim 256 runs 128 x 64 where a block may take 2·256·(128 + 128) B of shared memory and
#     an SM has less than 4·256·(64 + 128) B (A100), else 64 x 64 (H100), with or without dropout
#   flash3: hopper/flash_fwd_launch_template.h of the FlashAttention-3 release the paper measured (Shah et al.
#     2024), run_mha_fwd_hdim64/128/256 (those head dims only): 192 x 128, 128 x 176 (causal: 128 x 128), 128 x 80
KERNEL_TILES = {
    "flash2": {32: ((128, 128), (128, 128)), 64: ((128, 128), (128, 64)), 96: ((128, 64), (128, 64)),
               128: ((128, 64), (128, 32)), 160: ((128, 32), (128, 32)), 192: ((128, 64), (64, 64)),
               256: (None, None)},
    "flash3": {64: ((192, 128), (192, 128)), 128: ((128, 176), (128, 128)), 256: ((128, 80), (128, 80))},
}
KERNEL_TILE_DTYPES = ("fp16", "bf16")


def kernel_tiles(hw: HardwareSpec, kernel: str, head_dim, causal=False, dropout=False):
    """(block_q, block_kv) arrays over the points: the kernel's own launch-template tiles (KERNEL_TILES) for the
    head dim it dispatches on, 0 where the kernel has none (flash1, standard, head dims it does not ship).
    flash2's pair is indexed by dropout, flash3's by causal."""
    d, causal = np.broadcast_arrays(np.asarray(head_dim), np.asarray(causal, dtype=bool))
    bq, bkv = np.zeros(d.shape, dtype=np.int64), np.zeros(d.shape, dtype=np.int64)
    table = KERNEL_TILES.get(kernel, {})
    smem = hw.level("smem").capacity_bytes if hw.level("smem") is not None else 0.0
    wide = 2 * 256 * (128 + 128) <= smem < 4 * 256 * (64 + 128)
    which = causal.astype(int) if kernel == "flash3" else np.full(d.shape, int(bool(dropout)))
    for dim in sorted(table, reverse=True):
        pair = table[dim]
        if pair[0] is None:                                   # flash2, head dim 256: by shared memory
            pair = ((128, 64),) * 2 if wide else ((64, 64),) * 2
        take = d <= dim if kernel == "flash2" else d == dim
        for index in (0, 1):
            chosen = take & (which == index)
            bq[chosen], bkv[chosen] = pair[index]
    return bq, bkv


def _per_sm_capacity(hw: HardwareSpec, name: str) -> float:
    level = hw.level(name)
    if level is None or level.capacity_bytes is None:
        raise SimlibInputError(hw.source_file or hw.name, "memory",
                               f"attention model needs a '{name}' memory level with capacity_bytes (per SM)")
    return level.capacity_bytes


def _unit(hw: HardwareSpec, kind: str) -> str:
    for name, unit in hw.compute.items():
        if unit.kind == kind:
            return name
    raise SimlibInputError(hw.source_file or hw.name, "compute", f"attention model needs a '{kind}' unit")


def tensor_core_rate(hw: HardwareSpec, dtype: str) -> float:
    """MAC slots per second of the matrix unit in ``dtype``; an input error when the part lacks the dtype."""
    rate = hw.issue_rate(_unit(hw, "matrix"), dtype)
    if rate is None:
        raise SimlibInputError(hw.source_file or hw.name, "dtype", f"{hw.name}'s tensor core has no {dtype} rate")
    return rate


def softmax_tile_seconds(hw: HardwareSpec, rows, cols, dv, extra_vector_ops=0.0):
    """(exp, vector) seconds one SM spends on one rows × cols tile's online softmax: rows·(cols + 1) exps on the SFU
    (one per score plus a rescale per row) and 4·rows·cols + rows·dv other ops (max, scale-subtract, sum, convert;
    O rescale) plus ``extra_vector_ops`` on the CUDA cores."""
    sms = hw.processors.count
    exp = rows * (cols + 1) / (hw.issue_rate(_unit(hw, "special"), "fp32") / sms)
    vector = (4 * rows * cols + rows * dv + extra_vector_ops) / (hw.issue_rate(_unit(hw, "vector"), "fp32") / sms)
    return exp, vector


def tile_seconds(hw: HardwareSpec, dtype: str, kernel: str, rows, cols, d, dv, extra_vector_ops=0.0,
                 serial: bool | None = None):
    """Time one SM spends on one rows × cols tile of scores, by the composition attention_forward uses:
    MACs rows·cols·(d + dv) on the tensor core (capped by KERNEL_CEILING, mma.sync at the YAML's fraction of
    peak unless flash3) and the softmax's exps and other ops (``softmax_tile_seconds``). flash3 hides the vector work behind the other warpgroup's GEMMs (max(tensor, vector) + exp);
    the others, or ``serial=True``, add all three."""
    sms = hw.processors.count
    fraction = 1.0 if kernel == "flash3" else hw.compute[_unit(hw, "matrix")].warp_mma_fraction_of_peak
    tensor = rows * cols * (d + dv) / (tensor_core_rate(hw, dtype) * KERNEL_CEILING[kernel] * fraction / sms)
    exp, vector = softmax_tile_seconds(hw, rows, cols, dv, extra_vector_ops)
    serial = kernel != "flash3" if serial is None else serial
    return tensor + exp + vector if serial else np.maximum(tensor, vector) + exp


def sram_per_block(kernel, bq, bkv, d, dv, s):
    """(shared-memory bytes, register bytes) one thread block holds."""
    kernel = np.asarray(kernel)
    smem = np.select([kernel == "flash1", kernel == "flash3", kernel == "standard"],
                     [s * (bq * d + bkv * (d + dv) + bq * dv), s * (bq * d + 2 * bkv * (d + dv)), 0],
                     s * (bq * d + bkv * (d + dv)))
    # S in fp32 accumulators, P converted to the input dtype, O in fp32. Q is not held in registers: wgmma reads
    # it from shared memory, and FlashAttention-2's shipped configurations load its fragments from shared memory
    # per k-step too (Is_Q_in_regs = false in csrc/flash_attn/src/flash_fwd_launch_template.h)
    regs = np.where(kernel == "standard", 0, ACCUMULATOR_BYTES * (bq * bkv + bq * dv) + s * bq * bkv)
    return smem, regs


def _standard_kernel_seconds(nq, nkv, d, dv, s, n_elementwise, backward, dropout, mac_rate, hbm_rate):
    """Per head: unfused attention is a sequence of kernels, so its time is the sum of each kernel's roofline,
    max(MACs / rate, bytes / bandwidth): the GEMMs S = QKᵀ and O = PV (backward: dV = PᵀdO, dP = dO Vᵀ,
    dQ = dS K, dK = dSᵀQ), each reading its operands and writing its product; the elementwise kernels over the
    nq × nkv matrix are bound by their bytes."""
    sq = nq * nkv
    gemms = [(sq * d, s * (nq * d + nkv * d + sq)), (sq * dv, s * (sq + nkv * dv + nq * dv))]
    elementwise = s * sq * 2 * n_elementwise
    if backward:
        gemms += [(sq * dv, s * (sq + nq * dv + nkv * dv)), (sq * dv, s * (nq * dv + nkv * dv + sq)),
                  (sq * d, s * (sq + nkv * d + nq * d)), (sq * d, s * (sq + nq * d + nkv * d))]
        elementwise = elementwise + s * sq * (3 + 2 * int(bool(dropout)))
    return sum(np.maximum(macs / mac_rate, nbytes / hbm_rate) for macs, nbytes in gemms) + elementwise / hbm_rate


def _exposed_block_seconds(hw: HardwareSpec, kernel, blocks, per_sm, bq, bkv, d, dv, s, compute_s):
    """Time the SMs spend in thread-block prologues and epilogues that no computation covers.

    flash1/flash2 (one thread block per Q tile, several resident per SM): a block cannot start its first matmul
    before its Q tile and first K/V tile have arrived (one DRAM round trip, ``latency_ns``, plus the bytes at the
    SM's share of DRAM bandwidth, B / SMs, since every SM streams at once), and it holds its SM until its O tile
    and log-sum-exp have been stored (another round trip plus the bytes). With k blocks resident on an SM the
    others compute meanwhile: an SM spends max(c, (c + e) / k) per block, c its compute and e its exposed time
    (Little's law for k blocks in flight). This is what makes short sequences slow: e is fixed per block while c
    grows with seq_kv (FlashAttention-3 paper, Figure 5). Tiles come in clipped to the sequence.

    flash3 is persistent and warp-specialized (Shah et al. 2024, section 3.1): one block per SM loops over the Q
    tiles, and its producer warpgroup loads the next tile's Q and K/V by TMA while the consumer warpgroups still
    compute, so the DRAM prologue of every tile but an SM's first is covered. What no other work covers is the
    consumers' own pipeline fill and drain (section 3.2, Algorithm 2): the first K/V tile's softmax runs before
    any GEMM can overlap it (its exps and other ops, as ``softmax_tile_seconds`` counts them), and the epilogue
    rescales O by 1/ℓ and converts it (bq·dv more ops) before the next tile starts; plus, once per SM,
    the first tile's round trip and loads.

    With ``backward`` the same forward-shaped e is charged per block (the backward kernels' own first loads and
    last stores are not modelled separately)."""
    sms = hw.processors.count
    latency = (hw.dram.latency_ns or 0.0) * 1e-9
    per_sm_bandwidth = hw.dram.bandwidth_bytes_per_s / sms
    first_bytes = s * bq * d + s * bkv * (d + dv)
    last_bytes = s * bq * dv + STATS_BYTES * bq
    exposed = 2 * latency + (first_bytes + last_bytes) / per_sm_bandwidth
    finite_blocks = np.where(np.isfinite(blocks), blocks, 1)
    per_block = compute_s * sms / finite_blocks
    k = np.maximum(per_sm, 1)
    extra = np.maximum(0.0, (per_block + exposed) / k - per_block)
    tiles_per_sm = np.ceil(finite_blocks / sms)
    fill = sum(softmax_tile_seconds(hw, bq, bkv, dv, extra_vector_ops=bq * dv))
    persistent = fill * tiles_per_sm + latency + first_bytes / per_sm_bandwidth
    return np.select([kernel == "standard", kernel == "flash3"], [0.0, persistent], extra * tiles_per_sm)


def check_inputs(sizes: dict, kernel, known, label: str) -> None:
    """The Python API's checks, as the CLI's: every size positive, kv_heads dividing heads, a known kernel (the
    prefill and decode models share them; ``label`` names the kind of kernel in the message)."""
    for name, value in sizes.items():
        if np.any(np.asarray(value) <= 0):
            raise SimlibInputError("--set", name, f"expected a positive integer, got {np.min(value)}")
    if np.any(sizes["heads"] % sizes["kv_heads"]):
        raise SimlibInputError("--set", "kv_heads", "kv_heads must divide heads")
    unknown = sorted(set(np.unique(kernel).tolist()) - set(known))
    if unknown:
        raise SimlibInputError("--set", "kernel", f"unknown {label} {unknown[0]!r} (expected one of: "
                                                  f"{', '.join(known)})")


def attention_forward(hw: HardwareSpec, *, batch, heads, seq_q, seq_kv, head_dim, head_dim_v=None,
                      dtype="bf16", causal=False, kernel="flash2", block_q=128, block_kv=128,
                      efficiency=None, backward=False, dropout=False, kv_heads=None) -> dict[str, np.ndarray]:
    """Predict the forward pass, or forward + backward; every numeric argument may be a numpy array.

    Grouped-query attention (``kv_heads`` < ``heads``): the g = heads / kv_heads query heads of one K/V head are
    adjacent in the flash2/flash3 grid, so their Q tiles run side by side and, while L2 holds the K/V heads in
    flight, share one fetch of that K/V head; without L2 reuse, and for flash1 and standard (PyTorch expands K/V
    per query head), every query head streams K/V as in multi-head attention.

    Backward (Dao et al. 2022 Algorithm 4 for flash1; Dao 2023 Algorithm 2 for flash2/flash3; PyTorch autograd
    for standard), per head, scores = score elements computed:
      flash: MACs scores·(3d + 2dv) (S recomputed; dV, dP, dQ, dK), exps scores (P recomputed);
        flash1 HBM: K, V read and dK, dV written once; per visited tile the Q block's Q, O, dO, l, m read and dQ
        accumulated in fp32 (read + write), then dQ converted (fp32 read, dtype written);
        flash2/3 HBM: D = rowsum(dO∘O) pre-pass (dO, O read, D written), K, V read and dK, dV written once,
        per visited tile Q, dO, L, D read and dQ accumulated in fp32 (read + write), then dQ converted (fp32
        read, dtype written).
      standard: MACs nq·nkv·(2d + 2dv); the nq·nkv matrices P read for dV, dP written, softmax backward reads P
        and dP and writes dS, dS read for dQ and for dK: 7 nq·nkv, plus 2 with dropout.
    Dropout in the standard forward is one more elementwise kernel over S (read + write); flash kernels
    regenerate the dropout mask on chip.
    """
    head_dim_v = head_dim if head_dim_v is None else head_dim_v
    kv_heads = heads if kv_heads is None else kv_heads
    kernel_arr = np.asarray(kernel)
    arrays = np.broadcast_arrays(np.asarray(batch), np.asarray(heads), np.asarray(seq_q), np.asarray(seq_kv),
                                 np.asarray(head_dim), np.asarray(head_dim_v), np.asarray(causal),
                                 np.asarray(block_q), np.asarray(block_kv), kernel_arr, np.asarray(kv_heads))
    b, h, nq, nkv, d, dv, causal, bq, bkv, kernel_arr, hk = (np.asarray(a) for a in arrays)
    check_inputs({"batch": b, "heads": h, "seq_q": nq, "seq_kv": nkv, "head_dim": d, "head_dim_v": dv,
                  "block_q": bq, "block_kv": bkv, "kv_heads": hk}, kernel_arr, KERNELS, "kernel")
    if np.any(causal.astype(bool) & (nq > nkv)):
        raise SimlibInputError("--set", "seq_q", "causal attention needs seq_q <= seq_kv")
    s = dtype_bytes(dtype)
    bh = (b * h).astype(np.float64)
    t = tile_counts(nq, nkv, bq, bkv, causal)
    std = kernel_arr == "standard"
    f1 = kernel_arr == "flash1"

    # operations (per head, then x batch x heads); standard computes the full matrix, masked or not
    scores = np.where(std, nq * nkv, t.score_elements)
    macs = scores * (d + dv)
    rescale_rows = np.where(std, 0, t.q_rows_read)
    exps = scores + rescale_rows
    # a tile holding masked scores runs the causal mask on every one of its scores: compare the key index with the
    # row's limit and select -inf (FlashAttention-2's Mask::apply_mask on its masking iterations), in score units
    # here as every count is before the padding below makes tiles whole
    masked_scores = np.where(std, 0, t.masked_tiles * t.score_elements / np.maximum(t.tiles, 1))
    vector_ops = 4 * scores + rescale_rows * dv + nq * dv + MASK_OPS_PER_SCORE * masked_scores
    # HBM bytes per head
    n_elementwise = 1 + causal.astype(np.int64) + int(bool(dropout))
    # (read, written) per head: S written by QK^T and read by PV, each elementwise kernel reads and writes it
    standard = [s * (nq * d + nkv * d + nkv * dv) + s * nq * nkv * (1 + n_elementwise),
                s * nq * dv + s * nq * nkv * (1 + n_elementwise)]
    # every visited tile reads Q_i, O_i, l_i, m_i and writes O_i, l_i, m_i; O, l, m initialised in HBM
    flash1 = [s * nkv * (d + dv) + t.q_rows_read * (s * d + s * dv + 2 * STATS_BYTES),
              t.q_rows_read * (s * dv + 2 * STATS_BYTES) + nq * (s * dv + 2 * STATS_BYTES)]
    smem, regs = sram_per_block(kernel_arr, bq, bkv, d, dv, s)
    smem_cap, reg_cap = _per_sm_capacity(hw, "smem"), _per_sm_capacity(hw, "registers")
    sms = hw.processors.count
    blocks = np.select([std, f1], [np.inf, bh], bh * t.row_blocks)
    per_sm = np.minimum(np.floor_divide(smem_cap, np.maximum(smem, 1)),
                        np.floor_divide(reg_cap, np.maximum(regs, 1)))
    # FlashAttention-3's warp-specialized block hands its producer warpgroup's registers to the consumer
    # warpgroups (setmaxnreg; Shah et al. 2024, section 3.1) and so takes the whole register file: one per SM
    per_sm = np.where(kernel_arr == "flash3", np.minimum(per_sm, 1), per_sm)
    # L2 reuse: the Q tiles of one K/V head (its g query heads' tiles; the Q-tile index varies fastest in the
    # grid, then the head) run one after another and side by side, so while the K/V heads in flight fit in L2 a
    # K/V head leaves HBM once: the union of the rows its tiles see, all nkv (a causal head's last Q tile sees
    # every key), never more than its tiles stream. Per query head below.
    concurrent = np.minimum(sms * np.maximum(per_sm, 1), np.where(std, 1, blocks))
    g = np.where(f1, 1, h // hk)
    kv_head_bytes = s * nkv * (d + dv)
    heads_in_flight = np.ceil(concurrent / (g * t.row_blocks)) + 1
    cache = hw.first_level("cache")
    l2 = cache.capacity_bytes if cache and cache.capacity_bytes else 0.0
    # when the heads in flight outgrow L2 it holds that share of them: the re-streams it serves fall off smoothly
    held = np.minimum(1.0, l2 / np.maximum(heads_in_flight * kv_head_bytes, 1))
    kv_hbm_rows = (held * np.minimum(g * t.kv_rows_read, nkv) + (1 - held) * g * t.kv_rows_read) / g
    flash2 = [s * nq * d + kv_hbm_rows * s * (d + dv), s * nq * dv + nq * STATS_BYTES]
    if backward:
        macs = macs + np.where(std, nq * nkv * (2 * d + 2 * dv), scores * (3 * d + 2 * dv))
        exps = exps + np.where(std, 0, scores)
        vector_ops = vector_ops + 3 * scores + nq * dv + MASK_OPS_PER_SCORE * masked_scores   # S recomputed
        drop = int(bool(dropout))
        qkv = s * (nq * d + nkv * d + nkv * dv)           # Q, K, V read again; dQ, dK, dV written
        standard = [standard[0] + qkv + s * 2 * nq * dv + s * nq * nkv * (5 + drop),
                    standard[1] + qkv + s * nq * nkv * (2 + drop)]
        kv = s * nkv * (d + dv)                           # K, V read; dK, dV written
        dq = ACCUMULATOR_BYTES * d                        # the fp32 dQ accumulator, read and written per tile
        flash1 = [flash1[0] + kv + t.q_rows_read * (s * d + 2 * s * dv + 2 * STATS_BYTES + dq)
                  + nq * ACCUMULATOR_BYTES * d, flash1[1] + kv + t.q_rows_read * dq + nq * s * d]
        flash2 = [flash2[0] + 2 * s * nq * dv + kv + t.q_rows_read * (s * d + s * dv + 2 * STATS_BYTES + dq)
                  + nq * ACCUMULATOR_BYTES * d, flash2[1] + STATS_BYTES * nq + kv + t.q_rows_read * dq + nq * s * d]
    hbm_read, hbm_written = (bh * np.select([std, f1], [standard[i], flash1[i]], flash2[i]) for i in (0, 1))
    hbm = hbm_read + hbm_written
    waves = np.where(std, 1, np.ceil(blocks / (sms * np.maximum(per_sm, 1))))
    quantization = np.where(std, 1.0, sms * np.ceil(blocks / sms) / np.where(std, 1, blocks))

    ceiling = np.asarray([KERNEL_CEILING[k] for k in kernel_arr.ravel()]).reshape(kernel_arr.shape) \
        if efficiency is None else np.asarray(efficiency, dtype=float)
    warp_mma = hw.compute[_unit(hw, "matrix")].warp_mma_fraction_of_peak
    tc_rate = tensor_core_rate(hw, dtype) * np.where(kernel_arr == "flash3", 1.0, warp_mma)
    sfu_rate = hw.issue_rate(_unit(hw, "special"), "fp32")
    vec_rate = hw.issue_rate(_unit(hw, "vector"), "fp32")
    # the matrix instructions and the softmax run on whole tiles: a Q block with fewer rows than block_q (seq_q
    # below it, or the last block) and a K/V block cut by seq_kv are computed padded, as decode's Q blocks are
    padding = np.where(std, 1.0, bq * bkv * t.tiles / np.maximum(t.score_elements, 1))
    tensor_s = bh * macs * padding / (tc_rate * ceiling) * quantization
    exp_s = bh * exps * padding / sfu_rate * quantization
    vector_s = bh * vector_ops * padding / vec_rate * quantization
    compute_s = np.where(kernel_arr == "flash3", np.maximum(tensor_s, vector_s) + exp_s,
                         tensor_s + exp_s + vector_s)
    # one SM pulls at most what its resident blocks keep in flight over the DRAM latency (Little's law, as in the
    # decode model): each block streams one K/V tile (flash3: two pipeline stages; flash1: its Q/O block), so a
    # grid of few blocks cannot reach the HBM bandwidth; the busiest SM moves ceil(blocks / SMs) blocks' bytes
    hbm_bw = hw.dram.bandwidth_bytes_per_s
    finite_blocks = np.where(std, 1.0, blocks)
    stream_bytes = np.select([f1, kernel_arr == "flash3"], [s * bq * (d + 2 * dv), 2 * s * bkv * (d + dv)],
                             s * bkv * (d + dv))
    in_flight = np.minimum(np.maximum(per_sm, 1), np.ceil(finite_blocks / sms))
    per_sm_bw = (np.minimum(in_flight * stream_bytes / (hw.dram.latency_ns * 1e-9), hbm_bw)
                 if hw.dram.latency_ns else hbm_bw / sms)
    busiest_share = np.ceil(finite_blocks / sms) / finite_blocks
    hbm_s = np.where(std, hbm / hbm_bw, np.maximum(hbm / hbm_bw, hbm * busiest_share / per_sm_bw))
    # every visited tile streams its K/V block (flash1: its Q/O block) from L2 into shared memory; the
    # tensor cores then read the K/V operand from shared memory once per MMA row tile (MMA_ROWS)
    on_chip = bh * np.where(std, 0, s * (nq * d + nq * dv) + np.where(f1, t.q_rows_read * s * (d + 2 * dv),
                                                                       t.kv_rows_read * s * (d + dv)))
    mma_rows = np.asarray([MMA_ROWS[k] for k in kernel_arr.ravel()]).reshape(kernel_arr.shape)
    operand_reads = bh * np.where(std, 0, np.ceil(bq / mma_rows) * mma_rows / np.minimum(bq, nq)
                                  * scores / mma_rows * s * (d + dv))
    # wgmma reads its A operand (Q) from shared memory too: the Q block once per visited tile
    operand_reads = operand_reads + bh * np.where(kernel_arr == "flash3", t.q_rows_read * s * d, 0)
    smem_bw = hw.level("smem").bandwidth_bytes_per_s
    l2_bw = cache.bandwidth_bytes_per_s if cache else None
    smem_s = (on_chip + operand_reads) / smem_bw if smem_bw else np.zeros_like(hbm_s)
    l2_s = on_chip / l2_bw if l2_bw else np.zeros_like(hbm_s)
    memory_s = np.maximum(hbm_s, np.maximum(smem_s, l2_s))
    exposed_s = _exposed_block_seconds(hw, kernel_arr, blocks, per_sm, np.minimum(bq, nq), np.minimum(bkv, nkv),
                                       d, dv, s, compute_s / quantization)
    time_s = np.maximum(compute_s, memory_s) + exposed_s
    time_s = np.where(std, bh * _standard_kernel_seconds(nq, nkv, d, dv, s, n_elementwise, backward, dropout,
                                                         tc_rate * ceiling, hw.dram.bandwidth_bytes_per_s),
                      time_s)
    matmul_flops = 2 * bh * macs
    useful_macs = t.useful_elements * (d + dv)
    if backward:
        useful_macs = useful_macs + t.useful_elements * np.where(std, 2 * d + 2 * dv, 3 * d + 2 * dv)
    useful_flops = 2 * bh * useful_macs
    return {
        "time_s": time_s, "flops": matmul_flops, "useful_flops": useful_flops,
        "exp_ops": bh * exps, "other_ops": bh * vector_ops, "bytes_dram": hbm, "bytes_dram_read": hbm_read,
        "bytes_dram_written": hbm_written,
        "tflops": matmul_flops / time_s / 1e12, "useful_tflops": useful_flops / time_s / 1e12,
        "smem_bytes_per_block": smem, "register_bytes_per_block": regs,
        "fits": np.where(std, True, (smem <= smem_cap) & (regs <= reg_cap)),
        # flash3 launches one persistent block per SM, and its waves are its rounds over the Q tiles
        "thread_blocks": np.where(kernel_arr == "flash3", np.minimum(blocks, sms), blocks), "waves": waves,
        "tensor_s": tensor_s, "exp_s": exp_s, "vector_s": vector_s,
        "hbm_s": hbm_s, "smem_s": smem_s, "l2_s": l2_s, "bytes_on_chip": on_chip,
        "bound": np.select([compute_s >= memory_s, hbm_s >= np.maximum(smem_s, l2_s), l2_s >= smem_s],
                           ["compute", "hbm", "l2"], "smem"),
        "block_q": bq, "block_kv": bkv,
    }
