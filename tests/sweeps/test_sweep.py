"""Sweeps: axis forms and constraints by hand, outputs equal the model, Dask = in-process byte for byte, an
interrupted sweep resumes with every point exactly once, bad specs exit 2."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simlib
from simlib.hardware import load_hardware
from simlib.models.flash_attention import attention_forward
from simlib.sweeps.spec import axis_values, load_spec, point_count

SPEC = {"workload": "attention", "hardware": ["a100", "h100"],
        "axes": {"seq": {"logrange": [512, 8192], "num": 5}, "head_dim": [64, 128],
                 "tiles": {"zip": {"block_q": [64, 128], "block_kv": [64, 128]}}, "batch": {"range": [1, 9, 4]}},
        "fixed": {"heads": 16, "dtype": "bf16", "kernel": "flash2", "causal": False}}


def test_axis_forms_by_hand():
    assert [p["seq"] for p in axis_values("seq", {"logrange": [512, 8192], "num": 5}, "s")] == [512, 1024, 2048,
                                                                                                4096, 8192]
    assert [p["batch"] for p in axis_values("batch", {"range": [1, 9, 4]}, "s")] == [1, 5]
    assert axis_values("t", {"zip": {"a": [1, 2], "b": [3, 4]}}, "s") == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
    assert point_count(load_spec(SPEC)) == 2 * 5 * 2 * 2 * 2


def test_sweep_rows_equal_the_model_and_constraints_filter():
    frame = simlib.sweep(SPEC)
    assert len(frame) == 80 and {"hardware", "seq", "head_dim", "block_q", "block_kv", "batch", "time_s"} <= set(frame)
    row = frame[(frame.hardware == "h100") & (frame.seq == 2048) & (frame.head_dim == 128) & (frame.block_q == 128)
                & (frame.batch == 5)].iloc[0]
    direct = attention_forward(load_hardware("h100"), batch=5, heads=16, seq_q=2048, seq_kv=2048, head_dim=128,
                               dtype="bf16", kernel="flash2", block_q=128, block_kv=128)
    assert row.time_s == pytest.approx(float(direct["time_s"]), rel=1e-12)
    # block_q * head_dim * 2 bytes <= 16 KiB keeps (64, 64) and (64, 128) tiles with head_dim 64 and 128 and
    # (128, 128) only with head_dim 64: 3 of 4 (tile, head_dim) pairs
    constrained = simlib.sweep({**SPEC, "constraints": ["block_q * head_dim * 2 <= 16384"]})
    assert len(constrained) == 80 * 3 // 4
    assert (constrained.block_q * constrained.head_dim * 2 <= 16384).all()


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "simlib.cli.main", *args], capture_output=True, text=True, **kw)


def _write_spec(tmp_path, spec) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))      # JSON is YAML
    return path


def test_dask_local_cluster_gives_the_same_parquet(tmp_path):
    pytest.importorskip("distributed")
    spec = _write_spec(tmp_path, {**SPEC, "chunk_size": 7})
    assert run("sweep", str(spec), "--out", str(tmp_path / "a.parquet"), "--quiet").returncode == 0
    out = run("sweep", str(spec), "--out", str(tmp_path / "b.parquet"), "--quiet", "--scheduler", "local")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_interrupted_sweep_resumes_with_every_point_once(tmp_path):
    spec_dict = {**SPEC, "axes": {**SPEC["axes"], "seq": {"logrange": [512, 65536], "num": 400}}, "chunk_size": 20,
                 "workload": "attention"}
    spec = _write_spec(tmp_path, spec_dict)
    out = tmp_path / "r.parquet"
    parts = Path(str(out) + ".parts")
    proc = subprocess.Popen([sys.executable, "-m", "simlib.cli.main", "sweep", str(spec), "--out", str(out),
                             "--quiet", "--processes", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (parts.exists() and len(list(parts.glob("*.parquet"))) >= 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    kept = len(list(parts.glob("*.parquet")))
    assert proc.returncode == 130 and not out.exists() and kept >= 3
    again = run("sweep", str(spec), "--out", str(out), "--quiet")
    assert again.returncode == 0, again.stderr
    result = pd.read_parquet(out)
    expected = simlib.sweep(spec_dict)
    assert len(result) == point_count(load_spec(spec_dict)) == len(expected)
    key = ["hardware", "seq", "head_dim", "block_q", "batch"]
    assert not result.duplicated(key).any()
    pd.testing.assert_frame_equal(result, expected)


@pytest.mark.parametrize("change, fragment", [
    ({"axes": {"seq": [512], "wings": [2]}}, "attention has no parameter 'wings'"),
    ({"axes": {"seq": []}}, "axes.seq: the axis is empty"),
    ({"constraints": ["block_q * width <= smem"]}, "unknown name 'width'"),
])
def test_bad_spec(tmp_path, change, fragment):
    spec = _write_spec(tmp_path, {**SPEC, **change})
    out = run("sweep", str(spec), "--out", str(tmp_path / "x.parquet"), "--quiet")
    assert out.returncode == 2 and "Traceback" not in out.stderr and fragment in out.stderr


def test_local_processes_give_the_same_parquet(tmp_path):
    spec = _write_spec(tmp_path, {**SPEC, "chunk_size": 9})
    assert run("sweep", str(spec), "--out", str(tmp_path / "a.parquet"), "--quiet").returncode == 0
    out = run("sweep", str(spec), "--out", str(tmp_path / "b.parquet"), "--quiet", "--processes", "2")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_every_varied_setting_reaches_the_model():
    spec = {"workload": "attention", "hardware": ["h100"], "axes": {"dtype": ["bf16", "fp8"], "backward": [False, True]},
            "fixed": {"seq": 4096, "heads": 16, "head_dim": 128, "batch": 1, "kernel": "flash2"}}
    frame = simlib.sweep(spec).set_index(["dtype", "backward"])["time_s"]
    for dtype in ("bf16", "fp8"):
        for backward in (False, True):
            direct = attention_forward(load_hardware("h100"), batch=1, heads=16, seq_q=4096, seq_kv=4096,
                                       head_dim=128, dtype=dtype, kernel="flash2", block_q=128, block_kv=128,
                                       backward=backward)["time_s"]
            assert frame[(dtype, backward)] == pytest.approx(float(direct))


@pytest.mark.parametrize("change, args, fragment", [
    ({"axes": {"seq": {"logrange": [0, 512]}}}, [], "0 < low < high"),
    ({"constraints": ["kernel == 'flash2'"]}, [], "constraints[0]"),
    ({"fixed": {**SPEC["fixed"], "seq": 4096}}, [], "also varied by axes.seq"),
    ({"axes": {**SPEC["axes"], "pair": {"zip": {"seq": [1024], "head_dim": [64]}}}}, [],
     "seq is already varied by axes.seq"),
    ({"hardware": ["a100"], "fixed": {**SPEC["fixed"], "kernel": "flash3"}}, ["--processes", "2"],
     "flash3 does not run on a100"),
])
def test_bad_spec_reported_from_any_backend(tmp_path, change, args, fragment):
    spec = _write_spec(tmp_path, {**SPEC, **change})
    out = run("sweep", str(spec), "--out", str(tmp_path / "x.parquet"), "--quiet", *args)
    assert out.returncode == 2 and "Traceback" not in out.stderr and fragment in out.stderr


def test_parts_of_another_spec_are_refused(tmp_path):
    first = _write_spec(tmp_path, {**SPEC, "chunk_size": 5})
    parts = Path(str(tmp_path / "x.parquet") + ".parts")
    parts.mkdir()
    (parts / "spec.sha256").write_text("0" * 64)
    out = run("sweep", str(first), "--out", str(tmp_path / "x.parquet"), "--quiet")
    assert out.returncode == 2 and "holds chunks of a different spec" in out.stderr


def test_vectorized_gna_sweep_equals_one_prediction_per_point():
    """The gna evaluator simulates a whole chunk per dimensionality at once; every row must equal
    ``simlib predict gna`` on that point (exact to rounding), causal, dilated and tiled points included."""
    from simlib.models.gna_cli import predict_gna_cli
    spec = {"workload": "gna", "hardware": ["h100"],
            "axes": {"stride": ["1x1", "4x8", "16x16"], "causal": [False, "1x0", True], "dilation": ["1x1", "2x1"],
                     "q_tile": ["16x8", "16x16"]},
            "fixed": {"shape": "128x96", "window": "40x24", "kv_tile": "16x8", "heads": 4, "head_dim": 64}}
    frame = simlib.sweep(spec)
    assert len(frame) == 3 * 3 * 2 * 2
    h100 = load_hardware("h100")
    for row in frame.itertuples():
        one = predict_gna_cli(h100, {"shape": "128x96", "window": "40x24", "kv_tile": "16x8", "heads": 4,
                                     "head_dim": 64, "stride": row.stride, "causal": row.causal,
                                     "dilation": row.dilation, "q_tile": row.q_tile})
        for column in ("time_s", "speedup", "speedup_bound", "tile_speedup_bound", "fully_block_sparse"):
            assert getattr(row, column) == pytest.approx(one[column], rel=1e-12), column


def test_fusemax_rows_name_the_hardware_each_design_ran_on():
    """Each spatial design runs on the architecture its design YAML names (workloads/designs/*.yaml, read here as
    plain YAML): FuseMax on fusemax, FLAT on flat, whatever the spec's single hardware entry says."""
    import yaml

    from simlib.catalog_paths import WORKLOAD_DIR
    from simlib.models.spatial_cli import run_design
    designs = WORKLOAD_DIR / "designs"
    spec = {"workload": "fusemax", "hardware": ["fusemax"], "axes": {"design": ["fusemax", "flat"]},
            "fixed": {"seq": 1024, "model": "bert", "batch": 64}}
    frame = simlib.sweep(spec)
    assert len(frame) == 2
    for row in frame.itertuples():
        declared = yaml.safe_load((designs / f"{row.design}.yaml").read_text())["hardware"]
        assert row.hardware == declared
        direct = run_design(row.design, {"model": "bert", "seq_q": 1024, "seq_kv": 1024, "batch": 64,
                                         "dtype": "fp16"})
        assert row.time_s == pytest.approx(direct["time_s"], rel=1e-12)
    assert list(frame.hardware) == ["fusemax", "flat"]


def test_fusemax_sweep_with_two_hardware_entries_is_refused(tmp_path):
    spec = _write_spec(tmp_path, {"workload": "fusemax", "hardware": ["fusemax", "flat"],
                                  "axes": {"design": ["fusemax", "flat"]}, "fixed": {"seq": 1024}})
    out = run("sweep", str(spec), "--out", str(tmp_path / "x.parquet"), "--quiet")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "hardware" in out.stderr and "runs each design on its own architecture" in out.stderr


@pytest.mark.parametrize("constraint", ["seq * 128 <= smem", "batch <= sms", "seq <= l2 / 2"])
def test_fusemax_constraints_on_hardware_names_are_refused(tmp_path, constraint):
    """The spec's hardware entry is not where a fusemax design runs, so its smem/l2/sms would describe hardware
    no row ran on."""
    spec = _write_spec(tmp_path, {"workload": "fusemax", "hardware": ["fusemax"],
                                  "axes": {"design": ["fusemax", "flat"], "seq": [1024, 4096]},
                                  "constraints": [constraint]})
    out = run("sweep", str(spec), "--out", str(tmp_path / "x.parquet"), "--quiet")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "constraints[0]" in out.stderr and "property of the spec's hardware entry" in out.stderr, out.stderr


def test_fusemax_constraints_on_parameters_still_filter():
    frame = simlib.sweep({"workload": "fusemax", "hardware": ["fusemax"],
                          "axes": {"design": ["fusemax", "flat"], "seq": [1024, 4096]},
                          "fixed": {"model": "bert"}, "constraints": ["seq <= 2048"]})
    assert sorted(zip(frame.design, frame.seq)) == [("flat", 1024), ("fusemax", 1024)]
