"""Parser of the Extended-Einsum notation: kinds, iteration spaces and operations per point, worked by hand."""
import pytest

from simlib.workload.einsum import EinsumSyntaxError, parse_einsum


def nonzero(ops):
    return {k: v for k, v in ops.items() if v}


@pytest.mark.parametrize("text, kind, variables, reduced, ops", [
    ("QK[m,p] = Q[e,p] * K[e,m]", "contraction", {"m", "p", "e"}, {"e"}, {"mac": 1}),
    ("GM[p] = max_m QK[m,p]", "reduction", {"m", "p"}, {"m"}, {"max": 1}),
    ("GM[p] = max over m of QK[m,p]", "reduction", {"m", "p"}, {"m"}, {"max": 1}),
    ("SN[m,p] = exp(QK[m,p] - GM[p])", "map", {"m", "p"}, set(), {"add": 1, "exp": 1}),
    ("SD[p] = sum_m SN[m,p]", "reduction", {"m", "p"}, {"m"}, {"add": 1}),
    ("A[m,p] = SN[m,p] / SD[p]", "map", {"m", "p"}, set(), {"div": 1}),
    ("BK[e,m1,m0] = K[e, m1*M0+m0]", "view", {"e", "m1", "m0"}, set(), {}),
    ("RM[m1+1,p] = max(RM[m1,p], LM[m1,p])", "map", {"m1", "p"}, set(), {"max": 1}),
    ("RM[0,p] = -inf", "init", {"p"}, set(), {}),
    ("AV[f,p] = RNV[f,M1,p] / RD[M1,p]", "map", {"f", "p"}, set(), {"div": 1}),
    ("X[p] = sum_{m1,m0} Y[m1,m0,p]", "reduction", {"p", "m1", "m0"}, {"m1", "m0"}, {"add": 1}),
    ("Z[p] = A[m,p] * B[m,p] * C[m,p]", "reduction", {"p", "m"}, {"m"}, {"mul": 2, "add": 1}),
    ("Y[p] = exp(-X[p])", "map", {"p"}, set(), {"mul": 1, "exp": 1}),
    # max and min of n arguments take n - 1 comparisons: max(A[m]) alone is A[m], no operation (it was 1)
    ("Y[m] = max(A[m])", "map", {"m"}, set(), {}),
    ("Y[m] = min(A[m])", "map", {"m"}, set(), {}),
    ("Y[m] = min(A[m], B[m], C[m])", "map", {"m"}, set(), {"max": 2}),
    ("Y[m] = max(A[m], 0)", "map", {"m"}, set(), {"max": 1}),
    # a reduction over no rank is its expression: one multiply per point, not a contraction's MAC (2 FLOPs)
    ("Y[m] = sum_{} A[m]*B[m]", "map", {"m"}, set(), {"mul": 1}),
])
def test_statement_forms(text, kind, variables, reduced, ops):
    einsum = parse_einsum(text)
    assert einsum.kind == kind
    assert (einsum.reduce_op is None) == (not reduced)
    assert set(einsum.variables) == variables
    assert set(einsum.reduced) == reduced
    assert nonzero(einsum.ops_per_point) == ops


@pytest.mark.parametrize("text, message", [
    ("QK[m,p] Q[e,p] * K[e,m]", "one '='"),
    ("QK[m,p] = Q[e,p] ** K[e,m]", "unsupported"),
    ("QK[m,p] = Q[e*m,p]", "not affine"),
    ("GM[p] = max_n QK[m,p]", "reduction names n"),
    ("QK[m,p] = Q * K[e,m]", "needs an index"),
    ("QK = Q[e,p]", "expected NAME"),
    ("S[p] = sqrt(Q[p])", "unsupported"),
])
def test_syntax_errors_say_what_was_expected(text, message):
    with pytest.raises(EinsumSyntaxError, match=message):
        parse_einsum(text)


def test_affine_index_offsets():
    einsum = parse_einsum("BK[e,m1,m0] = K[e, m1*M0+m0]")
    index = einsum.reads[0].indices[1]
    constant, coefficients = index.offsets({"M0": 64})
    assert constant == 0 and coefficients == {"m1": 64, "m0": 1}
    # largest element touched with M1 = 4 partitions of 64: 3*64 + 63
    assert index.max_value({"M0": 64}, {"m1": 4, "m0": 64}) == 255


def _workload(tmp_path, text):
    from simlib.workload.workload import load_workload
    path = tmp_path / "w.yaml"
    path.write_text(text)
    return load_workload(str(path))


ATTN = """name: w
parameters: {M: 64, P: 64, E: 16, dtype: fp32}
ranks: {M: M, P: P, E: E}
tensors:
  Q: {ranks: [E, P]}
  K: {ranks: [E, M]}
einsums:
  - QK[m,p] = Q[e,p] * K[e,m]
  - GM[p] = max_m QK[m,p]
"""


@pytest.mark.parametrize("old, new, fragment", [
    ("Q[e,p] * K[e,m]", "Q[e,p] * KK[e,m]", "KK is read but never written and not declared"),
    ("  K: {ranks: [E, M]}\n", "  K: {ranks: [E, M]}\n  V: {ranks: [M]}\n", "tensors.V: declared but no Einsum"),
    ("ranks: {M: M, P: P, E: E}\n", "ranks: {M: M, P: P, E: E}\nbatch_ranks: [P]\n", "rank P is also an index"),
    ("ranks: {M: M, P: P, E: E}\n", "ranks: {M: M, P: P, E: E, B: 2}\nstream_rank: B\n",
     "no Einsum iterates rank B"),
    ("  - GM[p] = max_m QK[m,p]\n", "  - GM[p] = max_m QK[m,p]\n  - Z[p] = GM[p]\n", "only re-indexes"),
    ("M: 64,", "M: abc,", "expected a positive whole number"),
])
def test_cascades_a_typo_would_change_are_refused(tmp_path, old, new, fragment):
    from simlib.errors import SimlibInputError
    with pytest.raises(SimlibInputError, match=fragment):
        _workload(tmp_path, ATTN.replace(old, new)).bind()


def test_a_cascade_needs_an_input_and_yaml_exponents_are_numbers(tmp_path):
    from simlib.errors import SimlibInputError
    with pytest.raises(SimlibInputError, match="reads no input tensor"):
        _workload(tmp_path, "name: c\nparameters: {M: 4}\nranks: {M: M}\neinsums: ['Z[m] = 2']\n")
    bound = _workload(tmp_path, ATTN.replace("M: 64,", "M: 6.4e1,")).bind()
    assert bound.rank_sizes["M"] == 64
