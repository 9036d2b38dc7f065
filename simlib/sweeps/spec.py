"""A sweep spec: a workload, a list of hardware, parameter axes, fixed parameters and constraints.

    workload: attention                 # attention, tts, gna, or a cascade (catalog name or YAML path)
    hardware: [a100, h100, b200]
    axes:
      seq: {logrange: [512, 131072], num: 100}     # integers, log-spaced, duplicates dropped
      head_dim: [64, 128]                           # a list
      batch: {range: [1, 9, 4]}                     # start, stop (exclusive), step
      tiles: {zip: {block_q: [64, 128], block_kv: [64, 128]}}   # zipped: (64, 64), (128, 128)
      block_kv: [null, 64]                          # null: the default (tiles: searched, as simlib predict does)
    fixed: {heads: 16, dtype: bf16, kernel: flash2, causal: false}
    constraints: ["block_q * head_dim * 2 <= smem"] # names: axes, fixed, and the hardware's smem, l2, sms

The spec's own fields are strict (:class:`StrictModel`): ``chunk_size: true`` or ``"100"`` is an error, not 1 or
100; so are an axis's ``num: true`` and ``integer: "no"``, and an integer logrange past the 64-bit range.

A fusemax sweep's constraints may use its parameters only: each design runs on its own architecture, not on
the spec's hardware entry, so smem, l2 and sms there would describe hardware no row ran on.

An axis takes only its form's keys (logrange: num and integer, the others none besides their own), so a
misspelled key is an error rather than silently ignored.

The sweep is the product of the axes per hardware, in that order (the last axis varies fastest).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, ValidationError

from simlib.errors import SimlibInputError
from simlib.expressions import ExpressionError, evaluate, names_in, parse_expression
from simlib.schema_errors import INTERNAL_FIELDS, raise_for_validation
from simlib.strict_schema import StrictModel
from simlib.yaml_loading import load_yaml_file

HARDWARE_NAMES = ("smem", "l2", "sms")      # per-hardware names a constraint may use
INT64_LIMIT = 2 ** 63                       # integer axis values are int64 columns: below this


class SweepSpec(StrictModel):
    """A sweep spec as written; numbers must be numbers and unknown fields are errors (:class:`StrictModel`)."""

    workload: str
    hardware: list[str] = Field(min_length=1)
    axes: dict[str, Any] = Field(min_length=1)
    fixed: dict[str, Any] = Field(default_factory=dict)
    constraints: list[str] = Field(default_factory=list)
    chunk_size: int = Field(default=10_000, gt=0)
    source_file: str | None = None


def load_spec(spec: str | Path | dict) -> SweepSpec:
    source = "spec"
    if not isinstance(spec, dict):
        source = str(spec)
        spec = load_yaml_file(Path(spec))
    if "source_file" in spec:      # set here from the path; a written one would make errors name another file
        allowed = [name for name in SweepSpec.model_fields if name not in INTERNAL_FIELDS]
        raise SimlibInputError(source, "source_file", f"unknown field (expected one of: {', '.join(allowed)})")
    try:
        loaded = SweepSpec.model_validate({**spec, "source_file": source})
    except ValidationError as exc:
        raise_for_validation(source, SweepSpec, exc)
    for name, value in loaded.fixed.items():
        if isinstance(value, (list, dict)):
            raise SimlibInputError(source, f"fixed.{name}", "expected one value; put lists under axes")
    seen: dict[str, str] = {}
    for axis, value in loaded.axes.items():
        names = list(value["zip"]) if isinstance(value, dict) and isinstance(value.get("zip"), dict) else [axis]
        for name in names:
            if name in loaded.fixed:
                raise SimlibInputError(source, f"fixed.{name}", f"also varied by axes.{axis}; give it in one place")
            if name in seen:
                raise SimlibInputError(source, f"axes.{axis}", f"{name} is already varied by axes.{seen[name]}")
            seen[name] = axis
    return loaded


def axis_values(name: str, value, source: str) -> list[dict]:
    """The points of one axis, each a {parameter: value} mapping (a zipped axis sets several)."""
    try:
        return _axis_values(name, value, source)
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, SimlibInputError):
            raise
        raise SimlibInputError(source, f"axes.{name}", "expected a list, {range: [start, stop, step]}, "
                                                       "{logrange: [low, high], num: n} with 0 < low < high, or "
                                                       "{zip: {name: [values], ...}}") from None


AXIS_FORMS = {"logrange": ("logrange", "num", "integer"), "range": ("range",), "zip": ("zip",)}


def _axis_values(name: str, value, source: str) -> list[dict]:
    if isinstance(value, dict):
        forms = [form for form in AXIS_FORMS if form in value]
        if len(forms) > 1:
            raise SimlibInputError(source, f"axes.{name}", f"gives both {forms[0]} and {forms[1]}; expected one "
                                                           f"form per axis")
        if forms:
            unknown = [key for key in value if key not in AXIS_FORMS[forms[0]]]
            if unknown:
                raise SimlibInputError(source, f"axes.{name}.{unknown[0]}",
                                       f"unknown key for a {forms[0]} axis (expected: "
                                       f"{', '.join(AXIS_FORMS[forms[0]])})")
    if isinstance(value, list):
        points = [{name: v} for v in value]
    elif isinstance(value, dict) and "logrange" in value:
        low, high = value["logrange"]
        if isinstance(low, bool) or isinstance(high, bool) or not 0 < low < high:
            raise ValueError("logrange needs 0 < low < high")
        num, integer = value.get("num", 10), value.get("integer", True)
        if isinstance(num, bool) or not isinstance(num, (int, float)) or not float(num).is_integer() or num < 1:
            raise SimlibInputError(source, f"axes.{name}.num", f"expected a whole number of points >= 1, got {num!r}")
        num = int(num)
        if not isinstance(integer, bool):
            raise SimlibInputError(source, f"axes.{name}.integer", f"expected true or false, got {integer!r}")
        grid = np.geomspace(low, high, num)
        integer = all(float(x).is_integer() for x in (low, high)) and integer
        if integer and high >= INT64_LIMIT:          # the cast to int64 would wrap to negative values silently
            raise SimlibInputError(source, f"axes.{name}.logrange", f"{high:g} is past the largest 64-bit integer "
                                                                    f"(2**63 - 1 = {INT64_LIMIT - 1}); expected a "
                                                                    f"smaller high, or integer: false for floats")
        values = np.unique(np.round(grid).astype(np.int64)) if integer else grid
        points = [{name: v.item()} for v in values]
    elif isinstance(value, dict) and "range" in value:
        if any(isinstance(v, bool) for v in value["range"]):      # range() would read true as 1
            raise SimlibInputError(source, f"axes.{name}.range", f"expected whole numbers [start, stop, step], got "
                                                                 f"{value['range']!r}")
        points = [{name: v} for v in range(*value["range"])]
    elif isinstance(value, dict) and "zip" in value:
        columns = value["zip"]
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise SimlibInputError(source, f"axes.{name}", "zipped lists must have the same length")
        points = [dict(zip(columns, row)) for row in zip(*columns.values())]
    else:
        raise SimlibInputError(source, f"axes.{name}", "expected a list, {range: [start, stop, step]}, "
                                                       "{logrange: [low, high], num: n} or {zip: {...}}")
    if not points:
        raise SimlibInputError(source, f"axes.{name}", "the axis is empty; expected at least one value")
    return points


def expand_axes(spec: SweepSpec) -> tuple[list[str], list[list[dict]]]:
    """Axis names and, per axis, its points."""
    source = spec.source_file or "spec"
    return list(spec.axes), [axis_values(n, v, source) for n, v in spec.axes.items()]


def axis_field(spec: SweepSpec, name: str) -> str | None:
    """Where the spec gives parameter ``name``: ``axes.<axis>``, ``axes.<axis>.zip.<name>`` for a zipped one,
    ``fixed.<name>``; None where it does not."""
    for axis, value in spec.axes.items():
        if isinstance(value, dict) and isinstance(value.get("zip"), dict):
            if name in value["zip"]:
                return f"axes.{axis}.zip.{name}"
        elif axis == name:
            return f"axes.{axis}"
    return f"fixed.{name}" if name in spec.fixed else None


def parameter_names(spec: SweepSpec) -> list[str]:
    _, axes = expand_axes(spec)
    names = [k for points in axes for k in points[0]]
    return names + [k for k in spec.fixed if k not in names]


def _null_parameters(spec: SweepSpec, axes: list[list[dict]] | None = None) -> set[str]:
    """Parameters the spec sets to null in some point (a list entry, a zipped one, or the fixed value); ``axes``
    is the spec's expansion where the caller has it."""
    if axes is None:
        _, axes = expand_axes(spec)
    nulls = {name for points in axes for point in points for name, value in point.items() if value is None}
    return nulls | {name for name, value in spec.fixed.items() if value is None}


