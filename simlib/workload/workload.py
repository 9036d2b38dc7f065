"""A workload: a parsed cascade plus its parameters, rank bindings and tensor data types.

:func:`load_workload` reads a YAML file (catalog name or path); :meth:`Workload.bind` fixes parameter values and
returns a :class:`BoundWorkload` with exact rank sizes, tensor sizes in bytes and operation counts.
"""
from __future__ import annotations

import ast
import itertools
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pydantic import ValidationError

from simlib.catalog_paths import WORKLOAD_DIR, catalog_names, resolve
from simlib.dtypes import DTYPE_BITS, dtype_bytes
from simlib.errors import SimlibInputError
from simlib.expressions import ExpressionError, evaluate, names_in, parse_expression
from simlib.schema_errors import raise_for_validation
from simlib.workload.cascade import Cascade, CascadeError, rank_of
from simlib.workload.einsum import EinsumSyntaxError, TensorRef, parse_einsum
from simlib.workload.schema import WorkloadSpec
from simlib.yaml_loading import load_yaml_file

OPERATION_KINDS = ("mac", "mul", "add", "max", "exp", "div")
RESERVED_PARAMETERS = ("execution",)
# Rank sizes stay below 2**63 (a 64-bit index, as tensor libraries use): the product of a dozen such sizes still
# converts to a float, so no count, byte total or time computed from them can overflow.
MAX_RANK_SIZE = 2 ** 63


def workload_names() -> list[str]:
    return catalog_names(WORKLOAD_DIR)


@dataclass(eq=False)
class Workload:
    spec: WorkloadSpec
    cascade: Cascade
    source: str

    @property
    def name(self) -> str:
        return self.spec.name

    @cached_property
    def baseline_workload(self) -> "Workload | None":
        """The workload named as baseline, loaded once per Workload object."""
        return load_workload(self.spec.baseline.workload) if self.spec.baseline else None

    def parameter_names(self) -> list[str]:
        return [*self.spec.parameters, *RESERVED_PARAMETERS]

    def bind(self, overrides: dict | None = None) -> "BoundWorkload":
        overrides = dict(overrides or {})
        unknown = [k for k in overrides if k not in self.parameter_names()]
        if unknown:
            raise SimlibInputError(self.source, f"parameters.{unknown[0]}",
                                   f"workload {self.name} has no parameter '{unknown[0]}' "
                                   f"(expected one of: {', '.join(self.parameter_names())})")
        execution = overrides.pop("execution", self.spec.execution)
        if execution not in ("fused", "unfused"):
            raise SimlibInputError(self.source, "execution", f"expected fused or unfused, got {execution!r}")
        params = {**self.spec.parameters, **overrides}
        for key, default in self.spec.parameters.items():
            value = params[key]
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise SimlibInputError(self.source, f"parameters.{key}", f"expected a number, got {value!r}")
        sizes = self._rank_sizes(params)
        bound = BoundWorkload(workload=self, parameters=params, rank_sizes=sizes, execution=execution,
                              extents=index_extents(self, sizes))
        for name, decl in self.spec.tensors.items():
            if decl.reuses is not None and bound.tensors[decl.reuses].bytes < bound.tensors[name].bytes:
                raise SimlibInputError(self.source, f"tensors.{name}.reuses",
                                       f"{decl.reuses} holds {bound.tensors[decl.reuses].bytes:.0f} bytes, fewer "
                                       f"than the {bound.tensors[name].bytes:.0f} of {name}; expected storage at "
                                       f"least as large")
        return bound

    def _rank_sizes(self, params: dict) -> dict[str, int]:
        sizes: dict[str, int] = {}
        pending = dict(self.spec.ranks)
        for _ in range(len(pending) + 1):
            for rank, binding in list(pending.items()):
                try:
                    node = parse_expression(binding)
                    env = {**params, **sizes}
                    if not names_in(node) <= set(env) | {"ceil", "floor", "min", "max"}:
                        continue
                    value = evaluate(node, env)
                except (ExpressionError, ZeroDivisionError, TypeError, OverflowError) as exc:
                    raise SimlibInputError(self.source, f"ranks.{rank}", f"cannot evaluate '{binding}': {exc}")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise SimlibInputError(self.source, f"ranks.{rank}", f"'{binding}' = {value!r}; expected a "
                                                                         f"positive whole number")
                if abs(value) >= MAX_RANK_SIZE:
                    raise SimlibInputError(self.source, f"ranks.{rank}",
                                           f"'{binding}' = {value:.3g}; expected a positive whole number below "
                                           f"2**63 (products of sizes must stay countable)")
                if isinstance(value, float) and not value.is_integer():
                    raise SimlibInputError(self.source, f"ranks.{rank}",
                                           f"'{binding}' = {value:g} is not a whole number; expected an integer size")
                if value <= 0:
                    raise SimlibInputError(self.source, f"ranks.{rank}",
                                           f"'{binding}' = {value:g}; expected a positive size")
                sizes[rank] = int(value)
                del pending[rank]
        if pending:
            rank, binding = next(iter(pending.items()))
            missing = names_in(parse_expression(binding)) - set(params) - set(sizes)
            raise SimlibInputError(self.source, f"ranks.{rank}",
                                   f"'{binding}' names {', '.join(sorted(missing))}, which is neither a parameter "
                                   f"nor a rank (expected one of: {', '.join([*params, *self.spec.ranks])})")
        return sizes


