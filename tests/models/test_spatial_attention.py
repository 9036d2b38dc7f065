"""Spatial-array attention model: the FuseMax artifact's rows (shipped as data), the paper's 24-point averages,
a hand-worked 4x4 array, the buffer-sizing and spill rules by hand, op counts against brute force, bad input."""
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simlib.hardware import load_hardware
from simlib.models.spatial_attention import predict_design
from simlib.models.spatial_cli import run_design
from simlib.models.spatial_design import load_design
from simlib.workload.model_spec import load_model
from simlib.validation.fusemax_rows import fusemax_table
from simlib.workload.workload import load_workload

DATA = Path(__file__).parent.parent / "data" / "spatial"
TOLERANCE = {"_s": 0.05, "_gb": 0.05, "_j": 0.10, "util": 0.05}     # the issue's: latency/traffic 5 %, energy 10 %


@pytest.fixture(scope="module")
def table():
    frame = fusemax_table()
    print("\n" + frame.to_string(float_format=lambda x: f"{x:.4g}"))         # the per-row error table (-s)
    return frame


def test_every_artifact_row_within_tolerance(table):
    assert len(table) == 12 * 11
    for row in table.itertuples():
        tol = next(t for key, t in TOLERANCE.items() if key in row.quantity)
        assert abs(row.error) <= tol, f"{row.model} {row.seq} {row.quantity}: {row.error:+.1%}"


def _averages(layer: bool) -> tuple[float, float, float]:
    """Mean FuseMax speedup vs FLAT, vs unfused, and energy relative to FLAT over the paper's 24 points."""
    vs_flat, vs_unfused, energy = [], [], []
    for model in ("bert", "trxl", "t5", "xlm"):
        for seq in (1024, 4096, 16384, 65536, 262144, 1048576):
            params = {"model": model, "seq_q": seq, "seq_kv": seq, "batch": 64, "dtype": "fp16", "layer": layer}
            runs = {d: run_design(d, params) for d in ("unfused", "flat", "fusemax")}
            vs_flat.append(runs["flat"]["time_s"] / runs["fusemax"]["time_s"])
            vs_unfused.append(runs["unfused"]["time_s"] / runs["fusemax"]["time_s"])
            energy.append(runs["fusemax"]["energy_j"] / runs["flat"]["energy_j"])
    return float(np.mean(vs_flat)), float(np.mean(vs_unfused)), float(np.mean(energy))


def test_24_point_averages_of_the_paper():
    """reference/fusemax.md: over BERT, TrXL, T5, XLM x 1K..1M, attention speedup vs FLAT 6.7x, vs unfused 10x,
    energy 79 % of FLAT (the issue's bands: +-0.3, +-0.5, +-0.03)."""
    vs_flat, vs_unfused, energy = _averages(layer=False)
    assert vs_flat == pytest.approx(6.7, abs=0.3)
    assert vs_unfused == pytest.approx(10.0, abs=0.5)
    assert energy == pytest.approx(0.79, abs=0.03)


def test_hand_worked_4x4_array():
    """tests/data/spatial: 4x4 2D PEs, 4 1D PEs, 1 GHz, 96 B buffer, M0 = P0 = 4; batch 1, 1 head, seq 8,
    E = F = 2. Cycles per Einsum per epoch (points x cycles per point / PEs; exp = 6 MAC + 1 add = 7 cycles):
    2D: BQK 4*4*2/16 = 2, LM 16/16 = 1, SLN 16*7/16 = 7, SLD 1, SLNV 2*4*4/16 = 2;
    1D: RM 4/4 = 1, PRM 4*7/4 = 7, SPD 1, RD 1, SPNV 2*4/4 = 2, RNV 2, AV 2 (once per query tile).
    Stages: max(BQK+LM, RD+RNV) + RM + max(SLN+SLD, PRM+SPD) + max(SLNV, SPNV) = 3 + 1 + 8 + 2 = 14; the last
    epoch adds AV to the first stage: max(3, 5) + 11 = 16. M1 = 2 epochs, 2 query tiles: 2 * (14 + 16) = 60 cycles.
    Busy: 2D 2 tiles * 2 epochs * 13 = 52; 1D 2 * (2 * 14 + 2) = 60.
    Buffer 48 words: K + V tile 4*(2+2) = 16, row state Q + RM + RD + RNV = 6 words per row; P1 = 2 needs
    16 + 48 = 64 > 48, P1 = 1 needs 40: K, V streamed twice. DRAM bytes 2 * (8*4 + 2*8*4) = 192 (19.2 ns < 60).
    Energy (pJ): per epoch 2D 32*10 + 16*1 + 16*(1 + 61) + 16*1 + 32*10 = 1664, 1D 4*1 + 4*62 + 4*10 + 4*1 +
    8*10 + 8*1 = 384; AV 8 divides * 5 = 40 per tile: 2 * (2 * 2048 + 40) = 8272; DRAM 192 B / 8 B * 8 = 192."""
    design = load_design(str(DATA / "tiny_fusemax.yaml"))
    hw = load_hardware(str(DATA / "tiny_array.yaml"))
    r = predict_design(design, load_workload("attention-1pass"), hw, batch=1, heads=1, seq_q=8, seq_kv=8,
                       head_dim=2)
    assert r["time_s"] == pytest.approx(60e-9)
    assert r["utilization"] == pytest.approx({"pe_2d": 52 / 60, "pe_1d": 1.0})
    assert (r["p1"], r["kv_streams"]) == (1, 2)
    assert r["bytes"]["dram"] == 192
    assert r["energy_j"] == pytest.approx((8272 + 192) * 1e-12)


