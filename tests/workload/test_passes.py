"""Pass analysis against the FuseMax paper (§III): textbook softmax attention needs 3 passes over M, the
partitioned TileFlow-style cascade 2, the running-max cascade (its Cascade 5) 1. Derived, never declared."""
import pytest

from simlib.workload import load_workload
from simlib.workload.cascade import Cascade
from simlib.workload.einsum import parse_einsum


@pytest.mark.parametrize("name, passes", [("attention-3pass", 3), ("attention-2pass", 2),
                                          ("attention-1pass", 1)])
def test_shipped_attention_cascades(name, passes):
    cascade = load_workload(name).cascade
    assert cascade.passes("M") == passes
    # the head dimension is reduced once, in QK, for every variant
    assert cascade.passes("E") == 1


def test_split_ranks_count_as_the_rank_they_split():
    cascade = load_workload("attention-1pass").cascade
    assert cascade.rank_families["M1"] == cascade.rank_families["M"] == frozenset({"M", "M1", "M0"})
    assert cascade.pass_counts() == {"E": 1, "M": 1}


def _cascade(lines, declared=None):
    return Cascade([parse_einsum(l) for l in lines], declared or {})


def test_division_deferral_merges_passes_two_and_three():
    # reference/fusemax.md: SNV = SN*V, AV = SNV/SD; the divide no longer iterates M.
    cascade = _cascade(["QK[m,p] = Q[e,p] * K[e,m]", "GM[p] = max_m QK[m,p]", "SN[m,p] = exp(QK[m,p] - GM[p])",
                        "SD[p] = sum_m SN[m,p]", "SNV[f,p] = SN[m,p] * V[f,m]", "AV[f,p] = SNV[f,p] / SD[p]"])
    assert cascade.passes("M") == 2


def test_n_dependencies_in_a_row_give_n_plus_one_passes():
    # three full reductions over M, each feeding the next elementwise step over M: 3 + 1 passes
    cascade = _cascade(["X1[m,p] = A[m,p] * B[m,p]",
                        "R1[p] = sum_m X1[m,p]", "X2[m,p] = X1[m,p] - R1[p]",
                        "R2[p] = max_m X2[m,p]", "X3[m,p] = X2[m,p] - R2[p]",
                        "R3[p] = sum_m X3[m,p]", "X4[m,p] = X3[m,p] / R3[p]"])
    assert cascade.passes("M") == 4


def test_recurrences_are_loop_carried_not_cycles():
    cascade = load_workload("attention-1pass").cascade
    carried = [(u[1], v[1]) for u, v, d in cascade.graph.edges(data=True) if d["carried"]]
    assert ("RM", 7) in carried or any(t == "RM" for t, _ in carried)
    assert all(not d["carried"] for *_, d in cascade.dag.edges(data=True))


def test_inputs_outputs_intermediates():
    cascade = load_workload("attention-3pass").cascade
    assert cascade.inputs == ["Q", "K", "V"]
    assert cascade.outputs == ["AV"]
    assert cascade.intermediates == ["QK", "GM", "SN", "SD", "A"]
