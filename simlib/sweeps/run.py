"""Running a sweep: the product of the axes per hardware, cut into chunks of ``chunk_size`` points, each chunk
evaluated vectorized (one call per chunk where the model allows) and written to ``OUT.parts/`` as it finishes.
A re-run skips the chunks already on disk, so an interrupted sweep loses nothing and repeats nothing; when every
chunk is there they are joined, in order, into the Parquet file and the parts are removed. Chunks can run in
this process, in local worker processes, or on a Dask cluster; the driver writes every chunk, so the result is
the same file whichever ran them.
"""
from __future__ import annotations

import math
import shutil
import hashlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

from simlib.errors import SimlibInputError
from simlib.expressions import evaluate
from simlib.hardware.catalog import load_hardware
from simlib.sweeps.evaluators import VALUE_CHECKS, evaluator_for
from simlib.sweeps.spec import (SweepSpec, axis_field, check_constraints, expand_axes, load_spec, parameter_names,
                               point_count, product_rows)

ALIASES = {"seq_q": "seq", "seq_kv": "seq"}      # parameters a spec may set through one name (seq sets both)


def in_spec(spec: SweepSpec, exc: SimlibInputError) -> SimlibInputError:
    """An error about a parameter's value, re-raised naming the spec file and where the spec gives that parameter
    (``axes.<name>``, ``fixed.<name>``); an error the spec cannot have caused (a hardware or model file's own)
    is left as it is, and one about a parameter the spec leaves at its default names the spec file and it."""
    if exc.source == spec.source_file:
        return exc
    name = (exc.field or "").removeprefix("parameters.")
    for candidate in (name, ALIASES.get(name), *name.split("/")):
        field = axis_field(spec, candidate) if candidate else None
        if field:
            return SimlibInputError(spec.source_file, field, exc.message)
    if exc.source in ("--set", "sweep"):
        return SimlibInputError(spec.source_file, exc.field, exc.message)
    return exc


def _load_hardware(spec: SweepSpec, name: str):
    try:
        return load_hardware(name)
    except SimlibInputError as exc:
        what = ": ".join(part for part in (exc.source, exc.field if exc.field != "hardware" else None, exc.message)
                         if part)
        raise SimlibInputError(spec.source_file, "hardware", what) from None


def check_values(spec: SweepSpec) -> None:
    """Every value each axis takes, and every fixed value, checked as ``simlib predict`` checks it, where the
    workload has such checks (attention, tts; the others check each point as it is evaluated)."""
    check = VALUE_CHECKS.get(spec.workload)
    if check is None:
        return
    _, axes = expand_axes(spec)
    given = [(name, point[name]) for points in axes for point in points for name in point] + \
        list(spec.fixed.items())
    for name, value in given:
        try:
            check(name, value)
        except SimlibInputError as exc:
            raise in_spec(spec, exc) from None


def _hardware_names(hw) -> dict[str, float]:
    smem = hw.level("smem")
    cache = hw.first_level("cache")
    return {"smem": smem.capacity_bytes if smem and smem.capacity_bytes else math.inf,
            "l2": cache.capacity_bytes if cache and cache.capacity_bytes else math.inf,
            "sms": hw.processors.count if hw.processors else 1}


def chunk_plan(spec: SweepSpec) -> list[tuple[int, int, int, int]]:
    """(hardware index, chunk index, first flat index, end) for every chunk."""
    _, axes = expand_axes(spec)
    per_hw = int(np.prod([len(a) for a in axes]))
    plan = []
    for h in range(len(spec.hardware)):
        for c, start in enumerate(range(0, per_hw, spec.chunk_size)):
            plan.append((h, c, start, min(start + spec.chunk_size, per_hw)))
    return plan


def evaluate_chunk(spec: SweepSpec, hw_index: int, start: int, stop: int) -> pd.DataFrame:
    """One chunk: its parameter columns, the constraint filter, the model's outputs. ``hardware`` names the
    hardware each row ran on: the spec's entry, or the evaluator's column where it runs a point elsewhere
    (fusemax: each design on its own architecture)."""
    try:
        return _evaluate_chunk(spec, hw_index, start, stop)
    except SimlibInputError as exc:
        raise in_spec(spec, exc) from None


def _evaluate_chunk(spec: SweepSpec, hw_index: int, start: int, stop: int) -> pd.DataFrame:
    _, axes = expand_axes(spec)
    hw = _load_hardware(spec, spec.hardware[hw_index])
    columns = product_rows(axes, start, stop)
    size = stop - start
    params = {**{k: np.full(size, v, dtype=object if isinstance(v, str) else None) for k, v in spec.fixed.items()},
              **columns}
    keep = np.ones(size, dtype=bool)
    env = {**_hardware_names(hw), **params}
    for node in check_constraints(spec, set(params)):
        keep &= np.broadcast_to(np.asarray(evaluate(node, env), dtype=bool), (size,))
    params = {k: v[keep] for k, v in params.items()}
    outputs = evaluator_for(spec.workload, spec.source_file)(hw, params) if keep.any() else {}
    ran_on = outputs.pop("hardware", None)          # the evaluator's own, where a point does not run on ``hw``
    hardware = np.full(int(keep.sum()), spec.hardware[hw_index], dtype=object) if ran_on is None else \
        np.asarray(ran_on, dtype=object)
    frame = pd.DataFrame({"hardware": hardware, **{k: params[k] for k in parameter_names(spec)}, **outputs})
    return frame


