"""Traces: the shipped ones keep their recorded accuracy; a live calibrate -> measure -> validate cycle on this
machine's CPU (small shapes, seconds) checks the pipeline's arithmetic; bad traces and grids exit 2; partial
measurements survive a failing shape and Ctrl-C."""
import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from simlib.api import predict
from simlib.measure.grid import expand, load_grid
from simlib.hardware.catalog import load_hardware_beside
from simlib.validation.traces import (TRACE_DIR, arithmetic_intensity, compute_bound_half, mape_by_group,
                                     read_trace, validate_trace)

DATA = Path(__file__).parent.parent / "data" / "traces"
RECORDED = yaml.safe_load((TRACE_DIR / "accuracy.yaml").read_text())


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "simlib.cli.main", *args], capture_output=True, text=True, **kw)


@pytest.mark.parametrize("trace", sorted(RECORDED))
def test_shipped_trace_mape_does_not_get_worse(trace):
    table = validate_trace(TRACE_DIR / trace)
    mape = float(np.mean(np.abs(table["error"])))
    assert mape <= RECORDED[trace] + 5e-5, f"{trace}: MAPE {mape:.4f} > recorded {RECORDED[trace]}"


def test_arithmetic_intensity_and_the_compute_bound_half_by_hand():
    import pandas as pd
    table = pd.DataFrame({
        "op": ["gemm", "gemm", "sdpa", "sdpa", "sdpa", "attention_unfused", "attention_unfused"],
        "backend": ["torch", "torch", "math", "math", "math", "torch", "torch"],
        "dtype": ["fp32", "fp32", "fp32", "fp32", "fp32", "bf16", "bf16"],
        "causal": [None, None, False, False, False, False, True],
        "m": [128, 1024, None, None, None, None, None], "n": [128, 1024, None, None, None, None, None],
        "k": [128, 1024, None, None, None, None, None],
        "batch": [None, None, 1, 2, 1, 1, 1], "heads": [None, None, 4, 4, 8, 1, 1],
        "seq_q": [None, None, 256, 2048, 1, 512, 768], "seq_kv": [None, None, 256, 2048, 4096, 512, 768],
        "head_dim": [None, None, 64, 64, 64, 128, 128]})
    intensity = arithmetic_intensity(table)
    # GEMM n^3: 2n^3 FLOPs over 3n^2 fp32 elements = n / 6 FLOP/B; attention seq n, n: 4n^2 d / (4nd elements
    # x bytes) = n / bytes FLOP/B per (batch, head), half that when causal; decode (seq_q = 1) has none
    assert intensity[:2] == pytest.approx([128 / 6, 1024 / 6])
    assert intensity[2:4] == pytest.approx([256 / 4, 2048 / 4])
    assert np.isnan(intensity[4]) and intensity[5:] == pytest.approx([512 / 2, 768 / 2 / 2])
    # per (op, backend), rows at or above the median intensity: the causal 768 ranks below the 512
    assert list(compute_bound_half(table)) == [False, True, False, True, False, True, False]


def test_cpu_trace_compute_bound_half_within_30_percent():
    """The shipped CPU trace as last validated: all 52 of its compute-bound rows within 30 % (MAPE 9.7 %). A change
    that loses rows fails here."""
    table = validate_trace(TRACE_DIR / "cpu" / "amd-epyc-2c-fp32.csv")
    heavy = compute_bound_half(table)
    # seq 1024 and 2048 of each SDPA backend and of the unfused attention (16 rows each), GEMMs 768 to 2048
    assert heavy.sum() == 3 * 16 + 4
    errors = table.loc[heavy, "error"].abs()
    assert (errors <= 0.30).all() and errors.mean() <= 0.097