def test_buffer_sizing_rule_by_hand():
    # FuseMax, 16 MiB = 8 Mi words; K + V tile 256*128 = 32768 words; row state 64 + 1 + 1 + 64 = 130 words.
    # P1 <= (8388608 - 32768) / (256 * 130) = 251.1: at 64K (256 query tiles) P1 = 128, K/V streamed twice;
    # at 16K (64 tiles) everything fits: P1 = 64, streamed once.
    long = run_design("fusemax", {"model": "bert", "seq_q": 65536, "seq_kv": 65536, "batch": 64, "dtype": "fp16"})
    short = run_design("fusemax", {"model": "bert", "seq_q": 16384, "seq_kv": 16384, "batch": 64, "dtype": "fp16"})
    assert (long["p1"], long["kv_streams"]) == (128, 2) and (short["p1"], short["kv_streams"]) == (64, 1)
    per_head = 65536 * 128 * 2                        # Q and O once, K and V twice, 2-byte words
    assert long["bytes"]["dram"] == 64 * 12 * (per_head + 2 * per_head)


def test_spill_rule_by_hand():
    # FLAT, 32 MiB = 16 Mi words: rows of QK on chip R = 2^24 / M (at least 256): 16K -> 1024 rows; two 256x256
    # tiles reserved -> spilled fraction 1 - (2^24 - 2^17) / 2^24 = 1/128. At 256K, 256 rows would spill 3/4 of
    # each block, and sending QK through DRAM moves less: 8 B per score + K, V once per 1024 rows.
    mid = run_design("flat", {"model": "bert", "seq_q": 16384, "seq_kv": 16384, "batch": 64, "dtype": "fp16"})
    assert mid["rows_on_chip"] == 1024 and mid["spilled_fraction"] == pytest.approx(1 / 128)
    assert not mid["qk_in_dram"]
    n = 262144
    long = run_design("flat", {"model": "bert", "seq_q": n, "seq_kv": n, "batch": 64, "dtype": "fp16"})
    assert long["qk_in_dram"]
    words = 4 * n * n + n * 64 + (n // 1024) * n * 128 + n * 64
    assert long["bytes"]["dram"] == 64 * 12 * 2 * words


ONE_PASS_OPS = {   # the paper's Cascade 5, op kinds per point, written out by hand
    "BQK": {"mac": 1}, "LM": {"max": 1}, "RM": {"max": 1}, "SLN": {"add": 1, "exp": 1}, "SLD": {"add": 1},
    "SLNV": {"mac": 1}, "PRM": {"add": 1, "exp": 1}, "SPD": {"mul": 1}, "RD": {"add": 1}, "SPNV": {"mul": 1},
    "RNV": {"add": 1}, "AV": {"div": 1}}
ONE_PASS_SPACE = {  # iteration variables per Einsum (m1 over M1 blocks; AV after the last block)
    "BQK": "m1 m0 p e", "LM": "m1 m0 p", "RM": "m1 p", "SLN": "m1 m0 p", "SLD": "m1 m0 p", "SLNV": "f m1 m0 p",
    "PRM": "m1 p", "SPD": "m1 p", "RD": "m1 p", "SPNV": "f m1 p", "RNV": "f m1 p", "AV": "f p"}


@pytest.mark.parametrize("m0, m1, p, e, f", [(2, 3, 2, 2, 3), (4, 1, 3, 1, 2), (1, 5, 1, 3, 1)])
def test_one_pass_op_counts_by_brute_force(m0, m1, p, e, f):
    sizes = {"m0": m0, "m1": m1, "p": p, "e": e, "f": f}
    expected = {k: 0 for k in ("mac", "mul", "add", "max", "exp", "div")}
    for name, space in ONE_PASS_SPACE.items():
        points = sum(1 for _ in itertools.product(*(range(sizes[v]) for v in space.split())))
        for op, n in ONE_PASS_OPS[name].items():
            expected[op] += n * points
    bound = load_workload("attention-1pass").bind({"seq_q": p, "seq_kv": m0 * m1, "block_kv": m0, "head_dim": e,
                                                    "head_dim_v": f})
    got = {k: 0 for k in expected}
    for i in range(len(bound.cascade.einsums)):
        for op, n in bound.operation_counts(i).items():
            got[op] += n
    assert got == expected


def run(*args):
    return subprocess.run([sys.executable, "-m", "simlib.cli.main", *args], capture_output=True, text=True)


def test_cli_exact_form():
    out = run("predict", "fusemax", "--set", "design=fusemax", "--set", "model=bert", "--set", "seq=65536", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("time_s", "energy_j", "utilization", "speedup"):
        assert key in data
    assert data["bytes"]["dram"] > 0 and set(data["utilization"]) == {"pe_2d", "pe_1d"}
    unfused = run_design("unfused", {"model": "bert", "seq_q": 65536, "seq_kv": 65536, "batch": 64, "dtype": "fp16"})
    assert data["speedup"] == pytest.approx(unfused["time_s"] / data["time_s"])


@pytest.mark.parametrize("design, fragment", [("bad_einsum.yaml", "no Einsum 'XYZ'"),
                                              ("bad_array.yaml", "no PE array 'pe_9d'"),
                                              ("bad_op.yaml", "needs 'div', which no PE of pe_2d supports"),
                                              ("no_fit.yaml", "tile does not fit")])
def test_cli_bad_design(design, fragment):
    out = run("predict", "fusemax", "--hardware", str(DATA / "tiny_array.yaml"), "--set",
              f"design={DATA / design}", "--set", "seq=256")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert fragment in out.stderr


def test_transformer_shapes_follow_the_reference():
    # reference/fusemax.md, Workloads: D, E = F, H, FFN
    shapes = {m: load_model(m) for m in ("bert", "trxl", "t5", "xlm")}
    assert [(s.hidden, s.head_dim, s.heads, s.intermediate) for s in shapes.values()] == [
        (768, 64, 12, 3072), (1024, 64, 16, 4096), (512, 64, 8, 2048), (2048, 128, 16, 8192)]


def test_end_to_end_layer_averages():
    """reference/fusemax.md: one layer (attention + Q/K/V/output projections + FFN, the GEMMs mapped the same way
    on both designs), averaged over the 24 points: speedup vs FLAT 5.3x, vs unfused 7.6x, energy 83 % of FLAT.
    The issue gives no band for these; 5 % of each is used here."""
    vs_flat, vs_unfused, energy = _averages(layer=True)
    assert vs_flat == pytest.approx(5.3, rel=0.05)
    assert vs_unfused == pytest.approx(7.6, rel=0.05)
    assert energy == pytest.approx(0.83, rel=0.05)


def test_gemm_on_the_array_by_hand():
    # BERT 1K, batch 64: the FFN up-projection is 65536 x 3072 x 768: 256 x 12 output tiles of 256x256, 768 cycles
    # each at 940 MHz = 2.51 ms; its bytes 2 * (65536*768 + 768*3072 + 65536*3072) = 508 MB take 1.18 ms.
    from simlib.models.spatial_attention import gemm_on_array
    g = gemm_on_array(load_hardware("fusemax"), load_design("fusemax"), 65536, 3072, 768)
    assert g["time_s"] == pytest.approx(256 * 12 * 768 / 0.94e9)
    assert g["bytes"] == 2 * (65536 * 768 + 768 * 3072 + 65536 * 3072)


def test_pareto_sweep_by_hand():
    from simlib.plots.fusemax_figures import pareto_sweep
    table = pareto_sweep(sides=(64, 256)).set_index("side")
    # 256: the shipped design; area (256*256 + 256) PEs * 5850.2 um^2 + 16 MiB * 5.613 um^2/B (Accelergy, in the YAML)
    shipped = run_design("fusemax", {"model": "bert", "seq_q": 262144, "seq_kv": 262144, "batch": 64, "dtype": "fp16"})
    assert table.loc[256, "time_s"] == pytest.approx(shipped["time_s"])
    assert table.loc[256, "area_mm2"] == pytest.approx(((256 * 256 + 256) * 5850.2 + 16 * 2**20 * 5.613) / 1e6)
    # compute-bound: 16x fewer PEs, about 16x the cycles (the per-epoch stage overheads are the same per tile)
    assert table.loc[64, "time_s"] / table.loc[256, "time_s"] == pytest.approx(16, rel=0.01)
    assert table["pareto"].all()


def test_report_figures_are_written(tmp_path):
    out = run("figure", "fusemax", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    for stem in ("fusemax_speedup", "fusemax_energy_ratio", "fusemax_utilization", "fusemax_einsum_breakdown",
                 "fusemax_pareto"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 10_000
    assert len((tmp_path / "fusemax_designs.csv").read_text().splitlines()) == 1 + 4 * 6 * 3


def test_design_with_an_unknown_field(tmp_path):
    bad = tmp_path / "design.yaml"
    bad.write_text((DATA / "tiny_fusemax.yaml").read_text() + "pipelining: deep\n")
    out = run("predict", "fusemax", "--hardware", str(DATA / "tiny_array.yaml"), "--set", f"design={bad}")
    assert out.returncode == 2 and "pipelining" in out.stderr and "Traceback" not in out.stderr


def test_layer_gemms_of_bert_by_hand():
    """BERT (reference/fusemax.md: D 768, 12 heads of 64, FFN 3072, a two-matrix FFN), batch 64 x 1K = 65536
    tokens: the four projections 65536 x 768 x 768 (12 * 64 = 768 = D) = 38,654,705,664 MACs each, FFN up
    65536 x 3072 x 768 and down 65536 x 768 x 3072 = 154,618,822,656 MACs each; no gate matrix."""
    from simlib.models.spatial_attention import gemm_on_array, layer_gemms
    t = 65536
    assert layer_gemms(load_model("bert"), t) == [
        ("q_proj", t, 768, 768), ("k_proj", t, 768, 768), ("v_proj", t, 768, 768), ("o_proj", t, 768, 768),
        ("ffn_up", t, 3072, 768), ("ffn_down", t, 768, 3072)]
    hw, design = load_hardware("fusemax"), load_design("fusemax")
    macs = [gemm_on_array(hw, design, *shape)["macs"] for _, *shape in layer_gemms(load_model("bert"), t)]
    assert macs == [38_654_705_664] * 4 + [154_618_822_656] * 2


# Qwen3-0.6B (its config.json: hidden 1024, 16 query heads and 8 KV heads of 128, intermediate 3072, SwiGLU MLP),
# batch 1 x 4096 tokens, worked by hand: (name, rows, columns, reduction, MACs, cycles on FuseMax's 256 x 256
# array = ceil(rows/256) * ceil(columns/256) * reduction). Every one is compute-bound: the largest traffic,
# 2 B * (4096*1024 + 1024*3072 + 4096*3072) = 39,845,888 B at 400 * 2^30 B/s, takes 92.8 us against 209 us of
# compute (196,608 cycles at 940 MHz).
QWEN3_06B_GEMMS = [
    ("q_proj", 4096, 2048, 1024, 8_589_934_592, 16 * 8 * 1024),      # 16 heads * 128 = 2048 outputs
    ("k_proj", 4096, 1024, 1024, 4_294_967_296, 16 * 4 * 1024),      # 8 KV heads * 128 = 1024 outputs
    ("v_proj", 4096, 1024, 1024, 4_294_967_296, 16 * 4 * 1024),
    ("o_proj", 4096, 1024, 2048, 8_589_934_592, 16 * 4 * 2048),      # back from 2048 to hidden 1024
    ("ffn_gate", 4096, 3072, 1024, 12_884_901_888, 16 * 12 * 1024),
    ("ffn_up", 4096, 3072, 1024, 12_884_901_888, 16 * 12 * 1024),
    ("ffn_down", 4096, 1024, 3072, 12_884_901_888, 16 * 4 * 3072)]


def test_layer_gemms_of_qwen3_by_hand():
    from simlib.models.spatial_attention import gemm_on_array, layer_gemms
    gemms = layer_gemms(load_model("qwen3-0.6b"), 4096)
    assert gemms == [row[:4] for row in QWEN3_06B_GEMMS]
    hw, design = load_hardware("fusemax"), load_design("fusemax")
    for name, rows, cols, red, macs, cycles in QWEN3_06B_GEMMS:
        g = gemm_on_array(hw, design, rows, cols, red)
        assert g["macs"] == macs and g["time_s"] == pytest.approx(cycles / 0.94e9, rel=1e-12), name


def test_qwen3_layer_is_attention_plus_the_hand_listed_gemms():
    """``predict fusemax --set layer=true --set model=qwen3-0.6b``: the time is attention (16 query heads of 128,
    each streaming its K and V) plus the seven GEMMs above: 983,040 cycles at 940 MHz = 1.0458 ms."""
    out = run("predict", "fusemax", "--set", "model=qwen3-0.6b", "--set", "layer=true", "--set", "seq=4096",
              "--set", "batch=1", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    cycles = sum(row[5] for row in QWEN3_06B_GEMMS)
    assert cycles == 983_040
    attention = predict_design(load_design("fusemax"), load_workload("attention-1pass"), load_hardware("fusemax"),
                               batch=1, heads=16, seq_q=4096, seq_kv=4096, head_dim=128)
    assert data["attention_time_s"] == pytest.approx(attention["time_s"], rel=1e-12)
    assert data["time_s"] == pytest.approx(attention["time_s"] + cycles / 0.94e9, rel=1e-12)
    assert list(data["gemms"]) == [row[0] for row in QWEN3_06B_GEMMS]


def test_layer_of_a_mixture_of_experts_is_refused():
    config = Path(__file__).parent.parent / "data" / "tts" / "moe-config.json"
    out = run("predict", "fusemax", "--set", f"model={config}", "--set", "layer=true", "--set", "seq=1024")
    assert out.returncode == 2 and "Traceback" not in out.stderr and "dense MLP" in out.stderr


def _rw():
    return load_hardware(str(DATA / "tiny_array_rw.yaml"))


def test_energy_prices_reads_and_writes_apart_by_hand():
    """The 4x4 example above on tiny_array_rw (DRAM 8 pJ per read, 12 per write; buffer rows 3 per read, 5 per
    write; 2D registers 1 per read, 2 per write; 64-bit accesses) with 2 register reads and 1 write per 2D MAC.
    DRAM words read: Q 8*2 = 16, K and V twice 2*8*(2+2) = 64: 160 B = 20 accesses; written: AV 8*2 = 16
    words, 32 B = 4 accesses. DRAM 20*8 + 4*12 = 208; buffer fills 20*5 + drains 4*3 = 112; registers: 2D MACs
    BQK 32 + SLNV 32 per tile epoch, 2 tiles x 2 epochs = 256, each 2*1 + 1*2 = 4 pJ: 1024. Compute 8272 as
    above: 8272 + 208 + 112 + 1024 = 9616 pJ. (Averaging reads and writes would give 8272 + 24*10 + 24*4 +
    256*3*1.5 = 9760.)"""
    r = predict_design(load_design(str(DATA / "tiny_fusemax_rw.yaml")), load_workload("attention-1pass"), _rw(),
                       batch=1, heads=1, seq_q=8, seq_kv=8, head_dim=2)
    assert (r["bytes"]["dram_read"], r["bytes"]["dram_write"], r["bytes"]["dram"]) == (160, 32, 192)
    assert r["energy_j"] == pytest.approx(9616e-12, rel=1e-12)


def test_a_level_without_a_write_energy_is_charged_its_read_energy_for_writes():
    """tiny_array_rw without DRAM's write energy: the 4 writes cost 8 pJ each like the reads (not 0), DRAM
    24*8 = 192 instead of 208: 9616 - 16 = 9600 pJ."""
    hw = _rw()
    dram = hw.memory[0].model_copy(update={"energy_pj_per_write": None})
    hw = hw.model_copy(update={"memory": [dram, *hw.memory[1:]]})
    r = predict_design(load_design(str(DATA / "tiny_fusemax_rw.yaml")), load_workload("attention-1pass"), hw,
                       batch=1, heads=1, seq_q=8, seq_kv=8, head_dim=2)
    assert r["energy_j"] == pytest.approx(9600e-12, rel=1e-12)


def test_unfused_phases_read_and_write_by_hand():
    """The 3-pass cascade in three phases on tiny_array_rw, seq 8, E = F = 2, fp16. Read: Q 16 + K 16 (QK),
    QK 64 (softmax), A 64 + V 16 (AV) = 176 words = 352 B (44 accesses); written: QK 64, A 64, AV 16 = 144
    words = 288 B (36). Traffic: DRAM 44*8 + 36*12 = 784, buffer 44*5 + 36*3 = 328. Compute: QK and AV 128 MACs
    each at 10 = 2560, GM 64 max and SD 64 adds = 128, SN 64 * (exp as 6 MACs + 1 add = 61, plus a subtract 1)
    = 3968, A 64 divides at 5 = 320: 6976. Total 6976 + 784 + 328 = 8088 pJ; no register counts given."""
    r = predict_design(load_design(str(DATA / "tiny_unfused.yaml")), load_workload("attention-3pass"), _rw(),
                       batch=1, heads=1, seq_q=8, seq_kv=8, head_dim=2)
    assert (r["bytes"]["dram_read"], r["bytes"]["dram_write"]) == (352, 288)
    assert r["energy_j"] == pytest.approx(8088e-12, rel=1e-12)


def test_gemm_energy_reads_and_writes_by_hand():
    """A 4 x 4 x 2 GEMM on tiny_array_rw: 32 MACs at 10 = 320; operands 2*(4*2 + 2*4) = 32 B read (4 accesses:
    DRAM 32, buffer fills 20), product 32 B written (4: DRAM 48, drains 12); one register read per MAC
    (GEMM_RF_ACCESSES_PER_MAC) at 1 pJ: 32. Total 464 pJ."""
    from simlib.models.spatial_attention import gemm_on_array
    g = gemm_on_array(_rw(), load_design(str(DATA / "tiny_fusemax_rw.yaml")), 4, 4, 2)
    assert g["energy_j"] == pytest.approx(464e-12, rel=1e-12)


def test_flat_traffic_splits_into_reads_and_writes_by_hand():
    """FLAT's spilled scores cost 4 reads (GM, SN, SD, A read QK or SN) and 3 writes (QK, SN, A) each; at 16K
    (1/128 spilled, test_spill_rule_by_hand) reads are Q per 256-key block, K and V per 256-row block and the
    spill's reads, writes AV and the spill's writes. At 256K QK and A go through DRAM: each written once, read
    once."""
    from simlib.models.spatial_attention import _spill_accesses, softmax_array
    design = load_design("flat")
    workload = load_workload("attention-3pass")
    placed = {name: array for array, names in design.binding.items() for name in names}
    assert softmax_array(load_hardware("flat"), design) == "pe_1d"
    assert _spill_accesses(workload, placed, "pe_1d") == (4, 3)
    n, bh, word = 16384, 64 * 12, 2
    mid = run_design("flat", {"model": "bert", "seq_q": n, "seq_kv": n, "batch": 64, "dtype": "fp16"})
    assert mid["bytes"]["dram_read"] == pytest.approx(bh * word * ((n // 256) * n * 64 + (n // 256) * n * 128
                                                                   + 4 * n * n / 128), rel=1e-12)
    assert mid["bytes"]["dram_write"] == pytest.approx(bh * word * (n * 64 + 3 * n * n / 128), rel=1e-12)
    n = 262144
    long = run_design("flat", {"model": "bert", "seq_q": n, "seq_kv": n, "batch": 64, "dtype": "fp16"})
    assert long["bytes"]["dram_read"] == bh * word * (2 * n * n + n * 64 + (n // 1024) * n * 128)
    assert long["bytes"]["dram_write"] == bh * word * (2 * n * n + n * 64)


def test_a_register_count_that_cannot_be_priced_is_refused(tmp_path):
    """tiny_array_rw's registers cost 1 pJ to read and 2 to write: a bare count per MAC cannot be priced."""
    from simlib.errors import SimlibInputError
    design = tmp_path / "design.yaml"
    design.write_text((DATA / "tiny_fusemax_rw.yaml").read_text().replace("{reads: 2, writes: 1}", "3"))
    with pytest.raises(SimlibInputError) as caught:
        predict_design(load_design(str(design)), load_workload("attention-1pass"), _rw(), batch=1, heads=1,
                       seq_q=8, seq_kv=8, head_dim=2)
    assert caught.value.source == str(design) and caught.value.field == "rf_accesses_per_mac.pe_2d"
    assert "reads and writes per MAC" in caught.value.message


@pytest.mark.parametrize("config, field", [
    ({"model_type": "qwen3_moe", "num_experts": 8}, "num_experts"),
    ({"model_type": "mixtral", "num_local_experts": 8}, "num_local_experts"),
    ({"model_type": "deepseek_v3", "n_routed_experts": 8, "moe_intermediate_size": 32}, "n_routed_experts")])
def test_moe_refusal_names_the_field_the_config_has(tmp_path, config, field):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config, "hidden_size": 64, "num_attention_heads": 2, "num_hidden_layers": 1,
                                "intermediate_size": 128, "vocab_size": 10}))
    out = run("predict", "fusemax", "--set", f"model={path}", "--set", "layer=true", "--set", "seq=1024")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}: {field}: a whole layer models a dense MLP" in out.stderr, out.stderr


def test_moe_refusal_names_experts_in_a_model_yaml(tmp_path):
    path = tmp_path / "moe.yaml"
    path.write_text("name: moe\nhidden: 64\nheads: 2\nhead_dim: 32\nintermediate: 128\nexperts: 8\n")
    out = run("predict", "fusemax", "--set", f"model={path}", "--set", "layer=true", "--set", "seq=1024")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}: experts: a whole layer models a dense MLP" in out.stderr, out.stderr


@pytest.mark.parametrize("change, field, fragment", [
    ({"num_attention_heads": 0}, "num_attention_heads", "expected a positive integer, got 0"),
    ({"num_attention_heads": "2"}, "num_attention_heads", 'expected a positive integer, got "2"'),
    ({"hidden_size": None}, "hidden_size", "expected a positive integer, got null")])
def test_layer_of_a_config_with_bad_counts_exits_2_naming_the_files_key(tmp_path, change, field, fragment):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 2,
                                "num_hidden_layers": 1, "intermediate_size": 128, "vocab_size": 10, **change}))
    out = run("predict", "fusemax", "--set", f"model={path}", "--set", "layer=true", "--set", "seq=1024")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}: {field}: " in out.stderr and fragment in out.stderr, out.stderr


