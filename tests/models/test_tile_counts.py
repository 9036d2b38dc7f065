"""Tile counts against brute-force enumeration of the mask with numpy (exact equality)."""
import numpy as np
from hypothesis import given, settings, strategies as st

from simlib.models.tile_counts import tile_counts


def brute(nq, nkv, bq, bkv, causal):
    q = np.arange(nq)[:, None]
    k = np.arange(nkv)[None, :]
    mask = (k <= q + nkv - nq) if causal else np.ones((nq, nkv), bool)
    tiles = scores = kv = qrows = masked = 0
    for i in range(0, nq, bq):
        for j in range(0, nkv, bkv):
            block = mask[i:i + bq, j:j + bkv]
            if block.any():
                tiles += 1
                scores += block.size
                kv += block.shape[1]
                qrows += block.shape[0]
                masked += int(not block.all())
    return tiles, scores, int(mask.sum()), kv, qrows, masked


@settings(max_examples=200, deadline=None)
@given(nq=st.integers(1, 70), extra=st.integers(-40, 40), bq=st.integers(1, 33), bkv=st.integers(1, 33),
       causal=st.booleans())
def test_counts_match_mask_enumeration(nq, extra, bq, bkv, causal):
    # causal masks need seq_q <= seq_kv; non-causal shapes may have fewer keys than queries
    nkv = nq + abs(extra) if causal else max(1, nq + extra)
    got = tile_counts(nq, nkv, bq, bkv, causal)
    tiles, scores, useful, kv, qrows, masked = brute(nq, nkv, bq, bkv, causal)
    assert got.tiles == tiles
    assert got.score_elements == scores
    assert got.useful_elements == useful
    assert got.kv_rows_read == kv
    assert got.q_rows_read == qrows
    assert got.masked_tiles == masked


def test_vectorized_over_many_shapes_equals_one_at_a_time():
    rng = np.random.default_rng(1)
    nq = rng.integers(1, 300, 50)
    nkv = nq + rng.integers(0, 100, 50)
    bq = rng.choice([16, 32, 64], 50)
    bkv = rng.choice([16, 32, 64, 128], 50)
    causal = rng.integers(0, 2, 50).astype(bool)
    many = tile_counts(nq, nkv, bq, bkv, causal)
    for n in range(50):
        one = tile_counts(nq[n], nkv[n], bq[n], bkv[n], causal[n])
        for field in ("row_blocks", "col_blocks", "tiles", "score_elements", "useful_elements", "kv_rows_read",
                      "q_rows_read", "masked_tiles"):
            assert getattr(one, field) == getattr(many, field)[n], field
