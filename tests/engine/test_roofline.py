"""Roofline predictions against rooflines worked by hand from the YAML numbers.

Sources of the expected values: the hardware YAMLs (themselves checked against reference/hardware.md in
tests/hardware) and the closed forms written out in each test. Tolerance: 1e-9 relative unless stated.
"""
import math
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import simlib
from simlib.errors import SimlibInputError

REL = 1e-9
DATA = Path(__file__).parent.parent / "data"


def test_gemm_8192_cubed_bf16_on_a100_is_compute_bound():
    p = simlib.predict("gemm", hardware="a100", M=8192, N=8192, K=8192, dtype="bf16")
    assert p.flops == 2 * 8192 ** 3
    assert p.time_s == pytest.approx(2 * 8192 ** 3 / 312e12, rel=REL)
    assert p.bound == "tensor_core"
    assert p.bytes["dram"] == 3 * 8192 ** 2 * 2
    assert p.arithmetic_intensity == pytest.approx(2 * 8192 ** 3 / (3 * 8192 ** 2 * 2), rel=REL)
    assert p.fraction_of_peak == pytest.approx(1.0, rel=REL)


def test_gemm_with_m_1_is_a_memory_bound_gemv():
    p = simlib.predict("gemm", hardware="a100", M=1, N=8192, K=8192, dtype="bf16")
    moved = (8192 * 1 + 8192 * 8192 + 1 * 8192) * 2          # A (K x 1), B (K x N), Z (1 x N)
    assert p.bytes["dram"] == moved
    assert p.time_s == pytest.approx(moved / 2.039e12, rel=REL)
    assert p.bound == "hbm"
    gemv = simlib.predict("gemv", hardware="a100", N=8192, K=8192)
    assert gemv.time_s == pytest.approx(p.time_s, rel=REL)


def test_sustained_rates_replace_peaks_where_measured():
    # reference/hardware.md: 8192^3 bf16 on H200 measured at 770-800 TFLOP/s; the YAML keeps 785 as sustained.
    p = simlib.predict("gemm", hardware="h200", M=8192, N=8192, K=8192, sustained=True)
    assert p.time_s == pytest.approx(2 * 8192 ** 3 / 785e12, rel=REL)


@settings(max_examples=60, deadline=None)
@given(M=st.integers(1, 5000), N=st.integers(1, 5000), K=st.integers(1, 5000))
def test_gemm_is_max_of_compute_and_memory_on_a_hand_made_device(data_dir_path, M, N, K):
    # tiny_gpu.yaml: 2 TFLOP/s bf16 tensor peak, 100 GB/s DRAM.
    p = simlib.predict("gemm", hardware=str(data_dir_path / "tiny_gpu.yaml"), M=M, N=N, K=K)
    compute = 2 * M * N * K / 2e12
    memory = (M * K + K * N + M * N) * 2 / 1e11
    assert p.time_s == pytest.approx(max(compute, memory), rel=REL)
    assert p.bound == ("tc" if compute >= memory else "hbm")


@pytest.fixture(scope="module")
def data_dir_path():
    from pathlib import Path
    return Path(__file__).parent.parent / "data"


def test_unfused_three_pass_attention_by_hand(data_dir_path):
    M = P = 256
    E = F = 64
    p = simlib.predict("attention-3pass", hardware=str(data_dir_path / "tiny_gpu.yaml"), seq_kv=M, seq_q=P,
                       head_dim=E, head_dim_v=F, execution="unfused")
    tc, vec, sfu, bw, b = 1e12, 1e11, 16e9, 1e11, 2   # MAC/s, op slots/s (0.2 TFLOP/s fp32 / 2), exp/s, B/s, bytes
    kernels = [  # (read elements, written elements, tensor-core MACs, vector ops, exps)
        (E * P + E * M, M * P, M * P * E, 0, 0),          # QK = Q * K
        (M * P, P, 0, M * P, 0),                          # GM = max_m QK
        (M * P + P, M * P, 0, M * P, M * P),              # SN = exp(QK - GM)
        (M * P, P, 0, M * P, 0),                          # SD = sum_m SN
        (M * P + P, M * P, 0, M * P, 0),                  # A = SN / SD
        (M * P + F * M, F * P, M * P * F, 0, 0),          # AV = A * V
    ]
    expected = sum(max(macs / tc, ops / vec, exps / sfu, (r + w) * b / bw) for r, w, macs, ops, exps in kernels)
    assert p.time_s == pytest.approx(expected, rel=REL)
    assert p.bytes["dram"] == sum(r + w for r, w, *_ in kernels) * b
    assert p.flops == 2 * M * P * E + 2 * M * P * F + 5 * M * P
    # products: 4.19 M MACs = 4.19 us on the tensor core vs 1.97 us of DRAM each; SN: 65536 exps = 4.10 us on
    # the SFU vs 2.63 us of DRAM; GM, SD, A: 1.31-2.63 us of DRAM vs 0.66 us of vector work
    assert [c.bound for c in p.breakdown] == ["tc", "hbm", "sfu", "hbm", "hbm", "tc"]