@pytest.mark.parametrize("accesses, field, fragment", [
    ("{reads: 5}", "rf_accesses_per_mac.pe_2d.writes", "required field is missing"),
    ("{reads: -1, writes: 0}", "rf_accesses_per_mac.pe_2d.reads", "greater than or equal to 0 (got -1)"),
    ("{reads: 2, writes: 1, updates: 1}", "rf_accesses_per_mac.pe_2d.updates",
     "unknown field (expected one of: reads, writes)"),
    ("-2", "rf_accesses_per_mac.pe_2d", "register-file accesses per MAC must be >= 0"),
    ("[2, 1]", "rf_accesses_per_mac.pe_2d", "expected a number of register-file accesses per MAC or {reads: R, "
                                            "writes: W} (got [2, 1])")])
def test_bad_register_accesses_name_their_own_path(tmp_path, accesses, field, fragment):
    design = tmp_path / "design.yaml"
    design.write_text((DATA / "tiny_fusemax_rw.yaml").read_text().replace("{reads: 2, writes: 1}", accesses))
    out = run("predict", "fusemax", "--hardware", str(DATA / "tiny_array_rw.yaml"), "--set", f"design={design}",
              "--set", "seq=8")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{design}: {field}: " in out.stderr and fragment in out.stderr, out.stderr
    assert "valid number" not in out.stderr and "RegisterAccesses" not in out.stderr


