"""Generalized Neighborhood Attention (GNA): the mask, a tile-level simulator and a runtime model on GPUs.

Mask (Hassani et al. 2025, arXiv 2504.16922; NATTEN), per dimension of extent n with window w, stride s,
dilation δ and a causal flag:

* dilation: query i and key j interact only if i ≡ j (mod δ); each residue group is an undilated problem of
  its own, of length ⌊n/δ⌋ (+1 for the first n mod δ groups). NATTEN runs the groups as separate sub-problems,
  so tiles never straddle two groups.
* non-causal: the query's stride-group leader ℓ = min(⌊i/s⌋·s + ⌊s/2⌋, n − 1); the window is the w keys from
  clamp(ℓ − ⌊w/2⌋, 0, n − w) (it shifts inward at the borders, so every query sees exactly w keys).
* causal: ℓ = min(⌊i/s⌋·s + s − 1, n − 1) and the keys max(ℓ − w + 1, 0) … i.
* several dimensions: the AND of the per-dimension masks, so a window is a box.

Tiles: the layout is cut into box-shaped Q tiles and KV tiles (tokens permuted so each is contiguous); with the
static KV tiling of the Hopper/Blackwell kernels a Q tile visits every KV tile that meets the union of its
queries' windows. Window ends never decrease with i, so in each dimension that union is
[lo(first query), hi(last query)] and the keys every query of the tile sees are [lo(last), hi(first)]; boxes
make every count a product over dimensions (visited tiles, fully unmasked tiles, computed and useful scores),
and sums over Q tiles factor the same way. So one dimension at a time is simulated with numpy over its Q tiles
and queries; nothing loops over tokens or tiles in Python.

Runtime: a thread block per (batch, head, Q tile) runs its visited KV tiles, each costing what the
FlashAttention model charges one tile of that shape (``tile_seconds``). When the mask is not fully block-sparse
the kernel is built with fine-grained masking, and every tile then takes the masked path: the mask test
(MASK_OPS_PER_DIM compare/select ops per score and dimension) sits in the softmax, which no longer overlaps the
GEMMs (serial composition). NATTEN's H100 measurements show this: neighborhood attention with a 2048 window,
17 KV tiles per Q tile of which 15 are unmasked, runs 1.6x slower than the 16-tile blocked case. The busiest SM
runs ⌈blocks / SMs⌉ blocks of the mean tile count, and never less than the largest block. Permuting Q, K, V
into tile order and O back is a memory-bound copy, reported separately (none for 1-D layouts).
"""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pandas as pd

from simlib.dtypes import dtype_bytes
from simlib.errors import SimlibInputError
from simlib.hardware.schema import HardwareSpec
from simlib.models.flash_attention import tile_seconds

MASK_OPS_PER_DIM = 3   # per score and dimension: lo <= key, key <= hi, and-combine


