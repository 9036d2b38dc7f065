"""Pass analysis against the FuseMax paper (§III): textbook softmax attention needs 3 passes over M, the
partitioned TileFlow-style cascade 2, the running-max cascade (its Cascade 5) 1. Derived, never declared."""
import networkx as nx
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
    # attention-1pass reads three tensors only one iteration back, from the writers RM[m1+1,p], RD[m1+1,p] and
    # RNV[f,m1+1,p]: RM[m1,p] in einsums[7] (RM's own writer), RD[m1,p] in einsums[12] (SPD) and RNV[f,m1,p] in
    # einsums[14] (SPNV). PRM (einsums[11]) also reads RM[m1+1,p], this iteration's value, so its edge is not
    # carried. Those three edges close cycles (RM -> einsums[7] -> RM); the DAG is the graph without exactly them.
    cascade = load_workload("attention-1pass").cascade
    carried = {(u[1], v[1]) for u, v, d in cascade.graph.edges(data=True) if d["carried"]}
    assert carried == {("RM", 7), ("RD", 12), ("RNV", 14)}
    assert not nx.is_directed_acyclic_graph(cascade.graph) and nx.is_directed_acyclic_graph(cascade.dag)
    removed = set(cascade.graph.edges) - set(cascade.dag.edges)
    assert {(u[1], v[1]) for u, v in removed} == carried


def test_inputs_outputs_intermediates():
    cascade = load_workload("attention-3pass").cascade
    assert cascade.inputs == ["Q", "K", "V"]
    assert cascade.outputs == ["AV"]
    assert cascade.intermediates == ["QK", "GM", "SN", "SD", "A"]
