"""Result types of a prediction: plain dataclasses, with pandas views for notebooks."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd


@dataclass
class EinsumCost:
    """One Einsum's share of a prediction."""

    index: int
    einsum: str
    kind: str
    pass_number: int
    ops: dict[str, int]
    flops: float
    units: dict[str, str]            # operation kind -> unit that executes it
    unit_time_s: dict[str, float]
    dram_read_bytes: float
    dram_write_bytes: float
    time_s: float
    bound: str


@dataclass
class Prediction:
    workload: str
    hardware: str
    execution: str
    parameters: dict
    rank_sizes: dict[str, int]
    time_s: float
    bound: str
    flops: float
    flops_by_kind: dict[str, float]
    ops: dict[str, int]
    bytes: dict[str, float]
    spill_bytes: float
    arithmetic_intensity: float
    fraction_of_peak: float | None
    unit_time_s: dict[str, float]
    level_time_s: dict[str, float]
    utilization: dict[str, float]
    passes: dict[str, int]
    energy_j: float | None
    breakdown: list[EinsumCost] = field(default_factory=list)
    speedup: float | None = None
    baseline: dict | None = None

    @property
    def tflops(self) -> float:
        return self.flops / self.time_s / 1e12 if self.time_s > 0 else 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["tflops"] = self.tflops
        if self.speedup is None:
            data.pop("speedup")
            data.pop("baseline")
        return data

    def to_frame(self) -> pd.DataFrame:
        """Per-Einsum breakdown, one row per Einsum, op counts and unit times spread into columns."""
        rows = []
        for cost in self.breakdown:
            row = {k: v for k, v in asdict(cost).items() if k not in ("ops", "units", "unit_time_s")}
            row.update({f"ops_{k}": v for k, v in cost.ops.items()})
            row.update({f"time_s_{k}": v for k, v in cost.unit_time_s.items()})
            rows.append(row)
        return pd.DataFrame(rows).set_index("index")

    def summary(self) -> pd.Series:
        """The headline numbers as one pandas Series."""
        data = {k: v for k, v in self.to_dict().items() if not isinstance(v, (dict, list))}
        data.update({f"bytes_{k}": v for k, v in self.bytes.items()})
        return pd.Series(data, name=f"{self.workload}@{self.hardware}")
