"""Index lists of tensor references: one rank order per tensor, and every index inside the tensor.

Rank order: a tensor's ranks are declared once (``tensors: K: {ranks: [E, M]}``) and every reference keeps that
order and count; a permuted or miscounted reference is an input error naming the Einsum and the tensor. Ranges:
every point of an Einsum's iteration space is counted, so an index below 0, or past a declared rank's size, is
an input error; an input (read, never written) is as large as its indices reach (tensors that
an Einsum writes: tests/workload/test_written_tensors.py). The expected extents and counts come from
numpy enumerating every point of the iteration space (exact integer equality).
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from simlib.errors import SimlibInputError
from simlib.workload.workload import load_workload


def _workload(tmp_path, text):
    path = tmp_path / "w.yaml"
    path.write_text(text)
    return load_workload(str(path))


# --- rank order ------------------------------------------------------------------------------------------------

THREE = """name: w
parameters: {dtype: fp32}
ranks: {A: 2, B: 3, C: 5}
tensors:
  X: {ranks: [A, B, C]}
einsums:
  - Y[a,b,c] = exp(X[REF])
"""


@settings(max_examples=30, deadline=None)
@given(order=st.permutations(["a", "b", "c"]))
def test_a_reference_keeps_the_declared_rank_order(tmp_path_factory, order):
    text = THREE.replace("REF", ",".join(order))
    path = tmp_path_factory.mktemp("w") / "w.yaml"
    path.write_text(text)
    if order == ["a", "b", "c"]:
        bound = load_workload(str(path)).bind()
        assert bound.tensors["X"].shape == {"A": 2, "B": 3, "C": 5}
        return
    with pytest.raises(SimlibInputError) as info:
        load_workload(str(path))
    message = str(info.value)
    assert f"einsums[0] 'Y[a,b,c] = exp(X[{','.join(order)}])'" in message
    assert "tensors.X.ranks declares rank" in message and "expected X[a,b,c]" in message


ATTN = """name: w
parameters: {M: 64, P: 32, E: 16, dtype: fp32}
ranks: {M: M, P: P, E: E, M1: 4, M0: 16}
tensors:
  Q: {ranks: [E, P]}
  K: {ranks: [E, M]}
einsums:
  - QK[m,p] = Q[e,p] * K[e,m]
  - GM[p] = max_m QK[m,p]
