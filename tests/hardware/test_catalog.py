"""Every shipped hardware YAML loads and matches the reference table (reference/hardware.md, copied to
tests/data/reference_hardware.csv); spatial arrays match reference/fusemax.md."""
import csv
import math

import pytest

from simlib.errors import SimlibInputError
from simlib.hardware import hardware_names, load_hardware

SHIPPED = ["a100", "h100", "h200", "b200", "fusemax", "flat"]


def _reference_rows(data_dir):
    lines = [l for l in (data_dir / "reference_hardware.csv").read_text().splitlines() if not l.startswith("#")]
    return list(csv.DictReader(lines))


def test_every_required_device_is_shipped():
    assert set(SHIPPED) <= set(hardware_names())


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_yaml_loads(name):
    hw = load_hardware(name)
    assert hw.name == name
    assert hw.memory[0].kind == "dram"


def test_gpu_numbers_match_reference_table(data_dir):
    for row in _reference_rows(data_dir):
        hw = load_hardware(row["name"])
        assert hw.processors.count == int(row["sms"])
        # dense BF16 peak: the YAML keeps the datasheet's extra digit (989.4 vs 989), so 0.1 % tolerance
        assert hw.peak_flops("bf16") == pytest.approx(float(row["bf16_tflops"]) * 1e12, rel=1e-3)
        for dtype in ("fp8", "fp4"):
            if row[f"{dtype}_tflops"]:
                assert hw.peak_flops(dtype) == pytest.approx(float(row[f"{dtype}_tflops"]) * 1e12, rel=1e-3)
            else:
                assert hw.peak_flops(dtype) is None
        assert hw.dram.bandwidth_bytes_per_s == pytest.approx(float(row["hbm_tb_s"]) * 1e12, rel=1e-9)
        if row["hbm_gb"]:
            assert hw.dram.capacity_bytes == pytest.approx(float(row["hbm_gb"]) * 1e9)
        levels = {lvl.name: lvl for lvl in hw.memory}
        if row["l2_mb"]:
            assert levels["l2"].capacity_bytes == pytest.approx(float(row["l2_mb"]) * 1e6)
        assert levels["smem"].capacity_bytes == float(row["smem_kb"]) * 1024
        assert levels["registers"].capacity_bytes == float(row["regs_kb"]) * 1024
        assert hw.interconnect.nvlink_bytes_per_s == pytest.approx(float(row["nvlink_gb_s"]) * 1e9)
        if row["fp32_tflops"]:
            assert 2 * hw.issue_rate("cuda_cores", "fp32") == pytest.approx(float(row["fp32_tflops"]) * 1e12,
                                                                            rel=2e-3)


def test_h100_sfu_rate_matches_flashattention3_figure():
    # FlashAttention-3 paper (via reference/hardware.md): H100 SXM5 has about 3.9 TFLOP/s of special functions.
    hw = load_hardware("h100")
    assert hw.issue_rate("sfu", "fp32") == pytest.approx(3.9e12, rel=0.02)


def test_spatial_arrays_match_fusemax_reference():
    # reference/fusemax.md: 940 MHz, 16-bit words, 256x256 + 256 PEs, 16 / 32 MiB buffers, RF 16/32 and 4/16
    # words, DRAM 400 * 2^30 B/s.
    for name, buffer_mib, rf2d, rf1d in (("fusemax", 16, 16, 32), ("flat", 32, 4, 16)):
        hw = load_hardware(name)
        assert hw.clock_hz == 940e6 and hw.word_bits == 16
        assert hw.compute["pe_2d"].pe_count == 256 * 256 and hw.compute["pe_1d"].pe_count == 256
        levels = {lvl.name: lvl for lvl in hw.memory}
        assert hw.level_capacity_bytes(levels["global_buffer"]) == buffer_mib * 2 ** 20
        assert hw.level_capacity_bytes(levels["rf_2d"]) == rf2d * 2 * 256 * 256
        assert hw.level_capacity_bytes(levels["rf_1d"]) == rf1d * 2 * 256
        assert hw.dram.bandwidth_bytes_per_s == 400 * 2 ** 30
        # 2D array: 65536 MACs per cycle at 940 MHz
        assert hw.issue_rate("pe_2d", "fp16") == 65536 * 940e6
    assert "exp" in load_hardware("flat").compute["pe_1d"].operations
    assert load_hardware("fusemax").op_decomposition["exp"] == {"mac": 6, "add": 1}


