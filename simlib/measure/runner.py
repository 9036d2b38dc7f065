"""Timing attention and GEMMs with torch, one trace row per case.

Each case runs ``warmup`` times, then ``repeats`` times, synchronizing the device around every run (CUDA events
on a GPU, wall clock on a CPU), once per round of the grid (``rounds``); the row keeps the median and the 10th
and 90th percentiles of every run so far. The trace file is rewritten in one step after every case, so a later
failure or Ctrl-C leaves every finished measurement in it.
"""
from __future__ import annotations

import csv
import datetime
import os
import platform
import time
from pathlib import Path

import numpy as np

from simlib.errors import SimlibInputError
from simlib.measure.grid import MeasureGrid, expand

PROBE_EVERY = 24
TRACE_COLUMNS = ("op", "backend", "dtype", "batch", "heads", "seq_q", "seq_kv", "head_dim", "causal", "m", "n", "k",
                 "measured_s", "p10_s", "p90_s", "repeats", "device", "hardware")
NUMERIC_COLUMNS = ("batch", "heads", "seq_q", "seq_kv", "head_dim", "m", "n", "k", "measured_s", "p10_s", "p90_s",
                   "repeats")


def _torch():
    try:
        import torch
    except ImportError:
        raise SimlibInputError("torch", None, "measuring needs torch: pip install 'simlib[torch]' "
                                              "(torch==2.13.0)") from None
    return torch


def _dtype(torch, name: str):
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
            "fp8": getattr(torch, "float8_e4m3fn", None)}[name]


def _backend(name: str):
    from torch.nn.attention import SDPBackend
    return {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}[name]


def device_facts(torch, device: str) -> dict:
    facts = {"device": device, "torch": torch.__version__, "host_cpu": platform.processor() or platform.machine()}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        facts.update({"device_name": props.name, "sm_count": props.multi_processor_count,
                      "memory_bytes": props.total_memory})
    else:
        facts.update({"device_name": _cpu_name(), "threads": torch.get_num_threads()})
    return facts


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


MALLOC_THRESHOLD_BYTES = 32 * 2**20


def pin_malloc_threshold(threshold: int = MALLOC_THRESHOLD_BYTES) -> int | None:
    """Fix glibc malloc's mmap and trim thresholds (``mallopt``), so that on a CPU every tensor of ``threshold``
    bytes or more is mapped afresh (and its pages zeroed by the OS on first touch) and smaller ones reuse freed
    memory. Left dynamic, glibc raises the mmap threshold to the size of blocks freed (up to 32 MiB on 64-bit
    hosts) and serves large blocks from a grown heap when it can, so whether an output pays for new pages would
    depend on what ran before it. 32 MiB is where the dynamic threshold tops out. Returns the threshold, or None
    where the C library has no mallopt or refuses the setting (the allocator is then left as it is)."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    m_trim_threshold, m_mmap_threshold = -1, -3
    # the heap keeps at most the threshold free at its top, so a block of the threshold's size or more (plus its
    # header) cannot be carved from there and is mapped, while freed smaller blocks stay for reuse
    if mallopt(m_mmap_threshold, threshold) != 1 or mallopt(m_trim_threshold, threshold) != 1:
        return None
    return threshold


def shift_heap(torch, device: str):
    """A block of random size (4 KiB to 256 KiB) to allocate before a case's inputs and free after, so that
    repeated measurements do not all place their tensors the same way: memory layout can bias timings
    (Mytkowicz et al., "Producing wrong data without doing anything obviously wrong!", ASPLOS 2009), and pooling
    runs over random placements keeps one placement from biasing every run of a case. None on a GPU (its
    caching allocator)."""
    if device != "cpu":
        return None
    return torch.empty(int(np.random.default_rng().integers(1, 65)) * 1024, dtype=torch.float32)


def _make(torch, case: dict, device: str):
    """The callable a case times, with its inputs allocated once (after a random shift of the heap)."""
    dtype = _dtype(torch, case["dtype"])
    if dtype is None:
        raise SimlibInputError("grid", "dtype", f"this torch has no {case['dtype']}")
    shift = shift_heap(torch, device)
    call = _inputs_and_call(torch, case, device, dtype)
    del shift
    return call


def _inputs_and_call(torch, case: dict, device: str, dtype):
    """Random inputs of the case's shapes and the call that times it (GEMM, unfused attention or SDPA)."""
    if case["op"] == "gemm":
        a = torch.randn(case["m"], case["k"], device=device).to(dtype)
        b = torch.randn(case["k"], case["n"], device=device).to(dtype)
        return lambda: torch.matmul(a, b)
    shape_q = (case["batch"], case["heads"], case["seq_q"], case["head_dim"])
    shape_kv = (case["batch"], case["heads"], case["seq_kv"], case["head_dim"])
    q = torch.randn(shape_q, device=device, dtype=dtype)
    k = torch.randn(shape_kv, device=device, dtype=dtype)
    v = torch.randn(shape_kv, device=device, dtype=dtype)
    causal = bool(case["causal"])
    if case["op"] == "attention_unfused":
        scale = case["head_dim"] ** -0.5
        mask = torch.ones(case["seq_q"], case["seq_kv"], device=device, dtype=torch.bool).tril(
            case["seq_kv"] - case["seq_q"]) if causal else None

        def unfused():
            s = torch.matmul(q, k.transpose(-2, -1)) * scale
            if mask is not None:
                s = s.masked_fill(~mask, float("-inf"))
            return torch.matmul(torch.softmax(s, dim=-1), v)
        return unfused
    from torch.nn.attention import sdpa_kernel
    backend = _backend(case["backend"])

    def sdpa():
        with sdpa_kernel(backend):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return sdpa


