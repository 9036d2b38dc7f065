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
from simlib.models.attention_cli import predict_attention
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
    # a null tile is searched per point, so a constraint cannot test it
    ({"axes": {"seq": [512], "block_q": [None, 64]}, "constraints": ["block_q * 256 <= smem"]},
     "constraints[0]: uses block_q, which is null"),
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
    """No tiles given: each row runs the tile pair ``simlib predict attention`` searches for that point, so each
    row equals predict's time (the independent computation: one scalar prediction per point)."""
    spec = {"workload": "attention", "hardware": ["h100"], "axes": {"dtype": ["bf16", "fp8"], "backward": [False, True]},
            "fixed": {"seq": 4096, "heads": 16, "head_dim": 128, "batch": 1, "kernel": "flash2"}}
    frame = simlib.sweep(spec).set_index(["dtype", "backward"])["time_s"]
    h100 = load_hardware("h100")
    times = set()
    for dtype in ("bf16", "fp8"):
        for backward in (False, True):
            direct = predict_attention(h100, {"seq": 4096, "heads": 16, "head_dim": 128, "batch": 1,
                                              "kernel": "flash2", "dtype": dtype, "backward": backward})["time_s"]
            assert frame[(dtype, backward)] == pytest.approx(direct, rel=1e-12)
            times.add(round(direct, 15))
    assert len(times) == 4          # every setting changes the prediction, so each one reached the model


@pytest.mark.parametrize("change, args, fragment", [
    ({"axes": {"seq": {"logrange": [0, 512]}}}, [], "0 < low < high"),
    ({"constraints": ["kernel == 'flash2'"]}, [], "constraints[0]"),
    ({"fixed": {**SPEC["fixed"], "seq": 4096}}, [], "also varied by axes.seq"),
    ({"axes": {**SPEC["axes"], "pair": {"zip": {"seq": [1024], "head_dim": [64]}}}}, [],
     "seq is already varied by axes.seq"),
    ({"hardware": ["a100"], "fixed": {**SPEC["fixed"], "kernel": "flash3"}}, ["--processes", "2"],
     "flash3 does not run on a100"),
    ({"hardware": ["a100"], "fixed": {**SPEC["fixed"], "kernel": "flash3"}}, ["--scheduler", "local"],
     "flash3 does not run on a100"),
    ({"hardware": ["a100"], "fixed": {**SPEC["fixed"], "kernel": "flash3"}},
     ["--scheduler", "local", "--processes", "1"], "flash3 does not run on a100"),
])
def test_bad_spec_reported_from_any_backend(tmp_path, change, args, fragment):
    """One line and exit 2 whichever backend ran the chunk: no traceback, not even a Dask worker's log of it."""
    if "--scheduler" in args:
        pytest.importorskip("distributed")
    spec = _write_spec(tmp_path, {**SPEC, **change})
    out = run("sweep", str(spec), "--out", str(tmp_path / "x.parquet"), "--quiet", *args)
    assert out.returncode == 2 and "Traceback" not in out.stderr and fragment in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"error: {spec}: "), out.stderr


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


