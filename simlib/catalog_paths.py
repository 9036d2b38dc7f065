"""Where shipped YAML catalogs live, and how a name or a path resolves to a file."""
from __future__ import annotations

import difflib
from pathlib import Path

from simlib.errors import SimlibInputError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HARDWARE_DIR = PROJECT_ROOT / "hardware"
WORKLOAD_DIR = PROJECT_ROOT / "workloads"


def catalog_names(directory: Path) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def resolve(name_or_path: str | Path, directory: Path, what: str) -> Path:
    """A catalog name (``a100``) or a path to a YAML file anywhere (``./my_gpu.yaml``)."""
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.suffix in (".yaml", ".yml") or "/" in text:
        if not candidate.is_file():
            raise SimlibInputError(text, None, f"{what} file not found")
        return candidate
    shipped = directory / f"{text.lower()}.yaml"
    if shipped.is_file():
        return shipped
    names = catalog_names(directory)
    close = difflib.get_close_matches(text.lower(), names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise SimlibInputError(None, what, f"unknown {what} '{text}' (expected one of: {', '.join(names)} "
                                       f"or a path to a .yaml file){hint}")