def test_a_user_device_is_one_yaml_file_anywhere(tmp_path, data_dir):
    path = tmp_path / "my_device.yaml"
    path.write_text((data_dir / "tiny_gpu.yaml").read_text())
    hw = load_hardware(str(path))
    assert hw.name == "tiny"
    # 2 TFLOP/s bf16 tensor peak -> 1e12 MAC slots/s
    assert hw.issue_rate("tc", "bf16") == 1e12
    # SFU: 8 ops/clk/SM x 2 SMs x 1 GHz
    assert hw.issue_rate("sfu", "fp32") == 16e9


@pytest.mark.parametrize("fixture, field", [
    ("hardware_unknown_field.yaml", "compute.tc.peak_tflop"),
    ("hardware_negative.yaml", "memory.0.bandwidth_bytes_per_s"),
])
def test_bad_hardware_names_file_and_field(data_dir, fixture, field):
    with pytest.raises(SimlibInputError) as info:
        load_hardware(str(data_dir / "bad" / fixture))
    assert info.value.source.endswith(fixture)
    assert info.value.field == field


def test_misspelled_field_suggests_the_right_one(data_dir):
    with pytest.raises(SimlibInputError, match="did you mean 'peak_tflops'"):
        load_hardware(str(data_dir / "bad" / "hardware_unknown_field.yaml"))


def test_unknown_catalog_name_suggests_close_match():
    with pytest.raises(SimlibInputError, match="did you mean 'h100'"):
        load_hardware("h10")


TINY = """name: tiny
family: gpu
clock_ghz: 1.0
processors: {count: 2}
compute:
  tc: {kind: matrix, operations: [mac], peak_tflops: {bf16: 2.0}}
  vec: {kind: vector, operations: [mac, mul, add, max, div], peak_tflops: {fp32: 0.2}}
  sfu: {kind: special, operations: [exp], ops_per_cycle_per_processor: 8}
memory:
  - {name: hbm, kind: dram, bandwidth_bytes_per_s: 1.0e11}
  - {name: smem, kind: scratchpad, per: processor, capacity_bytes: 65536}
"""


