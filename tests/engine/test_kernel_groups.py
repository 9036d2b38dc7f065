"""Unfused kernels that run several Einsums (``kernels``), in-place outputs (``reuses``) and page faults.

Expected values are worked by hand from tests/data/tiny_cpu.yaml (DRAM 10 GB/s, fresh writes 1 GB/s from
1 MiB on, a 64 KiB cache, two cores) or from a variant written in each test; tolerance 1e-9 relative.
"""
import math
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import simlib
from simlib.engine.traffic import kernel_groups, unfused_traffic
from simlib.hardware.catalog import load_hardware
from simlib.workload.workload import load_workload

REL = 1e-9
DATA = Path(__file__).parent.parent / "data"
TINY = DATA / "tiny_cpu.yaml"

ROW_SOFTMAX = (DATA / "row_softmax.yaml").read_text()


def _hardware(tmp_path, vector_tflops=1000.0, special_tflops=1000.0, cache_bytes=65536, fresh=1.0e9):
    path = tmp_path / "host.yaml"
    path.write_text(f"""name: host
family: cpu
clock_ghz: 1.0
processors: {{count: 2, kind: core}}
compute:
  matrix: {{kind: matrix, operations: [mac], peak_tflops: {{fp32: 1.0e-3}}}}
  vector: {{kind: vector, operations: [mac, mul, add, max, div], peak_tflops: {{fp32: {vector_tflops}}}}}
  special: {{kind: special, operations: [exp], peak_tflops: {{fp32: {special_tflops}}}}}
memory:
  - {{name: dram, kind: dram, bandwidth_bytes_per_s: 1.0e10, fresh_write_bandwidth_bytes_per_s: {fresh},
     fresh_write_min_bytes: 1048576}}
  - {{name: l3, kind: cache, capacity_bytes: {cache_bytes}}}
""")
    return str(path)


def _softmax(tmp_path, text=ROW_SOFTMAX):
    path = tmp_path / "softmax.yaml"
    path.write_text(text)
    return str(path)


def test_a_row_kernel_reads_its_input_once_and_writes_only_what_leaves_it(tmp_path):
    # M = 64 keys, P = 32 rows, fp32: X (8 KiB) read once, A (8 KiB) written; GM, SN, SD stay in cache.
    # As four kernels: GM reads X, writes P; SN reads X and GM, writes M P; SD reads SN, writes P; A reads SN and
    # SD, writes M P.
    mp, p = 4 * 64 * 32, 4 * 32
    grouped = simlib.predict(_softmax(tmp_path), hardware=str(TINY))
    assert grouped.bytes["dram"] == 2 * mp
    separate = simlib.predict(_softmax(tmp_path, ROW_SOFTMAX.replace("kernels: [[GM, SN, SD, A]]\n", "")),
                              hardware=str(TINY))
    assert separate.bytes["dram"] == (mp + p) + (mp + p + mp) + (mp + p) + (mp + p + mp)
    # memory-bound on tiny_cpu (arithmetic at 1000 TFLOP/s): one pass of 2 M P bytes at 10 GB/s
    assert grouped.time_s == pytest.approx(2 * mp / 1e10, rel=REL)


def test_a_row_kernel_runs_its_loops_one_after_another(tmp_path):
    # peak_tflops counts two FLOPs per issued operation (as a MAC): 1e-3 TFLOP/s issues 5e8 vector ops/s, 5e-4
    # issues 2.5e8 exp/s. Loops over M P = 2048 points: max, subtract with exp, sum, divide. One kernel:
    # max 4096 ns + max(subtract 4096 ns, exp 8192 ns) + sum 4096 ns + divide 4096 ns = 20480 ns, well above its
    # 16 KiB at 10 GB/s (1638.4 ns). The loops do not overlap one another; units within one do.
    hw = _hardware(tmp_path, vector_tflops=1e-3, special_tflops=5e-4)
    points = 64 * 32
    p = simlib.predict(_softmax(tmp_path), hardware=hw)
    assert p.time_s == pytest.approx(points / 5e8 * 3 + points / 2.5e8, rel=REL)
    assert sum(c.time_s for c in p.breakdown) == pytest.approx(p.time_s, rel=REL)