def _claim_parts(parts: Path, spec: SweepSpec) -> None:
    """The parts folder belongs to one spec: its hash is kept there, and parts of another spec are an error."""
    digest = hashlib.sha256(spec.model_dump_json(exclude={"source_file"}).encode()).hexdigest()
    stamp = parts / "spec.sha256"
    if parts.exists() and stamp.exists() and stamp.read_text() != digest:
        raise SimlibInputError(str(parts), None, "holds chunks of a different spec; remove it or use another --out")
    parts.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)


def _part_path(parts: Path, hw_index: int, chunk: int) -> Path:
    return parts / f"{hw_index:03d}-{chunk:07d}.parquet"


def _write_part(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def run_sweep(spec: SweepSpec | str | Path | dict, out: str | Path | None = None, processes: int = 0,
              scheduler: str | None = None, progress: bool = False) -> pd.DataFrame:
    """Evaluate every point; with ``out`` the result is also written as Parquet (resumably)."""
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    evaluator_for(spec.workload, spec.source_file, check=parameter_names(spec), hardware=spec.hardware)
    check_constraints(spec, set(parameter_names(spec)))
    for name in spec.hardware:
        _load_hardware(spec, name)
    check_values(spec)
    plan = chunk_plan(spec)
    parts = Path(str(out) + ".parts") if out else None
    if parts:
        _claim_parts(parts, spec)
    todo = [p for p in plan if not (parts and _part_path(parts, p[0], p[1]).exists())]
    frames: dict[tuple[int, int], pd.DataFrame] = {}
    total = point_count(spec)
    done_points = sum(p[3] - p[2] for p in plan) - sum(p[3] - p[2] for p in todo)

    def finish(item, frame):
        if parts:
            _write_part(frame, _part_path(parts, item[0], item[1]))
        else:
            frames[(item[0], item[1])] = frame

    with _progress(progress, total, done_points) as advance:
        if scheduler:
            _run_dask(spec, todo, scheduler, finish, advance)
        elif processes > 1:
            with ProcessPoolExecutor(max_workers=processes) as pool:
                futures = {pool.submit(evaluate_chunk, spec, item[0], item[2], item[3]): item for item in todo}
                for future in as_completed(futures):
                    item = futures[future]
                    finish(item, future.result())
                    advance(item[3] - item[2])
        else:
            for item in todo:
                finish(item, evaluate_chunk(spec, item[0], item[2], item[3]))
                advance(item[3] - item[2])
    if parts:
        ordered = [pd.read_parquet(_part_path(parts, h, c)) for h, c, _, _ in plan]
    else:
        ordered = [frames[(h, c)] for h, c, _, _ in plan]
    result = pd.concat(ordered, ignore_index=True)
    if result.empty:
        if parts:
            shutil.rmtree(parts)
        raise SimlibInputError(spec.source_file, "constraints", f"the constraints removed every one of the "
                                                                f"{total} points; expected at least one to remain")
    if out:
        _write_part(result, Path(out))
        shutil.rmtree(parts)
    return result


def _run_dask(spec, todo, scheduler, finish, advance):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise SimlibInputError("--scheduler", None, "Dask sweeps need the dask extra: pip install "
                                                    "'simlib[dask]'") from None
    cluster = None
    try:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) \
            if scheduler == "local" else None
        client = Client(cluster or scheduler)
    except (ValueError, OSError) as exc:      # a malformed address, or no scheduler answering there
        if cluster is not None:
            cluster.close()
        raise SimlibInputError("--scheduler", None, f"cannot reach a Dask scheduler at {scheduler!r} ({exc}); "
                               f"expected 'local' or a scheduler address like tcp://HOST:8786") from None
    with client:
        futures = {client.submit(evaluate_chunk, spec, item[0], item[2], item[3], pure=False): item for item in todo}
        for future in as_completed(futures):
            item = futures[future]
            finish(item, future.result())
            advance(item[3] - item[2])
    if cluster is not None:
        cluster.close()


class _progress:
    """A rich progress bar (points, points/s, ETA) when asked; otherwise a no-op."""

    def __init__(self, show: bool, total: int, done: int):
        self.show, self.total, self.done = show, total, done

    def __enter__(self):
        if not self.show:
            return lambda n: None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeRemainingColumn)
        self.bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                            TextColumn("{task.fields[rate]}"),
                            TimeRemainingColumn())
        self.bar.start()
        self.task = self.bar.add_task("sweep", total=self.total, completed=self.done, rate="")
        import time
        self.start, self.clock = time.perf_counter(), time.perf_counter
        self.counted = 0

        def advance(n):
            self.counted += n
            rate = self.counted / max(self.clock() - self.start, 1e-9)
            self.bar.update(self.task, advance=n, rate=f"{rate:,.0f} points/s")
        return advance

    def __exit__(self, *exc):
        if self.show:
            self.bar.stop()
        return False