def test_fused_one_pass_moves_only_compulsory_bytes_when_rows_fit():
    # batch 2, heads 4, 1024 x 1024, head dim 64 on A100: 17.7 MB of shared memory holds every row's state.
    p = simlib.predict("attention-1pass", hardware="a100", batch=2, heads=4, seq_q=1024, seq_kv=1024)
    compulsory = 4 * 2 * 4 * 1024 * 64 * 2                # Q, K, V read, O written, bf16
    assert p.bytes["dram"] == compulsory
    assert p.spill_bytes == 0
    assert p.passes == {"E": 1, "M": 1}


@settings(max_examples=30, deadline=None)
@given(seq=st.sampled_from([256, 1024, 4096, 16384, 65536]), bh=st.sampled_from([1, 8, 64]),
       name=st.sampled_from(["attention-1pass", "attention-2pass", "attention-3pass"]),
       hw=st.sampled_from(["a100", "h100", "fusemax", "flat"]))
def test_fused_attention_never_moves_less_than_compulsory(seq, bh, name, hw):
    p = simlib.predict(name, hardware=hw, heads=bh, seq_q=seq, seq_kv=seq, execution="fused")
    assert p.bytes["dram"] >= 4 * bh * seq * 64 * 2
    unfused = simlib.predict("attention-3pass", hardware=hw, heads=bh, seq_q=seq, seq_kv=seq)
    # the unfused 3-pass kernel sequence writes and reads every M x P intermediate at least once
    assert unfused.bytes["dram"] >= 3 * bh * seq * seq * 2


def test_three_pass_buffers_spill_when_rows_are_long_and_one_pass_does_not():
    # 3-pass: a query row's QK/SN fibres (M values each) must be kept across passes; at M = 2^20 on FuseMax's
    # 16 MiB buffer even one row's two bf16 fibres (4 MiB) leave too few rows to fill, so it spills or re-reads.
    long = dict(heads=4, seq_q=4096, seq_kv=2 ** 20)
    three = simlib.predict("attention-3pass", hardware="fusemax", execution="fused", **long)
    one = simlib.predict("attention-1pass", hardware="fusemax", **long)
    assert one.spill_bytes == 0
    assert three.bytes["dram"] > one.bytes["dram"]


def test_exp_decomposes_into_six_macs_and_an_add_without_an_exp_unit(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: exp-only\nparameters: {P: 1000000, dtype: bf16}\nranks: {P: P}\n"
                    "einsums: ['Y[p] = exp(X[p])']\n")
    fusemax = simlib.predict(str(path), hardware="fusemax")
    flat = simlib.predict(str(path), hardware="flat")
    one_d = 256 * 0.94e9                                # 1D array: 256 PEs, one op per cycle at 940 MHz
    assert fusemax.unit_time_s["pe_1d"] == pytest.approx(1e6 * 7 / one_d, rel=REL)   # 6 MAC + 1 add
    assert flat.unit_time_s["pe_1d"] == pytest.approx(1e6 / one_d, rel=REL)          # exp unit


def test_energy_is_action_counts_times_energy_per_action():
    # reference/fusemax.md: fp MAC 17.16 pJ, DRAM 249.6 pJ per 64-bit access.
    p = simlib.predict("gemm", hardware="fusemax", M=256, N=256, K=256, dtype="fp16")
    macs = 256 ** 3
    dram_accesses = 3 * 256 * 256 * 2 * 8 / 64
    assert p.energy_j == pytest.approx((macs * 17.16 + dram_accesses * 249.6) * 1e-12, rel=REL)
    assert simlib.predict("gemm", hardware="a100").energy_j is None


def test_speedup_against_the_named_baseline():
    params = dict(batch=2, heads=8, seq_q=4096, seq_kv=4096)
    p = simlib.predict("attention-1pass", hardware="h100", **params)
    base = simlib.predict("attention-3pass", hardware="h100", execution="unfused", **params)
    assert p.speedup == pytest.approx(base.time_s / p.time_s, rel=REL)
    assert p.speedup > 1
    assert simlib.predict("gemm", hardware="h100").speedup is None


