"""Sweeps: the driver expands and loads once and the workers never open the spec's files (a relative path
means the same on any worker), the parts stamp covers those files, each backend really runs and fails cleanly
(queued chunks cancelled, finished ones kept, no worker traceback, no cluster left behind), cascade rows run no
baseline, value errors name the spec, the spec is strict, and dtypes do not depend on which chunks were empty."""
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simlib
from simlib.errors import SimlibInputError
from simlib.sweeps import run as sweep_run
from simlib.sweeps import spec as sweep_spec
from simlib.sweeps.run import evaluate_chunk, prepare, run_sweep
from simlib.sweeps.spec import load_spec


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "simlib.cli.main", *args], capture_output=True, text=True, **kw)


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data) if isinstance(data, dict) else data)      # JSON is YAML
    return path


TINY_GPU = """name: tiny
family: gpu
clock_ghz: 1.0
processors: {{count: 2}}
compute:
  tc: {{kind: matrix, operations: [mac], peak_tflops: {{bf16: {peak}}}}}
  vec: {{kind: vector, operations: [mac, mul, add, max, div], peak_tflops: {{fp32: 0.2}}}}
  sfu: {{kind: special, operations: [exp], ops_per_cycle_per_processor: 8}}
memory:
  - {{name: hbm, kind: dram, bandwidth_bytes_per_s: 1.0e11}}
  - {{name: smem, kind: scratchpad, per: processor, capacity_bytes: 65536}}
"""
GEMM = """name: my-gemm
parameters: {{M: 4096, N: {n}, K: 4096, dtype: bf16}}
ranks: {{M: M, N: N, K: K}}
tensors:
  A: {{ranks: [K, M]}}
  B: {{ranks: [K, N]}}
  Z: {{ranks: [M, N]}}
einsums:
  - Z[m,n] = A[k,m] * B[k,n]
"""
RELATIVE_SPEC = {"workload": "./gemm.yaml", "hardware": ["./gpu.yaml"], "axes": {"M": [1024, 4096]}, "chunk_size": 1}


@pytest.fixture
def two_folders(tmp_path):
    """Folder ``a`` holds the files the spec means (2 TFLOP/s, N = 4096); ``b`` files of the same relative names
    with other contents (20 TFLOP/s, N = 8192), as a worker started elsewhere might find."""
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, peak, n in ((a, 2.0, 4096), (b, 20.0, 8192)):
        folder.mkdir()
        _write(folder / "gpu.yaml", TINY_GPU.format(peak=peak))
        _write(folder / "gemm.yaml", GEMM.format(n=n))
    return a, b


# Z = A^T B with N = K = 4096 in bf16 on 2 TFLOP/s: 2 M N K / 2e12 s, compute-bound (its 2 (KM + KN + MN) bytes at
# 1e11 B/s take under 1.4 ms)
EXPECTED_TIMES = [2 * 1024 * 4096 * 4096 / 2e12, 2 * 4096 * 4096 * 4096 / 2e12]


def test_a_chunk_evaluated_from_another_directory_uses_the_drivers_files(two_folders, monkeypatch):
    a, b = two_folders
    monkeypatch.chdir(a)
    prepared = prepare(load_spec(RELATIVE_SPEC))
    monkeypatch.chdir(b)
    rows = pd.concat([evaluate_chunk(prepared, 0, i, i + 1) for i in range(2)], ignore_index=True)
    assert list(rows.M) == [1024, 4096] and list(rows.hardware) == ["./gpu.yaml"] * 2
    assert rows.time_s.tolist() == pytest.approx(EXPECTED_TIMES, rel=1e-12)


def test_a_dask_worker_in_another_directory_gives_the_serial_rows(two_folders, monkeypatch):
    distributed = pytest.importorskip("distributed")
    a, b = two_folders
    monkeypatch.chdir(b)                      # the worker processes start here...
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        monkeypatch.chdir(a)                  # ...the driver runs there
        remote = run_sweep(RELATIVE_SPEC, scheduler=cluster.scheduler_address)
    assert remote.time_s.tolist() == pytest.approx(EXPECTED_TIMES, rel=1e-12)
    pd.testing.assert_frame_equal(remote, run_sweep(RELATIVE_SPEC))


