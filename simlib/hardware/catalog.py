"""Load a hardware description by catalog name or by path."""
from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from simlib.catalog_paths import HARDWARE_DIR, catalog_names, resolve
from simlib.errors import SimlibInputError
from simlib.hardware.schema import HardwareSpec
from simlib.schema_errors import INTERNAL_FIELDS, raise_for_validation
from simlib.yaml_loading import load_yaml_file


def hardware_names() -> list[str]:
    return catalog_names(HARDWARE_DIR)


def load_hardware_beside(trace: str | Path, name: str) -> HardwareSpec:
    """The hardware a trace names: a YAML next to the trace first, else ``name`` as a path or catalog name."""
    beside = Path(trace).parent / name
    return load_hardware(str(beside) if beside.is_file() else name)


def load_hardware_given(trace: str | Path, name: str) -> HardwareSpec:
    """The hardware a user names for a trace (``--hardware``): a file from the current folder or a catalog name
    first, as anywhere else on the command line; a YAML next to the trace only when ``name`` is neither."""
    beside = Path(trace).parent / name
    if Path(name).is_file() or name in hardware_names() or not beside.is_file():
        return load_hardware(name)
    return load_hardware(str(beside))


def load_hardware(name_or_path: str | Path | HardwareSpec) -> HardwareSpec:
    if isinstance(name_or_path, HardwareSpec):
        return name_or_path
    path = resolve(name_or_path, HARDWARE_DIR, "hardware")
    data = load_yaml_file(path)
    if "source_file" in data:      # set here from the path: a written one would make errors name another file
        allowed = [name for name in HardwareSpec.model_fields if name not in INTERNAL_FIELDS]
        raise SimlibInputError(str(path), "source_file", f"unknown field (expected one of: {', '.join(allowed)}; "
                                                         f"simlib records the file a description came from itself)")
    data["source_file"] = str(path)
    try:
        return HardwareSpec.model_validate(data)
    except ValidationError as exc:
        raise_for_validation(str(path), HardwareSpec, exc)
