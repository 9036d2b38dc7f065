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
(in bounded chunks, every dilation and stride of a search in one call), and useful scores are closed forms
(w per non-causal query; ``causal_useful_scores``); nothing loops over tokens, tiles or dilations in Python.

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


def causal_useful_scores(n, w, s):
    """Scores a causal window keeps in one undilated dimension of extent n (arrays broadcast), in O(1).

    Query i of stride group g = ⌊i/s⌋ sees keys max(ℓ − w + 1, 0) … i with ℓ = min(g·s + s − 1, n − 1)
    (reference/gna.md), so the count is Σ_i (i + 1) − Σ_i max(ℓ − w + 1, 0). The F = ⌊n/s⌋ full groups have
    ℓ = g·s + s − 1, whose s queries each lose max(g·s + s − w, 0) keys: zero below g0 = ⌈(w − s)/s⌉ (clamped
    to [0, F]), an arithmetic series from g0 to F − 1 above it. The n − F·s queries of a partial last group have
    ℓ = n − 1 and lose max(n − w, 0). Hence

        useful = n(n + 1)/2 − s·[k·(s − w) + s·(g0 + F − 1)·k/2] − (n − F·s)·max(n − w, 0),  k = F − g0,

    where (g0 + F − 1)·k = 2·g0·k + k(k − 1) is even, so integer arithmetic is exact. Derived here; checked
    against numpy enumeration of the mask in tests/models/test_gna.py."""
    n, w, s = (np.asarray(x, dtype=np.int64) for x in (n, w, s))
    groups = n // s
    first = np.clip(_ceil_div(w - s, s), 0, groups)
    k = groups - first
    dropped = s * (k * (s - w) + s * ((first + groups - 1) * k // 2))
    return n * (n + 1) // 2 - dropped - (n - groups * s) * np.maximum(n - w, 0)


# Q tiles simulated per numpy pass: about 25 int64 temporaries of this length keep the simulator's memory at
# tens of MB whatever the sweep or search size (a group with more Q tiles is one pass of its own), and fit in
# cache better than longer passes do.
CHUNK_TILES = 1 << 16


def _group_tiles(nr, w, s, causal, tq, tk) -> dict[str, np.ndarray]:
    """Per undilated group of length nr (one row per group, all arguments 1-D arrays): sums over its Q tiles
    of visited KV tiles, fully unmasked KV tiles and computed scores, the most KV tiles one Q tile visits, and
    whether every visited tile is fully unmasked.

    Rows are laid out ragged, each followed by its own Q tiles only (no padding to the longest row), causal
    and non-causal rows apart, in passes of about CHUNK_TILES tiles whose per-row results come from
    ``reduceat``. Per Q tile [q0, q1] the union of its queries' windows is [lo(q0), hi(q1)] and the keys all of
    them see are [lo(q1), hi(q0)] (window ends never decrease with the query); the window rule is
    ``window_bounds``', written with per-row constants: non-causal lo(i) = clip(min(i − i mod s + ⌊s/2⌋ −
    ⌊w/2⌋, n − 1 − ⌊w/2⌋), 0, n − w), hi = lo + w − 1; causal lo(i) = max(min(i − i mod s + s − 1, n − 1)
    − w + 1, 0), hi = i."""
    tiles = _ceil_div(nr, tq)
    n = np.maximum(nr, w)                         # where windows are placed (nr itself for valid input)
    # per-row constants of the window rule, computed once
    shift = np.where(causal, s - 1, s // 2 - w // 2)
    cap = np.where(causal, n - 1, n - 1 - w // 2)
    last, span, last_kv = n - w, w - 1, _ceil_div(nr, tk) - 1
    # KV tile index of a key: a shift where every KV side is a power of two (as searched tiles are), 5x
    # cheaper than numpy's integer division by an array
    pow2 = bool(np.all(tk & (tk - 1) == 0))
    log_tk = np.frexp(tk)[1].astype(np.int64) - 1

    def kv_index(keys, tk_, log_tk_):             # ⌊keys / tk⌋ for keys ≥ 0
        return keys >> log_tk_ if pow2 else keys // tk_

    out = {"visited": np.empty(nr.size, np.int64), "full": np.empty(nr.size, np.int64),
           "computed": np.empty(nr.size, np.int64), "max_visited": np.empty(nr.size, np.int64),
           "block_sparse": np.empty(nr.size, bool)}
    for rows in (np.flatnonzero(~causal), np.flatnonzero(causal)):
        ends = np.cumsum(tiles[rows])
        r0 = 0
        while r0 < rows.size:
            done = ends[r0 - 1] if r0 else 0
            r1 = max(int(np.searchsorted(ends, done + CHUNK_TILES, side="right")), r0 + 1)
            chunk = rows[r0:r1]
            t = tiles[chunk]
            starts = np.cumsum(t) - t

            def rep(x):
                return np.repeat(x[chunk], t)

            step, tk_, length = rep(tq), rep(tk), rep(nr)
            log_tk_ = rep(log_tk) if pow2 else None
            q0 = (np.arange(int(t.sum())) - np.repeat(starts, t)) * step
            q1 = np.minimum(q0 + step, length) - 1
            s_, shift_, cap_, span_ = rep(s), rep(shift), rep(cap), rep(span)
            if causal[chunk[0]]:
                lo0 = np.maximum(np.minimum(q0 - q0 % s_ + shift_, cap_) - span_, 0)
                lo1 = np.maximum(np.minimum(q1 - q1 % s_ + shift_, cap_) - span_, 0)
                hi0, hi1 = q0, q1
            else:
                last_ = rep(last)
                lo0 = np.clip(np.minimum(q0 - q0 % s_ + shift_, cap_), 0, last_)
                lo1 = np.clip(np.minimum(q1 - q1 % s_ + shift_, cap_), 0, last_)
                hi0, hi1 = lo0 + span_, lo1 + span_
            first_tile, last_tile = kv_index(lo0, tk_, log_tk_), kv_index(hi1, tk_, log_tk_)
            visited = last_tile - first_tile + 1
            last_full = np.where(hi0 >= length - 1, rep(last_kv), kv_index(hi0 + 1, tk_, log_tk_) - 1)
            full = np.where(lo1 <= hi0, np.maximum(last_full - kv_index(lo1 + tk_ - 1, tk_, log_tk_) + 1, 0), 0)
            covered = np.minimum((last_tile + 1) * tk_, length) - first_tile * tk_
            out["visited"][chunk] = np.add.reduceat(visited, starts)
            out["full"][chunk] = np.add.reduceat(full, starts)
            out["computed"][chunk] = np.add.reduceat((q1 - q0 + 1) * covered, starts)
            out["max_visited"][chunk] = np.maximum.reduceat(visited, starts)
            out["block_sparse"][chunk] = np.logical_and.reduceat(visited == full, starts)
            r0 = r1
    return out


def dimension_stats(n, w, s, dilation, causal, q_tile, kv_tile) -> dict[str, np.ndarray]:
    """Per-dimension tile statistics, vectorized over any broadcast shape of the seven parameters.

    The δ dilation groups have only two lengths, ⌊n/δ⌋ + 1 (the first n mod δ groups) and ⌊n/δ⌋ (the other
    δ − n mod δ), so each length that occurs is simulated once (``_group_tiles``, in bounded chunks, whatever
    mix of dilations the points hold) and weighted by its count. Useful scores are closed forms: every
    non-causal query sees exactly w keys; causal groups use ``causal_useful_scores``. ``self_useful`` is self
    attention's useful scores in this dimension, n² or, causal, n(n + 1)/2 (the window is the layout)."""
    args = np.broadcast_arrays(*(np.asarray(x) for x in (n, w, s, dilation, causal, q_tile, kv_tile)))
    shape = args[0].shape
    n, w, s, dil, tq, tk = (args[k].ravel().astype(np.int64) for k in (0, 1, 2, 3, 5, 6))
    causal = args[4].ravel().astype(bool)
    lengths = np.stack([n // dil + 1, n // dil], axis=1)              # (points, 2): longer, shorter groups
    counts = np.stack([n % dil, dil - n % dil], axis=1)
    point, kind = np.nonzero(counts > 0)
    nr, weight = lengths[point, kind], counts[point, kind]
    rows = _group_tiles(nr, w[point], s[point], causal[point], tq[point], tk[point])
    useful = np.where(causal[point], causal_useful_scores(nr, w[point], s[point]), nr * w[point])

    def per_point(values, fill, reduce):
        grid = np.full(lengths.shape, fill, dtype=np.asarray(values).dtype)
        grid[point, kind] = values
        return reduce(grid, axis=1)

    out = {"q_tiles": per_point(weight * _ceil_div(nr, tq[point]), 0, np.sum),
           "visited": per_point(weight * rows["visited"], 0, np.sum),
           "max_visited": per_point(rows["max_visited"], 0, np.max),
           "full": per_point(weight * rows["full"], 0, np.sum),
           "computed": per_point(weight * rows["computed"], 0, np.sum),
           "useful": per_point(weight * useful, 0, np.sum),
           "self_useful": np.where(causal, n * (n + 1) // 2, n * n),
           "block_sparse": per_point(rows["block_sparse"], True, np.all)}
    return {k: v.reshape(shape) for k, v in out.items()}


def combine_dimensions(dims: list[dict], shape, kv_tile) -> dict[str, np.ndarray]:
    """Whole-layout counts from per-dimension statistics: boxes make every count a product over dimensions.

    Both bounds are against self attention on the same layout, causal in the dimensions where the mask is (the
    mask whose window is the layout; ``dense_tiles``), whose useful scores are Π n² over non-causal and
    Π n(n + 1)/2 over causal dimensions:

    * ``sparsity`` = 1 − useful scores / self attention's useful scores, the share of self attention's work
      the mask drops; ``speedup_bound`` (FLOP-wise) = self attention's useful scores / useful scores
      = 1 / (1 − sparsity). This is how reference/gna.md pairs them: 16x with 93.75 % sparsity (1-D 32768,
      window 2048), where both reduce to Πn / Πw.
    * ``tile_speedup_bound`` = self attention's KV tiles per Q tile (Π ⌈n/kv⌉, what its slowest Q tile visits,
      causal or not) over the most KV tiles any Q tile of the mask visits (the paper's simulated speedup)."""
    def product(key):
        return math.prod(np.asarray(d[key], dtype=np.float64) for d in dims)

    self_tiles = math.prod(np.ceil(np.asarray(n) / np.asarray(k)) for n, k in zip(shape, kv_tile))
    out = {"q_tiles": product("q_tiles"), "tiles_visited": product("visited"), "max_tiles": product("max_visited"),
           "tiles_unmasked": product("full"), "computed_scores": product("computed"),
           "useful_scores": product("useful"), "self_useful_scores": product("self_useful"),
           "self_tiles_per_q_tile": np.asarray(self_tiles, dtype=np.float64),
           "fully_block_sparse": functools.reduce(np.logical_and, [d["block_sparse"] for d in dims])}
    out["tiles_masked"] = out["tiles_visited"] - out["tiles_unmasked"]
    out["speedup_bound"] = out["self_useful_scores"] / out["useful_scores"]
    out["tile_speedup_bound"] = out["self_tiles_per_q_tile"] / out["max_tiles"]
    out["sparsity"] = 1 - out["useful_scores"] / out["self_useful_scores"]
    return out


def simulate_tiles(shape, window, stride, dilation, causal, q_tile, kv_tile) -> dict[str, np.ndarray]:
    """Tile counts and speedup bounds of a GNA mask (``combine_dimensions`` says what each bound is relative
    to); every argument is a per-dimension sequence whose items may be arrays (they broadcast, so a sweep is
    one call)."""
    dims = [dimension_stats(*p) for p in zip(shape, window, stride, dilation, causal, q_tile, kv_tile)]
    return combine_dimensions(dims, shape, kv_tile)


def dense_tiles(shape, q_tile, kv_tile, causal=None) -> dict[str, np.ndarray]:
    """Self attention, simulated as the mask whose window is the whole layout: without causal masking every Q
    tile visits every KV tile, none masked, and all tokens² scores are useful; causal self attention masks its
    diagonal tiles and keeps about half. It is the baseline of the predicted speedup, and its useful scores
    are the bounds' ``self_useful_scores``."""
    ones = tuple(np.ones_like(np.asarray(n)) for n in shape)
    causal = causal if causal is not None else (False,) * len(shape)
    return simulate_tiles(shape, shape, ones, ones, causal, q_tile, kv_tile)


SMALLEST_FMHA_TILE = 64     # the 3-D default tile (T/64, 8, 8) needs at least one 8x8 plane


def check_fmha_tokens(tokens) -> None:
    """An FMHA tile's token count is a power of two of at least 64: NATTEN's default tile shapes (T,),
    (16, T/16), (T/64, 8, 8) and the searched power-of-two boxes (``tile_shapes``) hold exactly T tokens only
    then (96 tokens would give a 3-D default of 1x8x8 = 64, and 192 no power-of-two box at all)."""
    if isinstance(tokens, bool) or not isinstance(tokens, (int, np.integer)) or tokens < SMALLEST_FMHA_TILE \
            or tokens & (tokens - 1):
        raise SimlibInputError(None, "fmha_tile", f"expected tokens per tile that are a power of two of at "
                                                  f"least {SMALLEST_FMHA_TILE} (the default tiles (T,), "
                                                  f"(16, T/16), (T/64, 8, 8) and the searched power-of-two "
                                                  f"boxes hold T tokens only then), got {tokens!r}")


def default_tile_shape(tokens: int, ndim: int) -> tuple[int, ...]:
    """NATTEN's default tile shapes for a token count: 1-D (T,), 2-D (16, T/16), 3-D (T/64, 8, 8); T must be a
    power of two of at least 64 (``check_fmha_tokens``; the hardware schema enforces it at load)."""
    check_fmha_tokens(tokens)
    return {1: (tokens,), 2: (16, tokens // 16), 3: (tokens // 64, 8, 8)}[ndim]


def default_tiles(hw: HardwareSpec, ndim: int, q_tile=None, kv_tile=None) -> tuple[tuple, tuple]:
    """The Q and KV tiles a problem runs with: the given ones, else the part's FMHA tile token counts in
    NATTEN's default shapes; a part listing no FMHA tile needs both given."""
    if (q_tile is None or kv_tile is None) and hw.fmha_tile is None:
        raise SimlibInputError(hw.source_file or hw.name, "fmha_tile", f"{hw.name} lists no FMHA tile sizes: "
                                                                       f"give q_tile and kv_tile")
    return (tuple(q_tile) if q_tile is not None else default_tile_shape(hw.fmha_tile.q_tokens, ndim),
            tuple(kv_tile) if kv_tile is not None else default_tile_shape(hw.fmha_tile.kv_tokens, ndim))


def shared_memory_bytes(q_tile, kv_tile, head_dim, dtype) -> int:
    """Shared memory one thread block holds: a Q tile and one K and one V tile, each token head_dim elements:
    bytes per element × head_dim × (Q tokens + 2 × KV tokens)."""
    return int(dtype_bytes(dtype) * head_dim * (math.prod(q_tile) + 2 * math.prod(kv_tile)))


def tile_problem(hw: HardwareSpec, shape, q_tile, kv_tile, head_dim, dtype) -> tuple[str, str] | None:
    """Why a Q/KV tile pair cannot run a problem, as (field, message), or None when it can. A tile side may
    not pass its dimension's next power of two (the largest side ``tile_shapes`` searches), and a Q tile with
    one K and one V tile must fit in an SM's shared memory (``shared_memory_bytes``). ``predict gna`` applies
    this to the tiles it runs (given or defaulted) and ``search gna`` skips the pairs it rejects."""
    for name, tile in (("q_tile", q_tile), ("kv_tile", kv_tile)):
        for d, (side, n) in enumerate(zip(tile, shape)):
            limit = 1 << (int(n) - 1).bit_length()
            if side > limit:
                return name, (f"{name} side {side} in dimension {d} is larger than the layout's extent {n} needs: "
                              f"expected at most {limit} (the extent's next power of two)")
    smem = hw.level("smem")
    need = shared_memory_bytes(q_tile, kv_tile, head_dim, dtype)
    if smem is not None and smem.capacity_bytes and need > smem.capacity_bytes:
        return "q_tile/kv_tile", (f"one Q tile and one K and V tile need {need} B of shared memory "
                                  f"({dtype_bytes(dtype):g} B x head_dim {head_dim} x ({math.prod(q_tile)} + 2 x "
                                  f"{math.prod(kv_tile)}) tokens); expected at most the {smem.capacity_bytes:.0f} B "
                                  f"an SM of {hw.name} has")
    return None


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
    argument is a sequence of arrays (one per dimension), the rest arrays, all of one length. The speedup's
    baseline is self attention simulated as the mask whose window is the layout (causal where the problem is;
    ``dense_tiles``), the same baseline both bounds use (``combine_dimensions``). Inputs are not checked
    here: ``gna_parameters`` checks each point as ``simlib predict gna`` does."""
    ndim = len(shape)
    sim = simulate_tiles(shape, window, stride, dilation, causal, q_tile, kv_tile)
    dense = dense_tiles(shape, q_tile, kv_tile, causal)
    common = dict(ndim=ndim, q_tokens=math.prod(np.asarray(t) for t in q_tile),
                  kv_tokens=math.prod(np.asarray(t) for t in kv_tile), tokens=math.prod(np.asarray(n) for n in shape),
                  batch=np.asarray(batch), heads=np.asarray(heads), head_dim=np.asarray(head_dim), dtype=dtype)
    time_s = gna_runtime(hw, sim, **common)["time_s"]
    return {"time_s": time_s, "speedup": gna_runtime(hw, dense, **common)["time_s"] / time_s,
            "speedup_bound": sim["speedup_bound"], "tile_speedup_bound": sim["tile_speedup_bound"],
            "fully_block_sparse": sim["fully_block_sparse"]}


def predict_gna(hw: HardwareSpec, *, shape, window, stride=None, dilation=None, causal=None, q_tile=None,
                kv_tile=None, batch=1, heads=1, head_dim=128, dtype="bf16") -> dict:
    """Simulated tiles, bounds and predicted runtimes of one GNA problem against self attention on the same
    hardware and tiles (causal self attention when the mask is causal): ``speedup`` = self attention's time /
    the mask's; ``speedup_bound``, ``sparsity`` and ``tile_speedup_bound`` as ``combine_dimensions`` defines
    them, against the same self attention. Tiles not given are the part's defaults (``default_tiles``). The
    CLI, validation and sweeps check their inputs first with ``gna_parameters``."""
    ndim = len(shape)
    stride = stride or (1,) * ndim
    dilation = dilation or (1,) * ndim
    causal = causal or (False,) * ndim
    q_tile, kv_tile = default_tiles(hw, ndim, q_tile, kv_tile)
    sim = simulate_tiles(shape, window, stride, dilation, causal, q_tile, kv_tile)
    dense = dense_tiles(shape, q_tile, kv_tile, causal)
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
    part's FMHA token counts unless given) that can run the problem (``tile_problem``: pairs it rejects are
    skipped, and none left is an input error stating why): the ``top`` configurations by predicted speedup
    over self attention (causal when the mask is). Per dimension every (stride, dilation) option against every
    tile side is one ``dimension_stats`` call (its memory bounded by chunking); per tile pair the options'
    product is one broadcast combination. An empty table means no configuration met ``block_sparse_only``."""
    ndim = len(shape)
    causal = causal or (False,) * ndim
    if (not q_tiles or not kv_tiles) and hw.fmha_tile is None:
        default_tiles(hw, ndim)                                   # the input error naming fmha_tile
    q_tiles = q_tiles or _searched_tiles(hw, "q_tile", hw.fmha_tile.q_tokens, shape)
    kv_tiles = kv_tiles or _searched_tiles(hw, "kv_tile", hw.fmha_tile.kv_tokens, shape)
    pairs = [(q, kv) for q, kv in itertools.product(q_tiles, kv_tiles)
             if tile_problem(hw, shape, q, kv, head_dim, dtype) is None]
    if not pairs:
        field, message = tile_problem(hw, shape, q_tiles[0], kv_tiles[0], head_dim, dtype)
        raise SimlibInputError("--set", field, f"no Q/KV tile pair of the search can run this problem; the first "
                                               f"({'x'.join(map(str, q_tiles[0]))}/{'x'.join(map(str, kv_tiles[0]))})"
                                               f": {message}")
    options = [np.stack(np.meshgrid(np.arange(1, w + 1), np.arange(1, n // w + 1)), axis=-1).reshape(-1, 2)
               for n, w in zip(shape, window)]                  # (stride, dilation), dilation-major
    per_dim = []
    for k, (n, w, opt) in enumerate(zip(shape, window, options)):
        tq_sides = sorted({q[k] for q, _ in pairs})
        tk_sides = sorted({kv[k] for _, kv in pairs})
        stats = dimension_stats(n, w, opt[:, 0, None, None], opt[:, 1, None, None], causal[k],
                                np.array(tq_sides)[None, :, None], np.array(tk_sides)[None, None, :])
        per_dim.append((stats, {v: i for i, v in enumerate(tq_sides)}, {v: i for i, v in enumerate(tk_sides)}))
    grid = [opt.reshape((1,) * k + (-1,) + (1,) * (ndim - k - 1) + (2,)) for k, opt in enumerate(options)]
    stride_product = math.prod(g[..., 0] for g in grid).ravel()
    dilation_product = math.prod(g[..., 1] for g in grid).ravel()
    found = []
    for q_tile, kv_tile in pairs:
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