"""


@pytest.mark.parametrize("old, new, fragments", [
    # permuted: before, E and M silently became one rank family (and the pass counts changed)
    ("K[e,m]", "K[m,e]", ["einsums[0] 'QK[m,p] = Q[e,p] * K[m,e]'", "K[m,e]: index 0 'm' iterates rank M",
                          "declares rank E at that position", "expected K[e,m]"]),
    # a variable of another declared rank (P is Q's)
    ("K[e,m]", "K[e,p]", ["K[e,p]: index 1 'p' iterates rank P", "declares rank M", "expected K[e,m]"]),
    # more and fewer indices than declared: before, the first made K 32 times larger under dim0..dim2 labels
    ("K[e,m]", "K[e,m,p]", ["K[e,m,p] has 3 indices but tensors.K.ranks declares 2 (E, M)", "expected K[e,m]"]),
    ("  - GM[p] = max_m QK[m,p]\n", "  - GM[p] = max_m QK[m,p]\n  - S[p] = sum_m K[m]\n",
     ["einsums[2] 'S[p] = sum_m K[m]'", "K[m] has 1 index but tensors.K.ranks declares 2"]),
    # an undeclared tensor: both Einsums named
    ("max_m QK[m,p]", "max_{m,e} QK[m,p,e]", ["einsums[1] 'GM[p] = max_{m,e} QK[m,p,e]'", "QK[m,p,e] has 3 indices",
                                          "einsums[0] 'QK[m,p] = Q[e,p] * K[e,m]' uses QK with 2 indices"]),
    # batch ranks in a declaration
    ("ranks: {M: M, P: P, E: E, M1: 4, M0: 16}\n", "ranks: {M: M, P: P, E: E, M1: 4, M0: 16, B: 2}\n"
                                                   "batch_ranks: [B]\n", None),
])
def test_a_reference_that_disagrees_with_the_declaration_is_named(tmp_path, old, new, fragments):
    text = ATTN.replace(old, new)
    if fragments is None:       # the batch-rank case: declare Q with its batch rank
        text = text.replace("Q: {ranks: [E, P]}", "Q: {ranks: [B, E, P]}")
        fragments = ["Q[e,p] has 2 indices but tensors.Q.ranks declares 3 (B, E, P)",
                     "batch ranks (B) are not indexed", "ranks: [E, P]"]
    with pytest.raises(SimlibInputError) as info:
        _workload(tmp_path, text)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_split_and_derived_ranks_at_a_declared_position_are_accepted(tmp_path):
    # K[e, m1*M0+m0] (the 1-pass cascade's split) and K[e, m0] (a rank no tensor declares) are parts of M
    text = ATTN.replace("  - GM[p] = max_m QK[m,p]\n",
                        "  - BK[e,m1,m0] = K[e, m1*M0+m0]\n  - BS[e,m1] = sum_m0 BK[e,m1,m0]\n"
                        "  - KF[e] = sum_m0 K[e,m0]\n")
    workload = _workload(tmp_path, text)
    assert workload.cascade.rank_families["M"] == {"M", "M1", "M0"}
    assert workload.cascade.rank_families["E"] == {"E"}
    assert workload.bind().tensors["K"].shape == {"E": 16, "M": 64}


# --- ranges ------------------------------------------------------------------------------------------------------

def _affine_text(a, b, c):
    """c + a*m + b*p written with + and - only (the notation has no unary minus inside an index)."""
    text = str(c) if c >= 0 else f"0 - {-c}"
    for k, v in ((a, "m"), (b, "p")):
        text += f" + {k}*{v}" if k >= 0 else f" - {-k}*{v}"
    return text


def _points(M, P, a, b, c):
    m, p = np.meshgrid(np.arange(M), np.arange(P), indexing="ij")
    return a * m + b * p + c


coefficient = st.integers(-3, 3)


@settings(max_examples=80, deadline=None)
@given(M=st.integers(1, 6), P=st.integers(1, 6), a=coefficient, b=coefficient, c=st.integers(-4, 8))
def test_an_undeclared_tensor_is_as_large_as_its_indices_reach(tmp_path_factory, M, P, a, b, c):
    text = (f"name: w\nparameters: {{dtype: fp32}}\nranks: {{M: {M}, P: {P}}}\n"
            f"einsums: ['Y[m,p] = A[{_affine_text(a, b, c)}] * 2']\n")
    path = tmp_path_factory.mktemp("w") / "w.yaml"
    path.write_text(text)
    index = _points(M, P, a, b, c)                  # brute force: the index at every point of the space
    if index.min() < 0:
        with pytest.raises(SimlibInputError, match=f"reaches {index.min()} at"):
            load_workload(str(path)).bind()
        return
    bound = load_workload(str(path)).bind()
    assert bound.tensors["A"].elements == index.max() + 1
    # every point names an element of A, and each is counted: one multiply per point
    assert bound.operation_counts(0)["mul"] == index.size


@settings(max_examples=80, deadline=None)
@given(M=st.integers(1, 6), P=st.integers(1, 6), N=st.integers(1, 12), a=coefficient, b=coefficient,
       c=st.integers(-4, 8))
def test_a_declared_tensor_is_never_read_outside_its_ranks(tmp_path_factory, M, P, N, a, b, c):
    text = (f"name: w\nparameters: {{dtype: fp32}}\nranks: {{M: {M}, P: {P}, N: {N}}}\n"
            f"tensors:\n  A: {{ranks: [N]}}\neinsums: ['Y[m,p] = A[{_affine_text(a, b, c)}] * 2']\n")
    path = tmp_path_factory.mktemp("w") / "w.yaml"
    path.write_text(text)
    index = _points(M, P, a, b, c)
    in_range = (index >= 0) & (index < N)
    if not in_range.all():
        with pytest.raises(SimlibInputError) as info:
            load_workload(str(path)).bind()
        assert "einsums[0] 'Y[m,p] = A[" in str(info.value)
        assert (f"reaches {index.min()}" if index.min() < 0 else f"past rank N ({N} elements)") in str(info.value)
        return
    bound = load_workload(str(path)).bind()
    assert bound.operation_counts(0)["mul"] == np.count_nonzero(in_range)
    # every index lies inside the declaration, and A is as large as declared: N elements, however few are read
    assert index.max() + 1 <= N and bound.tensors["A"].elements == N


def test_a_reversed_index_spans_the_whole_rank(tmp_path):
    # A[M-1-m] reads A[7], A[6], ..., A[0] for M = 8: eight elements (the largest index is at m = 0), not one
    bound = _workload(tmp_path, "name: w\nparameters: {dtype: fp32}\nranks: {M: 8}\ntensors:\n  A: {ranks: [M]}\n"
                                "einsums: ['Y[m] = A[M-1-m] * 2']\n").bind()
    assert bound.tensors["A"].elements == 8 and bound.tensors["A"].bytes == 32


@pytest.mark.parametrize("ref, fragment", [
    ("A[m+1]", "'m + 1' reaches 8 at m = 7, past rank M (8 elements) that tensors.A.ranks declares there"),
    ("A[m-1]", "'m - 1' reaches -1 at m = 0; expected indices from 0"),
    ("A[M-2-m]", "'M - 2 - m' reaches -1 at m = 7"),
])
def test_a_shifted_index_past_the_tensor_is_named(tmp_path, ref, fragment):
    text = f"name: w\nparameters: {{dtype: fp32}}\nranks: {{M: 8}}\ntensors:\n  A: {{ranks: [M]}}\n" \
           f"einsums: ['Y[m] = {ref} * 2']\n"
    with pytest.raises(SimlibInputError) as info:
        _workload(tmp_path, text).bind()
    assert f"einsums[0] 'Y[m] = {ref} * 2'" in str(info.value) and fragment in str(info.value)


def test_shipped_recurrences_and_splits_stay_in_range():
    # RM[m1+1,p] and RNV[f,M1,p] reach M1 in a tensor with M1 + 1 slots; K[e, m1*M0+m0] reaches M - 1
    for name in ("attention-1pass", "attention-2pass"):
        bound = load_workload(name).bind(dict(seq_kv=64, block_kv=16, seq_q=4, head_dim=8, head_dim_v=8))
        assert bound.tensors["K"].shape == {"B": 1, "H": 1, "E": 8, "M": 64}
    assert load_workload("attention-1pass").bind(dict(seq_kv=64, block_kv=16)).tensors["RM"].elements == \
        (64 // 16 + 1) * 4096
    # simlib's own bounds of the split index K[e, m1*M0+m0] (parsed from the shipped file) and the extent it gives
    # K and the view BK, against numpy evaluating the index at every point of M1 x M0 = 4 x 16
    bound = load_workload("attention-1pass").bind(dict(seq_kv=64, block_kv=16, seq_q=4, head_dim=8, head_dim_v=8))
    view = next(e for e in bound.cascade.einsums if e.output.name == "BK")
    index = view.reads[0].indices[1]
    assert index.text == "m1 * M0 + m0"
    m1, m0 = np.meshgrid(np.arange(4), np.arange(16), indexing="ij")
    split = m1 * 16 + m0
    var_sizes = {v: bound.rank_sizes[v.upper()] for v in view.variables}
    assert index.bounds(bound.rank_sizes, var_sizes) == (split.min(), split.max())
    assert bound.tensors["K"].shape["M"] == split.max() + 1
    assert bound.tensors["BK"].elements == split.size * 8           # BK[e,m1,m0]: E x M1 x M0, nothing left out


@settings(max_examples=100, deadline=None)
@given(sizes=st.tuples(*[st.integers(1, 5)] * 3), coefficients=st.tuples(*[st.integers(-3, 3)] * 3),
       c=st.integers(0, 6), scale=st.integers(0, 2))
def test_index_bounds_match_enumeration(sizes, coefficients, c, scale):
    # c + scale*N + sum of k*v over three variables, N a rank size of 4: its smallest and largest value over the
    # box, and the point reaching each, against numpy evaluating it at every point
    from simlib.workload.einsum import parse_einsum
    names = ("i", "j", "k")
    text = f"{c} + {scale}*N" + "".join(f" + {k}*{v}" if k >= 0 else f" - {-k}*{v}"
                                         for k, v in zip(coefficients, names))
    index = parse_einsum(f"Y[i,j,k] = A[{text}]").reads[0].indices[0]
    grids = np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij")
    values = c + scale * 4 + sum(k * g for k, g in zip(coefficients, grids))
    var_sizes = dict(zip(names, sizes))
    assert index.bounds({"N": 4}, var_sizes) == (values.min(), values.max())
    for largest, target in ((True, values.max()), (False, values.min())):
        point = index.extreme_point({"N": 4}, var_sizes, largest)
        assert values[tuple(point.get(v, 0) for v in names)] == target