@pytest.mark.parametrize("settings, field", [(["seq_q=0", "seq_kv=1024"], "seq_q"),
                                             (["seq_q=1024", "seq_kv=0"], "seq_kv")])
def test_a_zero_sequence_length_is_refused_not_replaced_by_seq(settings, field):
    """seq_q=0 is a given value, not a missing one: it exits 2 naming it instead of running the default seq."""
    out = run("predict", "fusemax", *[a for s in settings for a in ("--set", s)])
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"--set: {field}: expected a positive integer, got 0" in out.stderr, out.stderr


# --- review fixes: padded tiles, K/V streams, array order, PE arrays, decomposition, ops_per_cycle, paths ---

def _tiny(design="tiny_fusemax.yaml", hardware="tiny_array.yaml", cascade="attention-1pass", seq=8, **kw):
    return predict_design(load_design(str(DATA / design)), load_workload(cascade), load_hardware(str(DATA / hardware)),
                          batch=1, heads=1, seq_q=kw.pop("seq_q", seq), seq_kv=kw.pop("seq_kv", seq), head_dim=2,
                          **kw)


def test_padded_tiles_take_time_but_do_no_work():
    """The 4x4 example of test_hand_worked_4x4_array at seq 6 (6 = one full tile of 4 + one partial tile of 2 on
    both P and M), E = F = 2. Time keeps whole tiles: 2 query tiles x 2 epochs, 60 cycles as at seq 8.
    Work counts only the 6 x 6 real scores. Per real (m, p): 2D PE-cycles BQK 2 + LM 1 + SLN 7 + SLD 1 + SLNV 2 =
    13, energy 20 + 1 + 62 + 1 + 20 = 104 pJ; per real (M block, p), 2 blocks x 6 rows = 12: 1D PE-cycles
    RM 1 + PRM 7 + SPD 1 + RD 1 + SPNV 2 + RNV 2 = 14, energy 1 + 62 + 10 + 1 + 20 + 2 = 96 pJ; AV 2 x 6 = 12
    divides (1 cycle, 5 pJ each).
    2D: 36 * 13 = 468 PE-cycles / 16 PEs = 29.25 cycles; 1D: (12 * 14 + 12) / 4 = 45 cycles.
    MACs on the 2D array (closed form): BQK P*M*E + SLNV F*M*P = 72 + 72 = 144 (padded tiles would give 256).
    DRAM: Q 12 + K, V twice (P1 = 1, test_hand_worked_4x4_array) 2 * 6 * 4 = 48 + AV 12 = 72 words = 144 B,
    18 accesses at 8 pJ. Energy 36 * 104 + 12 * 96 + 12 * 5 + 144 = 5100 pJ."""
    r = _tiny(seq=6)
    assert r["time_s"] == pytest.approx(60e-9)
    assert r["utilization"] == pytest.approx({"pe_2d": 29.25 / 60, "pe_1d": 45 / 60})
    assert sum(e["macs"] for e in r["per_einsum"] if e["array"] == "pe_2d") == 144
    assert r["bytes"]["dram"] == 144
    assert r["energy_j"] == pytest.approx(5100e-12, rel=1e-12)


