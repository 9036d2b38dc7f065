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
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simlib.errors import SimlibInputError
from simlib.expressions import ExpressionError, evaluate, names_in, parse_expression
from simlib.schema_errors import raise_for_validation
from simlib.yaml_loading import load_yaml_file

HARDWARE_NAMES = ("smem", "l2", "sms")      # per-hardware names a constraint may use


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
        if not 0 < low < high:
            raise ValueError("logrange needs 0 < low < high")
        grid = np.geomspace(low, high, int(value.get("num", 10)))
        integer = all(float(x).is_integer() for x in (low, high)) and value.get("integer", True)
        values = np.unique(np.round(grid).astype(np.int64)) if integer else grid
        points = [{name: v.item()} for v in values]
    elif isinstance(value, dict) and "range" in value:
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


def _null_parameters(spec: SweepSpec) -> set[str]:
    """Parameters the spec sets to null in some point (a list entry, a zipped one, or the fixed value)."""
    _, axes = expand_axes(spec)
    nulls = {name for points in axes for point in points for name, value in point.items() if value is None}
    return nulls | {name for name, value in spec.fixed.items() if value is None}


def check_constraints(spec: SweepSpec, known: set[str]) -> list:
    """Parsed constraints; each may use parameters and the hardware names (a fusemax sweep's, parameters
    only: its designs do not run on the spec's hardware entry)."""
    hardware_names = set() if spec.workload == "fusemax" else set(HARDWARE_NAMES)
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
        nulls = sorted(names_in(node) & _null_parameters(spec))
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


def product_rows(axes: list[list[dict]], start: int, stop: int) -> dict[str, np.ndarray]:
    """Columns for flat indices [start, stop) of the axes' product (last axis fastest), without building the
    whole product."""
    sizes = [len(a) for a in axes]
    index = np.unravel_index(np.arange(start, stop), sizes)
    columns: dict[str, np.ndarray] = {}
    for points, idx in zip(axes, index):
        for key in points[0]:
            # values of different kinds (64 and 0.5, None and 64) stay as given: numpy would make 64 a float
            given = [p[key] for p in points]
            values = np.array(given, dtype=object if len({type(v) for v in given}) > 1 else None)
            columns[key] = values[idx]
    return columns
