"""Reading the published-measurement tables shipped in simlib/validation/data (CSV, '#' comment lines naming
the source)."""
from __future__ import annotations

from importlib import resources

import pandas as pd


def read_table(name: str) -> pd.DataFrame:
    text = resources.files("simlib.validation").joinpath("data", name).read_text()
    rows = [line.split(",") for line in text.splitlines() if line and not line.startswith("#")]
    return pd.DataFrame(rows[1:], columns=rows[0])
