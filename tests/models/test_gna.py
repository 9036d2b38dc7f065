"""GNA tile simulator: counts against brute-force enumeration of the mask, the reference's published
statements and simulated speedups, and the CLI."""
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from simlib.hardware import load_hardware
from simlib.models.gna import end_to_end_speedup, predict_gna, simulate_tiles


def keys_of(i, n, w, s, dil, causal):
    """Keys of query i in one dimension, straight from the definition (reference/gna.md), one query at a time."""
    r, local = i % dil, i // dil
    nr = n // dil + (1 if r < n % dil else 0)
    if causal:
        leader = min((local // s) * s + s - 1, nr - 1)
        ks = range(max(leader - w + 1, 0), local + 1)
    else:
        leader = min((local // s) * s + s // 2, nr - 1)
        start = min(max(leader - w // 2, 0), nr - w)
        ks = range(start, start + w)
    return {r + dil * k for k in ks}


def brute_force(shape, window, stride, dilation, causal, q_tile, kv_tile):
    """Enumerate the full mask, permute tokens into dilation groups, tile each group's local layout into boxes,
    and count the (Q tile, KV tile) pairs with any and with only unmasked scores."""
    ndim = len(shape)
    coords = list(itertools.product(*(range(n) for n in shape)))
    mask = np.zeros((len(coords), len(coords)), dtype=bool)
    index = {c: k for k, c in enumerate(coords)}
    for qi, q in enumerate(coords):
        allowed = [keys_of(q[d], shape[d], window[d], stride[d], dilation[d], causal[d]) for d in range(ndim)]
        for key in itertools.product(*allowed):
            mask[qi, index[key]] = True

    def tile_id(c, tile):       # (dilation group, tile box) of a token in its group's local coordinates
        return tuple(c[d] % dilation[d] for d in range(ndim)) + tuple((c[d] // dilation[d]) // tile[d]
                                                                       for d in range(ndim))
    q_ids = np.array([hash(tile_id(c, q_tile)) for c in coords])
    kv_ids = np.array([hash(tile_id(c, kv_tile)) for c in coords])
    groups = np.array([hash(tuple(c[d] % dilation[d] for d in range(ndim))) for c in coords])
    visited = unmasked = computed = 0
    per_q = []
    for qt in np.unique(q_ids):
        rows = q_ids == qt
        count = 0
        for kt in np.unique(kv_ids[groups == groups[rows][0]]):
            block = mask[np.ix_(rows, kv_ids == kt)]
            if block.any():
                count += 1
                unmasked += block.all()
                computed += block.size
        visited += count
        per_q.append(count)
    return {"q_tiles": len(per_q), "tiles_visited": visited, "max_tiles": max(per_q), "tiles_unmasked": unmasked,
            "computed_scores": computed, "useful_scores": int(mask.sum())}


@st.composite
def problems(draw):
    ndim = draw(st.integers(1, 3))
    cap = {1: 40, 2: 12, 3: 6}[ndim]
    shape, window, stride, dilation, causal, q_tile, kv_tile = ([] for _ in range(7))
    for _ in range(ndim):
        n = draw(st.integers(2, cap))
        dil = draw(st.integers(1, max(1, n // 2)))
        w = draw(st.integers(2, max(2, n // dil))) if n // dil >= 2 else None
        if w is None:
            dil, w = 1, draw(st.integers(2, n))
        shape.append(n), dilation.append(dil), window.append(w)
        stride.append(draw(st.integers(1, w)))
        causal.append(draw(st.booleans()))
        q_tile.append(draw(st.integers(1, 5)))
        kv_tile.append(draw(st.integers(1, 5)))
    return tuple(shape), tuple(window), tuple(stride), tuple(dilation), tuple(causal), tuple(q_tile), tuple(kv_tile)


@settings(max_examples=60, deadline=None)
@given(problems())
def test_tile_counts_equal_brute_force(problem):
    expected = brute_force(*problem)
    got = simulate_tiles(*problem)
    for key, value in expected.items():
        assert got[key] == value, key
    assert bool(got["fully_block_sparse"]) == (expected["tiles_unmasked"] == expected["tiles_visited"])


def bounds(shape, window, stride, q_tile, kv_tile):
    ndim = len(shape)
    return simulate_tiles(shape, window, stride, (1,) * ndim, (False,) * ndim, q_tile, kv_tile)


@pytest.mark.parametrize("shape, window, flop_bound, sparsity", [
    ((32768,), (2048,), 16.0, 0.9375), ((256, 256), (80, 80), 10.24, 0.90), ((30, 48, 80), (18, 24, 24), 11.1, 0.91)])
def test_flop_wise_bounds_from_the_docs(shape, window, flop_bound, sparsity):
    # reference/gna.md: 16x (93.75 %), 10.2x (~90 %), 11.1x (~91 %); the closed form is prod(n) / prod(w)
    r = bounds(shape, window, (1,) * len(shape), (1,) * len(shape), (1,) * len(shape))
    assert r["speedup_bound"] == pytest.approx(math.prod(shape) / math.prod(window))
    assert r["speedup_bound"] == pytest.approx(flop_bound, abs=0.05)
    assert r["sparsity"] == pytest.approx(sparsity, abs=0.005)


@pytest.mark.parametrize("q, kv", [((128,), (128,)), ((256,), (128,))])
def test_stride_256_is_the_smallest_fully_block_sparse_1d_stride(q, kv):
    strides = np.arange(1, 2049)
    r = simulate_tiles((32768,), (2048,), (strides,), (1,), (False,), q, kv)
    sparse = strides[r["fully_block_sparse"]]
    assert sparse.min() == 256


@pytest.mark.parametrize("shape, window, stride, q, kv", [
    ((256, 256), (80, 80), (16, 16), (16, 8), (16, 8)), ((256, 256), (80, 80), (16, 16), (16, 16), (16, 8)),
    ((30, 48, 80), (18, 24, 24), (16, 8, 8), (2, 8, 8), (2, 8, 8)),
    ((30, 48, 80), (18, 24, 24), (16, 8, 8), (4, 8, 8), (2, 8, 8))])
def test_strided_cases_from_the_docs_are_fully_block_sparse(shape, window, stride, q, kv):
    r = bounds(shape, window, stride, q, kv)
    assert r["fully_block_sparse"] and r["tiles_masked"] == 0
    assert r["tile_speedup_bound"] == pytest.approx(r["speedup_bound"])     # block-sparse: nothing wasted


@pytest.mark.parametrize("shape, window, q, kv, stride, simulated", [
    ((256, 256), (80, 80), (16, 16), (16, 8), (1, 1), 6.1), ((256, 256), (80, 80), (16, 16), (16, 8), (16, 1), 8.5),
    ((256, 256), (80, 80), (16, 16), (16, 8), (16, 16), 10.2),
    ((16, 44, 80), (16, 32, 48), (8, 4, 8), (4, 4, 8), (1, 1, 1), 1.75),
    ((16, 44, 80), (16, 32, 48), (8, 4, 8), (4, 4, 8), (1, 8, 1), 1.96),
    ((16, 44, 80), (16, 32, 48), (8, 4, 8), (4, 4, 8), (1, 1, 16), 2.04),
    ((16, 44, 80), (16, 32, 48), (8, 4, 8), (4, 4, 8), (1, 8, 16), 2.29),
    ((16, 44, 80), (16, 24, 16), (8, 4, 8), (4, 4, 8), (1, 1, 1), 5.2),
    ((16, 44, 80), (16, 24, 16), (8, 4, 8), (4, 4, 8), (1, 8, 1), 6.1),
    ((16, 44, 80), (16, 24, 16), (8, 4, 8), (4, 4, 8), (1, 1, 16), 7.9),
    ((16, 44, 80), (16, 24, 16), (8, 4, 8), (4, 4, 8), (1, 8, 16), 9.2)])
def test_simulated_speedups_of_the_paper(shape, window, q, kv, stride, simulated):
    """The paper's simulated op-level speedups (B200 tiles, reference/gna.md): self attention's KV tiles per Q
    tile over the most any Q tile visits; published to 2-3 digits, so within 1 %."""
    assert bounds(shape, window, stride, q, kv)["tile_speedup_bound"] == pytest.approx(simulated, rel=0.01)


def test_end_to_end_speedups_of_the_paper():
    # reference/gna.md: FLUX (attention 51.8 %) FLOP-wise 1.88, simulated 1.76 / 1.84 / 1.88 for the op-level
    # 10.24 and 6.1 / 8.5 / 10.2; Cosmos-7B (58.7 %) FLOP-wise 2.10 (op-level 9.17), simulated 1.90 / 1.96 / 2.05
    # / 2.10 for 5.2 / 6.1 / 7.9 / 9.2. GNA in every step reproduces them, to the tables' 2 digits.
    flux = bounds((256, 256), (80, 80), (1, 1), (16, 16), (16, 8))
    assert end_to_end_speedup(flux["speedup_bound"], 0.518) == pytest.approx(1.88, abs=0.01)
    assert end_to_end_speedup(np.array([6.1, 8.5, 10.2]), 0.518) == pytest.approx([1.76, 1.84, 1.88], abs=0.01)
    cosmos = bounds((16, 44, 80), (16, 24, 16), (1, 1, 1), (8, 4, 8), (4, 4, 8))
    assert end_to_end_speedup(cosmos["speedup_bound"], 0.587) == pytest.approx(2.10, abs=0.01)
    assert end_to_end_speedup(np.array([5.2, 6.1, 7.9, 9.2]), 0.587) == pytest.approx([1.90, 1.96, 2.05, 2.10],
                                                                                     abs=0.01)


def run(*args):
    return subprocess.run([sys.executable, "-m", "simlib.cli.main", *args], capture_output=True, text=True)


def test_cli_exact_form():
    out = run("predict", "gna", "--hardware", "b200", "--set", "shape=30x48x80", "--set", "heads=24", "--set",
              "head_dim=128", "--set", "window=18x24x24", "--set", "stride=16x8x8", "--set", "q_tile=4x8x8",
              "--set", "kv_tile=2x8x8", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("time_s", "permute_time_s", "baseline_time_s", "speedup", "speedup_bound", "tile_speedup_bound",
                "fully_block_sparse", "sparsity"):
        assert key in data
    assert data["fully_block_sparse"] is True
    # By hand (reference/gna.md's window rule): dimension 0 (n 30, w 18, s 16, Q 4, KV 2): queries 0-15 lead at
    # 8 and see [0, 17], queries 16-29 lead at 24 and see [12, 29] (start clamped to 30 - 18): 9 KV tiles of 2,
    # all full. Dimensions 1 and 2 (s 8 = Q tile 8 = KV tile): group g sees 24 keys from clip(8g - 8, 0, n - 24),
    # a multiple of 8: 3 KV tiles. So every Q tile visits 9 x 3 x 3 = 81 unmasked tiles; self attention visits
    # 15 x 6 x 10 = 900. Both run the same unmasked tile in the same waves (24 heads x 480 Q tiles on 148 SMs),
    # so the predicted speedup is 900 / 81 = 11.11 = 115200 / 10368, the FLOP-wise 30x48x80 / 18x24x24.
    assert data["q_tiles"] == 8 * 6 * 10 and data["max_tiles"] == 81 and data["tiles_visited"] == 480 * 81
    assert data["self_tiles_per_q_tile"] == 900
    assert data["speedup"] == pytest.approx(900 / 81, rel=1e-9)
    assert data["speedup_bound"] == pytest.approx(30 * 48 * 80 / (18 * 24 * 24), rel=1e-12)


def test_cli_default_tiles_follow_the_hardware():
    b200 = json.loads(run("predict", "gna", "--hardware", "b200", "--set", "shape=30x48x80", "--set",
                          "window=18x24x24", "--json").stdout)
    h100 = json.loads(run("predict", "gna", "--hardware", "h100", "--set", "shape=30x48x80", "--set",
                          "window=18x24x24", "--json").stdout)
    assert b200["q_tile"] == [4, 8, 8] and b200["kv_tile"] == [2, 8, 8]
    assert h100["q_tile"] == [2, 8, 8] and h100["kv_tile"] == [2, 8, 8]


@pytest.mark.parametrize("settings, fragment", [
    (["shape=30x48x80", "window=40x24x24"], "window 40 in dimension 0"),
    (["shape=30x48x80", "window=18x24x24", "stride=20x8x8"], "stride 20 in dimension 0 is larger"),
    (["shape=30x48x80", "window=18x24x24", "dilation=2x1x1"], "dilation 2 x window 18"),
    (["shape=30x48x80", "window=18x24x24", "q_tile=8x8"], "q_tile has 2 dimensions"),
    (["shape=30x48x80", "window=18x24x-4"], "expected positive integers"),
    (["shape=30x48x80"], "gna needs window"),
    (["shape=30x48x80", "window=18x24x24", "causal=1x0"], "causal"),
    (["shape=64x64", "window=8.5"], "expected positive integers"),
    # bf16, head dim 128: 2 x 128 x (4096 + 2 x 4096) = 3145728 B of shared memory, more than any SM has
    (["shape=32768", "window=2048", "q_tile=4096", "kv_tile=4096"], "need 3145728 B of shared memory"),
    (["shape=64", "window=8", "q_tile=128", "kv_tile=64"], "q_tile side 128 in dimension 0"),
    (["shape=64x64", "window=8x8.5"], "expected positive integers"),
])
def test_cli_bad_gna_input(settings, fragment):
    out = run("predict", "gna", "--hardware", "b200", *[a for s in settings for a in ("--set", s)])
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert fragment in out.stderr


def test_search_finds_the_documented_block_sparse_configurations():
    from simlib.models.gna import search_gna
    h100 = load_hardware("h100")
    one_d = search_gna(h100, shape=(32768,), window=(2048,), q_tiles=[(128,)], kv_tiles=[(128,)], top=3,
                       block_sparse_only=True)
    # equal speedups rank the least dilated, smallest strides first: stride 256 is the docs' smallest
    assert one_d.loc[0, "stride"] == "256" and one_d.loc[0, "dilation"] == "1"
    assert one_d["fully_block_sparse"].all() and one_d.loc[0, "speedup"] == pytest.approx(16, rel=1e-6)
    three_d = search_gna(load_hardware("b200"), shape=(30, 48, 80), window=(18, 24, 24), heads=24, top=10)
    assert three_d.loc[0, "stride"] == "16x8x8" and three_d.loc[0, "fully_block_sparse"]
    assert three_d.loc[0, "speedup"] == pytest.approx(30 * 48 * 80 / (18 * 24 * 24), rel=1e-6)
    assert (three_d["q_tile"] == "4x8x8").any()


def test_search_speedups_equal_single_predictions():
    from simlib.models.gna import predict_gna, search_gna
    h100 = load_hardware("h100")
    table = search_gna(h100, shape=(64, 64), window=(20, 12), q_tiles=[(16, 8)], kv_tiles=[(16, 8)], top=5)
    for row in table.itertuples():
        single = predict_gna(h100, shape=(64, 64), window=(20, 12), stride=tuple(map(int, row.stride.split("x"))),
                             dilation=tuple(map(int, row.dilation.split("x"))), q_tile=(16, 8), kv_tile=(16, 8))
        assert single["speedup"] == pytest.approx(row.speedup, rel=1e-9)
        assert single["fully_block_sparse"] == row.fully_block_sparse


def test_search_cli():
    out = run("search", "gna", "--hardware", "h100", "--set", "shape=32768", "--set", "window=2048", "--set",
              "q_tile=128", "--set", "kv_tile=128", "--top", "2", "--block-sparse-only", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows[0]["stride"] == "256" and len(rows) == 2
    bad = run("search", "gna", "--hardware", "h100", "--set", "shape=32768", "--set", "window=40000")
    assert bad.returncode == 2 and "window 40000" in bad.stderr


def test_figures_are_drawn(tmp_path):
    out = run("figure", "gna", "--hardware", "b200", "--set", "stride=16x1", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "gna_speedup_vs_stride_b200.png").stat().st_size > 10_000
    assert (tmp_path / "gna_visited_tiles_b200.png").stat().st_size > 5_000


def test_visited_tiles_picture_counts_match_the_simulator():
    import matplotlib.pyplot as plt

    from simlib.plots.gna_figures import visited_tiles_2d
    fig, grid = visited_tiles_2d((256, 256), (80, 80), (16, 1), (16, 16), (16, 8), q_tile_index=(8, 8))
    plt.close(fig)
    # FLUX 80x80 at stride 16x1 (reference/gna.md: simulated 8.5 = 512 / 60). By hand for Q tile (8, 8):
    # dimension 0 (stride 16): queries 128-143 form one stride group led by 136, window [96, 175], the 16-key
    # tiles 6..10, 5 unmasked; dimension 1 (stride 1): the union of the windows is [88, 182] (first query
    # 128 - 40, last 143 - 40 + 79), the 8-key tiles 11..22 = 12 visited, and every query sees [103, 167],
    # tiles 13..20 = 8 unmasked. So 5 x 12 = 60 visited, 5 x 8 = 40 unmasked, no Q tile visits more.
    assert (grid > 0).sum() == 60 and (grid == 2).sum() == 5 * 8
    flux = simulate_tiles((256, 256), (80, 80), (16, 1), (1, 1), (False, False), (16, 16), (16, 8))
    assert flux["max_tiles"] == 60 and flux["self_tiles_per_q_tile"] == 32 * 16
    assert flux["tile_speedup_bound"] == pytest.approx(8.5, rel=0.01)
    # every Q tile's picture of a small layout (causal and dilated too) against the simulator's totals
    problem = ((24, 20), (10, 6), (4, 1), (2, 1), (True, False), (4, 4), (2, 4))
    shape, window, stride, dilation, causal, q_tile, kv_tile = problem
    local = [-(-n // d) for n, d in zip(shape, dilation)]          # the picture's dilation group 0
    counts = []
    for a in range(-(-local[0] // q_tile[0])):
        for b in range(-(-local[1] // q_tile[1])):
            fig, grid = visited_tiles_2d(shape, window, stride, q_tile, kv_tile, q_tile_index=(a, b),
                                         dilation=dilation, causal=causal)
            plt.close(fig)
            counts.append(((grid > 0).sum(), (grid == 2).sum()))
    visited, unmasked = np.array(counts).T
    # dilation 2 of 24 tokens: two groups of 12, both like group 0, so the simulator counts twice the picture's
    sim = simulate_tiles(*problem)
    assert sim["tiles_visited"] == 2 * visited.sum() and sim["tiles_unmasked"] == 2 * unmasked.sum()
    assert sim["max_tiles"] == visited.max() and sim["q_tiles"] == 2 * len(counts)
    assert brute_force(*problem)["tiles_visited"] == 2 * visited.sum()


@pytest.mark.parametrize("args, fragment", [
    (["figure", "tts", "--set", "bogus=1", "--out"], "take no settings"),
    (["figure", "fusemax", "--hardware", "h100", "--out"], "its own hardware"),
    (["search", "gna", "--hardware", "h100", "--set", "shape=64x64", "--set", "window=8x8", "--set", "stride=2x2",
      "--top"], "searches every stride"),
])
def test_options_a_command_does_not_use_are_refused(tmp_path, args, fragment):
    out = run(*args, str(tmp_path) if args[-1] == "--out" else "3")
    assert out.returncode == 2 and "Traceback" not in out.stderr and fragment in out.stderr, out.stderr


def test_gna_figures_default_to_a_part_with_an_fmha_tile(tmp_path):
    out = run("figure", "gna", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "gna_speedup_vs_stride_h100.png").stat().st_size > 10_000


def test_causal_gna_is_compared_with_causal_self_attention_by_brute_force():
    """1-D, 64 tokens, causal window 8: a query i sees keys max(0, i - 7)..i. Counted with numpy: GNA keeps
    sum(min(i + 1, 8)) = 36 + 56 * 8 = 484 scores, causal self attention 64 * 65 / 2 = 2080; the FLOP-wise bound
    is their ratio, never above the non-causal layout / window = 8."""
    i, j = np.arange(64)[:, None], np.arange(64)[None, :]
    gna_scores = int(((j <= i) & (j > i - 8)).sum())
    causal_scores = int((j <= i).sum())
    assert (gna_scores, causal_scores) == (484, 2080)
    r = predict_gna(load_hardware("h100"), shape=(64,), window=(8,), causal=(True,), q_tile=(16,), kv_tile=(16,))
    assert r["useful_scores"] == gna_scores
    assert r["speedup_bound"] == pytest.approx(causal_scores / gna_scores) and r["speedup_bound"] <= 8
    # one meaning everywhere (reference/gna.md pairs 16x with 93.75 %): sparsity is the share of causal self
    # attention's scores dropped, and the simulator alone gives what predict gives (it gave 4096 / 484 = 8.5)
    assert r["sparsity"] == pytest.approx(1 - gna_scores / causal_scores)
    sim = simulate_tiles((64,), (8,), (1,), (1,), (True,), (16,), (16,))
    assert sim["speedup_bound"] == pytest.approx(causal_scores / gna_scores)
    assert sim["sparsity"] == pytest.approx(r["sparsity"])


def test_visited_tiles_picture_causal_and_dilated_against_a_brute_force_mask():
    """A 32x32 layout, window 8x8, causal in dimension 0, dilation 2x1: the map shows dilation group 0, a 16x32
    problem. Brute force with numpy from the mask's definition: causal, query i sees keys max(0, i - 7)..i;
    non-causal neighborhood, the 8 keys from clip(i - 4, 0, n - 8); a KV tile is visited when any (query, key)
    pair of the Q tile and it is attended, unmasked when all are."""
    from simlib.plots.gna_figures import visited_tiles_2d
    q_tile, kv_tile = (4, 8), (4, 8)
    _, grid = visited_tiles_2d((32, 32), (8, 8), (1, 1), q_tile, kv_tile, dilation=(2, 1), causal=(True, False))
    i0, j0 = np.arange(16)[:, None], np.arange(16)[None, :]
    mask0 = (j0 <= i0) & (j0 >= np.maximum(0, i0 - 7))
    i1, j1 = np.arange(32)[:, None], np.arange(32)[None, :]
    start = np.clip(i1 - 4, 0, 24)
    mask1 = (j1 >= start) & (j1 < start + 8)
    qa, qb = 16 // 4 // 2, 32 // 8 // 2                # the middle Q tile, as the picture picks it
    rows0, rows1 = mask0[qa * 4:qa * 4 + 4], mask1[qb * 8:qb * 8 + 8]
    expect = np.zeros((4, 4), dtype=int)
    for a in range(4):
        for b in range(4):
            pairs = (rows0[:, a * 4:a * 4 + 4][:, None, :, None] & rows1[:, b * 8:b * 8 + 8][None, :, None, :])
            expect[a, b] = 2 if pairs.all() else int(pairs.any())
    assert grid.shape == (4, 4) and np.array_equal(grid, expect)
    assert (grid == 0).any() and (grid == 1).any()


def test_speedup_figure_uses_the_problems_dilation_and_causal_flags():
    """Each point of the stride figure is the prediction ``predict gna`` gives for that stride, with the
    problem's dilation, causal flags and batch (before, the figure dropped them)."""
    from simlib.plots.gna_figures import speedup_vs_stride
    h100 = load_hardware("h100")
    problem = dict(shape=(128, 64), window=(16, 8), q_tile=(16, 8), kv_tile=(16, 8), dilation=(2, 1),
                   causal=(True, False), batch=2, heads=4, head_dim=64)
    _, data = speedup_vs_stride(h100, problem["shape"], problem["window"], problem["q_tile"], problem["kv_tile"],
                                problem["heads"], problem["head_dim"], dilation=problem["dilation"],
                                causal=problem["causal"], batch=problem["batch"])
    for stride in (1, 4, 8, 16):
        single = predict_gna(h100, stride=(stride, min(stride, 8)), **problem)
        assert data["predicted"][stride - 1] == pytest.approx(single["speedup"], rel=1e-9)
        assert np.broadcast_to(data["speedup_bound"], data["stride"].shape)[stride - 1] == \
            pytest.approx(single["speedup_bound"], rel=1e-9)
    plain = speedup_vs_stride(h100, problem["shape"], problem["window"], problem["q_tile"], problem["kv_tile"],
                              problem["heads"], problem["head_dim"])[1]
    assert not np.allclose(plain["predicted"], data["predicted"])


def test_figure_help_lists_every_setting_it_uses():
    import os
    out = subprocess.run([sys.executable, "-m", "simlib.cli.main", "figure", "--help"], capture_output=True,
                         text=True, env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"})
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    for name in ("shape", "window", "stride", "dilation", "causal", "q_tile", "kv_tile", "batch", "heads",
                 "head_dim", "dtype", "256x256", "80x80"):
        assert name in text, name


@pytest.mark.parametrize("settings, field, fragment", [
    # a 1-D layout against the 2-D default window the user never wrote
    (["shape=1024"], "window", "default window 80x80 does not fit the layout 1024"),
    (["shape=64x64"], "window", "e.g. --set window=64x64"),
    (["window=3"], "shape", "default layout 256x256 does not fit the window 3"),
])
def test_figure_names_the_default_that_does_not_fit(tmp_path, settings, field, fragment):
    args = [a for s in settings for a in ("--set", s)]
    out = run("figure", "gna", *args, "--out", str(tmp_path))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"--set: {field}: not given" in out.stderr and fragment in out.stderr, out.stderr


def test_figure_with_a_given_shape_that_fits_the_default_window(tmp_path):
    out = run("figure", "gna", "--set", "shape=128x128", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("settings, field", [
    # h100's FMHA tiles are 128 tokens; a 1-D layout of 64 stops every side at 64: no Q tile, so q_tile first
    (["shape=64", "window=16"], "q_tile"),
    (["shape=64", "window=16", "q_tile=64"], "kv_tile"),
])
def test_search_on_a_layout_smaller_than_a_tile_names_the_tile(settings, field):
    out = run("search", "gna", "--hardware", "h100", *[a for s in settings for a in ("--set", s)])
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"--set: {field}: no 128-token tile" in out.stderr and f"expected {field} given" in out.stderr


def test_search_with_the_tiles_given_on_a_small_layout():
    from simlib.models.gna import search_gna
    table = search_gna(load_hardware("h100"), shape=(64,), window=(16,), q_tiles=[(64,)], kv_tiles=[(64,)], top=3)
    assert len(table) == 3 and set(table.q_tile) == {"64"}


@settings(max_examples=40, deadline=None)
@given(problems())
def test_bounds_are_against_self_attention_with_the_same_causal_flags(problem):
    """``speedup_bound`` and ``sparsity`` mean one thing for every mask (reference/gna.md pairs 16x with 93.75 %
    sparsity): both against self attention on the layout, causal where the mask is. Brute force: the mask's
    useful scores and the self-attention mask's (window = layout, stride 1), each enumerated; exact ratios."""
    shape, window, stride, dilation, causal, q_tile, kv_tile = problem
    ones = (1,) * len(shape)
    useful = brute_force(*problem)["useful_scores"]
    dense = brute_force(shape, shape, ones, ones, causal, q_tile, kv_tile)["useful_scores"]
    got = simulate_tiles(*problem)
    assert got["speedup_bound"] == pytest.approx(dense / useful, rel=1e-12)
    assert got["sparsity"] == pytest.approx(1 - useful / dense, abs=1e-12)
    assert got["self_useful_scores"] == dense


def causal_scores_enumerated(n, w, s):
    """Scores of a causal window in one dimension, from reference/gna.md's definition by numpy enumeration of
    the n x n mask: query i (leader l = min(floor(i/s) s + s - 1, n - 1)) sees keys max(l - w + 1, 0)..i."""
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    leader = np.minimum((i // s) * s + s - 1, n - 1)
    return int(((j <= i) & (j >= np.maximum(leader - w + 1, 0))).sum())


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(2, max(2, n)))).flatmap(
    lambda nw: st.tuples(st.just(nw[0]), st.just(nw[1]), st.integers(1, nw[1]))))
def test_causal_useful_closed_form_equals_enumeration(nws):
    """The O(1) closed form (``causal_useful_scores``) against the enumerated mask, exactly; n < w included."""
    from simlib.models.gna import causal_useful_scores
    n, w, s = nws
    assert int(causal_useful_scores(n, w, s)) == causal_scores_enumerated(n, w, s)


def test_causal_useful_closed_form_by_hand():
    """n 10, w 4, s 3 by hand: groups {0,1,2} lead at 2 (keys from 0), {3,4,5} at 5 (from 2), {6,7,8} at 8 (from
    5), {9} at 9 (from 6): 1+2+3 + 2+3+4 + 2+3+4 + 4 = 28; causal self attention keeps 10 x 11 / 2 = 55."""
    from simlib.models.gna import causal_useful_scores
    assert int(causal_useful_scores(10, 4, 3)) == 28 == causal_scores_enumerated(10, 4, 3)
    assert int(causal_useful_scores(10, 10, 1)) == 55
    # arrays broadcast: a sweep over strides is one call
    assert list(causal_useful_scores(10, 4, np.array([1, 3, 4]))) == [causal_scores_enumerated(10, 4, s)
                                                                      for s in (1, 3, 4)]


PRE_REWORK = json.loads((Path(__file__).parents[1] / "data" / "gna" / "pre_rework_outputs.json").read_text())


@pytest.mark.parametrize("chunk", [None, 7, 1])
def test_dimension_stats_equal_the_pre_rework_simulator(monkeypatch, chunk):
    """3000 random (n ≤ 300, dilated, causal) points: the chunked, ragged, closed-form simulator gives exactly
    what the simulator gave before the rework (tests/data/gna/pre_rework_outputs.json, itself checked against
    brute force by test_tile_counts_equal_brute_force then), in one call over mixed dilations, and whatever the
    chunk size (7 and 1 tiles put chunk boundaries inside groups' tile runs)."""
    import simlib.models.gna as gna
    if chunk is not None:
        monkeypatch.setattr(gna, "CHUNK_TILES", chunk)
    data = PRE_REWORK["dimension_stats"]
    points = [np.array(c) for c in zip(*data["points"])]
    pow2 = (points[6] & (points[6] - 1)) == 0          # KV sides 1, 2, 4, ..., 64: the shift path
    for subset in (np.ones(len(pow2), bool), pow2):
        got = gna.dimension_stats(*(c[subset] for c in points))
        for key in ("q_tiles", "visited", "max_visited", "full", "computed", "useful", "block_sparse"):
            assert np.array_equal(got[key], np.array(data[key])[subset]), key


@pytest.mark.parametrize("case", PRE_REWORK["search_gna"], ids=lambda c: f"{c['hardware']}-{c['kwargs']['shape']}")
def test_search_equals_the_pre_rework_search(case):
    """Search tables (1-, 2- and 3-D, causal, block-sparse only, tiles given or searched) equal the ones the
    per-dilation search gave before the rework, every float exactly."""
    from simlib.models.gna import search_gna
    kwargs = {k: ([tuple(t) for t in v] if k in ("q_tiles", "kv_tiles") else tuple(v) if isinstance(v, list)
                  else v) for k, v in case["kwargs"].items()}
    assert search_gna(load_hardware(case["hardware"]), **kwargs).to_dict(orient="records") == case["rows"]


def test_simulator_memory_is_bounded_for_long_layouts():
    """Causal statistics used to hold strides x queries (32768 tokens, 2048 strides: 512 MB per array, 6.5 GB
    for the search) and non-causal ones strides x Q tiles per dilation; now the useful count is a closed form
    and Q tiles are simulated in chunks of CHUNK_TILES, so the peak stays at tens of MB (tracemalloc sees
    numpy's buffers)."""
    import tracemalloc

    from simlib.models.gna import dimension_stats
    strides = np.arange(1, 2049)
    tracemalloc.start()
    causal = dimension_stats(32768, 2048, strides, 1, True, 128, 128)
    dilated = dimension_stats(32768, 128, np.arange(1, 129)[:, None], np.arange(1, 257)[None, :], False, 128, 128)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 400e6, f"{peak / 1e6:.0f} MB"
    # stride 2048 = w: blocked causal attention, each query sees its block up to itself: 16 x 2048 x 2049 / 2
    assert causal["useful"][-1] == 16 * 2048 * 2049 // 2
    assert causal["useful"][0] == causal_scores_enumerated(32768, 2048, 1) == 2048 * 2049 // 2 + 30720 * 2048
    assert dilated["useful"].shape == (128, 256) and (dilated["useful"] == 32768 * 128).all()   # w keys each


def test_search_of_a_long_causal_layout_by_hand():
    """Search gna, 32768 tokens, window 2048, causal, top 3 (66 s and 6.5 GB before the closed form; timed in
    benchmarks/bench_gna.py, not here)."""
    from simlib.models.gna import search_gna
    table = search_gna(load_hardware("h100"), shape=(32768,), window=(2048,), causal=(True,), top=3)
    assert len(table) == 3 and not table["fully_block_sparse"].any()
    # blocked causal attention (stride = window 2048) against causal self attention, by hand:
    # 32768 x 32769 / 2 over 16 x 2048 x 2049 / 2
    assert table.loc[0, "speedup_bound"] == pytest.approx(32768 * 32769 / (16 * 2048 * 2049), rel=1e-12)


@pytest.mark.parametrize("settings, spelled, fragment", [
    # h100's default 2-D Q tile is 16x8: 16 passes the extent 4 (its next power of two is 4)
    (["shape=4x4096", "window=4x256"], ["q_tile=16x8"], "q_tile side 16 in dimension 0 is larger than the layout's "
                                                        "extent 4 needs: expected at most 4"),
    # bf16, head dim 128: 2 x 128 x (4096 + 2 x 128) = 1114112 B with the default 128-token KV tile
    (["shape=32768", "window=2048", "q_tile=4096"], ["kv_tile=128"], "need 1114112 B of shared memory"),
    # head dim 1024: 2 x 1024 x (128 + 2 x 128) = 786432 B with the default tiles
    (["shape=4096", "window=256", "head_dim=1024"], ["q_tile=128", "kv_tile=128"], "need 786432 B of shared memory"),
])
def test_default_tiles_get_the_checks_given_tiles_get(settings, spelled, fragment):
    """The same problem is refused whether its tiles are defaulted or spelled out, and the message states the
    limit (the extent's next power of two; h100's 233472 B of shared memory per SM)."""
    for extra in ([], spelled):
        out = run("predict", "gna", "--hardware", "h100", *[a for s in settings + extra for a in ("--set", s)])
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert fragment in out.stderr, out.stderr
        if "shared memory" in fragment:
            assert "233472 B" in out.stderr
    assert "not given: h100's default" in run("predict", "gna", "--hardware", "h100",
                                              *[a for s in settings for a in ("--set", s)]).stderr


def test_search_skips_tiles_predict_would_refuse():
    """4x4096: the 128-token boxes with a first side above 4 cannot run; the search lists only tiles that
    predict accepts, and a problem no searched pair fits (head dim 1024) is an input error stating the limit."""
    from simlib.models.gna_cli import predict_gna_cli, search_gna_cli
    h100 = load_hardware("h100")
    table = search_gna_cli(h100, {"shape": "4x4096", "window": "4x256"}, top=50, block_sparse_only=False)
    assert len(table) == 50 and set(table.q_tile) | set(table.kv_tile) <= {"1x128", "2x64", "4x32"}
    for row in table.head(5).itertuples():
        single = predict_gna_cli(h100, {"shape": "4x4096", "window": "4x256", "stride": row.stride,
                                        "dilation": row.dilation, "q_tile": row.q_tile, "kv_tile": row.kv_tile})
        assert single["speedup"] == pytest.approx(row.speedup, rel=1e-9)
    out = run("search", "gna", "--hardware", "h100", "--set", "shape=4096", "--set", "window=256", "--set",
              "head_dim=1024")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "need 786432 B of shared memory" in out.stderr and "233472 B" in out.stderr


@pytest.mark.parametrize("q, kv, field, value", [(32, 192, "q_tokens", 32), (128, 192, "kv_tokens", 192),
                                                 (96, 128, "q_tokens", 96)])
def test_fmha_tiles_that_cannot_be_shaped_are_refused_at_load(tmp_path, q, kv, field, value):
    """q_tokens 32 (below a 3-D default's 8x8 plane: crashed), 192 (no power-of-two box: the search used 128),
    96 (the 3-D default became 1x8x8 = 64): each refused when the YAML is read, naming the field."""
    from simlib.errors import SimlibInputError
    from simlib.models.gna import default_tile_shape
    text = (Path(__file__).parents[2] / "hardware" / "h100.yaml").read_text()
    line = next(t for t in text.splitlines() if t.startswith("fmha_tile:"))
    path = tmp_path / "hx.yaml"
    path.write_text(text.replace(line, f"fmha_tile: {{q_tokens: {q}, kv_tokens: {kv}}}"))
    out = run("predict", "gna", "--hardware", str(path), "--set", "shape=30x48x80", "--set", "window=18x24x24")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"fmha_tile.{field}: expected a power of two of at least 64" in out.stderr and f"got {value}" in out.stderr
    with pytest.raises(SimlibInputError, match="power of two"):
        default_tile_shape(96, 3)


def test_search_with_nothing_block_sparse_says_so():
    """A causal 64x64 mask with 128-token tiles is never fully block-sparse: an empty answer, exit 0 (a valid
    query, not an input error), and a line on stderr saying no configuration met the filter."""
    args = ("search", "gna", "--hardware", "h100", "--set", "shape=64x64", "--set", "window=8x8", "--set",
            "causal=true", "--block-sparse-only")
    for extra in ((), ("--json",)):
        out = run(*args, *extra)
        assert out.returncode == 0, out.stderr
        assert "no configuration met --block-sparse-only" in out.stderr
    assert json.loads(out.stdout) == []
    found = run("search", "gna", "--hardware", "h100", "--set", "shape=32768", "--set", "window=2048",
                "--block-sparse-only", "--top", "1")
    assert found.returncode == 0 and "no configuration met" not in found.stderr


@pytest.mark.parametrize("command, settings, field, fragment", [
    # a 20-digit extent overflowed a C long; 1e12 ran numpy out of memory (1e9 was OOM-killed);
    # 1e20 was 'array is too big'
    ("predict", ["shape=99999999999999999999", "window=16"], "shape", "expected at most 67108864 tokens"),
    ("predict", ["shape=1e12", "window=16"], "shape", "extent 1000000000000 in dimension 0"),
    ("search", ["shape=1e20", "window=16"], "shape", "expected at most 67108864 tokens"),
    # every extent within the cap, but 2**27 tokens in all
    ("predict", ["shape=8192x8192x2", "window=16x16x2"], "shape", "has 134217728 tokens: expected at most 67108864"),
    ("predict", ["shape=30x48x80", "window=18x24x24", "heads=1e20"], "heads", "expected at most 2147483647"),
    ("search", ["shape=30x48x80", "window=18x24x24", "batch=1e20"], "batch", "expected at most 2147483647"),
])
def test_gna_sizes_are_capped_like_predict_attention(command, settings, field, fragment):
    """Layout extents and the total token count stop at attention's MAX_SEQ (2**26), heads and batch at its
    MAX_COUNT, in gna_parameters: exit 2 naming the field and the limit, never a traceback or an OOM kill."""
    out = run(command, "gna", "--hardware", "h100", *[a for s in settings for a in ("--set", s)])
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"--set: {field}:" in out.stderr and fragment in out.stderr, out.stderr


def test_gna_layout_at_the_cap_runs():
    """The cap is inclusive: a 1-D layout of exactly 2**26 tokens is predicted (in about a second)."""
    out = run("predict", "gna", "--hardware", "h100", "--set", "shape=67108864", "--set", "window=16", "--set",
              "q_tile=128", "--set", "kv_tile=128", "--json")
    assert out.returncode == 0, out.stderr