def test_breakdown_frame_adds_up():
    p = simlib.predict("attention-3pass", hardware="a100", heads=4)
    frame = p.to_frame()
    assert len(frame) == 6
    assert frame["flops"].sum() == pytest.approx(p.flops, rel=REL)
    assert (frame["dram_read_bytes"] + frame["dram_write_bytes"]).sum() == pytest.approx(p.bytes["dram"], rel=REL)
    assert frame["time_s"].sum() == pytest.approx(p.time_s, rel=REL)   # unfused: kernels run one after another
    assert p.summary()["time_s"] == p.time_s


def test_fp4_runs_on_b200_and_a_missing_dtype_is_an_input_error():
    p = simlib.predict("gemm", hardware="b200", M=8192, N=8192, K=8192, dtype="fp4")
    assert p.time_s == pytest.approx(2 * 8192 ** 3 / 9000e12, rel=REL)
    assert p.bytes["dram"] == 3 * 8192 ** 2 * 0.5
    with pytest.raises(SimlibInputError, match="no unit doing fp8 products"):
        simlib.predict("gemm", hardware="a100", dtype="fp8")


def test_softmax_exp_goes_to_the_sfu_on_gpus():
    p = simlib.predict("attention-3pass", hardware="h100", heads=16)
    sn = next(c for c in p.breakdown if c.einsum.startswith("SN"))
    assert sn.units == {"add": "cuda_cores", "exp": "sfu"}
    assert sn.unit_time_s["sfu"] == pytest.approx(16 * 4096 * 4096 / (16 * 132 * 1.83e9), rel=REL)
    assert math.isclose(p.utilization["hbm"], p.level_time_s["hbm"] / p.time_s)


def test_fused_three_pass_keeps_cross_pass_buffers_on_chip_by_hand():
    # M = P = 256, bf16, one head on A100 (17.7 MB of shared memory: everything fits). Cross-pass buffers:
    # QK (made in pass 1, read by GM in pass 1 and SN in pass 2), SN (pass 2; read by SD, and by A in pass 3),
    # GM and SD (full reductions read in the next pass). Each is written once and read once per consumer.
    p = simlib.predict("attention-3pass", hardware="a100", seq_q=256, seq_kv=256, execution="fused")
    mp, row = 256 * 256 * 2, 256 * 2
    assert p.bytes["smem"] == 3 * mp + 3 * mp + 2 * row + 2 * row
    assert p.bytes["dram"] == 4 * 256 * 64 * 2
    assert p.spill_bytes == 0
    one = simlib.predict("attention-1pass", hardware="a100", seq_q=256, seq_kv=256)
    assert one.bytes["smem"] == 0       # one pass: nothing has to wait for a later pass


def test_fused_falls_back_to_dram_for_every_intermediate_when_one_row_does_not_fit(tmp_path, data_dir_path):
    # a 64-byte scratchpad cannot hold one 64-element bf16 Q row (128 bytes): every intermediate is written
    # once and read once per consumer, which is exactly the unfused kernel sequence's traffic.
    text = (data_dir_path / "tiny_gpu.yaml").read_text().replace("capacity_bytes: 65536}", "capacity_bytes: 32}")
    path = tmp_path / "starved.yaml"
    path.write_text(text)
    fused = simlib.predict("attention-3pass", hardware=str(path), seq_q=64, seq_kv=64, execution="fused")
    unfused = simlib.predict("attention-3pass", hardware=str(path), seq_q=64, seq_kv=64, execution="unfused")
    assert fused.bytes["dram"] == unfused.bytes["dram"]
    assert fused.spill_bytes == fused.bytes["dram"] - 4 * 64 * 64 * 2


def test_a_multiply_on_a_mac_only_pe_is_costed_as_a_mac(tmp_path):
    # FuseMax PEs list mac but not mul: an elementwise product is a MAC with a zero addend, 17.16 pJ each
    # (reference/fusemax.md), plus DRAM at 249.6 pJ per 64-bit access for X, Z read and Y written.
    path = tmp_path / "mul.yaml"
    path.write_text("name: mul-only\nparameters: {P: 4096, dtype: fp16}\nranks: {P: P}\n"
                    "einsums: ['Y[p] = X[p] * Z[p]']\n")
    p = simlib.predict(str(path), hardware="fusemax")
    assert p.energy_j == pytest.approx((4096 * 17.16 + 3 * 4096 * 2 * 8 / 64 * 249.6) * 1e-12, rel=REL)
    assert simlib.predict("attention-1pass", hardware="fusemax", seq_q=1024, seq_kv=1024).energy_j > 0


