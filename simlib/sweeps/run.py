"""Running a sweep: the product of the axes per hardware, cut into chunks of ``chunk_size`` points, each chunk
evaluated vectorized (one call per chunk where the model allows) and written to ``OUT.parts/`` as it finishes.
A re-run skips the chunks already on disk, so an interrupted sweep loses nothing and repeats nothing; when every
chunk is there they are joined, in order, into the Parquet file and the parts are removed. Chunks can run in
this process, in local worker processes, or on a Dask cluster; the driver writes every chunk, so the result is
the same file whichever ran them.

The driver works out once what every chunk shares (:class:`PreparedSweep`): each axis's values as arrays, the
parameter names, the parsed constraints, and the hardware and cascade workload loaded from their files. A chunk
then only unravels its flat indices into one index per axis, and a worker never opens a file the spec names, so
a relative path means what it means where the sweep was started, whatever the worker's directory. The parts
folder is stamped with the spec and the contents of those files, so a YAML edited between runs is not mixed
with chunks computed from the old one.

On the first chunk that fails, the chunks still queued are cancelled and every chunk that did finish is kept in
the parts folder, whichever backend ran them.
"""
from __future__ import annotations

import hashlib
import math
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simlib.errors import SimlibInputError
from simlib.expressions import evaluate, names_in, parse_expression
from simlib.hardware.catalog import load_hardware
from simlib.hardware.schema import HardwareSpec
from simlib.sweeps.evaluators import MODEL_WORKLOADS, VALUE_CHECKS, evaluator_for
from simlib.sweeps.spec import SweepSpec, axis_columns, axis_field, check_constraints, expand_axes, load_spec, rows_at
from simlib.workload.workload import Workload, load_workload

ALIASES = {"seq_q": "seq", "seq_kv": "seq"}      # parameters a spec may set through one name (seq sets both)


def in_spec(spec: SweepSpec, exc: SimlibInputError, ranks: dict | None = None) -> SimlibInputError:
    """An error about a parameter's value, re-raised naming the spec file and where the spec gives that parameter
    (``axes.<name>``, ``fixed.<name>``); an error the spec cannot have caused (a hardware or model file's own)
    is left as it is, and one about a parameter the spec leaves at its default names the spec file and it.
    ``ranks``: a cascade workload's rank bindings, so that a rank a spec's value makes bad (``ranks.M: 'M' = 0``)
    names where the spec gives the parameters the binding uses."""
    if exc.source == spec.source_file:
        return exc
    name = (exc.field or "").removeprefix("parameters.")
    candidates = [name, ALIASES.get(name), *name.split("/")]
    if ranks and name.startswith("ranks.") and name.removeprefix("ranks.") in ranks:
        used = _binding_parameters(ranks, name.removeprefix("ranks."))
        # a value the axes vary before a fixed one: the point that fails is one of the varied combinations
        candidates = sorted(used, key=lambda n: not (axis_field(spec, n) or "").startswith("axes."))
    for candidate in candidates:
        field = axis_field(spec, candidate) if candidate else None
        if field:
            return SimlibInputError(spec.source_file, field, exc.message)
    if exc.source in ("--set", "sweep"):
        return SimlibInputError(spec.source_file, exc.field, exc.message)
    return exc


def _binding_parameters(ranks: dict, rank: str) -> list[str]:
    """The names a rank's binding is computed from, in the order they appear, a rank it uses (``M1: M / M0``)
    replaced by the names of its own binding."""
    found: list[str] = []
    pending, seen = [rank], set()
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.add(current)
        text = str(ranks[current])
        for used in sorted(names_in(parse_expression(text)), key=text.find):
            if used in ranks and used != current:
                pending.append(used)
            elif used not in found:
                found.append(used)
    return found


def _load_hardware(spec: SweepSpec, name: str) -> HardwareSpec:
    try:
        return load_hardware(name)
    except SimlibInputError as exc:
        what = ": ".join(part for part in (exc.source, exc.field if exc.field != "hardware" else None, exc.message)
                         if part)
        raise SimlibInputError(spec.source_file, "hardware", what) from None