def check_constraints(spec: SweepSpec, known: set[str], axes: list[list[dict]] | None = None) -> list:
    """Parsed constraints; each may use parameters and the hardware names (a fusemax sweep's, parameters
    only: its designs do not run on the spec's hardware entry). ``axes``: the spec's expansion, where the caller
    has it (the nulls are found in it once, not once per constraint)."""
    hardware_names = set() if spec.workload == "fusemax" else set(HARDWARE_NAMES)
    null_parameters = _null_parameters(spec, axes) if spec.constraints else set()
    parsed = []
    for i, text in enumerate(spec.constraints):
        try:
            node = parse_expression(text)
        except ExpressionError as exc:
            raise SimlibInputError(spec.source_file, f"constraints[{i}]", str(exc)) from None
        unknown = names_in(node) - known - hardware_names
        misplaced = sorted(unknown & set(HARDWARE_NAMES))
        if misplaced:
            raise SimlibInputError(spec.source_file, f"constraints[{i}]",
                                   f"'{misplaced[0]}' is a property of the spec's hardware entry, and a fusemax "
                                   f"sweep runs each design on its own architecture (fusemax on fusemax, flat and "
                                   f"unfused on flat), so it would describe hardware the rows did not run on; "
                                   f"expected a constraint on the parameters only ({', '.join(sorted(known))})")
        if unknown:
            expected = f"a parameter or one of {', '.join(HARDWARE_NAMES)}" if hardware_names else "a parameter"
            raise SimlibInputError(spec.source_file, f"constraints[{i}]",
                                   f"unknown name '{sorted(unknown)[0]}' (expected {expected})")
        nulls = sorted(names_in(node) & null_parameters)
        if nulls:
            raise SimlibInputError(spec.source_file, f"constraints[{i}]",
                                   f"uses {nulls[0]}, which is null (its default, derived or searched per point) "
                                   f"in some rows; expected a constraint on values the spec gives")
        try:
            evaluate(node, {name: 1.0 for name in known | hardware_names})
        except (ExpressionError, TypeError) as exc:
            raise SimlibInputError(spec.source_file, f"constraints[{i}]", str(exc)) from None
        parsed.append(node)
    return parsed