def test_a_row_that_does_not_fit_the_cache_runs_as_separate_kernels(tmp_path):
    # held per row between the loops: the X row (read by the max and the exp), GM (4 B), the SN row (read by the
    # sum and the divide) and SD (4 B), 8 M + 8 bytes; two cores hold a row each. M = 64: 2 x 520 B fits a 2 KiB
    # cache; M = 256: 2 x 2056 B does not, and the traffic is that of the four kernels.
    small = _hardware(tmp_path, cache_bytes=2048)
    fits = simlib.predict(_softmax(tmp_path), hardware=small)
    assert fits.bytes["dram"] == 2 * 4 * 64 * 32
    wide = simlib.predict(_softmax(tmp_path), hardware=small, M=256)
    mp, p = 4 * 256 * 32, 4 * 32
    assert wide.bytes["dram"] == (mp + p) + (mp + p + mp) + (mp + p) + (mp + p + mp)
    bound = load_workload(_softmax(tmp_path)).bind({"M": 256})
    assert kernel_groups(bound, load_hardware(small)) == [[0], [1], [2], [3]]


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 300), p=st.integers(1, 40), b=st.integers(1, 3))
def test_a_row_kernel_moves_its_input_and_output_once_and_never_more_than_separate_kernels(m, p, b):
    # brute force: the bytes of every tensor the kernel reads from outside and writes for a later reader, against
    # the per-Einsum compulsory traffic of the same cascade run as four kernels
    bound = load_workload(str(DATA / "row_softmax.yaml")).bind({"M": m, "P": p, "B": b})
    hw = load_hardware(str(TINY))
    grouped = unfused_traffic(bound, kernel_groups(bound, hw))
    alone = unfused_traffic(bound)
    assert grouped.dram_bytes == 2 * 4 * m * p * b
    assert grouped.dram_bytes <= alone.dram_bytes


def test_page_faults_add_to_a_compute_bound_kernel(tmp_path):
    # 1 GFLOP/s matrix unit; a 512 x 512 x 8 fp32 GEMM: 4.194 ms of multiply-adds, its 1 MiB output fresh at
    # 1 GB/s against 10 GB/s: the zeroing (1 MiB x (1/1e9 - 1/1e10)) is added, not overlapped
    hw = _hardware(tmp_path)
    p = simlib.predict("gemm", hardware=hw, M=512, N=512, K=8, dtype="fp32", execution="unfused")
    out = 4 * 512 * 512
    assert p.time_s == pytest.approx(2 * 512 * 512 * 8 / 1e9 + out * (1 / 1e9 - 1 / 1e10), rel=REL)
    # just below the threshold (511 rows): no fault, the multiply alone
    below = simlib.predict("gemm", hardware=hw, M=511, N=512, K=8, dtype="fp32", execution="unfused")
    assert below.time_s == pytest.approx(2 * 511 * 512 * 8 / 1e9, rel=REL)
    # fused execution never allocates per Einsum, and a part without a fresh-write rate pays nothing
    assert simlib.predict("gemm", hardware=hw, M=512, N=512, K=8, dtype="fp32").time_s == \
        pytest.approx(2 * 512 * 512 * 8 / 1e9, rel=REL)
    fast = _hardware(tmp_path, fresh=2.0e10)
    assert simlib.predict("gemm", hardware=fast, M=512, N=512, K=8, dtype="fp32", execution="unfused").time_s == \
        pytest.approx(2 * 512 * 512 * 8 / 1e9, rel=REL)


IN_PLACE = """name: in-place
parameters: {N: 524288, dtype: fp32}
ranks: {N: N}
tensors:
  X: {ranks: [N]}
  Z: {reuses: Y}
execution: unfused
einsums:
  - Y[n] = X[n] * 2
  - Z[n] = Y[n] + X[n]
"""


def test_an_output_written_in_place_takes_no_new_pages(tmp_path):
    # N = 512Ki fp32: 2 MiB per tensor, past tiny_cpu's 1 MiB threshold. Y is a new tensor: X in, Y out at 10 GB/s
    # plus its zeroing; Z overwrites Y: Y and X in, Z out at 10 GB/s, nothing more.
    path = tmp_path / "inplace.yaml"
    path.write_text(IN_PLACE)
    size = 4 * 524288
    p = simlib.predict(str(path), hardware=str(TINY))
    assert p.time_s == pytest.approx(2 * size / 1e10 + size * (1 / 1e9 - 1 / 1e10) + 3 * size / 1e10, rel=REL)
    path.write_text(IN_PLACE.replace("  Z: {reuses: Y}\n", ""))
    fresh = simlib.predict(str(path), hardware=str(TINY))
    assert fresh.time_s - p.time_s == pytest.approx(size * (1 / 1e9 - 1 / 1e10), rel=REL)


def test_in_place_into_smaller_storage_is_refused(tmp_path):
    from simlib.errors import SimlibInputError
    path = tmp_path / "smaller.yaml"
    path.write_text("name: s\nparameters: {N: 8, dtype: fp32}\nranks: {N: N}\ntensors:\n  X: {ranks: [N]}\n"
                    "  Y: {dtype: fp8}\n  Z: {reuses: Y}\nexecution: unfused\n"
                    "einsums:\n  - Y[n] = X[n] * 2\n  - Z[n] = Y[n] + X[n]\n")
    with pytest.raises(SimlibInputError, match=r"tensors\.Z\.reuses.*Y holds 8 bytes, fewer than the 32 of Z"):
        simlib.predict(str(path), hardware=str(TINY))