def test_unfused_rows_are_predicted_with_the_kernels_measure_runs(tmp_path):
    # simlib measure's attention_unfused runs matmul, a scale multiply, softmax and matmul. On
    # tests/data/tiny_cpu.yaml (10 GB/s, outputs below its 1 MiB threshold, arithmetic at 1000 TFLOP/s) the time
    # is the bytes of those kernels at 10 GB/s: for N = 128, d = 32, fp32 (N^2 = 64 KiB scores), QK 2 N d in,
    # N^2 out; scale N^2 in and out; the row softmax (one kernel: max, exp, sum, divide over a row in cache)
    # N^2 in and out; PV N^2 + 2 N d.
    import shutil
    shutil.copy(DATA.parent / "tiny_cpu.yaml", tmp_path / "tiny_cpu.yaml")
    trace = tmp_path / "unfused.csv"
    trace.write_text("# hardware: tiny_cpu.yaml\nop,backend,dtype,batch,heads,seq_q,seq_kv,head_dim,measured_s\n"
                     "attention_unfused,torch,fp32,1,1,128,128,32,0.001\n")
    n, d = 128, 32
    nd, n2 = 4 * n * d, 4 * n * n
    expected_bytes = (2 * nd + n2) + 2 * n2 + 2 * n2 + (n2 + 2 * nd)
    predicted = validate_trace(trace)["predicted_s"].iloc[0]
    assert predicted == pytest.approx(expected_bytes / 1e10, rel=1e-3)   # arithmetic: under 1e-4 of it


def test_flash_decode_rows_split_the_kv_as_flashattention_2_does(tmp_path):
    # H200 (132 SMs), head dim 128, 32 heads: batch 1 gives 32 of 264 slots, so PyTorch's flash backend splits the
    # 32K keys' 256 blocks of 128 (FlashAttention-2's heuristic: 7 splits, the smallest within 85 % of the best
    # wave efficiency, 224 / 264); batch 8 gives 256 >= 0.8 x 264 slots, one split, the unsplit kernel. The
    # memory-efficient backend never splits.
    from simlib.hardware import load_hardware
    from simlib.models.attention_cli import predict_attention
    trace = tmp_path / "decode.csv"
    trace.write_text("# hardware: h200\nop,backend,dtype,batch,heads,seq_q,seq_kv,head_dim,causal,measured_s\n"
                     "sdpa,flash,bf16,1,32,1,32768,128,false,0.001\nsdpa,flash,bf16,8,32,1,32768,128,false,0.001\n"
                     "sdpa,efficient,bf16,1,32,1,32768,128,false,0.001\n")
    table = validate_trace(trace)
    h200 = load_hardware("h200")
    shape = dict(heads=32, seq_q=1, seq_kv=32768, head_dim=128, dtype="bf16")
    split = predict_attention(h200, dict(shape, batch=1, kernel="flashdecoding"))
    assert split["splits"] == 7
    unsplit = [predict_attention(h200, dict(shape, batch=b, kernel="flash2"))["time_s"] for b in (8, 1)]
    assert list(table["predicted_s"]) == pytest.approx([split["time_s"], *unsplit], rel=1e-12)
    assert split["time_s"] < unsplit[1] / 4          # the split uses all SMs, the unsplit kernel 32 of them


def test_every_shipped_trace_is_recorded_and_names_its_hardware():
    traces = {str(p.relative_to(TRACE_DIR)) for p in TRACE_DIR.rglob("*.csv")}
    assert traces == set(RECORDED)
    for name in traces:
        meta, table = read_trace(TRACE_DIR / name)
        assert "hardware" in meta or "hardware" in table.columns


def test_grid_expansion_counts():
    grid = load_grid(DATA / "tiny_grid.yaml")
    cases = expand(grid)
    # 2 backends x 1 shape of SDPA, 1 unfused, 2 GEMMs
    assert [c["op"] for c in cases] == ["sdpa", "sdpa", "attention_unfused", "gemm", "gemm"]