def test_parts_are_refused_after_a_hardware_file_changes(two_folders, monkeypatch):
    """An interrupted sweep's parts were computed from the files as they were; after an edit, resuming would mix
    old and new rows. (The last chunk is bad, so the run stops with the earlier chunks on disk.)"""
    a, _ = two_folders
    monkeypatch.chdir(a)
    spec = _write(a / "spec.json", {**RELATIVE_SPEC, "axes": {"M": [1024, 4096, 0]}})
    first = cli("sweep", str(spec), "--out", "x.parquet", "--quiet")
    assert first.returncode == 2 and "axes.M" in first.stderr, first.stderr
    assert sorted(p.name for p in (a / "x.parquet.parts").glob("*.parquet")) == ["000-0000000.parquet",
                                                                                 "000-0000001.parquet"]
    again = cli("sweep", str(spec), "--out", "x.parquet", "--quiet")      # same files: resumes, stops at M = 0
    assert again.returncode == 2 and "axes.M" in again.stderr, again.stderr
    _write(a / "gpu.yaml", TINY_GPU.format(peak=3.0))
    edited = cli("sweep", str(spec), "--out", "x.parquet", "--quiet")
    assert edited.returncode == 2 and "Traceback" not in edited.stderr
    assert "x.parquet.parts: holds chunks of a different spec, or of this spec with a hardware or workload file " \
           "or simlib's code changed since" in edited.stderr, edited.stderr


def test_parts_stamp_covers_the_model_code(tmp_path):
    """Chunks computed by another version of the models are other rows: the parts stamp hashes the package's
    Python files, so editing one (here in a copy of a package folder) changes it, and an unchanged copy keeps it."""
    prepared = prepare(load_spec({"workload": "gemm", "hardware": ["h100"], "axes": {"M": [1024]},
                                  "fixed": {"N": 1024, "K": 1024, "dtype": "bf16"}}))
    package = tmp_path / "pkg"
    (package / "models").mkdir(parents=True)
    (package / "models" / "model.py").write_text("RATE = 1\n")
    before = sweep_run._stamp(prepared, package)
    assert sweep_run._stamp(prepared, package) == before
    (package / "models" / "model.py").write_text("RATE = 2\n")
    assert sweep_run._stamp(prepared, package) != before


def test_rows_are_the_product_of_the_axes_in_order():
    """Every axis form at once, a chunk size that cuts across axes, and a constraint: the rows are the product
    (last axis fastest) listed by hand, a null kept as null beside 64."""
    spec = {"workload": "attention", "hardware": ["h100"], "chunk_size": 7,
            "axes": {"kernel": ["flash2", "standard"], "tiles": {"zip": {"block_q": [64, 128], "block_kv": [None, 64]}},
                     "batch": {"range": [1, 4, 2]}, "seq": {"logrange": [512, 2048], "num": 3}},
            "fixed": {"heads": 8, "head_dim": 64}, "constraints": ["batch * seq <= 4096"]}
    frame = simlib.sweep(spec)
    rows = [(k, q, kv, batch, seq) for k in ("flash2", "standard") for q, kv in ((64, None), (128, 64))
            for batch, seq in ((1, 512), (1, 1024), (1, 2048), (3, 512), (3, 1024))]
    got = list(zip(frame.kernel, frame.block_q, frame.block_kv, frame.batch, frame.seq))
    assert [(k, q, None if kv is None or kv != kv else kv, b, s) for k, q, kv, b, s in got] == rows
    assert list(frame.columns[:8]) == ["hardware", "kernel", "block_q", "block_kv", "batch", "seq", "heads", "head_dim"]
    assert (frame.heads == 8).all() and (frame.head_dim == 64).all() and (frame.hardware == "h100").all()


def test_the_axes_are_expanded_once_per_sweep_not_per_chunk(monkeypatch):
    calls = []
    original = sweep_spec.expand_axes

    def counted(spec):
        calls.append(1)
        return original(spec)
    monkeypatch.setattr(sweep_spec, "expand_axes", counted)
    monkeypatch.setattr(sweep_run, "expand_axes", counted)
    frame = run_sweep({"workload": "tts", "hardware": ["b200"], "axes": {"samples": {"range": [1, 41]}},
                       "fixed": {"model": "qwen3-0.6b"}, "constraints": ["samples >= 1"], "chunk_size": 4})
    assert len(frame) == 40 and len(calls) == 1


def test_chunks_emptied_by_the_constraints_leave_the_dtypes_alone():
    """The first chunk (seq 512, 1024) is filtered out whole; fits stays bool and the strings stay strings."""
    base = {"workload": "attention", "hardware": ["h100"], "axes": {"seq": [512, 1024, 2048, 4096]},
            "fixed": {"heads": 16, "kernel": "flash2", "block_q": 128, "block_kv": 64}, "chunk_size": 2}
    every = simlib.sweep(base)
    kept = simlib.sweep({**base, "constraints": ["seq >= 2048"]})
    assert list(kept.seq) == [2048, 4096] and kept.fits.dtype == bool
    for column in ("hardware", "kernel", "bound"):
        assert kept[column].dtype == every[column].dtype and kept[column].dtype != object