@pytest.mark.parametrize("old, new, field, fragment", [
    ("clock_ghz: 1.0", "clock_ghz: true", "clock_ghz", "expected a number, got True"),
    ("count: 2}", "count: '2'}", "processors.count", "expected a number, got '2'"),
    ("bandwidth_bytes_per_s: 1.0e11", "bandwidth_bytes_per_s: .inf", "memory.0.bandwidth_bytes_per_s", "finite"),
    ("{name: hbm, kind: dram, bandwidth_bytes_per_s: 1.0e11}", "{name: hbm, kind: dram}", None,
     "hbm (dram) needs bandwidth_bytes_per_s"),
    ("name: smem,", "name: hbm,", None, "memory level names must differ"),
    ("processors: {count: 2}\n", "op_decomposition: {div: {max: 2}, max: {div: 1}}\nprocessors: {count: 2}\n",
     None, "decomposes into itself"),
    ("processors: {count: 2}\n", "op_decomposition: {div: {mul: -1}}\nprocessors: {count: 2}\n", None,
     "counts must be > 0"),
    ("bf16: 2.0}}", "bf16: 2.0}, sustained_tflops: {bf16: 5.0}}", None, "at most the peak_tflops for bf16"),
    ("family: gpu\n", "family: spatial\n", None, None),       # a spatial part may omit processors, but then...
    # numbers are numbers inside mappings and lists too, and the error names the path down to the value
    ("bf16: 2.0}}", "bf16: true}}", "compute.tc.peak_tflops.bf16", "expected a number, got True"),
    ("bf16: 2.0}}", "bf16: '312'}}", "compute.tc.peak_tflops.bf16", "expected a number, got '312'"),
    ("processors: {count: 2}\n", "op_decomposition: {div: {mul: '6', add: 1}}\nprocessors: {count: 2}\n",
     "op_decomposition.div.mul", "expected a number, got '6'"),
    ("processors: {count: 2}\n", "op_decomposition: {div: {mul: 6, add: true}}\nprocessors: {count: 2}\n",
     "op_decomposition.div.add", "expected a number, got True"),
    ("ops_per_cycle_per_processor: 8}", "mesh: [true, '256'], ops_per_cycle: 1}", "compute.sfu.mesh.0",
     "expected a number, got True"),
    ("ops_per_cycle_per_processor: 8}", "mesh: [256, '256'], ops_per_cycle: 1}", "compute.sfu.mesh.1",
     "expected a number, got '256'"),
    # a single value where a list is declared says so, whatever the list holds ('int8' is a dtype, not an int)
    ("ops_per_cycle_per_processor: 8}", "ops_per_cycle_per_processor: 8, dtypes: fp16}", "compute.sfu.dtypes",
     "expected a list, got 'fp16'"),
    ("ops_per_cycle_per_processor: 8}", "mesh: 256x256, ops_per_cycle: 1}", "compute.sfu.mesh",
     "expected a list, got '256x256'"),
    # an empty decomposition would make the operation free
    ("processors: {count: 2}\n", "op_decomposition: {div: {}}\nprocessors: {count: 2}\n", None,
     "op_decomposition.div: expected the operations div decomposes into"),
    # a sustained bandwidth is at most the level's peak, as sustained_tflops is at most peak_tflops
    ("bandwidth_bytes_per_s: 1.0e11}", "bandwidth_bytes_per_s: 1.0e11, sustained_bandwidth_bytes_per_s: 2.0e11}",
     "memory.0.sustained_bandwidth_bytes_per_s", "expected at most bandwidth_bytes_per_s (1e+11), got 2e+11"),
    ("capacity_bytes: 65536}", "capacity_bytes: 65536, sustained_bandwidth_bytes_per_s: 2.0e11}",
     "memory.1.sustained_bandwidth_bytes_per_s", "needs bandwidth_bytes_per_s"),
    # the loader records the file a description came from; one written in the YAML would name another file
    ("family: gpu\n", "family: gpu\nsource_file: /elsewhere/other.yaml\n", "source_file", "unknown field"),
])
def test_bad_hardware_values(tmp_path, old, new, field, fragment):
    assert old in TINY
    text = TINY.replace(old, new)
    if fragment is None:                                       # ...a per-processor level cannot exist
        text = text.replace("processors: {count: 2}\n", "").replace("ops_per_cycle_per_processor: 8",
                                                                     "peak_tflops: {fp32: 0.1}")
        fragment = "per 'processor' needs 'processors'"
    path = tmp_path / "hw.yaml"
    path.write_text(text)
    with pytest.raises(SimlibInputError) as info:
        load_hardware(str(path))
    assert fragment in str(info.value) and (field is None or info.value.field == field), str(info.value)
    assert info.value.source == str(path) and "/elsewhere" not in str(info.value)
    assert len(info.value.message) < 250                       # no dump of the whole file


def test_yaml_floats_without_a_dot_or_exponent_sign_are_numbers(tmp_path):
    path = tmp_path / "hw.yaml"
    path.write_text(TINY.replace("1.0e11", "1e11").replace("65536", "6.5536e4"))
    hw = load_hardware(str(path))
    assert hw.dram.bandwidth_bytes_per_s == 1e11 and hw.level("smem").capacity_bytes == 65536


def test_hardware_show_gives_special_units_in_operations_not_doubled():
    # H100 SFU: 16 exp/clk/SM x 132 SMs x 1.83 GHz = 3.865 Top/s (one op per slot); tensor cores: MAC = 2 FLOPs
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "simlib.cli.main", "hardware", "show", "h100"], capture_output=True,
                         text=True).stdout
    assert "any: 3.865 Top/s" in out and "bf16: 989.4 Top/s" in out