@dataclass(frozen=True)
class TensorInfo:
    name: str
    role: str             # input, output, intermediate, or view (a re-indexing of another tensor)
    # batch ranks, then one entry per position: the declared rank's name (M@0, M@1 for a rank declared at two
    # positions, so that no position is lost), or dim0, dim1, ... for an undeclared tensor
    shape: dict[str, int]
    elements: int
    dtype: str
    bytes: float


@dataclass
class BoundWorkload:
    """A workload with every parameter fixed: exact sizes and counts."""

    workload: Workload
    parameters: dict
    rank_sizes: dict[str, int]
    execution: str = "fused"
    extents: dict[str, list[int]] | None = None     # index_extents, computed (and checked) by Workload.bind

    @property
    def cascade(self) -> Cascade:
        return self.workload.cascade

    @property
    def batch_factor(self) -> int:
        return math.prod(self.rank_sizes[r] for r in self.workload.spec.batch_ranks)

    def iteration_points(self, index: int) -> int:
        """Points of an Einsum's iteration space, batch ranks included."""
        einsum = self.cascade.einsums[index]
        return self.batch_factor * math.prod(self.rank_sizes[rank_of(v)] for v in einsum.variables)

    def operation_counts(self, index: int) -> dict[str, int]:
        points = self.iteration_points(index)
        ops = self.cascade.einsums[index].ops_per_point
        return {k: ops[k] * points for k in OPERATION_KINDS}

    @cached_property
    def tensors(self) -> dict[str, TensorInfo]:
        extents = self.extents if self.extents is not None else index_extents(self.workload, self.rank_sizes)
        infos: dict[str, TensorInfo] = {}
        for name, ext in extents.items():
            writer = self.cascade.computing_writer(name)
            role = ("input" if name in self.cascade.inputs else
                    "output" if name in self.cascade.outputs else
                    "view" if writer is not None and self.cascade.einsums[writer].kind == "view" else
                    "intermediate")
            dtype = self.tensor_dtype(name)
            decl = self.workload.spec.tensors.get(name)
            if decl and decl.ranks and len(decl.ranks) == len(ext):
                # a declared tensor is as large as its declaration (A: {ranks: [N]} read as A[m] has N
                # elements; index_extents has kept every index inside it)
                ext = [self.rank_sizes[r] for r in decl.ranks]
                rank_labels = [r if decl.ranks.count(r) == 1 else f"{r}@{k}" for k, r in enumerate(decl.ranks)]
            else:
                rank_labels = [f"dim{k}" for k in range(len(ext))]
            elements = math.prod(ext) * self.batch_factor
            shape = {**{r: self.rank_sizes[r] for r in self.workload.spec.batch_ranks},
                     **dict(zip(rank_labels, ext))}
            infos[name] = TensorInfo(name, role, shape, elements, dtype, elements * dtype_bytes(dtype))
        return infos

    def tensor_dtype(self, name: str) -> str:
        """A tensor's dtype: its declaration's ``dtype`` (a dtype name, or the name of a parameter holding one),
        else the ``dtype`` parameter. A bad value is reported where it was written: a parameter's value under
        ``parameters.<name>`` (``--set dtype=3`` sets that parameter), a declared dtype that is neither a dtype
        nor a parameter under ``tensors.<name>.dtype``, and a missing ``dtype`` parameter, when a tensor
        declares none, under ``parameters.dtype``."""
        decl = self.workload.spec.tensors.get(name)
        known = ", ".join(DTYPE_BITS)
        source = self.workload.source
        if decl and decl.dtype and decl.dtype not in self.parameters:
            if decl.dtype not in DTYPE_BITS:
                raise SimlibInputError(source, f"tensors.{name}.dtype",
                                       f"{decl.dtype!r} is neither a dtype nor a parameter; expected one of: "
                                       f"{known}, or the name of a parameter holding one")
            return decl.dtype
        parameter = decl.dtype if decl and decl.dtype else "dtype"
        if parameter not in self.parameters:
            raise SimlibInputError(source, "parameters.dtype",
                                   f"missing: tensor {name} declares no dtype, so it takes the parameter dtype; "
                                   f"expected parameters: {{dtype: ...}} (one of: {known}) or "
                                   f"tensors.{name}.dtype")
        value = self.parameters[parameter]
        if not isinstance(value, str) or value not in DTYPE_BITS:
            raise SimlibInputError(source, f"parameters.{parameter}",
                                   f"unknown dtype {value!r} (the dtype of tensor {name}); expected one of: {known}")
        return value

    @property
    def compute_dtype(self) -> str:
        """The dtype the products run in: the dtype of the first input tensor."""
        return self.tensor_dtype(self.cascade.inputs[0])