@dataclass
class PreparedSweep:
    """What every chunk of a sweep shares, worked out once by the driver and sent to each worker once.

    ``columns``: per axis, each parameter's values as an array (``axis_columns``; the axes' point lists stay with
    the driver, which checks them); ``names``: the parameter columns of a row, in order; ``constraints``: parsed;
    ``hardware``: each entry of the spec loaded (the rows' ``hardware`` column keeps the entry as written);
    ``workload``: a cascade workload, loaded (None for the model workloads); ``files``: the hardware and workload
    files read, for the parts stamp."""

    spec: SweepSpec
    columns: list[dict[str, np.ndarray]]
    names: list[str]
    constraints: list
    hardware: list[HardwareSpec]
    workload: Workload | None
    files: list[str]

    @property
    def points_per_hardware(self) -> int:
        return int(np.prod([len(next(iter(arrays.values()))) for arrays in self.columns]))


def prepare(spec: SweepSpec) -> PreparedSweep:
    """Expand and check a spec once: axes into arrays, the parameter names against the workload, the constraints,
    every hardware entry and the cascade workload loaded in this process (paths resolve against its current
    directory, as they always have), every value the workload can check up front."""
    _, axes = expand_axes(spec)
    names = [k for points in axes for k in points[0]]
    names += [k for k in spec.fixed if k not in names]
    workload = None if spec.workload in MODEL_WORKLOADS else load_workload(spec.workload)
    evaluator_for(workload or spec.workload, spec.source_file, check=names, hardware=spec.hardware)
    constraints = check_constraints(spec, set(names), axes)
    hardware = [_load_hardware(spec, name) for name in spec.hardware]
    check_values(spec, axes)
    files = [hw.source_file for hw in hardware if hw.source_file] + ([workload.source] if workload else [])
    return PreparedSweep(spec=spec, columns=axis_columns(axes), names=names, constraints=constraints,
                         hardware=hardware, workload=workload, files=files)


def check_values(spec: SweepSpec, axes: list[list[dict]] | None = None) -> None:
    """Every value each axis takes, and every fixed value, checked as ``simlib predict`` checks it, where the
    workload has such checks (attention, tts; the others check each point as it is evaluated). ``axes``: the
    spec's expansion, where the caller has it."""
    check = VALUE_CHECKS.get(spec.workload)
    if check is None:
        return
    if axes is None:
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


def chunk_plan(prepared: PreparedSweep) -> list[tuple[int, int, int, int]]:
    """(hardware index, chunk index, first flat index, end) for every chunk."""
    per_hw, size = prepared.points_per_hardware, prepared.spec.chunk_size
    return [(h, c, start, min(start + size, per_hw))
            for h in range(len(prepared.spec.hardware)) for c, start in enumerate(range(0, per_hw, size))]


def evaluate_chunk(prepared: PreparedSweep | SweepSpec, hw_index: int, start: int, stop: int) -> pd.DataFrame:
    """One chunk: its parameter columns, the constraint filter, the model's outputs. ``hardware`` names the
    hardware each row ran on: the spec's entry, or the evaluator's column where it runs a point elsewhere
    (fusemax: each design on its own architecture). Given a spec rather than a prepared sweep, prepares it."""
    if isinstance(prepared, SweepSpec):
        prepared = prepare(prepared)
    try:
        return _evaluate_chunk(prepared, hw_index, start, stop)
    except SimlibInputError as exc:
        raise in_spec(prepared.spec, exc, prepared.workload.spec.ranks if prepared.workload else None) from None


