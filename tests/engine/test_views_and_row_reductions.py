"""Traffic of reads through views, of intermediates that must outlive a reduction over a row rank, and the dtype
error of an operation a unit does only in other dtypes.

Sources of the expected values: byte counts worked by hand in each comment (fp32, 4 bytes an element;
tests/data/tiny_gpu.yaml holds 2 x 64 KiB in shared memory), and numpy enumerating every point of a view's
iteration space for the elements of its source it reaches. Byte counts are exact.
"""
from pathlib import Path

import numpy as np
import pytest

import simlib
from simlib.engine.traffic import read_bytes
from simlib.errors import SimlibInputError
from simlib.workload import load_workload

DATA = Path(__file__).parent.parent / "data"
TINY = str(DATA / "tiny_gpu.yaml")


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _cascade(ranks, einsums, extra=""):
    return (f"name: w\nparameters: {{dtype: fp32}}\nranks: {{{ranks}}}\n{extra}einsums:\n"
            + "".join(f"  - {e}\n" for e in einsums))


# --- a read through a view is a read of its source --------------------------------------------------------------

SOFTMAX_LIKE = ["T[m,p] = exp(X[m,p])", "G[p] = max_m T[m,p]"]


def test_a_read_through_a_view_keeps_the_intermediate_alive(tmp_path):
    # M = 65536, P = 2: T is 65536 x 2 x 4 = 512 KiB, one P row of it 256 KiB, more than tiny_gpu's 128 KiB, so T,
    # made in pass 1 and read in pass 2 by Y, is spilled: written once and read back by G and by Y (3 x 512 KiB),
    # and G (2 x 4 = 8 B) written once and read once. X read and Y written: 512 KiB each. Before, Y's read of T
    # through U was not seen: T counted as consumed in the pass that makes it, and no spill.
    alias = _write(tmp_path, "alias.yaml", _cascade("M: 65536, P: 2", [
        *SOFTMAX_LIKE, "U[m,p] = T[m,p]", "Y[m,p] = U[m,p] - G[p]"]))
    direct = _write(tmp_path, "direct.yaml", _cascade("M: 65536, P: 2", [*SOFTMAX_LIKE, "Y[m,p] = T[m,p] - G[p]"]))
    tb = 65536 * 2 * 4
    for path in (alias, direct):
        fused = simlib.predict(path, hardware=TINY, execution="fused")
        assert fused.spill_bytes == 3 * tb + 2 * 8
        assert fused.bytes["dram"] == 2 * tb + 3 * tb + 2 * 8
    assert load_workload(alias).cascade.readers("T") == [1, 2, 3]


def test_a_read_through_a_chain_of_views_is_seen(tmp_path):
    # the same cascade with T read through two views, the second a split of M = 65536 into 256 x 256
    path = _write(tmp_path, "chain.yaml", _cascade("M: 65536, P: 2, M1: 256, M0: 256", [
        *SOFTMAX_LIKE, "U[m,p] = T[m,p]", "V[m1,m0,p] = U[m1*M0+m0,p]", "Y[m1,m0,p] = V[m1,m0,p] - G[p]"]))
    fused = simlib.predict(path, hardware=TINY, execution="fused")
    tb = 65536 * 2 * 4
    assert fused.spill_bytes == 3 * tb + 2 * 8 and fused.passes == {"M": 2}


# --- a view moves the elements of its source it reaches ---------------------------------------------------------