def index_extents(workload: Workload, sizes: dict[str, int]) -> dict[str, list[int]]:
    """Extent of each tensor along each of its positions: one more than the largest index any reference reaches
    (an affine index c0 + sum c_v v over 0 <= v < size of v's rank; see :meth:`IndexExpr.bounds`).

    The operation counts take every point of an Einsum's iteration space, so every point must name an element
    that exists. Three ways a point would not, each refused with the Einsum, the tensor and the index named:

    * an index that goes below 0 (``A[m-1]`` at m = 0, ``A[M-2-m]`` at m = M-1);
    * for a tensor whose ranks are declared, an index past the declared rank's size (``A[m+1]`` at m = M-1 for
      ``A: {ranks: [M]}``);
    * for a tensor some Einsum writes, a read outside what its writers write: at each position the read's range
      [low, high] must lie inside the union of the writers' ranges there (constant initialisations included, so
      the recurrence ``RM[m1+1,p] = max(RM[m1,p], ...)`` after ``RM[0,p] = -inf`` writes 0..M1 and may read
      ``RM[m1,p]``, 0..M1-1). Without this, ``Y[m] = T[m+1] - T[m]`` after ``T[m] = exp(X[m])`` would size T as
      M + 1 and count a read of T[M], which no Einsum writes.

    The comparison is of ranges, position by position: exact for writers whose indices take every value between
    their smallest and largest (a variable with an offset, ``m1*M0+m0``, a constant), while a strided ``T[2*m]``
    or a diagonal ``T[m,m]`` writes only part of the box its ranges span, which this check cannot see. A read is
    judged by its whole range, so a strided read that would step over an unwritten gap is refused as well.

    An input (read, never written) is as large as its indices reach (``A[m+p]`` makes A M+P-1 long), so its
    reads are in range by construction.
    """
    spec, source = workload.spec, workload.source
    einsums = workload.cascade.einsums
    extents: dict[str, list[int]] = {}
    ranges: list[tuple[int, TensorRef, list[tuple[int, int]]]] = []   # (Einsum, reference, (low, high) each index)
    for i, einsum in enumerate(einsums):
        var_sizes = {v: sizes[rank_of(v)] for v in einsum.variables}
        for ref in (einsum.output, *einsum.reads):
            declared = spec.tensors[ref.name].ranks if ref.name in spec.tensors else None
            spans = []
            for position, index in enumerate(ref.indices):
                low, high = index.bounds(sizes, var_sizes)
                if low < 0:
                    at = _point_text(index.extreme_point(sizes, var_sizes, largest=False))
                    raise SimlibInputError(source, f"einsums[{i}] '{einsum.text}'",
                                           f"{ref}: index {position} '{index.text}' reaches {low}{at}; expected "
                                           f"indices from 0 (a point there would count work on an element that "
                                           f"does not exist)")
                if declared and high >= sizes[declared[position]]:
                    rank = declared[position]
                    at = _point_text(index.extreme_point(sizes, var_sizes, largest=True))
                    raise SimlibInputError(source, f"einsums[{i}] '{einsum.text}'",
                                           f"{ref}: index {position} '{index.text}' reaches {high}{at}, past rank "
                                           f"{rank} ({sizes[rank]} elements) that tensors.{ref.name}.ranks declares "
                                           f"there; expected indices 0..{sizes[rank] - 1} (a point past the end "
                                           f"would count work on an element that does not exist)")
                spans.append((low, high))
            ranges.append((i, ref, spans))
            ext = [high + 1 for _, high in spans]
            extents[ref.name] = [max(a, b) for a, b in zip(extents.get(ref.name, ext), ext)]
    _check_reads_inside_writes(workload, sizes, ranges)
    return extents