def test_cascade_sweep_rows_equal_predict(tmp_path):
    """A sweep over a cascade workload: each row is simlib.predict on the same point (one scalar prediction per
    point, the independent computation); `simlib report` builds from the spec too."""
    spec = {"workload": "attention-1pass", "hardware": ["h100"], "axes": {"seq_q": [1024, 2048]},
            "fixed": {"seq_kv": 4096}}
    frame = simlib.sweep(spec)
    assert list(frame.seq_q) == [1024, 2048]
    for row in frame.itertuples():
        assert row.time_s == pytest.approx(simlib.predict("attention-1pass", "h100", seq_q=row.seq_q,
                                                          seq_kv=4096).time_s, rel=1e-12)
    path = tmp_path / "cascade.yaml"
    path.write_text("workload: attention-1pass\nhardware: [h100]\naxes: {seq_q: [1024, 2048]}\n"
                    "fixed: {seq_kv: 4096}\n")
    out = run("report", str(path), "--out", str(tmp_path / "report"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "report" / "index.html").is_file()


DECODE_SPEC = {"workload": "attention", "hardware": ["h100"],
               "axes": {"kernel": ["flash2", "flashdecoding", "lean"], "seq_kv": [4096, 65536],
                        "heads": [8, 32], "kv": {"zip": {"kv_heads": [None, 8], "block_kv": [None, 64]}}},
               "fixed": {"seq_q": 1, "batch": 2, "head_dim": 128}}


def test_decode_rows_equal_predict():
    """seq_q = 1 rows run the decode model as `simlib predict attention` does (flash2, split-KV, Lean): every row
    equals predict on that point (one scalar prediction each, the independent computation)."""
    frame = simlib.sweep(DECODE_SPEC)
    assert len(frame) == 3 * 2 * 2 * 2
    h100 = load_hardware("h100")
    for row in frame.to_dict("records"):
        settings = {"seq_q": 1, "batch": 2, "head_dim": 128, "kernel": row["kernel"], "seq_kv": row["seq_kv"],
                    "heads": row["heads"]}
        settings.update({k: int(row[k]) for k in ("kv_heads", "block_kv") if row[k] == row[k] and row[k] is not None})
        one = predict_attention(h100, settings)
        for column, value in (("time_s", one["time_s"]), ("flops", one["flops"]),
                              ("bytes_dram", one["bytes"]["dram"]), ("bound", one["bound"])):
            assert row[column] == pytest.approx(value, rel=1e-12), (column, settings)
    # flash2 decode of 65536 keys, 8 heads of 128, batch 1 on h100 is predict's 1.63 ms
    one = simlib.sweep({"workload": "attention", "hardware": ["h100"], "axes": {"kernel": ["flash2"]},
                        "fixed": {"seq_q": 1, "seq_kv": 65536, "heads": 8}})
    assert one.time_s[0] == pytest.approx(predict_attention(h100, {"seq_q": 1, "seq_kv": 65536, "heads": 8})["time_s"],
                                          rel=1e-12)
    assert one.time_s[0] > 1e-3


def test_decode_and_prefill_rows_in_one_chunk_and_given_splits():
    """seq_q 1 and 2048 side by side (the split-KV kernel with given splits only on the decode rows)."""
    spec = {"workload": "attention", "hardware": ["a100"],
            "axes": {"seq_q": [1, 2048], "kernel": ["flash2", "standard"]},
            "fixed": {"seq_kv": 8192, "heads": 16}}
    h100 = load_hardware("a100")
    for row in simlib.sweep(spec).itertuples():
        direct = predict_attention(h100, {"seq_q": row.seq_q, "seq_kv": 8192, "heads": 16, "kernel": row.kernel})
        assert row.time_s == pytest.approx(direct["time_s"], rel=1e-12)
    split = simlib.sweep({"workload": "attention", "hardware": ["h100"], "axes": {"splits": [None, 2, 16]},
                          "fixed": {"seq_q": 1, "seq_kv": 8192, "heads": 8, "kernel": "flashdecoding"}})
    for row in split.to_dict("records"):
        settings = {"seq_q": 1, "seq_kv": 8192, "heads": 8, "kernel": "flashdecoding"}
        if row["splits"] == row["splits"] and row["splits"] is not None:
            settings["splits"] = int(row["splits"])
        assert row["time_s"] == pytest.approx(predict_attention(load_hardware("h100"), settings)["time_s"],
                                              rel=1e-12)
    assert split.time_s.nunique() == 3


def test_rows_without_tiles_equal_predicts_tile_search():
    """Rows without block_q / block_kv (or with null in a tile axis) run the tile pair predict chooses: on a100,
    seq 512, causal, head dim 128 that is FlashAttention-2's own 128 x 64 (its launch template for compute
    capability 8.0), not the model's 128 x 128 default; a row giving one tile has the other searched. Each row
    equals `simlib predict attention` on that point (the independent computation)."""
    a100 = load_hardware("a100")
    base = {"seq": 512, "causal": True, "heads": 16, "batch": 1, "kernel": "flash2"}
    picked = predict_attention(a100, {**base, "head_dim": 128})
    assert (picked["block_q"], picked["block_kv"], picked["tile_source"]) == (128, 64, "kernel")
    assert predict_attention(a100, {**base, "head_dim": 128, "block_q": 64})["tile_source"] == "searched"
    default = attention_forward(a100, batch=1, heads=16, seq_q=512, seq_kv=512, head_dim=128, causal=True,
                                block_q=128, block_kv=128)["time_s"]
    assert picked["time_s"] != pytest.approx(float(default), rel=1e-3)   # the kernel's tiles make a difference
    spec = {"workload": "attention", "hardware": ["a100"],
            "axes": {"head_dim": [128, 256], "block_q": [64, None], "block_kv": [None, 32]}, "fixed": base}
    frame = simlib.sweep(spec)
    assert len(frame) == 8
    for row in frame.to_dict("records"):
        settings = {**base, "head_dim": row["head_dim"]}
        settings.update({k: int(row[k]) for k in ("block_q", "block_kv") if row[k] == row[k] and row[k] is not None})
        one = predict_attention(a100, settings)
        assert row["time_s"] == pytest.approx(one["time_s"], rel=1e-12), settings
        assert row["bytes_dram"] == pytest.approx(one["bytes"]["dram"], rel=1e-12), settings
        assert row["fits"]


@pytest.mark.parametrize("workload, axes, fixed, field, fragment", [
    ("attention", {"head_dim": [64, 100]}, {}, "axes.head_dim", "head dim 100 not supported"),
    ("attention", {"tiles": {"zip": {"block_q": [64, 72], "block_kv": [64, 64]}}}, {}, "axes.tiles.zip.block_q",
     "got 72"),
    ("attention", {"heads": [8, 12]}, {"kv_heads": 8}, "fixed.kv_heads", "kv_heads=8 must divide heads=12"),
    ("attention", {"seq_q": [1, 4096]}, {"block_q": 64}, "fixed.block_q", "not used by the decode kernels"),
    ("attention", {"seq_q": [4096, 1]}, {"kernel": "flash3"}, "fixed.kernel", "seq_q=1 is decode"),
    ("attention", {"seq_q": [1, 4096]}, {"kernel": "flashdecoding"}, "axes.seq_q", "expected seq_q=1, got 4096"),
    ("attention", {"seq_q": [1024, 8192]}, {"seq_kv": 4096, "causal": True}, "axes.seq_q", "seq_q=8192"),
    ("attention", {"kernel": ["flash2", "all"]}, {}, "axes.kernel", "a sweep row runs one kernel"),
    ("tts", {"prompt_len": [155, -100], "samples": [1, 0]}, {"model": "qwen3-0.6b"}, "axes.prompt_len", "got -100"),
    ("tts", {"samples": [1, 0]}, {"model": "qwen3-0.6b"}, "axes.samples", "got 0"),
    ("tts", {"window": [64, 0.5]}, {"model": "qwen3-0.6b", "attention": "window"}, "axes.window", "got 0.5"),
    ("tts", {"window": [64, None]}, {"model": "qwen3-0.6b", "attention": "window"}, "axes.window",
     "attention=window needs window"),
])
def test_every_row_is_checked_and_the_bad_value_named(tmp_path, workload, axes, fixed, field, fragment):
    """Not only each group's first row: a bad value anywhere exits 2 naming the spec file, where the spec gives
    the value, and the value; `simlib predict` refuses the same point."""
    path = _write_spec(tmp_path, {"workload": workload, "hardware": ["h100"], "axes": axes, "fixed": fixed})
    out = run("sweep", str(path), "--out", str(tmp_path / "x.parquet"), "--quiet")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{path}: {field}: " in out.stderr and fragment in out.stderr, out.stderr
    assert "64.0" not in out.stderr and not (tmp_path / "x.parquet").exists()


def test_predict_refuses_the_rows_the_sweep_refuses():
    """The same points through `simlib predict attention`: the sweep's checks are predict's."""
    from simlib.errors import SimlibInputError
    h100 = load_hardware("h100")
    for settings in ({"head_dim": 100}, {"heads": 12, "kv_heads": 8}, {"seq_q": 1, "block_q": 64},
                     {"seq_q": 4096, "kernel": "flashdecoding"}, {"seq_q": 1, "kernel": "flash3"}):
        with pytest.raises(SimlibInputError):
            predict_attention(h100, settings)


@pytest.mark.parametrize("spec, field, fragment", [
    ({**SPEC, "hardware": ["a100", "a999"]}, "hardware", "unknown hardware 'a999'"),
    ({**SPEC, "fixed": {**SPEC["fixed"], "heads": 0}}, "fixed.heads", "expected a positive integer, got 0"),
    ({**SPEC, "fixed": {**SPEC["fixed"], "dtype": "fp9"}}, "fixed.dtype", "unknown dtype 'fp9'"),
    ({**SPEC, "axes": {**SPEC["axes"], "seq": [512, 0]}}, "axes.seq", "got 0"),
    ({"workload": "attention-1pass", "hardware": ["h100"], "axes": {"seq_q": [1024, "many"]}}, "axes.seq_q",
     "expected a number, got 'many'"),
    ({"workload": "gna", "hardware": ["h100"], "axes": {"window": ["8x8", "8x9x2"]}, "fixed": {"shape": "64x64"}},
     "axes.window", "window has 3 dimensions"),
    ({"workload": "fusemax", "hardware": ["fusemax"], "axes": {"seq_q": [1024, 0]}}, "axes.seq_q",
     "expected a positive integer, got 0"),
])
def test_errors_name_the_spec_file_and_where_it_gives_the_value(tmp_path, spec, field, fragment):
    path = _write_spec(tmp_path, spec)
    out = run("sweep", str(path), "--out", str(tmp_path / "x.parquet"), "--quiet")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"error: {path}: {field}: " in out.stderr and fragment in out.stderr, out.stderr


@pytest.mark.parametrize("axis, field, fragment", [
    ({"logrange": [512, 4096], "nmu": 4}, "axes.seq.nmu", "unknown key for a logrange axis"),
    ({"range": [512, 4096, 512], "logrange": [512, 4096]}, "axes.seq", "gives both logrange and range"),
    ({"range": [1, 3], "step": 1}, "axes.seq.step", "unknown key for a range axis"),
    ({"zip": {"seq": [512]}, "num": 2}, "axes.seq.num", "unknown key for a zip axis"),
])
def test_unknown_axis_keys_are_refused(tmp_path, axis, field, fragment):
    path = _write_spec(tmp_path, {**SPEC, "axes": {"seq": axis}})
    out = run("sweep", str(path), "--out", str(tmp_path / "x.parquet"), "--quiet")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{path}: {field}: " in out.stderr and fragment in out.stderr, out.stderr


def test_logrange_keys_it_takes_still_work():
    # 512 * 8 ** (k / 3), k = 0..3: 512, 1024, 2048, 4096; integer: false keeps the floats
    assert [p["seq"] for p in axis_values("seq", {"logrange": [512, 4096], "num": 4}, "s")] == [512, 1024, 2048, 4096]
    assert [p["x"] for p in axis_values("x", {"logrange": [1, 4], "num": 3, "integer": False}, "s")] == \
        pytest.approx([1.0, 2.0, 4.0])


def test_a_bad_scheduler_address_exits_2(tmp_path):
    pytest.importorskip("distributed")
    path = _write_spec(tmp_path, {"workload": "tts", "hardware": ["b200"], "axes": {"samples": [1, 2]},
                                  "fixed": {"model": "qwen3-0.6b"}})
    out = run("sweep", str(path), "--out", str(tmp_path / "x.parquet"), "--quiet", "--scheduler", "bogus")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "error: --scheduler: " in out.stderr and "bogus" in out.stderr


def test_constraints_that_remove_every_point_exit_2(tmp_path):
    path = _write_spec(tmp_path, {**SPEC, "constraints": ["seq > 1000000"]})
    out = run("sweep", str(path), "--out", str(tmp_path / "x.parquet"), "--quiet")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{path}: constraints: " in out.stderr and "removed every one of the 80 points" in out.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_out_that_is_a_folder_is_refused_before_any_point_runs(tmp_path):
    folder = tmp_path / "adir"
    folder.mkdir()
    out = run("sweep", str(_write_spec(tmp_path, SPEC)), "--out", str(folder), "--quiet")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{folder}: --out: is a folder; expected a Parquet file" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "spec.json"]      # no .tmp or .parts left
