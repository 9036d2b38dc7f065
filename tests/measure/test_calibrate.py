"""Calibration arithmetic on made-up probe timings, worked by hand: rates are work / median seconds; a pass
writing into a new tensor reads at the copy rate and the rest of its time is the write; the YAML carries the
rates in the schema's units and the allocator threshold from which outputs are fresh writes."""
import pytest
import yaml

from simlib.hardware import load_hardware
from simlib.measure.calibrate import Probe, rates, write_calibrated_yaml

MIB = 2**20


def probes_and_seconds(copy_rate=20e9, fresh_rate=2e9):
    """Probes whose timings follow the model: a 100 GFLOP/s GEMM, a 256 MiB copy read + written at
    ``copy_rate``, the same pass into new memory (read at the copy rate, written at ``fresh_rate``), 1e9
    elementwise ops/s and 0.25e9 exp/s."""
    items = [(Probe("gemm", lambda: None, 2e9, "fp32"), 0.02),
             (Probe("copy", lambda: None, 2 * 256 * MIB), 2 * 256 * MIB / copy_rate),
             (Probe("fresh", lambda: None, 256 * MIB), 256 * MIB / copy_rate + 256 * MIB / fresh_rate),
             (Probe("elementwise", lambda: None, 1e6), 1e-3),
             (Probe("exp", lambda: None, 1e6), 4e-3)]
    return [p for p, _ in items], [s for _, s in items]


def test_rates_from_work_and_seconds():
    measured = rates(*probes_and_seconds(), fresh_write_min_bytes=32 * MIB)
    assert measured["gemm_flops"] == {"fp32": pytest.approx(100e9)}
    assert measured["bandwidth_bytes_per_s"] == pytest.approx(20e9)
    assert measured["fresh_write_bytes_per_s"] == pytest.approx(2e9)
    assert measured["elementwise_ops_per_s"] == pytest.approx(1e9)
    assert measured["exp_per_s"] == pytest.approx(0.25e9)
    assert measured["fresh_write_min_bytes"] == 32 * MIB
    assert measured["gemm_n"] == {"fp32": 1000}                       # 2 x 1000^3 FLOPs


class _Torch:
    """What write_calibrated_yaml asks of torch on a CPU."""
    __version__ = "test"

    @staticmethod
    def get_num_threads():
        return 2


def test_calibrated_yaml_loads_with_the_schema_units(tmp_path):
    measured = rates(*probes_and_seconds(), fresh_write_min_bytes=32 * MIB)
    path = write_calibrated_yaml(_Torch, "cpu", measured, tmp_path / "host.yaml", name="host")["path"]
    hw = load_hardware(path)
    assert hw.compute["matrix"].peak_tflops["fp32"] == pytest.approx(0.1)
    # elementwise and exp rates are stored as 2 x ops/s, so the engine's slots per second are the ops per second
    assert hw.issue_rate("vector", "fp32") == pytest.approx(1e9)
    assert hw.issue_rate("special", "fp32") == pytest.approx(0.25e9)
    assert hw.dram.bandwidth_bytes_per_s == pytest.approx(20e9)
    assert hw.dram.fresh_write_bandwidth_bytes_per_s == pytest.approx(2e9)
    assert hw.dram.fresh_write_min_bytes == 32 * MIB
    # a host whose new memory writes as fast as a copy gets neither field
    same = rates(*probes_and_seconds(fresh_rate=40e9), fresh_write_min_bytes=32 * MIB)
    path = write_calibrated_yaml(_Torch, "cpu", same, tmp_path / "fast.yaml", name="fast")["path"]
    memory = yaml.safe_load(open(path))["memory"][0]
    assert "fresh_write_bandwidth_bytes_per_s" not in memory and "fresh_write_min_bytes" not in memory
