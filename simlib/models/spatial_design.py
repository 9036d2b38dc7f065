"""Spatial-accelerator designs (a cascade, a hardware description and a binding of Einsums to PE arrays), read
from YAML and checked against the cascade and the hardware.

A design names its cascade and default hardware, how the arrays are scheduled (``pipelined``: per tile epoch,
in ``stages``; ``row_fused``: the arrays run concurrently over whole rows; ``phases``: one phase after another),
the tile that fills the 2D array (M0 × P0) and which Einsum runs on which array.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from simlib.catalog_paths import HARDWARE_DIR, WORKLOAD_DIR, resolve
from simlib.engine.units import assign
from simlib.errors import SimlibInputError
from simlib.hardware.catalog import load_hardware
from simlib.hardware.schema import HardwareSpec
from simlib.schema_errors import raise_for_validation
from simlib.workload.workload import Workload, load_workload
from simlib.yaml_loading import load_yaml_file

DESIGN_DIR = WORKLOAD_DIR / "designs"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterAccesses(_Strict):
    """Register-file reads and writes per MAC, for hardware that prices the two differently (Accelergy
    action counts: e.g. an output-stationary systolic PE writes each arriving operand once, reads it for the
    MAC and again to forward it, and reads and updates its partial sum: 5 reads and 3 writes)."""
    reads: float = Field(ge=0)
    writes: float = Field(ge=0)


class DesignSpec(_Strict):
    name: str
    description: str = ""
    cascade: str
    hardware: str
    execution: Literal["pipelined", "row_fused", "phases"]
    tile: dict[Literal["M0", "P0"], int]
    binding: dict[str, list[str]] = Field(min_length=1)
    stages: list[list[str]] | None = None
    phases: list[list[str]] | None = None
    # register-file accesses per MAC on each array, a property of the dataflow (see the design files): a count
    # (priced where the array's registers cost the same to read and to write) or {reads: R, writes: W}
    rf_accesses_per_mac: dict[str, float | RegisterAccesses] = Field(default_factory=dict)
    source_file: str | None = None

    @field_validator("tile")
    @classmethod
    def _positive_tile(cls, value):
        for rank, size in value.items():
            if size <= 0:
                raise ValueError(f"tile {rank} must be a positive number of elements, got {size}")
        return value

    @field_validator("rf_accesses_per_mac", mode="before")
    @classmethod
    def _register_accesses(cls, value):
        """A mapping is validated as RegisterAccesses on its own, so that its error (a missing ``writes``, a
        negative count, an unknown key) keeps its path, rf_accesses_per_mac.<array>.<key>, instead of being
        reported as "not a valid number" by the other member of the union. A bare count must be a number (its sign
        is checked below, where it has been read as one)."""
        if not isinstance(value, Mapping):
            return value
        checked, errors = {}, []
        for array, accesses in value.items():
            if isinstance(accesses, Mapping):
                try:
                    accesses = RegisterAccesses.model_validate(accesses)
                except ValidationError as exc:
                    errors += [{"type": e["type"], "loc": (array, *e["loc"]), "input": e["input"],
                                **({"ctx": e["ctx"]} if "ctx" in e else {})} for e in exc.errors()]
            elif isinstance(accesses, bool) or not isinstance(accesses, (int, float, str, RegisterAccesses)):
                errors.append({"type": PydanticCustomError("accesses_type", "expected a number of register-file "
                                                                            "accesses per MAC or {reads: R, "
                                                                            "writes: W}"),
                               "loc": (array,), "input": accesses})
            checked[array] = accesses
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return checked

    @field_validator("rf_accesses_per_mac")
    @classmethod
    def _non_negative_accesses(cls, value):
        errors = [{"type": PydanticCustomError("negative_accesses", "register-file accesses per MAC must be >= 0"),
                   "loc": (array,), "input": count}
                  for array, count in value.items() if not isinstance(count, RegisterAccesses) and count < 0]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return value


def _load(name_or_path: str, directory: Path, what: str, model: type[BaseModel]):
    path = resolve(name_or_path, directory, what)
    data = load_yaml_file(path)
    try:
        return model.model_validate({**data, "source_file": str(path)})
    except ValidationError as exc:
        raise_for_validation(str(path), model, exc)


def load_design(name_or_path: str) -> DesignSpec:
    return _load(name_or_path, DESIGN_DIR, "design", DesignSpec)


_REFERENCES = {"hardware": (HARDWARE_DIR, "hardware"), "cascade": (WORKLOAD_DIR, "workload")}


def referenced_file(design: DesignSpec, field: Literal["hardware", "cascade"]) -> Path:
    """The file a design's ``hardware`` or ``cascade`` names. A relative path (a name ending in .yaml/.yml or
    containing '/') is looked up next to the design file first, so that a design and the files it names can
    move together, then from the current directory; anything else is a catalog name (``fusemax``,
    ``attention-1pass``). A name that resolves to nothing is the design file's error, in that field."""
    directory, what = _REFERENCES[field]
    value = getattr(design, field)
    as_path = Path(value)
    if design.source_file and not as_path.is_absolute() and (as_path.suffix in (".yaml", ".yml") or "/" in value):
        beside = Path(design.source_file).parent / as_path
        if beside.is_file():
            return beside
    try:
        return resolve(value, directory, what)
    except SimlibInputError as exc:
        where = f" (looked next to the design file, in {Path(design.source_file).parent}, and in the current " \
                f"directory)" if design.source_file else ""
        message = f"{what} file '{value}' not found{where}" if exc.field is None else exc.message
        raise SimlibInputError(design.source_file or design.name, field, message) from None