def test_one_more_token_than_a_tile_is_not_four_tiles_of_work():
    """FuseMax (256 x 256 tiles), BERT, batch 1 (12 heads): at seq 257 the MACs of BQK and SLNV are
    12 * (E + F) * 257^2 (closed form), not the 4 full tiles' 12 * 128 * 512^2, and the time of 4 tile-epochs
    with 257^2/256^2 of the work keeps utilization below that at 256."""
    params = {"model": "bert", "batch": 1, "dtype": "fp16"}
    at = {n: run_design("fusemax", {**params, "seq_q": n, "seq_kv": n}) for n in (256, 257)}
    for n, r in at.items():
        assert sum(e["macs"] for e in r["per_einsum"] if e["array"] == "pe_2d") == 12 * 128 * n * n
    assert at[257]["utilization"]["pe_2d"] < at[256]["utilization"]["pe_2d"]
    assert at[257]["energy_j"] / at[256]["energy_j"] == pytest.approx(257 ** 2 / 256 ** 2, rel=0.01)


@pytest.mark.parametrize("p_tiles, p1_max, expected", [
    (256, 251, (128, 2)),     # power of two: largest factor <= 251 is 128 (the artifact's rule), 2 streams
    (4096, 251, (128, 32)),   # 1M tokens: factor 128, 32 streams (the published traffic)
    (64, 251, (64, 1)),       # everything fits: one stream
    (257, 251, (128, 3)),     # prime: factor 1 -> 257 streams; groups of 128 (last partial) -> ceil(257/128) = 3
    (384, 251, (192, 2)),     # 3 * 128: factor 192 -> 2 streams beats groups of 128 -> 3
    (12, 251, (12, 1))])      # fewer tiles than fit