def point_count(spec: SweepSpec) -> int:
    _, axes = expand_axes(spec)
    return len(spec.hardware) * int(np.prod([len(a) for a in axes]))


def axis_columns(axes: list[list[dict]]) -> list[dict[str, np.ndarray]]:
    """Per axis, each parameter's values as one array (a zipped axis has several), built once per sweep so that
    a chunk only indexes them. Values of different kinds (64 and 0.5, None and 64) stay as given in an object
    array: numpy would make 64 a float."""
    columns = []
    for points in axes:
        arrays = {}
        for key in points[0]:
            given = [p[key] for p in points]
            arrays[key] = np.array(given, dtype=object if len({type(v) for v in given}) > 1 else None)
        columns.append(arrays)
    return columns


def rows_at(columns: list[dict[str, np.ndarray]], start: int, stop: int) -> dict[str, np.ndarray]:
    """Columns for flat indices [start, stop) of the product of the axes (``axis_columns``; last axis fastest),
    without building the whole product: each index is unravelled into one index per axis."""
    sizes = [len(next(iter(arrays.values()))) for arrays in columns]
    index = np.unravel_index(np.arange(start, stop), sizes)
    return {key: values[idx] for arrays, idx in zip(columns, index) for key, values in arrays.items()}


def product_rows(axes: list[list[dict]], start: int, stop: int) -> dict[str, np.ndarray]:
    """Columns for flat indices [start, stop) of the axes' product (last axis fastest), without building the
    whole product."""
    return rows_at(axis_columns(axes), start, stop)