def _check_reads_inside_writes(workload: Workload, sizes: dict[str, int],
                               ranges: list[tuple[int, TensorRef, list[tuple[int, int]]]]) -> None:
    """Refuse a read of a written tensor whose range at some position leaves the union of its writers' ranges
    there (see :func:`index_extents`); the message names the first element read that no Einsum writes."""
    einsums = workload.cascade.einsums
    written: dict[str, list[list[tuple[int, int]]]] = {}      # tensor -> per position, writers' (low, high)
    writers: dict[str, list[int]] = {}
    for i, ref, spans in ranges:
        if ref is einsums[i].output:
            per_position = written.setdefault(ref.name, [[] for _ in spans])
            for position, span in enumerate(spans):
                per_position[position].append(span)
            writers.setdefault(ref.name, []).append(i)
    for i, ref, spans in ranges:
        if ref is einsums[i].output or ref.name not in written:
            continue
        for position, (low, high) in enumerate(spans):
            merged = _merge(written[ref.name][position])
            missing = _first_missing(merged, low, high)
            if missing is None:
                continue
            einsum = einsums[i]
            index = ref.indices[position]
            var_sizes = {v: sizes[rank_of(v)] for v in einsum.variables}
            if missing in (low, high):
                at = _point_text(index.extreme_point(sizes, var_sizes, largest=missing == high and missing != low))
                reach = f"reaches {missing}{at}"
            else:
                reach = f"spans {low}..{high}, which includes {missing}"
            where = ", ".join(f"{a}..{b}" if a != b else f"{a}" for a, b in merged)
            by = "; ".join(f"einsums[{j}] '{einsums[j].text}'" for j in writers[ref.name])
            hint = ""
            computing = workload.cascade.computing_writer(ref.name)
            if computing == i and missing < merged[0][0]:
                layout = einsums[i].output
                start = ",".join(str(missing) if k == position else idx.text for k, idx in enumerate(layout.indices))
                hint = f", or a first value for the recurrence, e.g. {ref.name}[{start}] = 0"
            raise SimlibInputError(workload.source, f"einsums[{i}] '{einsum.text}'",
                                   f"{ref}: index {position} '{index.text}' {reach}, but {ref.name} is written "
                                   f"only at {where} in that position (by {by}); expected reads of elements some "
                                   f"Einsum writes{hint} (an element no Einsum writes would be counted as work and "
                                   f"traffic on a value that does not exist)")


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of closed integer ranges as disjoint, sorted ranges (adjacent ranges join: 0..0 and 1..4 is 0..4)."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _first_missing(merged: list[tuple[int, int]], low: int, high: int) -> int | None:
    """The smallest value of low..high outside the disjoint sorted ranges ``merged``; None if there is none."""
    value = low
    for a, b in merged:
        if value < a:
            break
        if value <= b:
            value = b + 1
    return value if value <= high else None