def test_live_calibrate_measure_validate_cycle(tmp_path):
    pytest.importorskip("torch")
    hw = tmp_path / "host.yaml"
    assert run("calibrate", "--out", str(hw), "--quick").returncode == 0
    trace = tmp_path / "trace.csv"
    out = run("measure", str(DATA / "tiny_grid.yaml"), "--out", str(trace), "--hardware", str(hw))
    assert out.returncode == 0, out.stderr
    errors = tmp_path / "errors.csv"
    out = run("validate", str(trace), "--out", str(errors), "--report", str(tmp_path / "report"))
    assert out.returncode == 0, out.stderr
    with errors.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5 and {"op", "measured_s", "predicted_s"} <= set(rows[0])
    for row in rows:        # the pipeline's arithmetic, on whatever this machine measured
        assert float(row["error"]) == pytest.approx(float(row["predicted_s"]) / float(row["measured_s"]) - 1)
    # the 128^3 fp32 GEMM's roofline worked from the calibrated YAML: max(2 n^3 FLOPs at the measured fp32 rate,
    # 2 n^2 fp32 inputs and the n^2 output at the measured copy bandwidth), plus, where the YAML gives a fresh-write
    # rate and the 64 KiB output reaches its threshold, the page zeroing: output x (1/fresh - 1/bandwidth)
    spec = yaml.safe_load(hw.read_text())
    dram = next(level for level in spec["memory"] if level["kind"] == "dram")
    output = 4 * 128 ** 2
    fresh = dram.get("fresh_write_bandwidth_bytes_per_s")
    zeroing = output * (1 / fresh - 1 / dram["bandwidth_bytes_per_s"]) \
        if fresh and output >= dram.get("fresh_write_min_bytes", 0) else 0.0
    by_hand = max(2 * 128 ** 3 / (spec["compute"]["matrix"]["peak_tflops"]["fp32"] * 1e12),
                  3 * output / dram["bandwidth_bytes_per_s"]) + zeroing
    gemm = next(r for r in rows if r["op"] == "gemm" and float(r["m"]) == 128)
    assert float(gemm["predicted_s"]) == pytest.approx(by_hand, rel=1e-9)
    # the printed summary is the mean |error| of the CSV's rows, per op and over all
    overall = float(np.mean([abs(float(r["error"])) for r in rows]))
    assert mape_by_group(validate_trace(trace)).iloc[-1]["mape"] == pytest.approx(overall, rel=1e-6)
    overall_rows = [line for line in out.stdout.splitlines() if "│ all" in line]
    assert overall_rows and f" {overall:.3g} " in overall_rows[-1]    # the MAPE table's overall row (3 sig. digits)
    assert f"{sum(abs(float(r['error'])) <= 0.25 for r in rows)} of 5 rows within 25%" in out.stdout
    for name in ("trace_predicted_vs_measured.png", "trace_error_vs_size.png"):
        assert (tmp_path / "report" / name).stat().st_size > 5_000


def test_rounds_pool_every_run_and_calibration_runs_in_the_same_rounds(tmp_path):
    pytest.importorskip("torch")
    grid = tmp_path / "grid.yaml"
    grid.write_text("device: cpu\nrepeats: 2\nwarmup: 0\nrounds: 3\ngemm: {size: [64, 96]}\n")
    trace, hw = tmp_path / "t.csv", tmp_path / "calibrated" / "host.yaml"
    out = run("measure", str(grid), "--out", str(trace), "--calibrate", str(hw))
    assert out.returncode == 0, out.stderr
    meta, table = read_trace(trace)
    assert meta["rounds"] == "3" and meta["hardware"] == "calibrated/host.yaml"
    assert list(table["repeats"]) == [6, 6]                      # 3 rounds x 2 repeats, pooled
    assert (table["p10_s"] <= table["measured_s"]).all() and (table["measured_s"] <= table["p90_s"]).all()
    assert "calibration (6 runs per probe)" in out.stdout        # a probe set per round: 3 x 2 repeats
    validated = validate_trace(trace)                            # the trace finds the YAML it names
    assert validated.loc[0, "predicted_s"] == pytest.approx(predict("gemm", str(hw), M=64, N=64, K=64,
                                                                    dtype="fp32").time_s)


@pytest.mark.parametrize("trace, fragment", [("bad_backend.csv", "unknown backend 'turbo'"),
                                             ("missing_column.csv", "measured_s: missing column"),
                                             ("missing_shape.csv", "row 1: gemm needs a value here")])
def test_bad_trace(trace, fragment):
    out = run("validate", str(DATA / trace), "--no-report")
    assert out.returncode == 2 and "Traceback" not in out.stderr and fragment in out.stderr