def _time(torch, fn, device: str, warmup: int, repeats: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return np.array(times)


def check_backends(torch, cases: list[dict], device: str, source: str = "grid") -> None:
    """Every asked SDPA backend must run on this device and dtype: a tiny call each, before measuring."""
    from torch.nn.attention import sdpa_kernel
    asked = sorted({(c["backend"], c["dtype"], c.get("section", "attention")) for c in cases if c["op"] == "sdpa"})
    for backend, dtype, section in asked:
        q = torch.randn(1, 1, 16, 64, device=device, dtype=_dtype(torch, dtype))
        try:
            with sdpa_kernel(_backend(backend)):
                torch.nn.functional.scaled_dot_product_attention(q, q, q)
        except RuntimeError:
            raise SimlibInputError(source, f"{section}.backends", f"SDPA backend '{backend}' is not available "
                                                                  f"on {device} for {dtype}") from None


def check_writable(out: Path, option: str, suffixes: tuple[str, ...], what: str) -> None:
    """``out`` must be a file of one of ``suffixes`` that we can write (its folder is created): checked before
    anything is measured, so a bad path costs no measuring time."""
    if out.suffix not in suffixes:
        raise SimlibInputError(str(out), option, f"expected a {' or '.join(suffixes)} {what} file")
    if out.is_dir():
        raise SimlibInputError(str(out), option, f"is a folder; expected a {what} file")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.with_name(out.name + ".partial")
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise SimlibInputError(str(out), option, f"cannot write the {what} there: {exc.strerror or exc}") from None


def check_output(out: Path) -> None:
    """The trace path: a .csv or .parquet file we can write."""
    check_writable(out, "--out", (".csv", ".parquet"), "trace")


def _write_trace(out: Path, header: list[str], cases: list[dict], times: dict[int, list[float]], facts: dict,
                 hardware: str) -> int:
    """The trace from every case measured so far (grid order), replacing the file in one step, so an interrupted
    run never leaves a half-written row; returns the rows written."""
    partial = out.with_name(out.name + ".partial")
    try:
        written = _write_rows(partial, header, cases, times, facts, hardware, parquet=out.suffix == ".parquet")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return written


def _write_rows(path: Path, header: list[str], cases: list[dict], times: dict[int, list[float]], facts: dict,
                hardware: str, parquet: bool = False) -> int:
    """Header lines, then one row per measured case: median, 10th and 90th percentile of its pooled runs. As
    Parquet, the header lines are the file's key-value metadata."""
    rows = []
    for index, case in enumerate(cases):
        if index not in times:
            continue
        sample = np.array(times[index])
        rows.append({**{c: case.get(c, "") for c in TRACE_COLUMNS}, "measured_s": float(np.median(sample)),
                     "p10_s": float(np.percentile(sample, 10)), "p90_s": float(np.percentile(sample, 90)),
                     "repeats": len(sample), "device": facts["device_name"], "hardware": hardware})
    if parquet:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq
        frame = pd.DataFrame(rows, columns=list(TRACE_COLUMNS)).replace("", None)
        for column in NUMERIC_COLUMNS:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = dict(line.split(": ", 1) for line in header if ": " in line)
        pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), **meta}), path)
        return len(rows)
    with path.open("w", newline="") as handle:
        handle.write("".join(f"# {line}\n" for line in header))
        writer = csv.DictWriter(handle, fieldnames=TRACE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def measure(grid: MeasureGrid, out: str | Path, hardware: str, profile: bool = False, echo=print,
            calibrate_out: str | Path | None = None) -> int:
    """Run every case of the grid and write the trace; returns the number of rows written.

    With ``rounds: R`` the grid is visited R times (each round in its own shuffled order, so that no case and no
    calibration probe always follows the same neighbour, and each with its own warm-up), and a row keeps the
    median over all R x repeats runs: on a machine whose speed
    drifts (a shared virtual machine), every case then samples the same spread of machine states. With
    ``calibrate_out`` the calibration probes of ``simlib calibrate`` run before every PROBE_EVERY cases of every
    round, timed as the cases are (warm-up, then ``repeats`` runs), and the hardware YAML is written from their
    pooled medians after each round, so the rates a prediction uses were measured under the same drift as the
    rows it is compared with; the trace then names that YAML."""
    torch = _torch()
    device = grid.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SimlibInputError(grid.source_file or "grid", "device", "cuda asked, but torch sees no GPU")
    cases = expand(grid)
    out = Path(out)
    check_output(out)
    if hardware is not None:
        from simlib.hardware.catalog import load_hardware_given
        load_hardware_given(out, hardware)
        if Path(hardware).is_file():
            # a file given from here: recorded from the trace's folder, where validate looks first, so it finds
            # this file from anywhere and never another of the same name beside the trace
            hardware = os.path.relpath(Path(hardware).resolve(), out.resolve().parent)
    check_backends(torch, cases, device, grid.source_file)
    facts = device_facts(torch, device)
    threshold = pin_malloc_threshold() if device == "cpu" else None
    if threshold is not None:
        facts["malloc_threshold_bytes"] = threshold
    probes = []
    if calibrate_out is not None:
        from simlib.measure.calibrate import calibration_probes, write_from_seconds
        calibrate_out = Path(calibrate_out)
        check_writable(calibrate_out, "--calibrate", (".yaml", ".yml"), "hardware YAML")
        probes = calibration_probes(torch, device)
        hardware = os.path.relpath(calibrate_out.resolve(), out.resolve().parent)
    header = ["simlib trace: measured with simlib measure", f"hardware: {hardware}",
              f"taken: {datetime.date.today().isoformat()}", *(f"{k}: {v}" for k, v in facts.items()),
              f"rounds: {grid.rounds}"]
    times: dict[int, list[float]] = {}
    probe_times: list[list[float]] = [[] for _ in probes]
    order = np.random.default_rng(0)

    def write_calibration() -> bool:
        """The hardware YAML from the probe runs so far (after each round, and when a run stops early, so that
        the rows kept have the YAML the trace names); False when a probe has no run yet (nothing written)."""
        if probes and all(probe_times):
            write_from_seconds(torch, device, probes, [float(np.median(t)) for t in probe_times], threshold,
                               calibrate_out, echo=echo,
                               prefix=f"calibration ({len(probe_times[0])} runs per probe): ")
            return True
        return False

    # the file holds this run's rows from the start: a run stopped before its first row leaves an empty trace,
    # never an earlier run's rows under this run's name
    _write_trace(out, header, cases, times, facts, hardware)
    try:
        for round_number in range(1, grid.rounds + 1):
            visit = range(len(cases)) if grid.rounds == 1 else order.permutation(len(cases))
            for position, index in enumerate(visit):
                if position % PROBE_EVERY == 0:
                    for probe, sample in zip(probes, probe_times):
                        try:
                            sample.extend(_time(torch, probe.make(), device, grid.warmup, grid.repeats))
                        except (RuntimeError, TypeError) as exc:
                            written = write_calibration()
                            raise SimlibInputError(str(calibrate_out), "--calibrate", (
                                f"the {probe.kind} probe failed: {str(exc).splitlines()[0]}; the {len(times)} "
                                f"rows measured are kept in {out}"
                                + ("" if written else f", but {calibrate_out} could not be written"))) from None
                case = cases[index]
                try:
                    sample = _time(torch, _make(torch, case, device), device, grid.warmup, grid.repeats)
                except (RuntimeError, TypeError) as exc:
                    kept = (f"the {len(times)} rows before it are kept" if round_number == 1 else
                            f"the {len(times)} rows of the rounds before are kept")
                    write_calibration()
                    raise SimlibInputError(str(out), case["op"], f"case {index + 1} ({case}) failed: "
                                                                 f"{str(exc).splitlines()[0]}; {kept}") from None
                times.setdefault(int(index), []).extend(sample.tolist())
                _write_trace(out, header, cases, times, facts, hardware)
                echo(f"[{round_number}/{grid.rounds}: {index + 1}/{len(cases)}] {case['op']} {case['backend']} "
                     f"{case['dtype']}: {np.median(sample) * 1e3:.3f} ms")
            write_calibration()
    except KeyboardInterrupt:
        written = write_calibration()
        echo(f"interrupted: {len(times)} rows kept in {out}"
             + (f"; {calibrate_out} written from the probe runs so far" if written else
                f"; {calibrate_out} not written (no probe had run)" if probes else ""))
        raise
    if profile:
        chrome = out.with_suffix(".trace.json")
        try:
            _profile(torch, cases, device, chrome)
        except RuntimeError as exc:
            raise SimlibInputError(str(chrome), "--profile", f"torch.profiler failed: "
                                                             f"{str(exc).splitlines()[0]}; the trace is kept") from None
        echo(f"wrote the profiler's Chrome trace to {chrome}")
    return len(times)


def _profile(torch, cases: list[dict], device: str, path: Path) -> None:
    """One run of every case under torch.profiler, exported as a Chrome trace."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for case in cases:
            _make(torch, case, device)()
    prof.export_chrome_trace(str(path))