def _point_text(point: dict[str, int]) -> str:
    return f" at {', '.join(f'{v} = {x}' for v, x in point.items())}" if point else ""


def load_workload(name_or_path: str | Path | Workload) -> Workload:
    if isinstance(name_or_path, Workload):
        return name_or_path
    path = resolve(name_or_path, WORKLOAD_DIR, "workload")
    data = load_yaml_file(path)
    source = str(path)
    try:
        spec = WorkloadSpec.model_validate(data)
    except ValidationError as exc:
        raise_for_validation(source, WorkloadSpec, exc)
    return workload_from_spec(spec, source)


def workload_from_spec(spec: WorkloadSpec, source: str) -> Workload:
    einsums = []
    for i, text in enumerate(spec.einsums):
        try:
            einsums.append(parse_einsum(text))
        except EinsumSyntaxError as exc:
            raise SimlibInputError(source, f"einsums[{i}] '{text}'", str(exc)) from None
    for i, einsum in enumerate(einsums):
        for v in einsum.variables:
            if rank_of(v) not in spec.ranks:
                raise SimlibInputError(source, f"einsums[{i}] '{einsum.text}'",
                                       f"uses rank variable '{v}' but no rank {rank_of(v)} is bound; expected "
                                       f"one of: {', '.join(spec.ranks)} under 'ranks'")
        for ref in (einsum.output, *einsum.reads):
            for index in ref.indices:
                for node in ast.walk(index.node):
                    if isinstance(node, ast.Name) and node.id.isupper() and node.id not in spec.ranks:
                        raise SimlibInputError(source, f"einsums[{i}] '{einsum.text}'",
                                               f"index uses size {node.id}, which is not a bound rank")
    for rank in spec.batch_ranks:
        if rank not in spec.ranks:
            raise SimlibInputError(source, "batch_ranks", f"rank {rank} is not bound under 'ranks'")
    for name, decl in spec.tensors.items():
        for rank in decl.ranks or []:
            if rank not in spec.ranks:
                raise SimlibInputError(source, f"tensors.{name}.ranks", f"rank {rank} is not bound under 'ranks'")
    _check_index_lists(spec, einsums, source)
    try:
        cascade = Cascade(einsums, {k: v.ranks for k, v in spec.tensors.items() if v.ranks})
    except CascadeError as exc:
        raise SimlibInputError(source, exc.field, str(exc)) from None
    if spec.stream_rank is not None and spec.stream_rank not in spec.ranks:
        raise SimlibInputError(source, "stream_rank", f"rank {spec.stream_rank} is not bound under 'ranks'")
    _check_written_rank_order(spec, cascade, source)
    _check_tensors_and_ranks(spec, cascade, einsums, source)
    _check_kernels(spec, cascade, source)
    _check_reuses(spec, cascade, source)
    return Workload(spec=spec, cascade=cascade, source=source)


def _computing_order(cascade: Cascade) -> list[int]:
    return [i for i in cascade.order if cascade.einsums[i].kind not in ("view", "init")]