def design_hardware(design: DesignSpec) -> HardwareSpec:
    """The hardware the design names (``referenced_file``)."""
    return load_hardware(str(referenced_file(design, "hardware")))


def design_workload(design: DesignSpec) -> Workload:
    """The cascade the design names (``referenced_file``)."""
    return load_workload(str(referenced_file(design, "cascade")))


def check_binding(design: DesignSpec, workload: Workload, hw: HardwareSpec) -> dict[str, str]:
    """Einsum → array, after checking that every bound Einsum exists, every array exists and is a PE array (a
    ``mesh`` of PEs, which the cycle counts divide by), every computing Einsum is bound once, the bound array
    can run each of its operations (directly or decomposed), and every array given register-file accesses has
    a register file to price them at."""
    source = design.source_file or design.name
    hw_source = hw.source_file or hw.name
    if set(design.tile) != {"M0", "P0"}:
        raise SimlibInputError(source, "tile", "expected both M0 and P0 (the tile that fills the 2D array)")
    if design.execution == "row_fused" and len(design.binding) < 2:
        raise SimlibInputError(source, "binding", "a row_fused design needs a 2D array and a softmax array")
    computing = {e.output.name for e in workload.cascade.einsums if e.kind not in ("view", "init")}
    placed: dict[str, str] = {}
    for array, names in design.binding.items():
        if array not in hw.compute:
            raise SimlibInputError(source, f"binding.{array}", f"no PE array '{array}' in {hw.name} (expected one "
                                                               f"of: {', '.join(hw.compute)})")
        if not hw.compute[array].mesh:
            given = "peak_tflops" if hw.compute[array].peak_tflops else "ops_per_cycle_per_processor"
            raise SimlibInputError(hw_source, f"compute.{array}",
                                   f"a spatial design needs a PE array: expected a mesh (PEs per dimension, e.g. "
                                   f"[256, 256]) with ops_per_cycle per PE, got {given}")
        for name in names:
            if name not in computing:
                raise SimlibInputError(source, f"binding.{array}", f"no Einsum '{name}' computes in cascade "
                                                                   f"{workload.name} (expected one of: "
                                                                   f"{', '.join(sorted(computing))})")
            if name in placed:
                raise SimlibInputError(source, f"binding.{array}", f"Einsum '{name}' is bound twice")
            placed[name] = array
    for array in design.rf_accesses_per_mac:
        if array not in hw.compute:
            raise SimlibInputError(source, f"rf_accesses_per_mac.{array}",
                                   f"no PE array '{array}' in {hw.name} (expected one of: {', '.join(hw.compute)})")
        if register_level(hw, array) is None:
            raise SimlibInputError(source, f"rf_accesses_per_mac.{array}",
                                   f"{hw.name} has no register file for {array} (a memory level of kind registers "
                                   f"with per: {array}), so its accesses cannot be priced")
    missing = computing - placed.keys()
    if missing:
        raise SimlibInputError(source, "binding", f"Einsums not bound to any array: {', '.join(sorted(missing))}")
    for einsum in workload.cascade.einsums:
        array = placed.get(einsum.output.name)
        if array is None:
            continue
        only = hw.model_copy(update={"compute": {array: hw.compute[array]}})
        for op, count in einsum.ops_per_point.items():
            if count:
                try:
                    assign(only, op, "fp16", einsum.kind == "contraction")
                except SimlibInputError:
                    raise SimlibInputError(source, f"binding.{array}",
                                           f"Einsum '{einsum.output.name}' needs '{op}', which no PE of {array} "
                                           f"supports (it has {', '.join(hw.compute[array].operations)})") from None
    for group_name in ("stages", "phases"):
        groups = getattr(design, group_name)
        if groups is None:
            continue
        listed = [name for group in groups for name in group]
        for name in listed:
            if name not in placed:
                raise SimlibInputError(source, group_name, f"'{name}' is not a bound Einsum")
        twice = sorted({name for name in listed if listed.count(name) > 1})
        left_out = sorted(placed.keys() - set(listed))
        if twice or left_out:
            what = f"listed twice: {', '.join(twice)}" if twice else f"left out: {', '.join(left_out)}"
            raise SimlibInputError(source, group_name, f"every bound Einsum goes in exactly one of the "
                                                       f"{group_name}; {what}")
    return placed


def register_level(hw: HardwareSpec, array: str):
    """The register file of each PE of ``array``: the memory level of kind registers with ``per: <array>``."""
    return next((m for m in hw.memory if m.kind == "registers" and m.per == array), None)
