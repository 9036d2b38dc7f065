"""Exact tile counts of a (possibly causal) attention score matrix, vectorized over many shapes at once.

The score matrix of one head is nq × nkv, tiled into row blocks of bq queries and column blocks of bkv keys.
Causal masking is bottom-right aligned as in FlashAttention-2: query q sees keys k ≤ q + (nkv − nq). A row
block visits the column blocks up to the one holding its last visible key; edge blocks are clipped to the
matrix. Per row block i with r_i rows and last visible key count v_i = clip(i·bq + r_i + nkv − nq, 0, nkv):
tiles_i = ceil(v_i / bkv) (non-causal: v_i = nkv), keys covered c_i = min(nkv, tiles_i·bkv).
Ragged sums over row blocks use np.repeat + np.bincount, so no Python loop over tiles or shapes.
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


def _ceil_div(a, b):
    return -(-a // b)


def tile_counts(nq, nkv, bq, bkv, causal) -> TileCounts:
    nq, nkv, bq, bkv, causal = (np.asarray(x) for x in np.broadcast_arrays(nq, nkv, bq, bkv, causal))
    shape = nq.shape
    nq, nkv, bq, bkv, causal = (x.ravel().astype(np.int64) for x in (nq, nkv, bq, bkv, causal))
    tr, tc = _ceil_div(nq, bq), _ceil_div(nkv, bkv)
    owner = np.repeat(np.arange(nq.size), tr)
    start = np.repeat(np.cumsum(tr) - tr, tr)
    i = np.arange(owner.size) - start
    rows = np.minimum(bq[owner], nq[owner] - i * bq[owner])
    last = i * bq[owner] + rows + nkv[owner] - nq[owner]
    visible = np.where(causal[owner].astype(bool), np.clip(last, 0, nkv[owner]), nkv[owner])
    tiles = _ceil_div(visible, bkv[owner])
    cols = np.minimum(nkv[owner], tiles * bkv[owner])

    def per_shape(values):
        return np.bincount(owner, weights=values.astype(np.float64), minlength=nq.size)

    off = nkv - nq
    q = nq.astype(np.float64)
    causal_useful = q * (off + 1) + q * (q - 1) / 2   # Σ_{q<nq} (q + off + 1), valid for nq ≤ nkv
    useful = np.where(causal.astype(bool), causal_useful, q * nkv)
    out = TileCounts(tr, tc, per_shape(tiles), per_shape(rows * cols), useful, per_shape(cols),
                     per_shape(rows * tiles))
    for name, value in vars(out).items():
        setattr(out, name, np.asarray(value).reshape(shape))
    return out