def test_torch_softmax_kernels_match_their_measured_parts():
    # the shipped cascades on the shipped calibrated CPU: the row softmax of 8 heads x 1024 x 1024 fp32 writes one
    # fresh 32 MiB matrix (page zeroing at 2.186 GB/s against 20.02 GB/s, traces/cpu/cpu-amd-epyc-2.yaml) and
    # reads the scores once; the math backend's guard writes the probabilities in place
    hw = load_hardware("traces/cpu/cpu-amd-epyc-2.yaml")
    p = simlib.predict("attention-torch-math", hardware=hw, batch=1, heads=8, seq_q=1024, seq_kv=1024,
                       head_dim=64, head_dim_v=64, dtype="fp32", execution="unfused")
    scores = 8 * 1024 * 1024 * 4
    fault = 1 / 2.186e9 - 1 / 2.002e10
    by_name = {c.einsum.split("[")[0]: c for c in p.breakdown}
    assert by_name["GM"].dram_read_bytes == scores and by_name["SN"].dram_read_bytes == 0
    assert by_name["A"].dram_write_bytes == scores and by_name["SN"].dram_write_bytes == 0
    softmax = sum(by_name[n].time_s for n in ("GM", "SN", "SD", "A"))
    loops = sum(max(by_name[n].unit_time_s.values()) for n in ("GM", "SN", "SD", "A"))
    assert softmax == pytest.approx(max(loops, 2 * (scores + 4 * 8 * 1024) / 2.002e10) + scores * fault, rel=REL)
    # the in-place guard (AS over A) is charged its traffic only; the fresh score matrix QK its zeroing
    assert by_name["AS"].time_s == pytest.approx(
        max(max(by_name["AS"].unit_time_s.values()), by_name["AS"].dram_read_bytes / 2.002e10
            + scores / 2.002e10), rel=REL)
    assert by_name["QK"].time_s == pytest.approx(
        max(by_name["QK"].unit_time_s["matrix"], (by_name["QK"].dram_read_bytes + scores) / 2.002e10)
        + scores * fault, rel=REL)
    assert math.isclose(p.time_s, sum(c.time_s for c in p.breakdown), rel_tol=REL)


def test_a_kernel_holds_every_row_its_loops_share(tmp_path):
    # [[SN, SD]] alone: SN is made by the exp loop and read back by the sum loop, and leaves the kernel for the
    # divide, so it is not kept out of DRAM but its row is held: 4 M bytes (plus the X and GM rows the exp loop
    # reads once each, which it does not hold). M = 2^20 keys: a 4 MiB row per core does not fit a 64 KiB cache.
    text = ROW_SOFTMAX.replace("[[GM, SN, SD, A]]", "[[SN, SD]]")
    bound = load_workload(_softmax(tmp_path, text)).bind({"M": 2 ** 20, "P": 2})
    assert kernel_groups(bound, load_hardware(str(TINY))) == [[0], [1], [2], [3]]
    small = load_workload(_softmax(tmp_path, text)).bind({"M": 1024, "P": 2})      # 2 x 4 KiB fits
    assert kernel_groups(small, load_hardware(str(TINY))) == [[0], [1, 2], [3]]


@settings(max_examples=25, deadline=None)
@given(n=st.sampled_from([64, 256, 1024, 4096, 65536]), heads=st.integers(1, 4),
       workload=st.sampled_from(["attention-torch-math", "attention-torch-unfused"]),
       hardware=st.sampled_from([str(TINY), "h100", "traces/cpu/cpu-amd-epyc-2.yaml"]))
def test_fused_never_moves_more_than_the_unfused_kernels(n, heads, workload, hardware):
    # a fused kernel can always run as the unfused sequence, row kernels included (engine/traffic.py docstring)
    shape = dict(batch=1, heads=heads, seq_q=n, seq_kv=n, head_dim=64, head_dim_v=64, dtype="fp32")
    fused = simlib.predict(workload, hardware=hardware, execution="fused", **shape)
    unfused = simlib.predict(workload, hardware=hardware, execution="unfused", **shape)
    assert fused.bytes["dram"] <= unfused.bytes["dram"]


def test_page_zeroing_is_not_a_roof():
    # the 32 MiB score matmul on the calibrated CPU: 8.6 ms of multiply-adds, 1.9 ms of traffic, 13.7 ms of page
    # zeroing on top: it is bound by the matrix unit, and its time is that plus the zeroing
    hw = load_hardware("traces/cpu/cpu-amd-epyc-2.yaml")
    p = simlib.predict("attention-torch-unfused", hardware=hw, batch=1, heads=8, seq_q=1024, seq_kv=1024,
                       head_dim=64, head_dim_v=64, dtype="fp32", execution="unfused")
    qk = p.breakdown[0]
    assert qk.einsum.startswith("QK") and qk.bound == "matrix"
    scores = 8 * 1024 ** 2 * 4
    assert qk.time_s == pytest.approx(qk.unit_time_s["matrix"] + scores * (1 / 2.186e9 - 1 / 2.002e10), rel=REL)