def window_bounds(i, n, w, s, causal):
    """Inclusive key interval [lo, hi] of query i in one undilated dimension of extent n (arrays broadcast)."""
    i, n, w, s, causal = np.broadcast_arrays(i, n, w, s, np.asarray(causal, dtype=bool))
    start = np.clip(np.minimum((i // s) * s + s // 2, n - 1) - w // 2, 0, np.maximum(n - w, 0))
    causal_leader = np.minimum((i // s) * s + s - 1, n - 1)
    lo = np.where(causal, np.maximum(causal_leader - w + 1, 0), start)
    hi = np.where(causal, i, start + w - 1)
    return lo, hi


def _ceil_div(a, b):
    return -(-a // b)


def dimension_stats(n, w, s, dilation, causal, q_tile, kv_tile) -> dict[str, np.ndarray]:
    """Per-dimension tile statistics, vectorized over any broadcast shape of the seven parameters.

    The δ dilation groups have only two lengths, ⌊n/δ⌋ + 1 (the first n mod δ groups) and ⌊n/δ⌋, so they are
    simulated once per length and weighted by their counts. Axes inside: parameter point × group length × Q tile
    (× query, for causal useful counts)."""
    args = np.broadcast_arrays(*(np.asarray(x) for x in (n, w, s, dilation, causal, q_tile, kv_tile)))
    shape = args[0].shape
    n, w, s, dil, causal, tq, tk = (a.ravel()[:, None, None].astype(np.int64) for a in args)
    longer = np.arange(2)[None, :, None] == 0
    nr = n // dil + longer
    count = np.where(longer, n % dil, dil - n % dil)
    nr = np.where(count > 0, nr, 0)
    a = np.arange(int(_ceil_div(nr, tq).max()))[None, None, :]
    tile_ok = a * tq < nr
    safe_n = np.maximum(nr, w)
    q0 = np.minimum(a * tq, safe_n - 1)
    q1 = np.where(tile_ok, np.minimum(a * tq + tq, nr) - 1, q0)
    lo0, hi0 = window_bounds(q0, safe_n, w, s, causal)
    lo1, hi1 = window_bounds(q1, safe_n, w, s, causal)
    visited = hi1 // tk - lo0 // tk + 1
    last_full = np.where(hi0 >= nr - 1, _ceil_div(nr, tk) - 1, (hi0 + 1) // tk - 1)
    full = np.where(lo1 <= hi0, np.maximum(last_full - _ceil_div(lo1, tk) + 1, 0), 0)
    covered = np.minimum((hi1 // tk + 1) * tk, nr) - (lo0 // tk) * tk
    rows = q1 - q0 + 1

    def total(x):
        return (np.where(tile_ok, x, 0) * count).sum(axis=(1, 2))

    useful = (count * nr * w).sum(axis=(1, 2))
    if causal.any():
        i = np.arange(int(nr.max()))[None, None, :]
        lo, hi = window_bounds(np.minimum(i, safe_n - 1), safe_n, w, s, causal)
        causal_useful = (np.where(i < nr, hi - lo + 1, 0) * count).sum(axis=(1, 2))
        useful = np.where(causal[:, 0, 0], causal_useful, useful)
    out = {"q_tiles": (tile_ok * count).sum(axis=(1, 2)), "visited": total(visited),
           "max_visited": np.where(tile_ok, visited, 0).max(axis=(1, 2)), "full": total(full),
           "computed": total(rows * covered), "useful": useful,
           "block_sparse": np.all(np.where(tile_ok, visited == full, True), axis=(1, 2))}
    return {k: v.reshape(shape) for k, v in out.items()}


def combine_dimensions(dims: list[dict], shape, kv_tile) -> dict[str, np.ndarray]:
    """Whole-layout counts from per-dimension statistics: boxes make every count a product over dimensions."""
    def product(key):
        return math.prod(np.asarray(d[key], dtype=np.float64) for d in dims)

    tokens = math.prod(np.asarray(n, dtype=np.float64) for n in shape)
    self_tiles = math.prod(np.ceil(np.asarray(n) / np.asarray(k)) for n, k in zip(shape, kv_tile))
    out = {"q_tiles": product("q_tiles"), "tiles_visited": product("visited"), "max_tiles": product("max_visited"),
           "tiles_unmasked": product("full"), "computed_scores": product("computed"),
           "useful_scores": product("useful"), "self_tiles_per_q_tile": np.asarray(self_tiles, dtype=np.float64),
           "fully_block_sparse": functools.reduce(np.logical_and, [d["block_sparse"] for d in dims])}
    out["tiles_masked"] = out["tiles_visited"] - out["tiles_unmasked"]
    out["speedup_bound"] = tokens ** 2 / out["useful_scores"]
    out["tile_speedup_bound"] = out["self_tiles_per_q_tile"] / out["max_tiles"]
    out["sparsity"] = 1 - out["useful_scores"] / tokens ** 2
    return out


def simulate_tiles(shape, window, stride, dilation, causal, q_tile, kv_tile) -> dict[str, np.ndarray]:
    """Tile counts and speedup bounds of a GNA mask; every argument is a per-dimension sequence whose items may
    be arrays (they broadcast, so a sweep is one call)."""
    dims = [dimension_stats(*p) for p in zip(shape, window, stride, dilation, causal, q_tile, kv_tile)]
    return combine_dimensions(dims, shape, kv_tile)


def dense_tiles(shape, q_tile, kv_tile, causal=None) -> dict[str, np.ndarray]:
    """Self attention, simulated as the mask whose window is the whole layout: without causal masking every Q
    tile visits every KV tile, none masked, and all tokens² scores are useful; causal self attention masks its
    diagonal tiles and keeps about half. Its useful scores are the FLOP-wise bound's numerator."""
    ones = tuple(np.ones_like(np.asarray(n)) for n in shape)
    causal = causal if causal is not None else (False,) * len(shape)
    return simulate_tiles(shape, shape, ones, ones, causal, q_tile, kv_tile)


def default_tile_shape(tokens: int, ndim: int) -> tuple[int, ...]:
    """NATTEN's default tile shapes for a token count: 1-D (T,), 2-D (16, T/16), 3-D (T/64, 8, 8)."""
    return {1: (tokens,), 2: (16, tokens // 16), 3: (tokens // 64, 8, 8)}[ndim]


def attention_kernel(hw: HardwareSpec) -> str:
    return "flash3" if "warp_specialization" in hw.features else "flash2"


def gna_runtime(hw: HardwareSpec, sim: dict, *, ndim, q_tokens, kv_tokens, tokens, batch, heads, head_dim,
                dtype) -> dict[str, np.ndarray]:
    """Kernel time of a simulated mask (see the module docstring) and the permute time."""
    kernel = attention_kernel(hw)
    unmasked = tile_seconds(hw, dtype, kernel, q_tokens, kv_tokens, head_dim, head_dim)
    masked = tile_seconds(hw, dtype, kernel, q_tokens, kv_tokens, head_dim, head_dim,
                          extra_vector_ops=MASK_OPS_PER_DIM * ndim * q_tokens * kv_tokens, serial=True)
    per_tile = np.where(sim["fully_block_sparse"], unmasked, masked)
    blocks = batch * heads * sim["q_tiles"]
    busiest = np.maximum(np.ceil(blocks / hw.processors.count) * sim["tiles_visited"] / sim["q_tiles"],
                         sim["max_tiles"])
    io_bytes = 4.0 * batch * heads * tokens * head_dim * dtype_bytes(dtype)     # Q, K, V read, O written
    bandwidth = hw.dram.bandwidth_bytes_per_s
    return {"time_s": np.maximum(busiest * per_tile, io_bytes / bandwidth),
            "permute_time_s": np.asarray(0.0 if ndim == 1 else 2 * io_bytes / bandwidth),
            "tile_time_s": per_tile, "thread_blocks": blocks,
            "waves": np.ceil(blocks / hw.processors.count)}


def predict_gna_many(hw: HardwareSpec, *, shape, window, stride, dilation, causal, q_tile, kv_tile, batch, heads,
                     head_dim, dtype="bf16") -> dict[str, np.ndarray]:
    """``predict_gna``'s time and bounds for many problems of one dimensionality at once: every per-dimension
    argument is a sequence of arrays (one per dimension), the rest arrays, all of one length. The baseline is
    self attention simulated as the mask whose window is the layout (causal where the problem is), so its
    useful scores are the FLOP-wise bound's numerator (``dense_tiles``)."""
    ndim = len(shape)
    sim = simulate_tiles(shape, window, stride, dilation, causal, q_tile, kv_tile)
    dense = dense_tiles(shape, q_tile, kv_tile, causal)
    common = dict(ndim=ndim, q_tokens=math.prod(np.asarray(t) for t in q_tile),
                  kv_tokens=math.prod(np.asarray(t) for t in kv_tile), tokens=math.prod(np.asarray(n) for n in shape),
                  batch=np.asarray(batch), heads=np.asarray(heads), head_dim=np.asarray(head_dim), dtype=dtype)
    time_s = gna_runtime(hw, sim, **common)["time_s"]
    return {"time_s": time_s, "speedup": gna_runtime(hw, dense, **common)["time_s"] / time_s,
            "speedup_bound": dense["useful_scores"] / sim["useful_scores"],
            "tile_speedup_bound": sim["tile_speedup_bound"], "fully_block_sparse": sim["fully_block_sparse"]}


def predict_gna(hw: HardwareSpec, *, shape, window, stride=None, dilation=None, causal=None, q_tile=None,
                kv_tile=None, batch=1, heads=1, head_dim=128, dtype="bf16") -> dict:
    """Simulated tiles, bounds and predicted runtimes of one GNA problem against self attention on the same
    hardware and tiles (causal self attention when the mask is causal)."""
    ndim = len(shape)
    stride = stride or (1,) * ndim
    dilation = dilation or (1,) * ndim
    causal = causal or (False,) * ndim
    q_tile = q_tile or default_tile_shape(hw.fmha_tile.q_tokens, ndim)
    kv_tile = kv_tile or default_tile_shape(hw.fmha_tile.kv_tokens, ndim)
    sim = simulate_tiles(shape, window, stride, dilation, causal, q_tile, kv_tile)
    dense = dense_tiles(shape, q_tile, kv_tile, causal)
    sim["speedup_bound"] = dense["useful_scores"] / sim["useful_scores"]
    common = dict(ndim=ndim, q_tokens=math.prod(q_tile), kv_tokens=math.prod(kv_tile), tokens=math.prod(shape),
                  batch=batch, heads=heads, head_dim=head_dim, dtype=dtype)
    run = gna_runtime(hw, sim, **common)
    base = gna_runtime(hw, dense, **common)
    flops_per_score = 4 * head_dim * batch * heads
    result = {"hardware": hw.name, "kernel": attention_kernel(hw), "shape": list(shape), "window": list(window),
              "stride": list(stride), "dilation": list(dilation), "causal": list(causal), "q_tile": list(q_tile),
              "kv_tile": list(kv_tile), "batch": batch, "heads": heads, "head_dim": head_dim, "dtype": dtype,
              "useful_flops": sim["useful_scores"] * flops_per_score,
              "computed_flops": sim["computed_scores"] * flops_per_score,
              "baseline_time_s": base["time_s"], **run, **sim}
    result["speedup"] = result["baseline_time_s"] / result["time_s"]
    result["tflops"] = result["useful_flops"] / result["time_s"] / 1e12
    return {k: (v.item() if isinstance(v, (np.ndarray, np.generic)) and np.ndim(v) == 0 else v)
            for k, v in result.items()}


def end_to_end_speedup(op_speedup, attention_share, gna_step_fraction=1.0):
    """Amdahl's law over a diffusion model's denoising steps (the GNA paper's end-to-end estimate):
    1 / ((1 − f') + f' / S) with f' = attention share × fraction of steps that use GNA."""
    f = np.asarray(attention_share) * np.asarray(gna_step_fraction)
    return 1.0 / ((1.0 - f) + f / np.asarray(op_speedup))


def tile_shapes(tokens: int, shape) -> list[tuple[int, ...]]:
    """Power-of-two box tiles of ``tokens`` tokens, no side longer than its dimension's next power of two."""
    caps = [(int(n) - 1).bit_length() for n in shape]
    total = int(math.log2(tokens))
    return [tuple(1 << e for e in exps) for exps in itertools.product(*(range(c + 1) for c in caps))
            if sum(exps) == total]


def _searched_tiles(hw: HardwareSpec, name: str, tokens: int, shape) -> list[tuple[int, ...]]:
    """``tile_shapes`` of the part's FMHA tile; none fits a layout smaller than one tile (each side stops at its
    dimension's next power of two), which is an input error asking for the tile."""
    tiles = tile_shapes(tokens, shape)
    if not tiles:
        largest = [1 << (int(n) - 1).bit_length() for n in shape]
        raise SimlibInputError("--set", name, f"no {tokens}-token tile of {hw.name}'s FMHA fits the layout "
                                              f"{'x'.join(map(str, shape))} (a tile side stops at its dimension's "
                                              f"next power of two: at most {'x'.join(map(str, largest))}, "
                                              f"{math.prod(largest)} tokens); expected {name} given, e.g. --set "
                                              f"{name}={'x'.join(map(str, largest))}, or a layout of at least "
                                              f"{tokens} tokens")
    return tiles


def search_gna(hw: HardwareSpec, *, shape, window, causal=None, q_tiles=None, kv_tiles=None, batch=1, heads=1,
               head_dim=128, dtype="bf16", top: int = 20, block_sparse_only: bool = False) -> pd.DataFrame:
    """Every stride (1..w) and dilation (1..n // w) per dimension, for every pair of Q and KV tile shapes (the
    part's FMHA token counts unless given): the ``top`` configurations by predicted speedup over self attention
    (causal when the mask is). Per tile pair the whole stride × dilation grid is one broadcast simulation."""
    ndim = len(shape)
    causal = causal or (False,) * ndim
    q_tiles = q_tiles or _searched_tiles(hw, "q_tile", hw.fmha_tile.q_tokens, shape)
    kv_tiles = kv_tiles or _searched_tiles(hw, "kv_tile", hw.fmha_tile.kv_tokens, shape)
    options = [np.array([(s, d) for d in range(1, n // w + 1) for s in range(1, w + 1)]) for n, w in zip(shape, window)]
    # per dimension, every (stride, dilation) option against every tile side that dimension sees, in one call
    per_dim = []
    for k, (n, w, opt) in enumerate(zip(shape, window, options)):
        tq_sides = sorted({t[k] for t in q_tiles})
        tk_sides = sorted({t[k] for t in kv_tiles})
        by_dilation = [dimension_stats(n, w, opt[opt[:, 1] == dil, 0, None, None], dil, causal[k],
                                       np.array(tq_sides)[None, :, None], np.array(tk_sides)[None, None, :])
                       for dil in np.unique(opt[:, 1])]      # one call per dilation keeps the Q-tile axis short
        stats = {key: np.concatenate([b[key] for b in by_dilation]) for key in by_dilation[0]}
        per_dim.append((stats, {v: i for i, v in enumerate(tq_sides)}, {v: i for i, v in enumerate(tk_sides)}))
    grid = [opt.reshape((1,) * k + (-1,) + (1,) * (ndim - k - 1) + (2,)) for k, opt in enumerate(options)]
    stride_product = math.prod(g[..., 0] for g in grid).ravel()
    dilation_product = math.prod(g[..., 1] for g in grid).ravel()
    found = []
    for q_tile, kv_tile in itertools.product(q_tiles, kv_tiles):
        dims = []
        for k, (stats, tq_index, tk_index) in enumerate(per_dim):
            axis_shape = (1,) * k + (-1,) + (1,) * (ndim - k - 1)
            dims.append({key: v[:, tq_index[q_tile[k]], tk_index[kv_tile[k]]].reshape(axis_shape)
                         for key, v in stats.items()})
        sim = combine_dimensions(dims, shape, kv_tile)
        common = dict(ndim=ndim, q_tokens=math.prod(q_tile), kv_tokens=math.prod(kv_tile),
                      tokens=math.prod(shape), batch=batch, heads=heads, head_dim=head_dim, dtype=dtype)
        time_s = np.broadcast_to(gna_runtime(hw, sim, **common)["time_s"], sim["max_tiles"].shape)
        dense = dense_tiles(shape, q_tile, kv_tile, causal)
        sim["speedup_bound"] = dense["useful_scores"] / sim["useful_scores"]
        speedup = gna_runtime(hw, dense, **common)["time_s"] / time_s
        sparse = np.broadcast_to(sim["fully_block_sparse"], speedup.shape)
        keep = np.where(sparse | (not block_sparse_only), speedup, -np.inf).ravel()
        threshold = -np.partition(-keep, min(top, keep.size) - 1)[min(top, keep.size) - 1]
        tied = np.flatnonzero((keep >= threshold * (1 - 1e-9)) & np.isfinite(keep))
        # equal speedups: the least dilated, then the smallest strides (closest to neighborhood attention)
        best = tied[np.lexsort((stride_product[tied], dilation_product[tied], -keep[tied]))][:top]
        index = np.unravel_index(best, speedup.shape)
        bound = np.broadcast_to(sim["tile_speedup_bound"], speedup.shape)[index]
        flop_bound = np.broadcast_to(sim["speedup_bound"], speedup.shape)[index]
        for j, idx in enumerate(zip(*index)):
            found.append(("x".join(str(int(o[i, 0])) for o, i in zip(options, idx)),
                          "x".join(str(int(o[i, 1])) for o, i in zip(options, idx)),
                          "x".join(map(str, q_tile)), "x".join(map(str, kv_tile)), bool(sparse[index][j]),
                          float(speedup[index][j]), float(time_s[index][j]), float(bound[j]), float(flop_bound[j])))
    table = pd.DataFrame(found, columns=["stride", "dilation", "q_tile", "kv_tile", "fully_block_sparse", "speedup",
                                         "time_s", "tile_speedup_bound", "speedup_bound"])
    keys = {f"_{c}": table[c].map(lambda text: math.prod(map(int, text.split("x")))) for c in ("dilation", "stride")}
    ranked = table.assign(**keys).sort_values(["speedup", "_dilation", "_stride"], ascending=[False, True, True],
                                              kind="stable")
    return ranked.drop(columns=list(keys)).head(top).reset_index(drop=True)