def test_cascade_rows_run_no_baseline(monkeypatch):
    """attention-1pass names attention-3pass as its baseline; a sweep row keeps only time_s, so only the 1-pass
    cascade is predicted, once per point, and the time is simlib.predict's."""
    import simlib.api
    import simlib.sweeps.evaluators as evaluators
    from simlib.engine.roofline import predict_cascade
    predicted = []

    def spy(bound, hw, sustained=False):
        predicted.append(bound.workload.name)
        return predict_cascade(bound, hw, sustained)
    monkeypatch.setattr(evaluators, "predict_cascade", spy, raising=False)
    monkeypatch.setattr(simlib.api, "predict_cascade", spy)
    frame = simlib.sweep({"workload": "attention-1pass", "hardware": ["h100"], "axes": {"seq_q": [1024, 2048]}})
    assert predicted == ["attention-1pass", "attention-1pass"]
    monkeypatch.undo()
    for row in frame.itertuples():
        assert row.time_s == pytest.approx(simlib.predict("attention-1pass", "h100", seq_q=row.seq_q).time_s,
                                           rel=1e-12)


@pytest.mark.parametrize("spec, field, fragment", [
    ({"workload": "gemm", "hardware": ["a100"], "axes": {"M": [128, 0]}}, "axes.M", "'M' = 0; expected a positive"),
    ({"workload": "gemm", "hardware": ["a100"], "axes": {"M": [128]}, "fixed": {"K": 0}}, "fixed.K", "'K' = 0"),
    ({"workload": "gemm", "hardware": ["a100"], "axes": {"mk": {"zip": {"M": [64, 1.5], "K": [64, 64]}}}},
     "axes.mk.zip.M", "'M' = 1.5 is not a whole number"),
    # M1 = seq_kv / block_kv: the axis that varies is named, not the fixed seq_kv
    ({"workload": "attention-1pass", "hardware": ["h100"], "axes": {"block_kv": [256, 300]},
      "fixed": {"seq_kv": 4096}}, "axes.block_kv", "'seq_kv / block_kv' = 13.6533 is not a whole number"),
])
def test_cascade_rank_errors_name_the_spec(tmp_path, spec, field, fragment):
    with pytest.raises(SimlibInputError) as info:
        simlib.sweep(str(_write(tmp_path / "spec.json", spec)))
    assert info.value.source == str(tmp_path / "spec.json") and info.value.field == field, str(info.value)
    assert fragment in info.value.message


@pytest.mark.parametrize("change, field, fragment", [
    ({"chunk_size": True}, "chunk_size", "expected a number, got True"),
    ({"chunk_size": "100"}, "chunk_size", "expected a number, got '100'"),
    ({"axes": {"seq": {"logrange": [512, 4096], "num": True}}}, "axes.seq.num", "got True"),
    ({"axes": {"seq": {"logrange": [512, 4096], "num": 2.5}}}, "axes.seq.num", "got 2.5"),
    ({"axes": {"seq": {"logrange": [512, 4096], "integer": "no"}}}, "axes.seq.integer",
     "expected true or false, got 'no'"),
    ({"axes": {"seq": {"logrange": [1, 1e20], "num": 3}}}, "axes.seq.logrange", "past the largest 64-bit integer"),
    ({"axes": {"seq": {"range": [True, 3]}}}, "axes.seq.range", "expected whole numbers [start, stop, step]"),
    ({"hardware": ["a100", 5]}, "hardware.1", "valid string"),
    ({"source_file": "/elsewhere.yaml"}, "source_file", "unknown field"),
])
def test_the_spec_is_strict(tmp_path, change, field, fragment):
    spec = {"workload": "attention", "hardware": ["a100"], "axes": {"seq": [512]}, **change}
    path = _write(tmp_path / "spec.json", spec)
    with pytest.raises(SimlibInputError) as info:
        simlib.sweep(str(path))
    assert info.value.source == str(path) and info.value.field == field and fragment in info.value.message, \
        str(info.value)


def test_logrange_keeps_whole_float_counts_and_floats_past_int64():
    assert [p["x"] for p in sweep_spec.axis_values("x", {"logrange": [1, 100], "num": 3.0}, "s")] == [1, 10, 100]
    values = [p["x"] for p in sweep_spec.axis_values("x", {"logrange": [1, 1e20], "num": 3, "integer": False}, "s")]
    assert values == pytest.approx([1.0, 1e10, 1e20])


# --- backends --------------------------------------------------------------------------------------------------
BAD_LAST = {"workload": "gemm", "hardware": ["a100"], "axes": {"M": [64, 128, 256, 512, 0]}, "chunk_size": 1}


def test_local_processes_keep_the_finished_chunks_when_a_late_one_fails(tmp_path):
    """Every chunk before the bad last one had started when it failed, so each finishes and is kept, as in the
    serial run."""
    path = _write(tmp_path / "spec.json", BAD_LAST)
    out = cli("sweep", str(path), "--out", str(tmp_path / "x.parquet"), "--quiet", "--processes", "2")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"{path}: axes.M: 'M' = 0" in out.stderr
    kept = sorted(p.name for p in (tmp_path / "x.parquet.parts").glob("*.parquet"))
    assert kept == [f"000-000000{i}.parquet" for i in range(4)]
    assert list(pd.read_parquet(tmp_path / "x.parquet.parts" / "000-0000003.parquet").M) == [512]