def _check_kernels(spec: WorkloadSpec, cascade: Cascade, source: str) -> None:
    """Each kernel group names two or more tensors, each computed by an Einsum (not a view or a constant), none
    twice, its Einsums follow one another in the cascade's order (a kernel cannot wait for one run between its
    own loops), and their outputs share a rank (the rows the kernel loops over)."""
    order = _computing_order(cascade)
    position = {i: k for k, i in enumerate(order)}
    seen: set[str] = set()
    for g, names in enumerate(spec.kernels):
        field_name = f"kernels[{g}]"
        if len(names) < 2:
            raise SimlibInputError(source, field_name, f"{names} names fewer than two tensors; expected the "
                                                       f"tensors of two or more Einsums one kernel runs")
        for name in names:
            writer = cascade.computing_writer(name)
            if writer is None or writer not in position:
                computed = ", ".join(cascade.einsums[i].output.name for i in order)
                raise SimlibInputError(source, field_name, f"{name} is not computed by an Einsum of this cascade; "
                                                           f"expected one of: {computed}")
            if name in seen:
                where = "named twice in this kernel" if names.count(name) > 1 else "already in another kernel"
                raise SimlibInputError(source, field_name, f"{name} is {where}; expected each tensor in at most "
                                                           f"one kernel, once")
            seen.add(name)
        places = sorted(position[cascade.computing_writer(name)] for name in names)
        if places[-1] - places[0] != len(places) - 1:
            between = [cascade.einsums[order[k]].output.name for k in range(places[0], places[-1])
                       if cascade.einsums[order[k]].output.name not in names]
            raise SimlibInputError(source, field_name, f"its Einsums are not consecutive in the cascade's order "
                                                       f"({', '.join(between)} runs between them); expected "
                                                       f"Einsums that follow one another")
        shared = set.intersection(*({rank_of(v) for v in cascade.einsums[cascade.computing_writer(name)]
                                     .output.variables} for name in names))
        if not shared:
            raise SimlibInputError(source, field_name, f"the outputs of {', '.join(names)} share no rank; expected "
                                                       f"Einsums whose outputs all have the rank the kernel loops "
                                                       f"over row by row")


def _check_reuses(spec: WorkloadSpec, cascade: Cascade, source: str) -> None:
    """``tensors.X.reuses: Y``: X is computed, Y is another tensor whose storage is an operand of X's Einsum (read
    directly or through a view), not made in the same kernel as X (a kernel of several Einsums keeps only a row
    of what it makes), and nothing after X's Einsum reads Y (its values are overwritten). That Y holds at least
    X's bytes is checked when sizes are bound (:meth:`Workload.bind`)."""
    position = {i: k for k, i in enumerate(_computing_order(cascade))}
    kernel_of = {name: g for g, names in enumerate(spec.kernels) for name in names}
    for name, decl in spec.tensors.items():
        if decl.reuses is None:
            continue
        field_name = f"tensors.{name}.reuses"
        writer = cascade.computing_writer(name)
        if writer is None or writer not in position:
            raise SimlibInputError(source, field_name, f"{name} is not computed by an Einsum, so it writes no "
                                                       f"storage; expected reuses only on a computed tensor")
        target = decl.reuses
        if target == name:
            raise SimlibInputError(source, field_name, f"{name} names itself; expected the tensor whose storage "
                                                       f"{name} overwrites")
        if name in kernel_of and kernel_of.get(target) == kernel_of[name]:
            raise SimlibInputError(source, field_name, f"{target} is made in the same kernel as {name} "
                                                       f"(kernels[{kernel_of[name]}]), which keeps only a row of it; "
                                                       f"expected storage made before that kernel")
        operands = {cascade.view_source(ref.name) for ref in cascade.einsums[writer].reads}
        text = cascade.einsums[writer].text
        if target not in operands:
            raise SimlibInputError(source, field_name, f"{target} is not an operand of '{text}'; expected one of: "
                                                       f"{', '.join(sorted(operands))}")
        later = [i for i in cascade.readers(target) if i in position and position[i] > position[writer]]
        if later:
            raise SimlibInputError(source, field_name, f"'{cascade.einsums[later[0]].text}' reads {target} after "
                                                       f"{name} overwrites it; expected no later reader")