def test_query_tile_groups_by_hand(p_tiles, p1_max, expected):
    from simlib.models.spatial_attention import query_tile_groups
    assert query_tile_groups(p_tiles, p1_max) == expected


def test_a_prime_tile_count_does_not_stream_kv_per_tile():
    """FuseMax, BERT, seq 65792 = 257 tiles of 256 (prime): P1max 251 (test_buffer_sizing_rule_by_hand), groups
    of 128, K and V streamed 3 times (not 257). Bytes: 768 heads x 2 B x seq x (Q 64 + AV 64 + 3 x (K, V) 128)."""
    n = 65792
    r = run_design("fusemax", {"model": "bert", "seq_q": n, "seq_kv": n, "batch": 64, "dtype": "fp16"})
    assert (r["p1"], r["kv_streams"]) == (128, 3)
    assert r["bytes"]["dram"] == 768 * 2 * n * (64 + 64 + 3 * 128)


@pytest.mark.parametrize("shipped, swapped", [("fusemax", "fusemax_swapped.yaml"), ("flat", "flat_swapped.yaml")])
@pytest.mark.parametrize("layer", [False, True])
def test_the_order_of_arrays_in_a_design_changes_nothing(shipped, swapped, layer):
    """The shipped designs and copies listing pe_1d before pe_2d give the same prediction (FLAT's softmax array
    and the GEMMs' 2D array are chosen by structure)."""
    params = {"model": "bert", "seq_q": 16384, "seq_kv": 16384, "batch": 64, "dtype": "fp16", "layer": layer}
    a, b = run_design(shipped, params), run_design(str(DATA / swapped), params)
    for key in ("time_s", "energy_j"):
        assert b[key] == pytest.approx(a[key], rel=1e-12), key
    assert b["bytes"] == pytest.approx(a["bytes"], rel=1e-12)
    assert b["utilization"] == pytest.approx(a["utilization"], rel=1e-12)
    assert list(b["utilization"]) == list(a["utilization"])


