"""Exact tile counts of a (possibly causal) attention score matrix, vectorized over many shapes at once.

The score matrix of one head is nq × nkv, tiled into row blocks of bq queries and column blocks of bkv keys.
Causal masking is bottom-right aligned as in FlashAttention-2: query q sees keys k ≤ q + (nkv − nq). A row
block visits the column blocks up to the one holding its last visible key; edge blocks are clipped to the
matrix. Per row block i with r_i rows and last visible key count v_i = clip(i·bq + r_i + nkv − nq, 0, nkv):
tiles_i = ceil(v_i / bkv) (non-causal: v_i = nkv), keys covered c_i = min(nkv, tiles_i·bkv). A visited tile needs
the causal mask applied when some of its scores are masked: all of row block i's tiles but the first
floor(f_i / bkv) (all of them where f_i = nkv), which its first row, seeing f_i = clip(i·bq + 1 + nkv − nq, 0,
nkv) keys, sees whole.
Non-causal shapes have closed forms; causal ones sum over row blocks with np.repeat + np.bincount, so no Python
loop over tiles or shapes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TileCounts:
    row_blocks: np.ndarray          # Tr
    col_blocks: np.ndarray          # Tc
    tiles: np.ndarray               # visited (row block, column block) pairs
    score_elements: np.ndarray      # Σ_i r_i · c_i: scores computed, masked ones in partial tiles included
    useful_elements: np.ndarray     # scores not masked out
    kv_rows_read: np.ndarray        # Σ_i c_i: key rows streamed, summed over row blocks (flash2)
    q_rows_read: np.ndarray         # Σ_i r_i · tiles_i: query rows streamed, summed over tiles (flash1)
    masked_tiles: np.ndarray        # visited tiles holding a masked score (causal only)


def _ceil_div(a, b):
    return -(-a // b)


def tile_counts(nq, nkv, bq, bkv, causal) -> TileCounts:
    """Counts per shape. A non-causal row block visits every column block, which gives closed forms (tiles
    Tr·Tc, scores nq·nkv, key rows Tr·nkv, query rows nq·Tc); causal shapes sum over their row blocks."""
    nq, nkv, bq, bkv, causal = (np.asarray(x) for x in np.broadcast_arrays(nq, nkv, bq, bkv, causal))
    shape = nq.shape
    nq, nkv, bq, bkv = (x.ravel().astype(np.int64) for x in (nq, nkv, bq, bkv))
    causal = causal.ravel().astype(bool)
    tr, tc = _ceil_div(nq, bq), _ceil_div(nkv, bkv)
    q, k = nq.astype(np.float64), nkv.astype(np.float64)
    tiles = tr * tc.astype(np.float64)
    scores, kv_rows, q_rows = q * k, tr * k, q * tc
    masked_tiles = np.zeros(q.shape)

    masked = np.flatnonzero(causal)
    if masked.size:
        m_tr = tr[masked]
        owner = np.repeat(np.arange(masked.size), m_tr)
        start = np.repeat(np.cumsum(m_tr) - m_tr, m_tr)
        i = np.arange(owner.size) - start
        sq, skv, sbq, sbkv = (x[masked][owner] for x in (nq, nkv, bq, bkv))
        rows = np.minimum(sbq, sq - i * sbq)
        visible = np.clip(i * sbq + rows + skv - sq, 0, skv)
        row_tiles = _ceil_div(visible, sbkv)
        cols = np.minimum(skv, row_tiles * sbkv)

        def per_shape(values):
            return np.bincount(owner, weights=values.astype(np.float64), minlength=masked.size)

        tiles[masked] = per_shape(row_tiles)
        scores[masked] = per_shape(rows * cols)
        kv_rows[masked] = per_shape(cols)
        q_rows[masked] = per_shape(rows * row_tiles)
        first_visible = np.clip(i * sbq + 1 + skv - sq, 0, skv)
        whole = np.where(first_visible >= skv, _ceil_div(skv, sbkv), first_visible // sbkv)   # edge tile clipped
        masked_tiles[masked] = per_shape(row_tiles - np.minimum(row_tiles, whole))

    causal_useful = q * (k - q + 1) + q * (q - 1) / 2   # Σ_{q<nq} (q + nkv − nq + 1), valid for nq ≤ nkv
    useful = np.where(causal, causal_useful, q * k)
    out = TileCounts(tr, tc, tiles, scores, useful, kv_rows, q_rows, masked_tiles)
    for name, value in vars(out).items():
        setattr(out, name, np.asarray(value).reshape(shape))
    return out