@pytest.mark.parametrize("m, n, k, fresh", [(256, 256, 256, False),     # 256 KiB product: allocator reuses
                                            (1024, 1024, 1, True),      # 4 MiB product: newly mapped pages
                                            (512, 512, 8, True)])       # exactly 1 MiB: from the threshold on
def test_unfused_outputs_from_the_threshold_on_are_written_at_the_fresh_rate(m, n, k, fresh):
    # tests/data/tiny_cpu.yaml: reads at 10 GB/s, writes at 10 GB/s or 1 GB/s; arithmetic nearly free
    hw = str(DATA / "tiny_cpu.yaml")
    p = simlib.predict("gemm", hardware=hw, M=m, N=n, K=k, dtype="fp32", execution="unfused")
    read, write = 4 * (m * k + k * n), 4 * m * n
    expected = read / 1e10 + write / (1e9 if fresh else 1e10)
    assert p.time_s == pytest.approx(expected, rel=1e-9)     # memory-bound: arithmetic takes < 1e-6 of it


def test_torch_unfused_cascade_moves_what_its_kernels_read_and_write():
    # workloads/attention-torch-unfused.yaml, the explicit attention simlib measure times; unfused, fp32, N = 64
    # queries and keys, head dim 16. QK: 2 N d in, N^2 out; the scale multiply: N^2 in, N^2 out; the row softmax
    # (one kernel running max, exp, sum and divide over a row in cache): N^2 in, N^2 out; PV: N^2 + N d in, N d out.
    n, d = 64, 16
    p = simlib.predict("attention-torch-unfused", hardware=str(DATA / "tiny_cpu.yaml"), batch=1, heads=1,
                       seq_q=n, seq_kv=n, head_dim=d, head_dim_v=d, dtype="fp32", execution="unfused")
    nd, n2, row = 4 * n * d, 4 * n * n, 4 * n
    assert p.bytes["dram"] == (2 * nd + n2) + (n2 + n2) + (n2 + n2) + (n2 + nd + nd)
    # against the textbook 3-pass cascade, one kernel per Einsum (max N^2 + N, exp 2 N^2 + N, sum N^2 + N,
    # divide 2 N^2 + N): the scale pass adds 2 N^2, the row kernel saves 4 N^2 + 4 N
    textbook = simlib.predict("attention-3pass", hardware=str(DATA / "tiny_cpu.yaml"), batch=1, heads=1,
                              seq_q=n, seq_kv=n, head_dim=d, head_dim_v=d, dtype="fp32", execution="unfused")
    assert textbook.bytes["dram"] - p.bytes["dram"] == 2 * n2 + 4 * row


def test_torch_math_sdpa_cascade_moves_what_its_kernels_read_and_write():
    # workloads/attention-torch-math.yaml, unfused, fp32, N = 64 queries and keys, head dim 16. Q, K scaled:
    # 2 x (N d) each; QK: 2 N d in, N^2 out; the row softmax kernel: N^2 in, N^2 out and the row maxima (N, read
    # again by the guard); the guard: compare (N^2 + N in, N^2 one-byte flags out), all (N^2 flags in, N flags
    # out), the in-place fill (N^2 + N flags in, N^2 out); PV: N^2 + N d in, N d out.
    n, d = 64, 16
    p = simlib.predict("attention-torch-math", hardware=str(DATA / "tiny_cpu.yaml"), batch=1, heads=1, seq_q=n,
                       seq_kv=n, head_dim=d, head_dim_v=d, dtype="fp32", execution="unfused")
    nd, n2, row = 4 * n * d, 4 * n * n, 4 * n
    expected = (2 * nd + 2 * nd + (2 * nd + n2) + (n2 + n2 + row)
                + (n2 + row + n * n) + (n * n + n) + (n2 + n + n2) + (n2 + nd + nd))
    assert p.bytes["dram"] == expected
    # decode (one query): scaling K, a fresh seq_kv x head_dim tensor, dominates once it reaches the threshold
    one = simlib.predict("attention-torch-math", hardware=str(DATA / "tiny_cpu.yaml"), batch=1, heads=8, seq_q=1,
                         seq_kv=16384, head_dim=128, head_dim_v=128, dtype="fp32", execution="unfused")
    k_bytes = 8 * 16384 * 128 * 4                                 # 64 MiB: past tiny_cpu's 1 MiB threshold
    scale_k = next(c for c in one.breakdown if c.einsum.startswith("KS"))
    assert scale_k.time_s == pytest.approx(k_bytes / 1e10 + k_bytes / 1e9, rel=1e-9)
    assert scale_k.time_s > 0.5 * one.time_s