def _evaluate_chunk(prepared: PreparedSweep, hw_index: int, start: int, stop: int) -> pd.DataFrame:
    spec, hw = prepared.spec, prepared.hardware[hw_index]
    columns = rows_at(prepared.columns, start, stop)
    size = stop - start
    params = {**{k: np.full(size, v, dtype=object if isinstance(v, str) else None) for k, v in spec.fixed.items()},
              **columns}
    keep = np.ones(size, dtype=bool)
    env = {**_hardware_names(hw), **params}
    for node in prepared.constraints:
        keep &= np.broadcast_to(np.asarray(evaluate(node, env), dtype=bool), (size,))
    params = {k: v[keep] for k, v in params.items()}
    evaluator = evaluator_for(prepared.workload or spec.workload, spec.source_file)
    outputs = evaluator(hw, params) if keep.any() else {}
    ran_on = outputs.pop("hardware", None)          # the evaluator's own, where a point does not run on ``hw``
    hardware = np.full(int(keep.sum()), spec.hardware[hw_index], dtype=object) if ran_on is None else \
        np.asarray(ran_on, dtype=object)
    return pd.DataFrame({"hardware": hardware, **{k: params[k] for k in prepared.names}, **outputs})


# --- backends: each runs a task per chunk and returns its frame, or the input error it raised ------------------
_WORKER_SWEEP: PreparedSweep | None = None      # a local worker process's copy, sent once when it starts


def _set_worker_sweep(prepared: PreparedSweep) -> None:
    global _WORKER_SWEEP
    _WORKER_SWEEP = prepared


def _pool_task(hw_index: int, start: int, stop: int):
    return _task(_WORKER_SWEEP, hw_index, start, stop)


def _task(prepared: PreparedSweep, hw_index: int, start: int, stop: int):
    """A chunk's frame, or its input error returned as a value: raised on a Dask worker, the error would be logged
    there with a traceback before the driver reports it; the driver raises it instead (``_result``)."""
    try:
        return evaluate_chunk(prepared, hw_index, start, stop)
    except SimlibInputError as exc:
        return exc


def _result(value):
    if isinstance(value, SimlibInputError):
        raise value
    return value


PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _stamp(prepared: PreparedSweep, package_dir: Path = PACKAGE_DIR) -> str:
    """The spec (without where it was read from), the bytes of every hardware and workload file it reads, and the
    package's source (``package_dir``'s Python files): chunks a changed model computed are not the same rows."""
    digest = hashlib.sha256(prepared.spec.model_dump_json(exclude={"source_file"}).encode())
    sources = sorted(package_dir.rglob("*.py"))
    for path in [*prepared.files, *sources]:
        digest.update(b"\0" + hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()


def _claim_parts(parts: Path, prepared: PreparedSweep) -> None:
    """The parts folder belongs to one spec, the files it reads and the simlib source that computed it: their hash
    is kept there, and parts of another spec, or of the same spec with a hardware or workload file or the model
    code changed since, are an error."""
    digest = _stamp(prepared)
    stamp = parts / "spec.sha256"
    if parts.exists() and stamp.exists() and stamp.read_text() != digest:
        raise SimlibInputError(str(parts), None, "holds chunks of a different spec, or of this spec with a hardware "
                                                 "or workload file or simlib's code changed since; remove it or use "
                                                 "another --out")
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
    """Evaluate every point; with ``out`` the result is also written as Parquet (resumably). ``processes``: local
    worker processes, or with ``scheduler='local'`` the LocalCluster's worker count (2 unless given)."""
    spec = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    if scheduler and scheduler != "local" and processes:
        raise SimlibInputError("--processes", None, f"sets the worker count of --scheduler local; the workers of the "
                                                    f"scheduler at {scheduler} are its own (dask worker --nworkers), "
                                                    f"so expected no --processes with an address")
    if out is not None and Path(out).is_dir():      # checked before any point is evaluated
        raise SimlibInputError(str(out), "--out", "is a folder; expected a Parquet file to write")
    prepared = prepare(spec)
    plan = chunk_plan(prepared)
    parts = Path(str(out) + ".parts") if out else None
    if parts:
        _claim_parts(parts, prepared)
    todo = [p for p in plan if not (parts and _part_path(parts, p[0], p[1]).exists())]
    frames: dict[tuple[int, int], pd.DataFrame] = {}
    total = len(spec.hardware) * prepared.points_per_hardware
    done_points = sum(p[3] - p[2] for p in plan) - sum(p[3] - p[2] for p in todo)

    def finish(item, frame):
        if parts:
            _write_part(frame, _part_path(parts, item[0], item[1]))
        else:
            frames[(item[0], item[1])] = frame
        advance(item[3] - item[2])

    with _progress(progress, total, done_points) as advance:
        if scheduler:
            _run_dask(prepared, todo, scheduler, processes or 2, finish)
        elif processes > 1:
            _run_pool(prepared, todo, processes, finish)
        else:
            for item in todo:
                finish(item, evaluate_chunk(prepared, item[0], item[2], item[3]))
    if parts:
        ordered = [pd.read_parquet(_part_path(parts, h, c)) for h, c, _, _ in plan]
    else:
        ordered = [frames[(h, c)] for h, c, _, _ in plan]
    # a chunk the constraints emptied has no output columns and untyped ones: left out, it cannot turn a bool or
    # string column into object
    ordered = [frame for frame in ordered if len(frame)] or ordered
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


def _run_pool(prepared: PreparedSweep, todo, processes: int, finish) -> None:
    """Chunks on local worker processes, each sent the prepared sweep once. On the first failure (or an
    interrupt) the queued chunks are cancelled, the running ones finish, and every chunk that finished is kept
    (``finish``) before the error propagates."""
    pool = ProcessPoolExecutor(max_workers=processes, initializer=_set_worker_sweep, initargs=(prepared,))
    futures = {pool.submit(_pool_task, item[0], item[2], item[3]): item for item in todo}
    try:
        _collect(futures, as_completed, finish, cancel=lambda pending: pool.shutdown(wait=True, cancel_futures=True),
                 done=lambda f: f.done() and not f.cancelled() and f.exception() is None)
    finally:
        pool.shutdown(wait=True)


def _collect(futures: dict, completed, finish, cancel, done) -> None:
    """Hand each chunk's frame to ``finish`` as its future completes (``completed``: the backend's as_completed).
    On the first failure (an input error, an interrupt) ``cancel`` the futures not yet finished, still keep
    every chunk that ``done`` says finished with a frame, then let the error propagate."""
    finished = set()
    try:
        for future in completed(futures):
            finish(futures[future], _result(future.result()))
            finished.add(future)
    except BaseException:
        cancel([f for f in futures if f not in finished and not done(f)])
        for future, item in futures.items():
            if future not in finished and done(future) and not isinstance(future.result(), SimlibInputError):
                finish(item, future.result())
        raise


def _run_dask(prepared: PreparedSweep, todo, scheduler: str, workers: int, finish) -> None:
    """Chunks on a Dask cluster: ``'local'`` starts a LocalCluster of ``workers`` processes, anything else is a
    scheduler's address. The prepared sweep is sent to the workers once; a chunk's input error comes back as a
    value and is raised here, so no worker logs a traceback for it. On the first failure the remaining chunks
    are cancelled and those that finished are kept; the client and any cluster started here are closed whatever
    happens."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise SimlibInputError("--scheduler", None, "Dask sweeps need the dask extra: pip install "
                                                    "'simlib[dask]'") from None
    cluster = client = None
    try:
        try:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None) if scheduler == "local" else None
            client = Client(cluster or scheduler)
        except (ValueError, OSError) as exc:      # a malformed address, or no scheduler answering there
            raise SimlibInputError("--scheduler", None, f"cannot reach a Dask scheduler at {scheduler!r} ({exc}); "
                                   f"expected 'local' or a scheduler address like tcp://HOST:8786") from None
        shared = client.scatter(prepared, broadcast=True, hash=False)
        futures = {client.submit(_task, shared, item[0], item[2], item[3], pure=False): item for item in todo}
        _collect(futures, as_completed, finish, cancel=client.cancel, done=lambda f: f.status == "finished")
    finally:
        if client is not None:
            client.close()
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
