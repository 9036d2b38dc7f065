"""Fused traffic of cascades with nothing to reduce, and energy with reads and writes priced apart.

Sources of the expected values: the fixtures' numbers (tests/data/tiny_gpu.yaml, tests/data/tiny_energy.yaml) and
the closed forms written out in each test: a fused kernel reads each input once and writes each output once when
every row's state fits on chip, re-reads an input lacking a row rank once per chunk of rows, streams the rank of a
cascade of maps that moves the fewest bytes, and never moves more than the unfused sequence it can always run;
energy is action counts x energy per action (Accelergy), a DRAM read of 64 bits costing 100 pJ and a write 300 pJ on
tiny_energy.yaml. Tolerance: 1e-9 relative; byte counts exact.
"""
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import simlib

REL = 1e-9
DATA = Path(__file__).parent.parent / "data"
TINY = str(DATA / "tiny_gpu.yaml")
ENERGY = str(DATA / "tiny_energy.yaml")


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


MAPS = "name: maps\nparameters: {P: 1024, dtype: fp32}\nranks: {P: P}\neinsums:\n" \
       "  - T[p] = exp(X[p])\n  - Y[p] = T[p] * 2\n"


def test_fused_maps_keep_their_intermediate_on_chip(tmp_path):
    # Before: no reduced rank meant no stream rank, and the fused prediction silently took the unfused traffic
    # (X read, T written and read back, Y written: 4 x 4 KiB). Fused: X read once, Y written once.
    path = _write(tmp_path, "maps.yaml", MAPS)
    fused = simlib.predict(path, hardware=TINY, execution="fused")
    unfused = simlib.predict(path, hardware=TINY, execution="unfused")
    assert fused.execution == "fused"
    assert fused.bytes["dram"] == 2 * 1024 * 4
    assert unfused.bytes["dram"] == 4 * 1024 * 4
    # one kernel: max(1024 exp on the SFU at 8/clk/SM x 2 SMs x 1 GHz, 1024 mul on the vector unit at 1e11/s,
    # 8 KiB of DRAM at 100 GB/s) = 81.92 ns, memory-bound
    assert fused.time_s == pytest.approx(max(1024 / 16e9, 1024 / 1e11, 8192 / 1e11), rel=REL)
    assert fused.bound == "hbm"
    assert [c.pass_number for c in fused.breakdown] == [1, 1]


@settings(max_examples=40, deadline=None)
@given(M=st.integers(1, 64), P=st.integers(1, 64), chain=st.integers(1, 4))
def test_fused_broadcast_map_chains_move_only_inputs_and_outputs(tmp_path_factory, M, P, chain):
    # T1[m,p] = X[m,p] * S[p], then T(k+1) = exp(Tk): inputs X (M P) and S (P), output (M P), fp32. Everything fits
    # tiny_gpu's 2 x 64 KiB of shared memory (at most 16 KiB for X), so fused moves 4 (2 M P + P) bytes; unfused
    # also writes and reads back each of the chain - 1 intermediates: + 2 x 4 M P each.
    einsums = ["T1[m,p] = X[m,p] * S[p]"] + [f"T{k + 1}[m,p] = exp(T{k}[m,p])" for k in range(1, chain)]
    text = (f"name: chain\nparameters: {{dtype: fp32}}\nranks: {{M: {M}, P: {P}}}\neinsums:\n"
            + "".join(f"  - {e}\n" for e in einsums))
    path = _write(tmp_path_factory.mktemp("w"), "chain.yaml", text)
    fused = simlib.predict(path, hardware=TINY, execution="fused")
    unfused = simlib.predict(path, hardware=TINY, execution="unfused")
    assert fused.bytes["dram"] == 4 * (2 * M * P + P)
    assert unfused.bytes["dram"] == 4 * (2 * M * P + P) + (chain - 1) * 2 * 4 * M * P
    assert fused.spill_bytes == 0


