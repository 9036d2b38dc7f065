"""Tensors that an Einsum writes but no declaration names (intermediates, usually).

Rank order: such a tensor has the rank order of the reference that writes it, and a read that swaps its positions
(position a iterating the rank the writer has at position b, and b leaving its own) is an input error naming the
Einsum, the writer and the expected reference; another rank at a position (a Gram matrix, a diagonal, a difference)
is judged by its range. Ranges: a read must stay inside what the writers write, position by position (constant
initialisations included), so the recurrence of the 1-pass cascade stays valid and ``T[m+1]`` after ``T[m]`` is an
input error. Sources of the expected values: numpy enumerating every point of each Einsum's iteration space (exact
integer equality), and sizes worked by hand in the comments.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from simlib.errors import SimlibInputError
from simlib.workload.workload import load_workload, workload_names

BAD = Path(__file__).parent.parent / "data" / "bad"


def _load(tmp_path, ranks, einsums, extra=""):
    path = tmp_path / "w.yaml"
    path.write_text(f"name: w\nparameters: {{dtype: fp32}}\nranks: {{{ranks}}}\n{extra}einsums:\n"
                    + "".join(f"  - {e}\n" for e in einsums))
    return load_workload(str(path))


def _error(tmp_path, ranks, einsums, extra=""):
    with pytest.raises(SimlibInputError) as info:
        _load(tmp_path, ranks, einsums, extra).bind()
    return str(info.value)


# --- rank order --------------------------------------------------------------------------------------------------

def test_a_permuted_intermediate_is_named_instead_of_inflating_it(tmp_path):
    # Before: T[p,m] made T as large as both orders together, 4096 x 4096 = 16,777,216 elements, not 4096 x 16
    message = _error(tmp_path, "M: 4096, P: 16", ["T[m,p] = exp(X[m,p])", "Y[m,p] = T[p,m] * 2"])
    for fragment in ("w.yaml: einsums[1] 'Y[m,p] = T[p,m] * 2'", "T[p,m]: index 0 'p' iterates rank P",
                     "einsums[0] 'T[m,p] = exp(X[m,p])' writes T with rank M at that position (T[m,p])",
                     "expected rank M there: T[m,p]"):
        assert fragment in message, message
    # the reference in the written order: T is M x P = 4096 x 16 = 65,536 elements of 4 bytes
    bound = _load(tmp_path, "M: 4096, P: 16", ["T[m,p] = exp(X[m,p])", "Y[m,p] = T[m,p] * 2"]).bind()
    assert bound.tensors["T"].elements == 65_536 and bound.tensors["T"].bytes == 262_144


@settings(max_examples=30, deadline=None)
@given(order=st.permutations(["a", "b", "c"]))
def test_a_read_keeps_the_written_rank_order(tmp_path_factory, order):
    # A, B, C of 2, 3, 5: a read in the written order is accepted and T is 2 x 3 x 5; any other order names the
    # first position whose rank differs from the written one
    tmp_path = tmp_path_factory.mktemp("w")
    einsums = ["T[a,b,c] = exp(X[a,b,c])", f"Y[a,b,c] = T[{','.join(order)}] * 2"]
    if order == ["a", "b", "c"]:
        assert _load(tmp_path, "A: 2, B: 3, C: 5", einsums).bind().tensors["T"].elements == 2 * 3 * 5
        return
    position = next(k for k, (got, want) in enumerate(zip(order, "abc")) if got != want)
    message = _error(tmp_path, "A: 2, B: 3, C: 5", einsums)
    assert f"index {position} '{order[position]}' iterates rank {order[position].upper()}" in message
    assert f"writes T with rank {'ABC'[position]} at that position" in message and "T[a,b,c]" in message


def test_an_initialisation_keeps_the_order_of_the_computing_writer(tmp_path):
    # RNV[f,0,p] = 0 in the 1-pass cascade puts f and p where RNV[f,m1+1,p] has them; swapped, it is named
    message = _error(tmp_path, "F: 2, M1: 4, P: 3",
                     ["R[p,0,f] = 0", "R[f,m1+1,p] = R[f,m1,p] + X[f,m1,p]"])
    assert "einsums[0] 'R[p,0,f] = 0'" in message
    assert "R[p,0,f]: index 0 'p' iterates rank P, but einsums[1] 'R[f,m1+1,p] = R[f,m1,p] + X[f,m1,p]' " \
           "writes R with rank F" in message


def test_split_and_derived_indices_of_an_intermediate_are_accepted(tmp_path):
    # M = M1 x M0 through K[m1*M0+m0] (K declared [M]); B[m] read as B[m1*M0+m0] (two variables), as B[m] again
    # and as B[m0] (M0 is of M's family); R[m1+1] read at m1 (one variable of the written rank M1); C[M1-1] a
    # constant: all keep the written order. B is 12 long, R 3 + 1, C 3.
    einsums = ["KS[m1,m0] = K[m1*M0+m0] * 2", "B[m] = exp(K[m])", "S[m1,m0] = B[m1*M0+m0] * 2", "T[m] = B[m] * 3",
               "U[m0] = B[m0] * 2", "R[0] = 0", "R[m1+1] = R[m1] + S[m1,m0]", "C[m1] = R[m1] * 2",
               "Y[0] = C[M1-1] * 2"]
    workload = _load(tmp_path, "M: 12, M1: 3, M0: 4", einsums, extra="tensors:\n  K: {ranks: [M]}\n")
    tensors = workload.bind().tensors
    assert {name: info.elements for name, info in tensors.items() if name in "BRC"} == {"B": 12, "R": 4, "C": 3}
    # another rank at a position is not a swap: B[m0] (M0 = 4 of B's 12) and B[p] (P = 5) read inside what B[m]
    # writes, so they are accepted with or without the split relating M0 to M; the range check bounds them
    for extra_einsums, ranks in ((einsums[1:], "M: 12, M1: 3, M0: 4"), ([*einsums, "V[p] = B[p] * 2"],
                                                                       "M: 12, M1: 3, M0: 4, P: 5")):
        bound = _load(tmp_path, ranks, extra_einsums, extra="tensors:\n  K: {ranks: [M]}\n").bind()
        assert bound.tensors["B"].elements == 12
    # ... and past it, it is the range check that names the read: P = 13 reaches B[12]
    message = _error(tmp_path, "M: 12, M1: 3, M0: 4, P: 13", [*einsums, "V[p] = B[p] * 2"],
                     extra="tensors:\n  K: {ranks: [M]}\n")
    assert "B[p]: index 0 'p' reaches 12 at p = 12" in message


def test_other_ranks_diagonals_and_differences_of_an_intermediate_are_not_swaps(tmp_path):
    # A Gram matrix reads XN[e,n] where XN[e,m] was written (N = M = 64, E = 8: XN is 8 x 64 = 512 elements); a
    # diagonal reads T[m,m] of T[m,n] (64 x 64 = 4096); a difference reads T[n+1] of T[m] with N = M - 1 = 63
    gram = _load(tmp_path, "M: 64, N: 64, E: 8", ["XN[e,m] = X[e,m] * 2", "S[m,n] = XN[e,m] * XN[e,n]"]).bind()
    assert gram.tensors["XN"].elements == 512 and gram.tensors["S"].elements == 4096
    diagonal = _load(tmp_path, "M: 64, N: 64", ["T[m,n] = X[m] * Z[n]", "Y[m] = T[m,m] * 2"]).bind()
    assert diagonal.tensors["T"].elements == 4096
    difference = _load(tmp_path, "M: 64, N: 63", ["T[m] = exp(X[m])", "Y[n] = T[n+1] - T[n]"]).bind()
    assert difference.tensors["T"].elements == 64 and difference.tensors["Y"].elements == 63


def test_the_shipped_cascades_keep_their_written_orders():
    # every reference of an undeclared tensor in the shipped cascades is in its writer's order; the recurrences
    # RM, RD (M1 + 1 slots of P) and RNV (F x (M1 + 1) x P) are written at 0 and at m1 + 1, 1..M1
    for name in workload_names():
        load_workload(name).bind()
    tensors = load_workload("attention-1pass").bind(dict(seq_kv=64, block_kv=16, seq_q=4, head_dim_v=8)).tensors
    assert tensors["RM"].elements == tensors["RD"].elements == (64 // 16 + 1) * 4
    assert tensors["RNV"].elements == 8 * (64 // 16 + 1) * 4


# --- reads inside what is written --------------------------------------------------------------------------------

def test_a_read_past_what_was_written_is_named(tmp_path):
    # Before: T sized 4097 and a read of T[4096], which no Einsum writes, counted as work and traffic
    message = _error(tmp_path, "M: 4096", ["T[m] = exp(X[m])", "Y[m] = T[m+1] - T[m]"])
    for fragment in ("einsums[1] 'Y[m] = T[m+1] - T[m]'", "T[m + 1]: index 0 'm + 1' reaches 4096 at m = 4095",
                     "T is written only at 0..4095 in that position (by einsums[0] 'T[m] = exp(X[m])')",
                     "expected reads of elements some Einsum writes"):
        assert fragment in message, message


def test_a_recurrence_needs_its_first_value(tmp_path):
    # RM[m1+1,p] writes 1..M1; reading RM[m1,p] at m1 = 0 needs RM[0,p], which only an initialisation writes
    recurrence = "RM[m1+1,p] = max(RM[m1,p], LM[m1,p])"
    message = _error(tmp_path, "M1: 4, P: 3", [recurrence])
    assert f"einsums[0] '{recurrence}': RM[m1,p]: index 0 'm1' reaches 0 at m1 = 0" in message
    assert "RM is written only at 1..4 in that position" in message and "e.g. RM[0,p] = 0" in message
    # with it, RM holds M1 + 1 = 5 rows of P = 3
    assert _load(tmp_path, "M1: 4, P: 3", ["RM[0,p] = 0", recurrence]).bind().tensors["RM"].elements == 15


def test_a_read_across_a_gap_between_writers_is_named(tmp_path):
    # T[0] and T[m+2] for m < 8 write 0 and 2..9; T[m] for m < 8 spans 0..7, so it reads T[1], which none writes
    message = _error(tmp_path, "M: 8", ["T[0] = 0", "T[m+2] = exp(X[m])", "Y[m] = T[m] * 2"])
    assert "T[m]: index 0 'm' spans 0..7, which includes 1, but T is written only at 0, 2..9" in message
    assert "(by einsums[0] 'T[0] = 0'; einsums[1] 'T[m+2] = exp(X[m])')" in message


def _affine(coefficients, constant):
    """constant + sum of k*v, written with + and - only (an index has no unary minus) and no 0*v terms."""
    text = str(constant) if constant >= 0 else f"0 - {-constant}"
    for variable, k in coefficients.items():
        if k:
            text += f" + {k}*{variable}" if k > 0 else f" - {-k}*{variable}"
    return text


@settings(max_examples=150, deadline=None)
@given(M=st.integers(1, 6), P=st.integers(1, 4), s=st.sampled_from([-1, 0, 1]), w=st.integers(0, 5),
       init=st.one_of(st.none(), st.integers(0, 8)), a=st.integers(-2, 2), b=st.integers(-2, 2),
       d=st.integers(-2, 8))
def test_reads_of_a_written_tensor_against_enumeration(tmp_path_factory, M, P, s, w, init, a, b, d):
    # Writers: T[s*m + c] over m < M (s in -1, 0, 1, so it writes every value between its smallest and largest;
    # c keeps it from 0) and, maybe, T[init] = 0. Reader: T[a*m + b*p + d] over M x P. numpy lists the values
    # written and read; the read is accepted exactly when it starts at 0 or above, every value between its
    # smallest and largest is written (a one-position tensor cannot be read with its positions swapped, so a
    # lone p where the writer has m is judged by its range alone). Accepted, every value read is one some Einsum
    # wrote, and T's extent is the largest written value + 1.
    c = w + (M - 1 if s < 0 else 0)
    einsums = ([f"T[{init}] = 0"] if init is not None else []) + [f"T[{_affine({'m': s}, c)}] = exp(X[m])",
                                                                  f"Y[m,p] = T[{_affine({'m': a, 'p': b}, d)}] * 2"]
    m, p = np.meshgrid(np.arange(M), np.arange(P), indexing="ij")
    read = a * m + b * p + d
    written = set((s * np.arange(M) + c).tolist()) | ({init} if init is not None else set())
    tmp_path = tmp_path_factory.mktemp("w")
    if read.min() < 0:
        assert f"reaches {read.min()}" in _error(tmp_path, f"M: {M}, P: {P}", einsums)
        return
    unwritten = [v for v in range(read.min(), read.max() + 1) if v not in written]
    if unwritten:
        message = _error(tmp_path, f"M: {M}, P: {P}", einsums)
        assert f"einsums[{len(einsums) - 1}] 'Y[m,p] = T[" in message and "T is written only at" in message
        assert (f"reaches {unwritten[0]}" in message if unwritten[0] in (read.min(), read.max())
                else f"which includes {unwritten[0]}" in message), message
        return
    bound = _load(tmp_path, f"M: {M}, P: {P}", einsums).bind()
    assert set(read.ravel().tolist()) <= written
    assert bound.tensors["T"].elements == max(written) + 1


def test_inputs_keep_being_sized_by_their_largest_index(tmp_path):
    # X is never written: X[m+1] over m < 8 makes it 9 long, as before
    assert _load(tmp_path, "M: 8", ["Y[m] = X[m+1] - X[m]"]).bind().tensors["X"].elements == 9


@pytest.mark.parametrize("fixture, fragments", [
    ("permuted_intermediate.yaml", ["einsums[1] 'Y[m,p] = T[p,m] * 2'", "index 0 'p' iterates rank P",
                                    "expected rank M there: T[m,p]"]),
    ("read_unwritten.yaml", ["einsums[1] 'Y[m] = T[m+1] - T[m]'", "reaches 4096 at m = 4095",
                             "T is written only at 0..4095"]),
])
def test_the_cli_gives_one_line_and_exit_2(fixture, fragments):
    path = BAD / fixture
    out = subprocess.run([sys.executable, "-m", "simlib.cli.main", "predict", str(path), "--hardware", "a100"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    for fragment in (fixture, *fragments):
        assert fragment in out.stderr, out.stderr
