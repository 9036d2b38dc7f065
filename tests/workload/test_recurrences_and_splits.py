"""A recurrence read by nothing else is an output, and a split of an undeclared intermediate's rank is a split.

Sources of the expected values: sizes and byte counts worked by hand in each comment (fp32, 4 bytes an element;
tests/data/tiny_gpu.yaml holds 2 x 64 KiB on chip), and pass counts by the FuseMax rule (§III): an Einsum that
iterates a rank and reads a full reduction over it runs one pass later.
"""
from pathlib import Path

import pytest

import simlib
from simlib.workload import load_workload

TINY = str(Path(__file__).parent.parent / "data" / "tiny_gpu.yaml")


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


SCAN = """name: scan
parameters: {dtype: fp32}
ranks: {M: 8, P: 4}
tensors: {X: {ranks: [M, P]}}
einsums:
  - S[0,p] = 0
  - S[m+1,p] = S[m,p] + X[m,p]
"""


def test_a_scan_is_an_output(tmp_path):
    # Before: the recurrence's read of S[m,p] made S "consumed": no outputs, and the fused kernel moved X only
    path = _write(tmp_path, "scan.yaml", SCAN)
    cascade = load_workload(path).cascade
    assert cascade.outputs == ["S"] and cascade.intermediates == []
    # fused: X read once (8 x 4 x 4 = 128 B) and S written once ((8 + 1) x 4 x 4 = 144 B)
    fused = simlib.predict(path, hardware=TINY, execution="fused")
    assert fused.bytes["dram"] == 128 + 144 and fused.spill_bytes == 0


def test_the_one_pass_recurrences_stay_intermediates():
    # RM, RD and RNV are read by later Einsums (PRM, SPD, SPNV, AV), so they are consumed; AV is the output
    cascade = load_workload("attention-1pass").cascade
    assert cascade.outputs == ["AV"]
    assert {"RM", "RD", "RNV"} <= set(cascade.intermediates)


SPLIT = """name: split
parameters: {dtype: fp32}
ranks: {M: 1024, P: 16, M0: 64, M1: 16}
tensors:
  X: {ranks: [M, P]}
{declare}einsums:
  - T[m,p] = exp(X[m,p])
  - G[p] = max_m T[m,p]
  - TB[m1,m0,p] = T[m1*M0+m0,p]
  - Y[m1,m0,p] = TB[m1,m0,p] - G[p]
"""


@pytest.mark.parametrize("declare", ["", "  T: {ranks: [M, P]}\n"])
def test_splitting_an_intermediate_splits_its_rank(tmp_path, declare):
    # Y iterates m1 and m0, the parts of M that TB = T[m1*M0+m0,p] relates to T's M, and reads G, the max over
    # all of M: it runs in a second pass over M. Before, with T undeclared, M1 and M0 were ranks of their own
    # and the cascade was counted as one pass.
    path = _write(tmp_path, "split.yaml", SPLIT.replace("{declare}", declare))
    cascade = load_workload(path).cascade
    assert cascade.rank_families["M1"] == cascade.rank_families["M0"] == frozenset({"M", "M1", "M0"})
    assert cascade.canonical_rank("M1") == "M"
    assert cascade.pass_counts() == {"M": 2}
    # T (1024 x 16 x 4 = 64 KiB) is held between the passes on tiny_gpu (128 KiB): X read, Y written, 64 KiB each
    fused = simlib.predict(path, hardware=TINY, execution="fused")
    assert fused.bytes["dram"] == 2 * 65536 and fused.spill_bytes == 0
    assert [c.pass_number for c in fused.breakdown] == [1, 1, 2]


def test_without_a_declaration_the_split_rank_names_the_family(tmp_path):
    # no tensor declares a rank: the rank that was split (T's M) names the family
    text = ("name: s\nparameters: {dtype: fp32}\nranks: {M: 8, M0: 4, M1: 2}\neinsums:\n"
            "  - T[m] = exp(X[m])\n  - G[0] = max_m T[m]\n  - Y[m1,m0] = T[m1*M0+m0] - G[0]\n")
    cascade = load_workload(_write(tmp_path, "s.yaml", text)).cascade
    assert cascade.canonical_rank("M0") == "M" and cascade.pass_counts() == {"M": 2}


@pytest.mark.parametrize("read, ranks", [
    ("T[m+p]", "M: 8, P: 4, N: 11"),          # a sliding window: M and P stay two ranks
    ("T[2*m+p]", "M: 4, P: 4, N: 11"),        # not mixed radix
])
def test_sums_that_are_not_splits_relate_no_ranks(tmp_path, read, ranks):
    text = (f"name: w\nparameters: {{dtype: fp32}}\nranks: {{{ranks}}}\neinsums:\n"
            f"  - T[n] = exp(X[n])\n  - Y[m,p] = {read} * 2\n")
    families = load_workload(_write(tmp_path, "w.yaml", text)).cascade.rank_families
    assert families["M"] == frozenset({"M"}) and families["P"] == frozenset({"P"})
    assert families["N"] == frozenset({"N"})


def test_another_rank_at_a_position_is_not_a_split(tmp_path):
    # the Gram matrix reads XN[e,n] where XN[e,m] was written: N is a rank of its own, so normalising by the sum
    # over N takes two passes over N (the sum is complete only after all of N)
    text = ("name: g\nparameters: {dtype: fp32}\nranks: {M: 16, N: 16, E: 4}\neinsums:\n"
            "  - XN[e,m] = X[e,m] * 2\n  - G[m,n] = XN[e,m] * XN[e,n]\n  - S[m] = sum_n G[m,n]\n"
            "  - Y[m,n] = G[m,n] / S[m]\n")
    cascade = load_workload(_write(tmp_path, "g.yaml", text)).cascade
    assert cascade.rank_families["N"] == frozenset({"N"})
    assert cascade.passes("N") == 2