def test_a_fused_broadcast_product_moves_no_more_than_unfused(tmp_path):
    # Y[m,p] = X[m] * Z[p], M = 100000, P = 50000, fp32 on tiny_gpu (2 x 64 KiB of shared memory). One Einsum is
    # the same kernel fused or not, and the unfused count is its compulsory traffic: X, Z read once and Y written
    # once, 4 (M + P + M P) = 20,000,600,000 bytes. Before, fused streamed the largest rank M: a chunk of
    # 131072 / 4 = 32768 rows of P holds their Z values, and X is re-read ceil(50000 / 32768) = 2 times:
    # 4 (2 M + P + M P) = 20,001,000,000 bytes (streaming P instead: Z re-read ceil(100000 / 32768) = 4 times,
    # 4 (M + 4 P + M P) = 20,001,200,000). Both exceed the unfused sequence, which a fused kernel can always run.
    path = _write(tmp_path, "broadcast.yaml", "name: b\nparameters: {dtype: fp32}\nranks: {M: 100000, P: 50000}\n"
                                              "einsums: ['Y[m,p] = X[m] * Z[p]']\n")
    fused = simlib.predict(path, hardware=TINY, execution="fused")
    unfused = simlib.predict(path, hardware=TINY, execution="unfused")
    assert fused.bytes["dram"] == unfused.bytes["dram"] == 20_000_600_000
    assert fused.spill_bytes == 0 and "smem" not in fused.bytes           # nothing held on chip, no intermediate
    # memory-bound: 5e9 multiplies on the vector unit (1e11/s) take 0.05 s, the bytes at 1e11 B/s 0.200006 s
    assert fused.time_s == pytest.approx(20_000_600_000 / 1e11, rel=REL)
    assert fused.time_s == pytest.approx(unfused.time_s, rel=REL)


def test_fused_maps_stream_the_rank_that_moves_fewest_bytes(tmp_path):
    # T[m,p] = X[m] * Z[p], Y[m,p] = exp(T[m,p]); M = 32768, P = 16385, fp32, tiny_gpu. Either rank streamed, a
    # row holds its broadcast input (4 bytes) and its slice of T (4 bytes): chunks of 131072 / 8 = 16384 rows.
    # Streaming M (the largest, the old choice) re-reads X ceil(P / 16384) = 2 times: 4 (2 M + P + M P) bytes.
    # Streaming P re-reads Z ceil(M / 16384) = 2 times: 4 (M + 2 P + M P) bytes, fewer since P < M.
    M, P = 32768, 16385
    path = _write(tmp_path, "chain.yaml", f"name: c\nparameters: {{dtype: fp32}}\nranks: {{M: {M}, P: {P}}}\n"
                                          "einsums: ['T[m,p] = X[m] * Z[p]', 'Y[m,p] = exp(T[m,p])']\n")
    fused = simlib.predict(path, hardware=TINY, execution="fused")
    assert fused.bytes["dram"] == 4 * (M + 2 * P + M * P) == 2_147_876_872
    assert fused.spill_bytes == 0 and [c.pass_number for c in fused.breakdown] == [1, 1]
    # unfused also writes T and reads it back: 4 (M + P + 3 M P)
    assert simlib.predict(path, hardware=TINY, execution="unfused").bytes["dram"] == 4 * (M + P + 3 * M * P)


@settings(max_examples=60, deadline=None)
@given(M=st.integers(1, 64) | st.integers(10_000, 200_000), P=st.integers(1, 64) | st.integers(10_000, 200_000),
       chain=st.integers(1, 3))
