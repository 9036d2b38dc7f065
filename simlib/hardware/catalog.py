"""Load a hardware description by catalog name or by path."""
from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from simlib.catalog_paths import HARDWARE_DIR, catalog_names, resolve
from simlib.hardware.schema import HardwareSpec
from simlib.schema_errors import raise_for_validation
from simlib.yaml_loading import load_yaml_file


def hardware_names() -> list[str]:
    return catalog_names(HARDWARE_DIR)


def load_hardware_beside(trace: str | Path, name: str) -> HardwareSpec:
    """The hardware a trace names: a YAML next to the trace first, else ``name`` as a path or catalog name."""
    beside = Path(trace).parent / name
    return load_hardware(str(beside) if beside.is_file() else name)


def load_hardware(name_or_path: str | Path | HardwareSpec) -> HardwareSpec:
    if isinstance(name_or_path, HardwareSpec):
        return name_or_path
    path = resolve(name_or_path, HARDWARE_DIR, "hardware")
    data = load_yaml_file(path)
    data.setdefault("source_file", str(path))
    try:
        return HardwareSpec.model_validate(data)
    except ValidationError as exc:
        raise_for_validation(str(path), HardwareSpec, exc)
