"""``simlib calibrate``: the machine at hand's sustained rates, measured the way the Empirical Roofline Toolkit
does it (large GEMMs per dtype for the matrix rate, large copies for memory bandwidth, a cache-resident loop for
elementwise and exp throughput), plus the rate of writing into newly allocated memory (what every unfused
framework kernel does), written as a hardware YAML that ``simlib predict`` accepts.

Rates go in as the unit's rates (the schema's peak fields): for a calibrated part they are what it sustains.
A MAC counts 2 FLOPs (GEMM: 2·n³ FLOPs); elementwise and exp rates are operations per second, stored as
2·ops/s so that the engine's slots per second (peak / 2) are the measured operations per second.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from simlib.errors import SimlibInputError
from simlib.measure.runner import (_cpu_name, _dtype, _time, _torch, check_writable, pin_malloc_threshold,
                                   shift_heap)


def _median_seconds(torch, fn, device: str, repeats: int) -> float:
    """Median of ``repeats`` synchronized runs after one warm-up (the measure runner's timing)."""
    return float(np.median(_time(torch, fn, device, 1, repeats)))


def _cpu_caches() -> list[dict]:
    """L2 (per core: shared only by the core's own hardware threads) and the last-level cache from sysfs."""
    levels = {}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        siblings = Path("/sys/devices/system/cpu/cpu0/topology/thread_siblings_list").read_text().strip()
    except OSError:
        siblings = "0"
    for index in sorted(base.glob("index*")) if base.exists() else []:
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
            shared = (index / "shared_cpu_list").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction" or level < 2:
            continue
        number = int(re.match(r"\d+", size).group()) * {"K": 2**10, "M": 2**20}.get(size[-1], 1)
        levels[level] = {"name": f"l{level}", "kind": "cache", "capacity_bytes": number,
                         **({"per": "processor"} if shared == siblings else {})}
    return [levels[k] for k in sorted(levels)]


def _clock_ghz() -> float:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return round(float(line.split(":")[1]) / 1e3, 3)
    except (OSError, ValueError):
        pass
    return 1.0


@dataclass(frozen=True)
class Probe:
    """One calibration measurement: what it measures (``gemm`` with its dtype, ``copy``, ``fresh``,
    ``elementwise``, ``exp``), a maker returning the callable to time (GEMMs get new operands each time, placed
    after a random shift of the heap as every measured case's inputs are: see ``shift_heap``), and the work one
    call does (FLOPs, bytes or operations)."""
    kind: str
    make: Callable[[], Callable[[], object]]
    work: float
    dtype: str = "fp32"


def _same(fn):
    return lambda: fn


def calibration_probes(torch, device: str, quick: bool = False) -> list[Probe]:
    """The probes ``calibrate`` times, with their inputs allocated: a GEMM per dtype (sized by a 256^3 probe to
    about a quarter second, so a dtype the host emulates stays small), a large copy, the same pass writing into
    newly allocated memory, and cache-resident elementwise and exp loops."""
    gemm_n = (256 if quick else 2048) if device == "cpu" else (2048 if quick else 8192)
    dtypes = ["fp32", "bf16"] if device == "cpu" else ["fp32", "fp16", "bf16"]
    probes = []
    for dtype in dtypes:
        small = torch.randn(256, 256, device=device).to(_dtype(torch, dtype))
        rate = 2 * 256 ** 3 / _median_seconds(torch, lambda: torch.matmul(small, small), device, 3)
        # a multiple of 256, as the measured GEMMs are: an odd size runs slower and would understate the rate
        n = int(min(gemm_n, max(256, (rate * 0.25 / 2) ** (1 / 3) // 256 * 256)))
        def gemm(n=n, dtype=dtype):
            shift = shift_heap(torch, device)
            a, b = (torch.randn(n, n, device=device).to(_dtype(torch, dtype)) for _ in range(2))
            del shift
            return lambda: torch.matmul(a, b)
        probes.append(Probe("gemm", gemm, 2 * n ** 3, dtype))
    # the quick copy still writes past the allocator threshold (pin_malloc_threshold), so its output is fresh
    copy_bytes = (64 if quick else 256) * 2**20
    src = torch.empty(copy_bytes // 4, device=device, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    probes.append(Probe("copy", _same(lambda: dst.copy_(src)), 2 * copy_bytes))
    probes.append(Probe("fresh", _same(lambda: torch.mul(src, 0.5)), copy_bytes))
    resident = torch.rand(2**16, device=device) + 0.5          # 256 KiB: stays in cache
    out_buf = torch.empty_like(resident)
    loops = 8 if quick else 64

    def loop(fn):
        def run():
            for _ in range(loops):
                fn()
        return run
    probes.append(Probe("elementwise", _same(loop(lambda: torch.mul(resident, resident, out=out_buf))),
                        loops * resident.numel()))
    probes.append(Probe("exp", _same(loop(lambda: torch.exp(resident, out=out_buf))), loops * resident.numel()))
    return probes


def rates(probes: list[Probe], seconds: list[float], fresh_write_min_bytes: int | None = None) -> dict:
    """Rates from each probe's median seconds. The pass writing into a new tensor reads its input at the copy
    rate; the rest of its time is the write into memory the OS hands out (and zeroes) page by page.
    ``fresh_write_min_bytes`` is the allocator threshold from which outputs get such memory (on glibc hosts the
    one ``pin_malloc_threshold`` fixed); None: every output counts as fresh."""
    rate = {p.kind: p.work / s for p, s in zip(probes, seconds) if p.kind != "gemm"}
    bandwidth = rate["copy"]
    fresh, fresh_s = next((p, s) for p, s in zip(probes, seconds) if p.kind == "fresh")
    return {"gemm_flops": {p.dtype: p.work / s for p, s in zip(probes, seconds) if p.kind == "gemm"},
            "gemm_n": {p.dtype: round((p.work / 2) ** (1 / 3)) for p in probes if p.kind == "gemm"},
            "bandwidth_bytes_per_s": bandwidth,
            "fresh_write_bytes_per_s": fresh.work / max(fresh_s - fresh.work / bandwidth, 1e-9),
            "fresh_write_min_bytes": fresh_write_min_bytes,
            "elementwise_ops_per_s": rate["elementwise"], "exp_per_s": rate["exp"]}


def write_calibrated_yaml(torch, device: str, measured: dict, out: str | Path, name: str | None = None) -> dict:
    """The hardware YAML for the measured rates (see the module docstring for the units); returns
    ``measured`` with the path and name added."""
    processors = torch.get_num_threads() if device == "cpu" else torch.cuda.get_device_properties(0).multi_processor_count
    device_name = _cpu_name() if device == "cpu" else torch.cuda.get_device_properties(0).name
    name = name or re.sub(r"[^a-z0-9]+", "-", f"{device}-{device_name}-{processors}".lower()).strip("-")
    bandwidth, fresh = measured["bandwidth_bytes_per_s"], measured["fresh_write_bytes_per_s"]
    spec = {
        "name": name, "family": "cpu" if device == "cpu" else "gpu",
        "description": f"{device_name}, {processors} {'cores' if device == 'cpu' else 'SMs'}; rates measured by "
                       f"simlib calibrate on {datetime.date.today().isoformat()} (torch {torch.__version__}; "
                       + ", ".join(f"{d} GEMM {n}^3" for d, n in measured.get("gemm_n", {}).items()) + ")",
        "clock_ghz": _clock_ghz() if device == "cpu" else 1.0,
        "processors": {"count": processors, "kind": "core" if device == "cpu" else "SM"},
        "compute": {
            "matrix": {"kind": "matrix", "operations": ["mac"],
                       "peak_tflops": {d: round(r / 1e12, 6) for d, r in measured["gemm_flops"].items()}},
            "vector": {"kind": "vector", "operations": ["mac", "mul", "add", "max", "div"],
                       "peak_tflops": {"fp32": round(2 * measured["elementwise_ops_per_s"] / 1e12, 6)}},
            "special": {"kind": "special", "operations": ["exp"],
                        "peak_tflops": {"fp32": round(2 * measured["exp_per_s"] / 1e12, 6)}}},
        "memory": [{"name": "dram", "kind": "dram", "bandwidth_bytes_per_s": float(f"{bandwidth:.4g}"),
                    **({"fresh_write_bandwidth_bytes_per_s": float(f"{fresh:.4g}")} if fresh < bandwidth else {}),
                    **({"fresh_write_min_bytes": measured["fresh_write_min_bytes"]}
                       if fresh < bandwidth and measured.get("fresh_write_min_bytes") else {})},
                   *(_cpu_caches() if device == "cpu" else [])],
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Calibrated by `simlib calibrate`: sustained rates of this machine (GEMM per dtype, copy bandwidth,\n"
              "# cache-resident elementwise and exp throughput), not datasheet peaks.\n")
    out.write_text(header + yaml.safe_dump(spec, sort_keys=False))
    return {**measured, "path": str(out), "name": name}


def calibrate(out: str | Path, name: str | None = None, quick: bool = False, echo=print) -> dict:
    """Measure and write the YAML; returns the measured figures."""
    check_writable(Path(out), "--out", (".yaml", ".yml"), "hardware YAML")
    torch = _torch()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    threshold = pin_malloc_threshold() if device == "cpu" else None
    repeats = 3 if quick else 7
    probes = calibration_probes(torch, device, quick)
    seconds = [_median_seconds(torch, p.make(), device, 2 * repeats if p.kind == "gemm" else repeats)
               for p in probes]
    return write_from_seconds(torch, device, probes, seconds, threshold, out, name, echo)


def write_from_seconds(torch, device: str, probes: list[Probe], seconds: list[float], threshold: int | None,
                       out: str | Path, name: str | None = None, echo=print, prefix: str = "") -> dict:
    """Rates from the probes' median seconds, echoed and written as the hardware YAML (``calibrate`` and
    ``simlib measure --calibrate`` both end here)."""
    measured = rates(probes, seconds, threshold)
    echo(prefix + describe(measured))
    try:
        return write_calibrated_yaml(torch, device, measured, out, name)
    except OSError as exc:
        raise SimlibInputError(str(out), None, f"cannot write the calibrated hardware YAML: {exc}") from None


def describe(measured: dict) -> str:
    gemm = ", ".join(f"{d} {r / 1e9:.2f} ({measured['gemm_n'][d]}^3)" for d, r in measured["gemm_flops"].items())
    return (f"gemm GFLOP/s: {gemm}; copy {measured['bandwidth_bytes_per_s'] / 1e9:.2f} GB/s (read + written); "
            f"write into new memory {measured['fresh_write_bytes_per_s'] / 1e9:.2f} GB/s"
            + (f" from {measured['fresh_write_min_bytes'] / 2**20:.0f} MiB outputs"
               if measured.get("fresh_write_min_bytes") else "") + "; elementwise "
            f"{measured['elementwise_ops_per_s'] / 1e9:.2f} Gop/s; exp {measured['exp_per_s'] / 1e9:.2f} Gexp/s")