def _check_index_lists(spec: WorkloadSpec, einsums: list, source: str) -> None:
    """A tensor has one rank order, declared once (as in TeAAL's ``declaration``) and kept by every reference:
    every reference has as many indices as the tensor's declared ranks (or, undeclared, as its other references),
    and an index that is a single rank variable names the rank declared at its position. Positions are how
    :attr:`Cascade.rank_families` relates ranks (``K[e, m1*M0+m0]`` makes M1 and M0 parts of the M declared
    there), so a permuted ``K[m,e]`` for a K declared ``[E, M]`` would otherwise silently make E and M one rank,
    and a wrong index count would silently change the tensor's size. A single variable of a rank that no tensor
    declares (a split part such as M0) is a rank derived from the declared one, and is accepted. The rank order of
    a tensor no declaration names is that of the reference writing it (:func:`_check_written_rank_order`)."""
    declared = {name: decl.ranks for name, decl in spec.tensors.items() if decl.ranks}
    declared_anywhere = {rank for ranks in declared.values() for rank in ranks}
    first_use: dict[str, tuple[int, str]] = {}
    for i, einsum in enumerate(einsums):
        field = f"einsums[{i}] '{einsum.text}'"
        for ref in (einsum.output, *einsum.reads):
            ranks = declared.get(ref.name)
            if ranks is None:
                seen = first_use.setdefault(ref.name, (len(ref.indices), field))
                if seen[0] != len(ref.indices):
                    raise SimlibInputError(source, field, f"{ref} has {_indices(len(ref.indices))} but {seen[1]} "
                                                          f"uses {ref.name} with {_indices(seen[0])}; expected "
                                                          f"one rank count per tensor")
                continue
            expected = f"{ref.name}[{','.join(r.lower() for r in ranks)}]"
            if len(ref.indices) != len(ranks):
                batch = [r for r in ranks if r in spec.batch_ranks]
                want = (f"batch ranks ({', '.join(batch)}) are not indexed, so expected them left out of the "
                        f"declaration: ranks: [{', '.join(r for r in ranks if r not in batch)}]" if batch else
                        f"expected {expected}")
                raise SimlibInputError(source, field, f"{ref} has {_indices(len(ref.indices))} but "
                                                      f"tensors.{ref.name}.ranks declares {len(ranks)} "
                                                      f"({', '.join(ranks)}); {want}")
            for position, (rank, index) in enumerate(zip(ranks, ref.indices)):
                if len(index.variables) != 1:
                    continue
                used = rank_of(index.variables[0])
                if used != rank and used in declared_anywhere:
                    raise SimlibInputError(source, field,
                                           f"{ref}: index {position} '{index.text}' iterates rank {used}, but "
                                           f"tensors.{ref.name}.ranks declares rank {rank} at that position (rank "
                                           f"order {', '.join(ranks)}, kept by every reference); expected {expected}")