def test_gemm_runs_on_the_2d_array_whatever_the_order():
    """test_gemm_energy_reads_and_writes_by_hand's 4 x 4 x 2 GEMM (464 pJ) with the design's arrays listed the
    other way round: still on pe_2d, whose register reads (32 at 1 pJ) are charged."""
    from simlib.models.spatial_attention import gemm_on_array
    g = gemm_on_array(_rw(), load_design(str(DATA / "tiny_fusemax_rw_swapped.yaml")), 4, 4, 2)
    assert g["energy_j"] == pytest.approx(464e-12, rel=1e-12)


def test_a_compute_unit_without_a_mesh_is_refused():
    hw = DATA / "no_mesh.yaml"
    out = run("predict", "fusemax", "--hardware", str(hw), "--set", f"design={DATA / 'tiny_fusemax.yaml'}",
              "--set", "seq=8")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{hw}: compute.pe_2d: a spatial design needs a PE array: expected a mesh" in out.stderr, out.stderr


def test_nested_decomposition_by_hand():
    """nested_decomposition.yaml: exp = 6 MACs + 1 div, div = 4 MACs. On the 2D array (no divider) an exp is
    6 + 4 = 10 MACs: 10 cycles, 100 pJ; on the 1D array (divider) 6 MACs + 1 div: 7 cycles, 65 pJ.
    Per epoch (cycles, as in test_hand_worked_4x4_array): 2D BQK 2, LM 1, SLN 16 * 10 / 16 = 10, SLD 1, SLNV 2;
    1D RM 1, PRM 7, SPD 1, RD 1, SPNV 2, RNV 2, AV 2. Stages max(3, 3) + 1 + max(11, 8) + max(2, 2) = 17; the
    last epoch max(3, 5) + 14 = 19: 2 tiles * (17 + 19) = 72 cycles. Busy: 2D 4 * 16 = 64, 1D 2 * (2 * 14 + 2) =
    60. Energy per tile-epoch: 2D 320 + 16 + 16 * (1 + 100) + 16 + 320 = 2288, 1D 4 + 4 * (1 + 65) + 40 + 4 + 80
    + 8 = 400; AV 40 per tile: 2 * (2 * 2688 + 40) = 10832, DRAM 192: 11024 pJ."""
    r = _tiny(hardware="nested_decomposition.yaml")
    assert r["time_s"] == pytest.approx(72e-9)
    assert r["utilization"] == pytest.approx({"pe_2d": 64 / 72, "pe_1d": 60 / 72})
    assert r["energy_j"] == pytest.approx(11024e-12, rel=1e-12)


def test_an_operation_without_an_energy_is_refused(tmp_path):
    """tiny_array without the 1D divide's energy: AV's divides are refused, not priced 0."""
    hw = tmp_path / "hw.yaml"
    hw.write_text((DATA / "tiny_array.yaml").read_text().replace("max: 1, div: 5}", "max: 1}"))
    out = run("predict", "fusemax", "--hardware", str(hw), "--set", f"design={DATA / 'tiny_fusemax.yaml'}",
              "--set", "seq=8")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{hw}: compute.pe_1d.energy_pj_per_op: no energy for 'div'" in out.stderr, out.stderr


def test_ops_per_cycle_divides_the_cycles_by_hand():
    """tiny_array_1d_x2: 1D PEs do 2 actions per cycle, so the 1D cycles of test_hand_worked_4x4_array halve:
    RM .5, PRM 3.5, SPD .5, RD .5, SPNV 1, RNV 1, AV 1. Stages max(3, 1.5) + .5 + max(8, 4) + max(2, 1) = 13.5;
    the last epoch max(3, 2.5) + 10.5 = 13.5: 2 tiles * 27 = 54 cycles. Busy 2D 52, 1D 2 * (2 * 7 + 1) = 30.
    Energy is per action, unchanged: 8272 + 192 pJ."""
    r = _tiny(hardware="tiny_array_1d_x2.yaml")
    assert r["time_s"] == pytest.approx(54e-9)
    assert r["utilization"] == pytest.approx({"pe_2d": 52 / 54, "pe_1d": 30 / 54})
    assert r["energy_j"] == pytest.approx(8464e-12, rel=1e-12)


def test_ops_per_cycle_divides_a_gemms_cycles():
    """test_gemm_on_the_array_by_hand's FFN up-projection on a 2D array of 2 MACs per PE per cycle: 256 x 12
    tiles x 768 / 2 cycles = 1.255 ms at 940 MHz, still above its 1.18 ms of traffic."""
    from simlib.models.spatial_attention import gemm_on_array
    hw = load_hardware("fusemax")
    hw = hw.model_copy(update={"compute": {**hw.compute,
                                           "pe_2d": hw.compute["pe_2d"].model_copy(update={"ops_per_cycle": 2})}})
    g = gemm_on_array(hw, load_design("fusemax"), 65536, 3072, 768)
    assert g["time_s"] == pytest.approx(256 * 12 * 768 / 2 / 0.94e9)