def test_fused_broadcast_maps_against_the_closed_form(tmp_path_factory, M, P, chain):
    # T1[m,p] = X[m] * Z[p], then T(k+1) = exp(Tk), fp32 on tiny_gpu (131072 bytes of shared memory). A row of the
    # streamed plan holds its broadcast input and a slice of each of the chain - 1 intermediates, 4 bytes each:
    # chunks of c = min(rows, 131072 // (4 chain)). Streaming M re-reads X ceil(P / c) times, streaming P re-reads
    # Z ceil(M / c) times; the unfused sequence reads X and Z once and writes and reads back each intermediate.
    # Fused is the least of the three; never more than unfused.
    einsums = ["T1[m,p] = X[m] * Z[p]"] + [f"T{k + 1}[m,p] = exp(T{k}[m,p])" for k in range(1, chain)]
    text = (f"name: chain\nparameters: {{dtype: fp32}}\nranks: {{M: {M}, P: {P}}}\neinsums:\n"
            + "".join(f"  - {e}\n" for e in einsums))
    path = _write(tmp_path_factory.mktemp("w"), "chain.yaml", text)
    per_row = 4 * chain
    stream_m = 4 * M * P + 4 * M * -(-P // min(P, 131072 // per_row)) + 4 * P
    stream_p = 4 * M * P + 4 * P * -(-M // min(M, 131072 // per_row)) + 4 * M
    unfused = 4 * (M + P + M * P) + (chain - 1) * 2 * 4 * M * P
    fused = simlib.predict(path, hardware=TINY, execution="fused")
    assert fused.bytes["dram"] == min(stream_m, stream_p, unfused)
    assert simlib.predict(path, hardware=TINY, execution="unfused").bytes["dram"] == unfused


def test_fused_runs_as_the_unfused_sequence_when_streaming_would_move_more(tmp_path):
    # attention-3pass, M = P = 64, E = F = 16, bf16, on tiny_gpu cut to 32 bytes of shared memory per SM (64 in
    # all). A chunk holds at most 64 / (E x 2 bytes of a Q row) = 2 rows, so streaming re-reads K and V at least
    # 64 / 2 = 32 times each: 2 x 32 x E M 2 = 131,072 bytes. The unfused sequence moves
    # 2 (E P + E M + F M + F P + 8 M P + 4 P) = 74,240 bytes (QK, SN each written once and read twice; A written
    # and read once; GM, SD written and read once each), so the fused kernel runs as that sequence: the same
    # bytes, nothing held on chip, every byte but Q, K, V read and AV written (2 x (3 E M + F P) = 8192) spilled.
    text = (DATA / "tiny_gpu.yaml").read_text().replace("capacity_bytes: 65536}", "capacity_bytes: 32}", 1)
    hw = _write(tmp_path, "small_smem.yaml", text)
    shape = dict(seq_q=64, seq_kv=64, head_dim=16, head_dim_v=16)
    fused = simlib.predict("attention-3pass", hardware=hw, execution="fused", **shape)
    unfused = simlib.predict("attention-3pass", hardware=hw, execution="unfused", **shape)
    E = F = 16
    M = P = 64
    assert fused.bytes["dram"] == unfused.bytes["dram"] == 2 * (E * P + E * M + F * M + F * P + 8 * M * P + 4 * P)
    assert fused.bytes["dram"] == 74_240
    assert fused.spill_bytes == 74_240 - 2 * (3 * E * M + F * P) and "smem" not in fused.bytes
    # run as that sequence its phases follow one another: the sum of each Einsum's roofline, as unfused (tiny_gpu
    # gives no fresh-write bandwidth, so the two sums are the same numbers), not one overlapped roofline
    assert fused.time_s == pytest.approx(unfused.time_s, rel=1e-12)
    assert fused.time_s == pytest.approx(sum(c.time_s for c in fused.breakdown), rel=1e-12)
    assert fused.time_s > max(fused.unit_time_s.values()) and fused.time_s > fused.level_time_s["hbm"]


def test_fused_cascade_iterating_no_rank_is_one_pass_over_the_batch(tmp_path):
    # scalar Einsums repeated over a batch rank of 1000: fused reads X and writes Y, 4 bytes each per batch element
    path = _write(tmp_path, "scalar.yaml", "name: s\nparameters: {dtype: fp32}\nranks: {B: 1000}\n"
                                           "batch_ranks: [B]\neinsums:\n  - T[0] = exp(X[0])\n  - Y[0] = T[0] * 2\n")
    assert simlib.predict(path, hardware=TINY, execution="fused").bytes["dram"] == 2 * 1000 * 4
    assert simlib.predict(path, hardware=TINY, execution="unfused").bytes["dram"] == 4 * 1000 * 4


def test_fused_is_what_the_cli_prints(tmp_path):
    import json
    import subprocess
    import sys
    path = _write(tmp_path, "maps.yaml", MAPS)
    out = subprocess.run([sys.executable, "-m", "simlib.cli.main", "predict", path, "--hardware", TINY,
                          "--set", "execution=fused", "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["execution"] == "fused" and data["bytes"]["dram"] == 2 * 1024 * 4


# --- energy -------------------------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(M=st.integers(1, 300), N=st.integers(1, 300), K=st.integers(1, 300))
def test_gemm_energy_prices_reads_and_writes_apart(M, N, K):
    # unfused GEMM, bf16: M N K MACs at 1 pJ on the tensor core; A and B read (2 (M K + K N) bytes) at 100 pJ and
    # Z written (2 M N bytes) at 300 pJ per 64-bit access. The old rule charged every byte (100 + 300) / 2.
    p = simlib.predict("gemm", hardware=ENERGY, M=M, N=N, K=K, dtype="bf16", execution="unfused")
    reads, writes = 2 * (M * K + K * N), 2 * M * N
    expected_pj = M * N * K * 1.0 + reads * 8 / 64 * 100.0 + writes * 8 / 64 * 300.0
    assert p.energy_j == pytest.approx(expected_pj * 1e-12, rel=REL)


def test_fused_three_pass_energy_by_hand():
    # attention-3pass fused, M = P = 32, E = F = 16, bf16, on tiny_energy.yaml (all rows fit in 2 x 64 KiB).
    # Compute: QK and AV, 2 x M P E MACs on the tensor core at 1 pJ; GM (max), SN's subtraction and SD (adds)
    # at 0.25 pJ each per point; SN's exp at 8 pJ; A's divide at 4 pJ; M P points each.
    # DRAM: Q, K, V read (3 x E M 2 bytes, each row chunk holds every query, so K and V are read once) at
    # 100 pJ and AV written (F P 2 bytes) at 300 pJ per 64-bit access.
    # Scratchpad (the cross-pass buffers of tests/engine/test_roofline.py): QK and SN (M P 2 bytes each) written
    # once and read twice, GM and SD (P 2 bytes each) written once and read once; 2 and 6 pJ per 32-bit access.
    M = P = 32
    E = F = 16
    p = simlib.predict("attention-3pass", hardware=ENERGY, seq_q=P, seq_kv=M, head_dim=E, head_dim_v=F,
                       execution="fused")
    mp, row = M * P * 2, P * 2
    compute = 2 * M * P * E * 1.0 + 3 * M * P * 0.25 + M * P * 8.0 + M * P * 4.0
    dram = 3 * E * M * 2 * 8 / 64 * 100.0 + F * P * 2 * 8 / 64 * 300.0
    on_chip_writes, on_chip_reads = 2 * mp + 2 * row, 4 * mp + 2 * row
    smem = on_chip_writes * 8 / 32 * 6.0 + on_chip_reads * 8 / 32 * 2.0
    assert p.bytes["dram"] == 3 * E * M * 2 + F * P * 2
    assert p.bytes["smem"] == on_chip_writes + on_chip_reads
    assert p.energy_j == pytest.approx((compute + dram + smem) * 1e-12, rel=REL)


def test_a_level_without_a_write_energy_charges_its_read_energy_for_writes(tmp_path):
    text = (DATA / "tiny_energy.yaml").read_text().replace("energy_pj_per_write: 300.0,", "")
    hw = _write(tmp_path, "no_write_energy.yaml", text)
    p = simlib.predict("gemm", hardware=hw, M=8, N=8, K=8, dtype="bf16", execution="unfused")
    moved = 2 * (8 * 8 * 3)                                  # A, B read and Z written, bf16
    assert p.energy_j == pytest.approx((8 ** 3 * 1.0 + moved * 8 / 64 * 100.0) * 1e-12, rel=REL)