def test_unavailable_backend_and_bad_grid(tmp_path):
    pytest.importorskip("torch")
    grid = tmp_path / "grid.yaml"
    grid.write_text("device: cpu\nattention: {backends: [efficient], seq: [64]}\n")
    out = run("measure", str(grid), "--out", str(tmp_path / "t.csv"), "--hardware", "a100")
    assert out.returncode == 2 and "'efficient' is not available on cpu" in out.stderr
    grid.write_text("device: cpu\nattention: {backends: [turbo], seq: [64]}\n")
    out = run("measure", str(grid), "--out", str(tmp_path / "t.csv"), "--hardware", "a100")
    assert out.returncode == 2 and "backends" in out.stderr and "Traceback" not in out.stderr


def test_measure_needs_one_hardware_source_and_a_writable_calibration_path(tmp_path):
    pytest.importorskip("torch")
    grid = tmp_path / "grid.yaml"
    grid.write_text("device: cpu\nrepeats: 1\nwarmup: 0\ngemm: {size: [64]}\n")
    for extra in ([], ["--hardware", "a100", "--calibrate", str(tmp_path / "h.yaml")]):
        out = run("measure", str(grid), "--out", str(tmp_path / "t.csv"), *extra)
        assert out.returncode == 2 and "--hardware" in out.stderr and "Traceback" not in out.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = run("measure", str(grid), "--out", str(tmp_path / "t.csv"), "--calibrate", str(blocker / "h.yaml"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "cannot write the hardware YAML there" in out.stderr


def test_rows_before_a_failing_shape_are_kept(tmp_path):
    pytest.importorskip("torch")
    grid = tmp_path / "grid.yaml"
    grid.write_text("device: cpu\nrepeats: 1\nwarmup: 0\ngemm: {size: [64, 1000000]}\n")   # 4 TB: cannot allocate
    trace = tmp_path / "t.csv"
    out = run("measure", str(grid), "--out", str(trace), "--hardware", "a100")
    assert out.returncode == 2 and "the 1 rows before it are kept" in out.stderr
    _, table = read_trace(trace)
    assert len(table) == 1 and table.loc[0, "m"] == 64


def test_ctrl_c_keeps_the_rows_measured(tmp_path):
    pytest.importorskip("torch")
    grid = tmp_path / "grid.yaml"
    grid.write_text("device: cpu\nrepeats: 3\nwarmup: 0\ngemm: {size: [" + ", ".join(["256"] * 3 + ["1024"] * 200)
                    + "]}\n")
    trace = tmp_path / "t.csv"
    proc = subprocess.Popen([sys.executable, "-m", "simlib.cli.main", "measure", str(grid), "--out", str(trace),
                             "--hardware", "a100"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if trace.exists() and sum(1 for line in trace.read_text().splitlines() if line.startswith("gemm")) >= 3:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    _, table = read_trace(trace)
    assert 3 <= len(table) < 203 and table["measured_s"].notna().all()


def test_prepared_gpu_grid_is_valid():
    # 2 backends x 7 lengths x 2 head dims x 2 causal, 2 decode backends x 2 batches x 3 lengths, 5 GEMMs
    assert len(expand(load_grid(TRACE_DIR / "gpu" / "h200-grid.yaml"))) == 56 + 12 + 5


@pytest.mark.parametrize("body, fragment", [
    ("op,measured_s\ngemm,fast\n", "row 1: measured_s: expected a positive, finite time in seconds, got fast"),
    ("op,measured_s\ngemm,0\n", "row 1: measured_s: expected a positive, finite time in seconds, got 0"),
    ("op,measured_s\ngemm,inf\n", "row 1: measured_s: expected a positive, finite time in seconds, got inf"),
    ("op,m,n,k,dtype,measured_s\ngemm,-4,128,128,fp32,0.001\n", "row 1: gemm: ranks.M"),
    ("op,dtype,shape,window,stride,heads,head_dim,measured_s\ngna,bf16,32768,2048,0,1,128,0.001\n",
     "row 1: gna: stride: expected positive integers per dimension"),
    ("op,measured_s\n", "the trace has no rows"),
    ("op,m,n,k,dtype,measured_s\ngemm,128.5,128,128,fp32,0.001\n", "m: expected a whole number, got 128.5"),
    ("op,m,n,k,dtype,measured_s\ngemm,True,128,128,fp32,0.001\n", "m: expected a whole number, got True"),
    ("op,measured_s\n,0.001\n", "row 1: expected an op name"),
    ("op,m,n,k,dtype,measured_s\ngemm,64,64,64,fp32,0.001,9\n",
     "row 1: 7 cells, but the header names 6 columns"),       # not shifted into an index column
])
def test_bad_trace_rows(tmp_path, body, fragment):
    trace = tmp_path / "t.csv"
    trace.write_text("# hardware: a100\n" + body)
    out = run("validate", str(trace), "--no-report")
    assert out.returncode == 2 and "Traceback" not in out.stderr and fragment in out.stderr, out.stderr


def test_causal_rows_off_the_gpu_model_are_refused(tmp_path):
    # the cascades count every score: a causal CPU row would be predicted as the full matrix
    trace = tmp_path / "t.csv"
    trace.write_text(f"# hardware: {DATA.parent / 'tiny_cpu.yaml'}\n"
                     "op,backend,dtype,batch,heads,seq_q,seq_kv,head_dim,causal,measured_s\n"
                     "sdpa,flash,fp32,1,4,256,256,64,false,0.001\nsdpa,flash,fp32,1,4,256,256,64,true,0.001\n")
    out = run("validate", str(trace), "--no-report")
    assert out.returncode == 2 and "row 2: sdpa: causal: causal rows are predicted on GPUs" in out.stderr


def test_filler_cells_bom_and_odd_parquet_metadata_are_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    # filler text in the columns an op does not use; a byte-order mark before the header (a spreadsheet's CSV)
    trace = tmp_path / "t.csv"
    trace.write_bytes(("\ufeff# hardware: a100\nop,backend,dtype,batch,heads,seq_q,seq_kv,head_dim,m,n,k,measured_s\n"
                       "gemm,torch,bf16,-,-,-,-,-,4096,4096,4096,0.0005\n").encode("utf-8"))
    table = validate_trace(trace)
    assert table.loc[0, "predicted_s"] == pytest.approx(2 * 4096 ** 3 / 312e12)     # A100 bf16 roofline
    out = run("validate", str(trace), "--report", str(tmp_path / "plots"))
    assert out.returncode == 0, out.stderr
    # key-value metadata that is not UTF-8 is read with replacement characters, the rows as they are
    frame = pa.table({"op": ["gemm"], "m": [4096], "n": [4096], "k": [4096], "dtype": ["bf16"],
                      "measured_s": [0.0005]})
    pq.write_table(frame.replace_schema_metadata({b"hardware": b"a100", b"note": b"\xff\xfe"}), tmp_path / "t.parquet")
    meta, _ = read_trace(tmp_path / "t.parquet")
    assert meta["hardware"] == "a100" and "\ufffd" in meta["note"]


def test_validate_reads_its_own_errors_csv_and_named_sets_write_time_columns(tmp_path):
    errors = tmp_path / "errors.csv"
    assert run("validate", str(TRACE_DIR / "published" / "gna-h100-natten.csv"), "--out", str(errors),
               "--no-report").returncode == 0
    again = run("validate", str(errors), "--hardware", "h100", "--no-report")      # it has a trace column
    assert again.returncode == 0, again.stderr
    named = tmp_path / "named.csv"
    assert run("validate", "gna", "--out", str(named), "--no-report").returncode == 0
    with named.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and {"op", "measured_s", "predicted_s"} <= set(rows[0])


def test_traces_sharing_a_stem_keep_their_own_labels(tmp_path):
    from simlib.cli.main import _trace_label
    paths = [tmp_path / "a" / "run.csv", tmp_path / "b" / "run.csv", tmp_path / "c" / "other.csv"]
    assert [_trace_label(p, paths, tmp_path) for p in paths] == ["a/run", "b/run", "other"]


def test_flags_replace_the_other_form_of_a_size_and_empty_lists_are_refused(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text("attention: {seq: [128], backends: [math]}\ngemm: {size: [128]}\n")
    cases = expand(load_grid(grid, {"attention.seq_q": 64, "attention.seq_kv": 32, "gemm.m": 64, "gemm.n": 48,
                                    "gemm.k": 32}))
    assert [(c["op"], c.get("seq_q"), c.get("seq_kv"), c.get("m"), c.get("n"), c.get("k")) for c in cases] == [
        ("sdpa", 64, 32, None, None, None), ("gemm", None, None, 64, 48, 32)]
    for body, fragment in (("attention: {seq: []}\n", "attention.seq: List should have at least 1 item"),
                           ("attention: {seq: [64], seq_q: [32], seq_kv: [32]}\n",
                            "attention.seq: give seq or seq_q, seq_kv, not both"),
                           ("gemm: {size: [64], m: [32]}\n", "gemm.size: give size or m, n, k, not both")):
        grid.write_text(body)
        out = run("measure", str(grid), "--out", str(tmp_path / "t.csv"), "--hardware", "a100")
        assert out.returncode == 2 and fragment in out.stderr, out.stderr


def test_calibrate_checks_its_output_before_measuring(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for target, fragment in ((blocker / "host.yaml", "cannot write the hardware YAML there"),
                             (tmp_path / "host.txt", "expected a .yaml or .yml hardware YAML file")):
        start = time.monotonic()
        out = run("calibrate", "--out", str(target))
        assert out.returncode == 2 and fragment in out.stderr and "Traceback" not in out.stderr
        assert time.monotonic() - start < 20          # a full calibration takes longer; this one measures nothing


def test_a_failing_run_keeps_the_calibration_its_trace_names_and_paths_are_recorded_from_the_trace(tmp_path):
    pytest.importorskip("torch")
    grid = tmp_path / "grid.yaml"
    grid.write_text("device: cpu\nrepeats: 1\nwarmup: 0\ngemm: {size: [64, 1000000]}\n")   # 4 TB: cannot allocate
    trace = tmp_path / "out" / "t.csv"
    out = run("measure", str(grid), "--out", str(trace), "--calibrate", str(tmp_path / "cal" / "host.yaml"))
    assert out.returncode == 2 and "the 1 rows before it are kept" in out.stderr
    assert run("validate", str(trace), "--no-report").returncode == 0      # the YAML it names was written
    # --hardware given as a path from the current folder is recorded from the trace's folder
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "host.yaml").write_text((tmp_path / "cal" / "host.yaml").read_text())
    grid.write_text("device: cpu\nrepeats: 1\nwarmup: 0\ngemm: {size: [64]}\n")
    out = run("measure", str(grid), "--out", str(trace), "--hardware", "hw/host.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    meta, _ = read_trace(trace)
    assert meta["hardware"] == "../hw/host.yaml"
    assert run("validate", str(trace), "--no-report", cwd="/").returncode == 0


def test_blank_rows_are_skipped_and_outputs_that_cannot_be_written_exit_2(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("# hardware: a100\nop,m,n,k,dtype,measured_s\ngemm,128,128,128,fp32,0.001\n,,,,,\n\n")
    out = run("validate", str(trace), "--no-report", "--json")
    assert out.returncode == 0, out.stderr
    assert len(__import__("json").loads(out.stdout)) == 1
    blocker = tmp_path / "file"
    blocker.write_text("")
    for args in (["--out", str(blocker / "e.csv"), "--no-report"], ["--report", str(blocker / "plots")]):
        out = run("validate", str(trace), *args)
        assert out.returncode == 2 and "Traceback" not in out.stderr and str(blocker) in out.stderr


def test_grid_from_flags_and_a_parquet_trace_round_trip(tmp_path):
    pytest.importorskip("torch")
    trace = tmp_path / "t.parquet"
    out = run("measure", "--out", str(trace), "--hardware", "a100", "--set", "device=cpu", "--set", "repeats=1",
              "--set", "warmup=0", "--set", "gemm.size=64,96")
    assert out.returncode == 0, out.stderr
    meta, table = read_trace(trace)
    assert meta["hardware"] == "a100" and list(table["m"]) == [64, 96] and (table["measured_s"] > 0).all()
    validated = validate_trace(trace)
    assert validated.loc[0, "predicted_s"] == pytest.approx(predict("gemm", "a100", M=64, N=64, K=64,
                                                                    dtype="fp32").time_s)


@pytest.mark.parametrize("args, fragment", [
    (["--set", "gemm.size=64", "--hardware", "no_such_hw"], "unknown hardware 'no_such_hw'"),
    (["--set", "unfused=true", "--hardware", "a100"], "give an attention section"),
    (["--set", "repeats=2", "--hardware", "a100"], "the grid has no cases"),
    (["--set", "attention.seq=true", "--hardware", "a100"], "attention.seq.0"),
    (["--set", "decode.seq_kv=64", "--set", "decode.backends=efficient", "--set", "device=cpu", "--hardware",
      "a100"], "decode.backends: SDPA backend 'efficient' is not available"),
    (["--hardware", "a100"], "give a grid YAML, or the grid as --set"),
])
def test_bad_measure_settings(tmp_path, args, fragment):
    pytest.importorskip("torch")
    out = run("measure", "--out", str(tmp_path / "t.csv"), *args)
    assert out.returncode == 2 and "Traceback" not in out.stderr and fragment in out.stderr, out.stderr


def test_measure_output_must_be_a_writable_trace_file(tmp_path):
    pytest.importorskip("torch")
    blocker = tmp_path / "file"
    blocker.write_text("")
    for target, fragment in ((blocker / "t.csv", "cannot write the trace there"), (tmp_path, "expected a .csv"),
                             (tmp_path / "t.txt", "expected a .csv or .parquet")):
        out = run("measure", "--out", str(target), "--hardware", "a100", "--set", "gemm.size=64")
        assert out.returncode == 2 and "Traceback" not in out.stderr and fragment in out.stderr, out.stderr


def test_validating_a_trace_on_other_hardware_warns(tmp_path):
    """--hardware overrides a trace's own part for any trace (a calibrated YAML beside the CPU trace, the
    published sets' H100): allowed, with one warning naming both parts; none when it is the measured part, by
    catalog name or as the YAML the trace names."""
    trace = TRACE_DIR / "cpu" / "amd-epyc-2c-fp32.csv"
    meta, _ = read_trace(trace)
    measured = load_hardware_beside(trace, meta["hardware"]).name
    renamed = tmp_path / "other-cpu.yaml"
    renamed.write_text((trace.parent / meta["hardware"]).read_text().replace(f"name: {measured}", "name: other-cpu"))
    other = run("validate", str(trace), "--hardware", str(renamed), "--no-report")
    assert other.returncode == 0, other.stderr
    assert f"predicting other-cpu against measurements taken on {measured}" in other.stderr
    same = run("validate", str(trace), "--hardware", meta["hardware"], "--no-report")
    assert same.returncode == 0 and "warning" not in same.stderr, same.stderr
    published = run("validate", "attention", "--hardware", "h200", "--no-report")
    assert "predicting h200 against measurements taken on h100" in published.stderr
    assert "warning" not in run("validate", "attention", "--hardware", "h100", "--no-report").stderr


def test_a_causal_cell_is_true_false_or_refused(tmp_path):
    """causal reads true/1/yes and false/0/no (an empty cell: false); anything else is refused with the row named,
    instead of silently reading as false (the FA3 paper's first causal row: 1 predicts as true does)."""
    source = TRACE_DIR / "published" / "flash-h100-fa3-paper.csv"
    lines = source.read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("op,"))
    row = next(i for i in range(header + 1, len(lines)) if ",True," in lines[i] or ",true," in lines[i])
    expected = validate_trace(source)["predicted_s"][row - header - 1]
    for word, ok in (("1", True), ("yes", True), ("maybe", False)):
        edited = lines.copy()
        edited[row] = edited[row].replace(",True,", f",{word},").replace(",true,", f",{word},")
        path = tmp_path / f"{word}.csv"
        path.write_text("\n".join(edited) + "\n")
        if ok:
            assert validate_trace(path)["predicted_s"][row - header - 1] == expected
        else:
            out = run("validate", str(path), "--no-report")
            assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
            assert f"row {row - header}: causal: expected true or false" in out.stderr, out.stderr


def test_validate_writes_errors_by_suffix_and_never_over_a_trace_it_reads(tmp_path):
    import pandas as pd
    trace = tmp_path / "natten.csv"
    trace.write_text((TRACE_DIR / "published" / "gna-h100-natten.csv").read_text())
    errors = tmp_path / "out" / "errors.parquet"                          # its folder is created
    assert run("validate", str(trace), "--out", str(errors), "--no-report").returncode == 0
    frame = pd.read_parquet(errors)
    assert len(frame) == 4 and (frame["error"] == frame["predicted_s"] / frame["measured_s"] - 1).all()
    before = trace.read_text()
    for target, fragment in ((trace, "is a trace being validated"), (tmp_path / "e.txt", "expected a .csv or "
                                                                     ".parquet errors file"), ("", "--out: empty")):
        out = run("validate", str(trace), "--out", str(target), "--no-report")
        assert out.returncode == 2 and fragment in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert trace.read_text() == before


def test_a_hardware_path_given_resolves_from_the_current_folder_first(tmp_path):
    # a YAML named host.yaml beside the trace and another in the current folder: --hardware host.yaml is the
    # one here, as any path on the command line; the one beside the trace is used only for a name nothing else
    # resolves
    (tmp_path / "sub").mkdir()
    (tmp_path / "here").mkdir()
    tiny = (DATA.parent / "tiny_cpu.yaml").read_text()
    (tmp_path / "sub" / "host.yaml").write_text(tiny.replace("name: tiny-cpu", "name: beside-trace"))
    (tmp_path / "here" / "host.yaml").write_text(tiny.replace("name: tiny-cpu", "name: from-here"))
    (tmp_path / "sub" / "t.csv").write_text("# hardware: a100\nop,m,n,k,dtype,measured_s\ngemm,64,64,64,fp32,0.001\n")
    out = run("validate", "../sub/t.csv", "--hardware", "host.yaml", "--no-report", cwd=tmp_path / "here")
    assert out.returncode == 0 and "predicting from-here against" in out.stderr, out.stderr
    out = run("validate", "sub/t.csv", "--hardware", "host.yaml", "--no-report", cwd=tmp_path)
    assert out.returncode == 0 and "predicting beside-trace against" in out.stderr, out.stderr


def test_a_run_that_fails_before_its_first_row_leaves_no_earlier_rows(tmp_path):
    pytest.importorskip("torch")
    trace = tmp_path / "t.csv"
    assert run("measure", "--out", str(trace), "--hardware", "a100", "--set", "device=cpu",
               "--set", "gemm.size=64", "--set", "repeats=1").returncode == 0
    out = run("measure", "--out", str(trace), "--hardware", "a100", "--set", "device=cpu",
              "--set", "gemm.size=1000000", "--set", "repeats=1")          # 4 TB: cannot allocate
    assert out.returncode == 2 and "the 0 rows before it are kept" in out.stderr
    lines = trace.read_text().splitlines()
    assert lines[-1].startswith("op,") and not any(line.startswith("gemm") for line in lines)    # header only


def test_a_failing_calibration_probe_exits_2_and_keeps_the_rows(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from simlib.errors import SimlibInputError
    from simlib.measure import calibrate
    from simlib.measure.grid import load_grid
    from simlib.measure.runner import measure

    def failing(torch, device):
        def make():
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory")
        return [calibrate.Probe("copy", make, 1.0)]
    monkeypatch.setattr(calibrate, "calibration_probes", failing)
    trace = tmp_path / "t.csv"
    with pytest.raises(SimlibInputError, match="the copy probe failed: DefaultCPUAllocator.*the 0 rows measured "
                                               "are kept") as caught:
        measure(load_grid(None, {"device": "cpu", "gemm.size": [64], "repeats": 1}), trace, None,
                calibrate_out=tmp_path / "host.yaml", echo=lambda *_: None)
    assert caught.value.field == "--calibrate" and trace.exists() and not (tmp_path / "host.yaml").exists()


@pytest.mark.parametrize("text, field", [("repeats: '3'\n", "repeats"), ("warmup: true\n", "warmup"),
                                         ("rounds: 2.0\n", "rounds"), ("unfused: 1\n", "unfused")])
def test_grid_counts_and_flags_are_strict(tmp_path, text, field):
    from simlib.errors import SimlibInputError
    from simlib.measure.grid import load_grid
    grid = tmp_path / "grid.yaml"
    grid.write_text("device: cpu\ngemm: {size: [64]}\n" + text)
    with pytest.raises(SimlibInputError) as caught:
        load_grid(grid)
    assert caught.value.field == field