def test_a_design_finds_its_hardware_next_to_it(tmp_path, monkeypatch):
    """hardware: parts/tiny.yaml is read next to the design file, from any current directory."""
    from simlib.models.spatial_design import design_hardware
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "tiny.yaml").write_text((DATA / "tiny_array.yaml").read_text())
    design = tmp_path / "design.yaml"
    design.write_text((DATA / "tiny_fusemax.yaml").read_text().replace("hardware: tiny_array.yaml",
                                                                       "hardware: parts/tiny.yaml"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    hw = design_hardware(load_design(str(design)))
    assert hw.name == "tiny_array" and hw.source_file == str(tmp_path / "parts" / "tiny.yaml")
    assert design_hardware(load_design("fusemax")).name == "fusemax"        # catalog names still work


@pytest.mark.parametrize("field, old, new, fragment", [
    ("hardware", "hardware: tiny_array.yaml", "hardware: missing.yaml", "hardware file 'missing.yaml' not found"),
    ("hardware", "hardware: tiny_array.yaml", "hardware: nosuch", "unknown hardware 'nosuch'"),
    ("cascade", "cascade: attention-1pass", "cascade: nosuch.yaml", "workload file 'nosuch.yaml' not found")])
def test_a_design_naming_a_missing_file_names_the_design_and_the_field(tmp_path, field, old, new, fragment):
    design = tmp_path / "design.yaml"
    text = (DATA / "tiny_fusemax.yaml").read_text()
    if field == "cascade":                              # its hardware, found where the design's copy is not
        text = text.replace("hardware: tiny_array.yaml", f"hardware: {DATA / 'tiny_array.yaml'}")
    design.write_text(text.replace(old, new))
    out = run("predict", "fusemax", "--set", f"design={design}", "--set", "seq=8")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{design}: {field}: {fragment}" in out.stderr, out.stderr


def test_phases_on_a_blocked_cascade_take_block_kv_from_the_tile():
    """tiny_phases_1pass: the 1-pass cascade in one phase on the 4x4 array, seq 8, block_kv = M0 = 4. Cycles at
    full size: 2D BQK 128/16 = 8, LM 4, SLN 64 * 7 / 16 = 28, SLD 4, SLNV 8: 52; 1D (M1 = 2 blocks x 8 rows = 16)
    RM 4, PRM 28, SPD 4, RD 4, SPNV 8, RNV 8, AV 16/4 = 4: 60. Traffic: Q, K, V read (16 words each = 96 B), AV
    written (32 B): 12.8 ns < 60. Energy: the same points as the pipelined schedule, 8272 pJ, + DRAM 16
    accesses x 8 = 128: 8400 pJ."""
    r = _tiny(design="tiny_phases_1pass.yaml")
    assert r["time_s"] == pytest.approx(60e-9)
    assert (r["bytes"]["dram_read"], r["bytes"]["dram_write"]) == (96, 32)
    assert r["energy_j"] == pytest.approx(8400e-12, rel=1e-12)


def test_phases_on_a_blocked_cascade_need_seq_kv_a_multiple_of_m0():
    from simlib.errors import SimlibInputError
    with pytest.raises(SimlibInputError) as caught:
        _tiny(design="tiny_phases_1pass.yaml", seq=6)
    assert caught.value.source == str(DATA / "tiny_phases_1pass.yaml") and caught.value.field == "tile.M0"


@pytest.mark.parametrize("accesses, array, fragment", [
    ("{pe_9d: 2}", "pe_9d", "no PE array 'pe_9d'"),
    ("{pe_1d: {reads: 1, writes: 0}}", "pe_1d", "has no register file for pe_1d")])
def test_register_accesses_of_an_array_without_registers_are_refused(tmp_path, accesses, array, fragment):
    design = tmp_path / "design.yaml"
    design.write_text((DATA / "tiny_fusemax_rw.yaml").read_text().replace("{pe_2d: {reads: 2, writes: 1}}",
                                                                          accesses))
    out = run("predict", "fusemax", "--hardware", str(DATA / "tiny_array_rw.yaml"), "--set", f"design={design}",
              "--set", "seq=8")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{design}: rf_accesses_per_mac.{array}: " in out.stderr and fragment in out.stderr, out.stderr


def test_validate_fusemax_refuses_hardware():
    out = run("validate", "fusemax", "--hardware", "h100", "--no-report")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--hardware: the fusemax rows run each design on its own hardware" in out.stderr, out.stderr


def test_validate_fusemax_out_writes_the_printed_rows(tmp_path):
    """--out holds the same rows as --json (latency, energy, utilization and traffic: 12 x 11)."""
    import pandas as pd
    csv = tmp_path / "rows.csv"
    out = run("validate", "fusemax", "--out", str(csv), "--no-report", "--json")
    assert out.returncode == 0, out.stderr
    printed = pd.DataFrame(json.loads(out.stdout))
    written = pd.read_csv(csv)
    assert len(written) == len(printed) == 12 * 11
    assert list(written["quantity"]) == list(printed["quantity"])
    assert written["predicted"].to_numpy() == pytest.approx(printed["predicted"].to_numpy(), rel=1e-12)


def test_a_bad_seq_is_reported_as_seq():
    out = run("predict", "fusemax", "--set", "seq=-5")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--set: seq: expected a positive integer, got -5" in out.stderr, out.stderr


@pytest.mark.parametrize("setting, field, limit", [
    ("batch=1e20", "batch", 2**31 - 1), ("seq=1e20", "seq", 2**26), ("seq_q=1e20", "seq_q", 2**26),
    ("seq_kv=67108865", "seq_kv", 2**26)])
def test_fusemax_sizes_are_capped_like_predict_attention(setting, field, limit):
    """batch at attention's MAX_COUNT, seq / seq_q / seq_kv at its MAX_SEQ: batch=1e20 used to be accepted."""
    out = run("predict", "fusemax", "--set", setting)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"--set: {field}: expected at most {limit}" in out.stderr, out.stderr


def test_fusemax_model_heads_are_capped(tmp_path):
    """heads come from the model, not --set: a model file with more than MAX_COUNT heads is refused naming it."""
    path = tmp_path / "huge.yaml"
    path.write_text(f"name: huge\nhidden: 64\nheads: {2**40}\nhead_dim: 32\nintermediate: 128\n")
    out = run("predict", "fusemax", "--set", f"model={path}", "--set", "seq=1024")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}: heads: expected at most {2**31 - 1}" in out.stderr, out.stderr