@pytest.mark.parametrize("ranks, einsums, view, source_index", [
    # broadcast: X[m,p] = A[m] over M = 4, P = 3 reaches A[m]
    ("M: 4, P: 3", ["X[m,p] = A[m]", "Y[m,p] = exp(X[m,p])"], "X",
     lambda g: (g["m"],)),
    # diagonal of a 4 x 4 intermediate
    ("M: 4, N: 4", ["T[m,n] = exp(Z[m,n])", "D[m] = T[m,m]", "Y[m] = D[m] * 2"], "D",
     lambda g: (g["m"], g["m"])),
    # split of M = 12 into 3 x 4
    ("M: 12, M1: 3, M0: 4", ["T[m] = exp(Z[m])", "TB[m1,m0] = T[m1*M0+m0]", "Y[m1,m0] = TB[m1,m0] * 2"], "TB",
     lambda g: (g["m1"] * 4 + g["m0"],)),
    # a sliding window over an input A of M + P - 1 = 6 elements: every one of them, not M x P = 12
    ("M: 4, P: 3", ["W[m,p] = A[m+p]", "Y[m,p] = exp(W[m,p])"], "W",
     lambda g: (g["m"] + g["p"],)),
])
def test_a_view_reads_the_elements_of_its_source_it_reaches(tmp_path, ranks, einsums, view, source_index):
    bound = load_workload(_write(tmp_path, "v.yaml", _cascade(ranks, einsums))).bind()
    writer = bound.cascade.einsums[bound.cascade.computing_writer(view)]
    sizes = {v: bound.rank_sizes[v.upper()] for v in writer.variables}
    grid = dict(zip(sizes, np.meshgrid(*[np.arange(n) for n in sizes.values()], indexing="ij")))
    reached = np.unique(np.stack([np.ravel(i) for i in source_index(grid)], axis=1), axis=0)
    assert read_bytes(bound, view) == len(reached) * 4


def test_an_unfused_kernel_reads_a_broadcast_views_source(tmp_path):
    # X[m,p] = A[m]; Y = exp(X) at M = 4, P = 3: the kernel of Y reads A's 4 x 4 = 16 B (before: 48 B, X's size)
    # and writes Y's 4 x 3 x 4 = 48 B
    path = _write(tmp_path, "b.yaml", _cascade("M: 4, P: 3", ["X[m,p] = A[m]", "Y[m,p] = exp(X[m,p])"]))
    unfused = simlib.predict(path, hardware=TINY, execution="unfused")
    assert [(c.dram_read_bytes, c.dram_write_bytes) for c in unfused.breakdown] == [(16, 48)]


def test_a_tensor_read_directly_and_through_a_view_is_read_once(tmp_path):
    # Y[m,p] = X[m,p] * A[m] with X a broadcast of A: one kernel reading A's 16 B, writing Y's 48 B
    path = _write(tmp_path, "b.yaml", _cascade("M: 4, P: 3", ["X[m,p] = A[m]", "Y[m,p] = X[m,p] * A[m]"]))
    unfused = simlib.predict(path, hardware=TINY, execution="unfused")
    assert unfused.bytes["dram"] == 16 + 48


# --- intermediates read after a reduction over a row rank -------------------------------------------------------

def test_an_intermediate_read_after_a_row_reduction_is_spilled(tmp_path):
    # M = P = 256 on tiny_gpu. Streaming M (the first of the two reduced ranks of equal size) leaves P a row rank,
    # so R[m] = sum_p T is complete only after the last chunk of rows, and Y, which reads R, runs after all
    # chunks: T (256 x 256 x 4 = 256 KiB, more than the 128 KiB on chip) must outlive them, so it is spilled:
    # written once and read back by S, R and Y (4 x 256 KiB); S and R (1 KiB each) are written and read by Y once.
    # X read and Y written: 256 KiB each. Before: T was held a chunk of P rows at a time and never spilled.
    path = _write(tmp_path, "rowred.yaml", _cascade("M: 256, P: 256", [
        "T[m,p] = exp(X[m,p])", "S[p] = sum_m T[m,p]", "R[m] = sum_p T[m,p]", "Y[m,p] = T[m,p] * S[p] * R[m]"]))
    tb = 256 * 256 * 4
    fused = simlib.predict(path, hardware=TINY, execution="fused")
    assert fused.spill_bytes == 4 * tb + 4 * 1024
    assert fused.bytes["dram"] == 2 * tb + 4 * tb + 4 * 1024