def _check_written_rank_order(spec: WorkloadSpec, cascade: Cascade, source: str) -> None:
    """A tensor that no declaration names but an Einsum writes (an intermediate, usually) has the rank order of the
    reference that writes it: its computing writer's output (``T[m,p]`` in ``T[m,p] = exp(X[m,p])``), or, for a
    tensor only constants initialise, the first initialisation. A reference that swaps its positions is refused:
    one whose position a iterates a rank of the family the writer has at position b, while its own position b
    leaves that position's family too (``T[p,m]``). Families are :attr:`Cascade.rank_families` (the same rank, or
    ranks a declared tensor's reference relates, such as M, M1 and M0 after ``K[e, m1*M0+m0]``). Only
    single-variable indices (``p``, ``m1+1``) are compared.

    Anything else is left to the range check of :func:`index_extents`, which keeps every read inside what the
    writers produce: another rank at a position (a Gram matrix ``S[m,n] = XN[e,m] * XN[e,n]``, a difference
    ``Y[n] = T[n+1] - T[n]``), a diagonal ``T[m,m]``, split or derived indices (``m1*M0+m0``) and constants.
    Declared tensors are checked against their declaration (:func:`_check_index_lists`); inputs have no writer
    and are sized by their indices."""
    families = cascade.rank_families
    einsums = cascade.einsums

    def family_of(index) -> frozenset | None:
        if len(index.variables) != 1:
            return None
        rank = rank_of(index.variables[0])
        return families.get(rank, frozenset({rank}))

    for name in dict.fromkeys(e.output.name for e in einsums):
        if name in spec.tensors and spec.tensors[name].ranks:
            continue
        writer = cascade.computing_writer(name)
        if writer is None:
            writer = cascade.writers(name)[0]
        layout = einsums[writer].output
        layout_families = [family_of(index) for index in layout.indices]
        for i, einsum in enumerate(einsums):
            for ref in (einsum.output, *einsum.reads):
                if ref.name != name or ref is layout:
                    continue
                used = [family_of(index) for index in ref.indices]

                def leaves(position: int) -> bool:
                    mine, theirs = used[position], layout_families[position]
                    return mine is not None and theirs is not None and not mine & theirs

                for a, b in itertools.permutations(range(min(len(used), len(layout_families))), 2):
                    swapped = leaves(a) and leaves(b) and layout_families[b] is not None \
                        and bool(used[a] & layout_families[b])
                    if not swapped:
                        continue
                    index = ref.indices[a]
                    rank = rank_of(layout.indices[a].variables[0])
                    other = rank_of(layout.indices[b].variables[0])
                    expected = ",".join(w.variables[0] if len(w.variables) == 1 and len(r.variables) == 1 else r.text
                                        for w, r in zip(layout.indices, ref.indices))
                    raise SimlibInputError(source, f"einsums[{i}] '{einsum.text}'",
                                           f"{ref}: index {a} '{index.text}' iterates rank "
                                           f"{rank_of(index.variables[0])}, but einsums[{writer}] "
                                           f"'{einsums[writer].text}' writes {name} with rank {rank} at that "
                                           f"position ({layout}), and rank {other} at position {b}: the positions are "
                                           f"swapped. A tensor no declaration names keeps the rank order of the "
                                           f"reference that writes it, so expected rank {rank} there: "
                                           f"{name}[{expected}], or a declaration under 'tensors'")


def _indices(count: int) -> str:
    return f"{count} index" if count == 1 else f"{count} indices"


def _check_tensors_and_ranks(spec: WorkloadSpec, cascade: Cascade, einsums: list, source: str) -> None:
    """What a typo would otherwise turn silently into a different cascade: in a cascade that declares its
    tensors, an input read but never declared (a misspelt name becomes a new input); a declared tensor no
    Einsum uses; a batch rank also used as an index (it would be counted twice); a stream rank no Einsum
    iterates; an output that only re-indexes another tensor (it costs nothing); or no input at all."""
    if not cascade.inputs:
        raise SimlibInputError(source, "einsums", "the cascade reads no input tensor; expected at least one")
    for name in cascade.inputs if spec.tensors else ():       # a cascade that declares tensors declares its inputs
        if name not in spec.tensors:
            raise SimlibInputError(source, "tensors", f"{name} is read but never written and not declared under "
                                                      f"'tensors' (a misspelling?); expected its declaration, "
                                                      f"e.g. {name}: {{ranks: [...]}}")
    used = {ref.name for einsum in einsums for ref in (einsum.output, *einsum.reads)}
    for name in spec.tensors:
        if name not in used:
            raise SimlibInputError(source, f"tensors.{name}", "declared but no Einsum reads or writes it")
    iterated = {member for einsum in einsums for v in einsum.variables
                for member in cascade.rank_families.get(rank_of(v), frozenset({rank_of(v)}))}
    for rank in spec.batch_ranks:
        if rank in iterated:
            raise SimlibInputError(source, "batch_ranks", f"rank {rank} is also an index of the Einsums; a batch "
                                                          f"rank multiplies the whole cascade and is not indexed")
    if spec.stream_rank is not None and spec.stream_rank not in iterated:
        raise SimlibInputError(source, "stream_rank", f"no Einsum iterates rank {spec.stream_rank}; expected one "
                                                      f"of: {', '.join(sorted(iterated))}")
    for name in cascade.outputs:
        writer = next(e for e in einsums if e.output.name == name and e.kind != "init")
        if writer.kind == "view":
            raise SimlibInputError(source, f"einsums '{writer.text}'", f"the output {name} only re-indexes "
                                                                       f"another tensor; expected a computed output")
