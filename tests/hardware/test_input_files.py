"""YAML files the loader cannot read as a mapping of scalars exit 2 naming the file, never with a traceback; YAML
merge keys work; ``--sustained`` is refused where it would be ignored."""
import json
import subprocess
import sys

import pytest

from simlib.errors import SimlibInputError
from simlib.hardware import load_hardware


def run(*args):
    return subprocess.run([sys.executable, "-m", "simlib.cli.main", *args], capture_output=True, text=True)


@pytest.mark.parametrize("content, command, fragment", [
    (b"\xff\xfe", ["hardware", "show"], "not UTF-8 text"),                # a UTF-16 byte-order mark, say
    (b"name: caf\xe9\n", ["workload", "show"], "not UTF-8 text"),         # Latin-1
    (b"[1, 2]: 3\n", ["workload", "show"], "line 1: a mapping key must be a scalar"),
    (b"name: x\n? {a: 1}\n: 3\n", ["hardware", "show"], "line 2: a mapping key must be a scalar"),
    (b"name: x\nbuilt: 2020-99-99\n", ["hardware", "show"], "malformed YAML"),   # a date that is no date
])
def test_unreadable_yaml_exits_2_naming_the_file(tmp_path, content, command, fragment):
    path = tmp_path / "b.yaml"
    path.write_bytes(content)
    out = run(*command, str(path))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"error: {path}: {fragment}" in out.stderr, out.stderr


TINY = """name: tiny
family: gpu
clock_ghz: 1.0
processors: {count: 2}
compute:
  tc: {kind: matrix, operations: [mac], peak_tflops: {bf16: 2.0}}
  vec: &vec {kind: vector, operations: [mac, mul, add, max, div], peak_tflops: {fp32: 0.2}}
  vec2: {<<: *vec, peak_tflops: {fp32: 0.4}}
  sfu: {kind: special, operations: [exp], ops_per_cycle_per_processor: 8}
memory:
  - {name: hbm, kind: dram, bandwidth_bytes_per_s: 1.0e11}
  - &level {name: smem, kind: scratchpad, per: processor, capacity_bytes: 65536}
  - <<: *level
    name: registers
    kind: registers
"""


def test_yaml_merge_keys_are_read_with_the_written_keys_overriding(tmp_path):
    """YAML 1.1 merge: the merged mapping's keys, overridden by those written beside ``<<``."""
    path = tmp_path / "hw.yaml"
    path.write_text(TINY)
    hw = load_hardware(str(path))
    assert hw.compute["vec2"].kind == "vector" and hw.compute["vec2"].operations == ["mac", "mul", "add", "max", "div"]
    assert hw.issue_rate("vec2", "fp32") == 0.4e12 / 2        # its own 0.4 TFLOP/s, not vec's 0.2
    registers = hw.level("registers")
    assert (registers.kind, registers.per, registers.capacity_bytes) == ("registers", "processor", 65536)


def test_a_key_written_twice_beside_a_merge_is_still_refused(tmp_path):
    path = tmp_path / "hw.yaml"
    path.write_text(TINY.replace("vec2: {<<: *vec, peak_tflops: {fp32: 0.4}}",
                                 "vec2: {<<: *vec, kind: vector, kind: matrix}"))
    with pytest.raises(SimlibInputError, match=r"kind: given twice"):
        load_hardware(str(path))


@pytest.mark.parametrize("model", ["attention", "tts", "fusemax", "gna"])
def test_sustained_is_refused_by_the_models_that_would_ignore_it(model):
    out = run("predict", model, "-H", "h100", "--sustained")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "error: --sustained: " in out.stderr and f"the {model} model has no sustained mode" in out.stderr


def test_sustained_still_applies_to_cascades():
    """A GEMV (M = 1) on h200 is DRAM-bound: with --sustained it runs at the measured 4.3 TB/s instead of the
    datasheet's 4.8 TB/s, so it takes 4.8 / 4.3 times as long (hardware/h200.yaml)."""
    times = []
    for flag in ([], ["--sustained"]):
        out = run("predict", "gemm", "-H", "h200", "--set", "M=1", "--json", *flag)
        assert out.returncode == 0, out.stderr
        times.append(json.loads(out.stdout)["time_s"])
    assert times[1] / times[0] == pytest.approx(4.8 / 4.3, rel=1e-9)