def test_a_failing_chunk_cancels_the_queued_ones(tmp_path, monkeypatch):
    """Ten chunks on two workers (threads standing in for processes, so that the test can see which chunks
    ran); chunk 2 fails. The chunks still queued then are cancelled, not run, and every chunk that ran is on
    disk."""
    ran, lock = [], threading.Lock()
    original = sweep_run._evaluate_chunk

    def chunk(prepared, hw_index, start, stop):
        with lock:
            ran.append(start)
        if start == 2:
            raise SimlibInputError("sweep", "seq", "bad")
        time.sleep(0.2)
        return original(prepared, hw_index, start, stop)
    monkeypatch.setattr(sweep_run, "_evaluate_chunk", chunk)
    monkeypatch.setattr(sweep_run, "ProcessPoolExecutor", ThreadPoolExecutor)
    spec = {"workload": "tts", "hardware": ["b200"], "axes": {"samples": {"range": [1, 11]}},
            "fixed": {"model": "qwen3-0.6b"}, "chunk_size": 1}
    out = tmp_path / "x.parquet"
    with pytest.raises(SimlibInputError, match="bad"):
        run_sweep(spec, out=out, processes=2)
    on_disk = sorted(int(p.stem.split("-")[1]) for p in Path(str(out) + ".parts").glob("*.parquet"))
    assert len(ran) <= 6                                    # 0, 1, 2 and at most the next two or three
    assert on_disk == sorted(set(ran) - {2})


def test_local_processes_run_every_chunk_on_the_pool(monkeypatch):
    """The pool is really used, with the worker count given, and gives the in-process rows."""
    seen = {}

    class Pool(ProcessPoolExecutor):
        def __init__(self, max_workers=None, **kw):
            seen["workers"], seen["submitted"] = max_workers, 0
            super().__init__(max_workers=max_workers, **kw)

        def submit(self, *args, **kw):
            seen["submitted"] += 1
            return super().submit(*args, **kw)
    monkeypatch.setattr(sweep_run, "ProcessPoolExecutor", Pool)
    spec = {"workload": "tts", "hardware": ["b200", "h100"], "axes": {"samples": {"range": [1, 8]}},
            "fixed": {"model": "qwen3-0.6b"}, "chunk_size": 3}
    pooled = run_sweep(spec, processes=3)
    assert seen == {"workers": 3, "submitted": 2 * 3}
    pd.testing.assert_frame_equal(pooled, run_sweep(spec))


@pytest.fixture
def clusters(monkeypatch):
    """Every LocalCluster the sweep starts, with the worker count it asked for."""
    distributed = pytest.importorskip("distributed")
    started = []

    class Cluster(distributed.LocalCluster):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            started.append((self, kw.get("n_workers")))
    monkeypatch.setattr(distributed, "LocalCluster", Cluster)
    return started


def test_dask_local_runs_on_a_cluster_of_the_given_size_and_closes_it(clusters):
    spec = {"workload": "tts", "hardware": ["b200"], "axes": {"samples": {"range": [1, 8]}},
            "fixed": {"model": "qwen3-0.6b"}, "chunk_size": 3}
    frame = run_sweep(spec, scheduler="local", processes=3)
    assert [n for _, n in clusters] == [3]
    cluster = clusters[0][0]
    assert cluster.status.name == "closed"
    pd.testing.assert_frame_equal(frame, run_sweep(spec))


def test_dask_local_closes_its_cluster_after_an_input_error(clusters):
    with pytest.raises(SimlibInputError, match="'M' = 0"):
        run_sweep(BAD_LAST, scheduler="local")
    assert [n for _, n in clusters] == [2] and clusters[0][0].status.name == "closed"


def test_processes_with_a_scheduler_address_are_refused():
    with pytest.raises(SimlibInputError) as info:
        run_sweep(BAD_LAST, scheduler="tcp://127.0.0.1:8786", processes=4)
    assert info.value.source == "--processes" and "--scheduler local" in info.value.message


def test_a_bad_chunk_on_dask_is_one_line_without_a_worker_traceback(tmp_path):
    pytest.importorskip("distributed")
    path = _write(tmp_path / "spec.json", BAD_LAST)
    out = cli("sweep", str(path), "--out", str(tmp_path / "x.parquet"), "--quiet", "--scheduler", "local")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "Compute Failed" not in out.stderr, out.stderr
    assert f"error: {path}: axes.M: 'M' = 0" in out.stderr
