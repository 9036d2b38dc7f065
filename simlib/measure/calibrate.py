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
from pathlib import Path

import numpy as np
import yaml

from simlib.measure.runner import _cpu_name, _dtype, _time, _torch


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


def calibrate(out: str | Path, name: str | None = None, quick: bool = False, echo=print) -> dict:
    """Measure and write the YAML; returns the measured figures."""
    torch = _torch()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    repeats = 3 if quick else 7
    gemm_n = (256 if quick else 2048) if device == "cpu" else (2048 if quick else 8192)
    dtypes = ["fp32", "bf16"] if device == "cpu" else ["fp32", "fp16", "bf16"]
    matrix = {}
    for dtype in dtypes:
        # a 256^3 probe sizes the real run to about a quarter second (a dtype the host emulates stays small)
        probe = torch.randn(256, 256, device=device).to(_dtype(torch, dtype))
        rate = 2 * 256 ** 3 / _median_seconds(torch, lambda: torch.matmul(probe, probe), device, 1)
        n = int(min(gemm_n, max(256, (rate * 0.25 / 2) ** (1 / 3))))
        a = torch.randn(n, n, device=device).to(_dtype(torch, dtype))
        matrix[dtype] = 2 * n ** 3 / _median_seconds(torch, lambda: torch.matmul(a, a), device, 2 * repeats)
        echo(f"gemm {dtype} {n}^3: {matrix[dtype] / 1e9:.2f} GFLOP/s")
    copy_bytes = (16 if quick else 256) * 2**20
    src = torch.empty(copy_bytes // 4, device=device, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    bandwidth = 2 * copy_bytes / _median_seconds(torch, lambda: dst.copy_(src), device, repeats)
    echo(f"copy {copy_bytes >> 20} MiB: {bandwidth / 1e9:.2f} GB/s (read + written)")
    # the same elementwise pass into a newly allocated output: read at the copy rate, the rest is the fresh write
    fresh_seconds = _median_seconds(torch, lambda: torch.mul(src, 0.5), device, repeats)
    fresh = copy_bytes / max(fresh_seconds - copy_bytes / bandwidth, 1e-9)
    echo(f"write into new memory: {fresh / 1e9:.2f} GB/s")
    resident = torch.rand(2**16, device=device) + 0.5          # 256 KiB: stays in cache
    out_buf = torch.empty_like(resident)
    loops = 8 if quick else 64

    def loop(fn):
        def run():
            for _ in range(loops):
                fn()
        return run
    elementwise = loops * resident.numel() / _median_seconds(
        torch, loop(lambda: torch.mul(resident, resident, out=out_buf)), device, repeats)
    exps = loops * resident.numel() / _median_seconds(
        torch, loop(lambda: torch.exp(resident, out=out_buf)), device, repeats)
    echo(f"elementwise: {elementwise / 1e9:.2f} Gop/s, exp: {exps / 1e9:.2f} Gexp/s")
    processors = torch.get_num_threads() if device == "cpu" else torch.cuda.get_device_properties(0).multi_processor_count
    device_name = _cpu_name() if device == "cpu" else torch.cuda.get_device_properties(0).name
    name = name or re.sub(r"[^a-z0-9]+", "-", f"{device}-{device_name}-{processors}".lower()).strip("-")
    spec = {
        "name": name, "family": "cpu" if device == "cpu" else "gpu",
        "description": f"{device_name}, {processors} {'cores' if device == 'cpu' else 'SMs'}; rates measured by "
                       f"simlib calibrate on {datetime.date.today().isoformat()} (torch {torch.__version__})",
        "clock_ghz": _clock_ghz() if device == "cpu" else 1.0,
        "processors": {"count": processors, "kind": "core" if device == "cpu" else "SM"},
        "compute": {
            "matrix": {"kind": "matrix", "operations": ["mac"],
                       "peak_tflops": {d: round(r / 1e12, 6) for d, r in matrix.items()}},
            "vector": {"kind": "vector", "operations": ["mac", "mul", "add", "max", "div"],
                       "peak_tflops": {"fp32": round(2 * elementwise / 1e12, 6)}},
            "special": {"kind": "special", "operations": ["exp"],
                        "peak_tflops": {"fp32": round(2 * exps / 1e12, 6)}}},
        "memory": [{"name": "dram", "kind": "dram", "bandwidth_bytes_per_s": float(f"{bandwidth:.4g}"),
                    **({"fresh_write_bandwidth_bytes_per_s": float(f"{fresh:.4g}")} if fresh < bandwidth else {})},
                   *(_cpu_caches() if device == "cpu" else [])],
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Calibrated by `simlib calibrate`: sustained rates of this machine (GEMM per dtype, copy bandwidth,\n"
              "# cache-resident elementwise and exp throughput), not datasheet peaks.\n")
    out.write_text(header + yaml.safe_dump(spec, sort_keys=False))
    return {"gemm_flops": matrix, "bandwidth_bytes_per_s": bandwidth, "fresh_write_bytes_per_s": fresh,
            "elementwise_ops_per_s": elementwise,
            "exp_per_s": exps, "path": str(out), "name": name}