def test_a_row_reduction_barrier_spills_only_what_crosses_it(tmp_path):
    # T1 -> T2 is streamed within the first sweep; R[m] = sum_p T2 reduces the row rank P (M is the stream rank),
    # so Y = T2 / R runs after every chunk and T2 (256 KiB) is spilled: written once, read by R and by Y; R (1 KiB)
    # written and read once. With X read and Y written once: 2 + 3 = 5 x 256 KiB + 2 KiB. The unfused sequence also
    # writes and reads back T1: 7 x 256 KiB + 2 KiB. Before: one sweep, everything streamed, 2 x 256 KiB.
    path = _write(tmp_path, "barrier.yaml", _cascade("M: 256, P: 256", [
        "T1[m,p] = exp(X[m,p])", "T2[m,p] = T1[m,p] * 2", "R[m] = sum_p T2[m,p]", "Y[m,p] = T2[m,p] / R[m]"],
        extra="stream_rank: M\n"))
    tb = 256 * 256 * 4
    fused = simlib.predict(path, hardware=TINY, execution="fused")
    unfused = simlib.predict(path, hardware=TINY, execution="unfused")
    assert fused.bytes["dram"] == 5 * tb + 2048 and fused.spill_bytes == 3 * tb + 2048
    assert unfused.bytes["dram"] == 7 * tb + 2048


def test_an_input_read_on_both_sides_of_the_barrier_is_read_twice(tmp_path):
    # Y = X / R reads X after R[m] = sum_p T (P a row rank): X (256 KiB) is read in the first sweep, for T, and
    # again in the second, for Y; R (1 KiB) is held whole across the barrier and T is consumed where it is made.
    # DRAM: 2 x 256 KiB of X and 256 KiB of Y. Before: X read once.
    path = _write(tmp_path, "reread.yaml", _cascade("M: 256, P: 256", [
        "T[m,p] = exp(X[m,p])", "R[m] = sum_p T[m,p]", "Y[m,p] = X[m,p] / R[m]"], extra="stream_rank: M\n"))
    fused = simlib.predict(path, hardware=TINY, execution="fused")
    assert fused.bytes["dram"] == 3 * 256 * 256 * 4 and fused.spill_bytes == 0
    assert [(c.dram_read_bytes, c.dram_write_bytes) for c in fused.breakdown] == [
        (262144, 0), (0, 0), (262144, 262144)]


def test_what_fits_whole_stays_on_chip_across_the_barrier(tmp_path):
    # the same cascade at M = P = 64: T2 is 16 KiB and R 256 B, both held whole on chip across the barrier, so
    # the kernel moves X and Y only (2 x 16 KiB) and keeps T2 and R in shared memory: each written once, T2 read
    # by R and Y, R read by Y: 16 KiB + 256 + 2 x 16 KiB + 256 B
    path = _write(tmp_path, "fits.yaml", _cascade("M: 64, P: 64", [
        "T1[m,p] = exp(X[m,p])", "T2[m,p] = T1[m,p] * 2", "R[m] = sum_p T2[m,p]", "Y[m,p] = T2[m,p] / R[m]"],
        extra="stream_rank: M\n"))
    fused = simlib.predict(path, hardware=TINY, execution="fused")
    assert fused.bytes["dram"] == 2 * 16384 and fused.spill_bytes == 0
    assert fused.bytes["smem"] == 3 * 16384 + 2 * 256


# --- an operation a unit does, but not in the workload's dtype ---------------------------------------------------

def test_an_operation_in_a_missing_dtype_is_a_dtype_error():
    # FuseMax's arrays multiply in fp16 and bf16 only; attention-torch-math is fp32. Before: "no unit for 'mul'"
    with pytest.raises(SimlibInputError) as info:
        simlib.predict("attention-torch-math", hardware="fusemax")
    assert info.value.field == "dtype"
    assert "'mul' in fp32" in info.value.message and "expected one of: bf16, fp16" in info.value.message
    simlib.predict("attention-torch-math", hardware="fusemax", dtype="bf16")


def test_an_operation_no_unit_does_is_still_a_compute_error(tmp_path):
    # tiny_gpu without its SFU: nothing does exp in any dtype and there is no decomposition
    hw = (DATA / "tiny_gpu.yaml").read_text().replace("  sfu: {kind: special, operations: [exp], "
                                                      "ops_per_cycle_per_processor: 8}\n", "")
    path = _write(tmp_path, "nosfu.yaml", hw)
    workload = _write(tmp_path, "e.yaml", _cascade("M: 4", ["Y[m] = exp(X[m])"]))
    with pytest.raises(SimlibInputError) as info:
        simlib.predict(workload, hardware=path)
    assert info.value.field == "compute" and "no unit for operation 'exp'" in info.value.message
