"""Typed schema for hardware YAML files: GPUs and spatial arrays read alike.

A device is a clock, a list of memory levels from the outside in, and a set of compute units. A GPU unit states
its datasheet peak per data type (``peak_tflops``, a MAC counting 2 FLOPs) or a per-processor issue rate
(``ops_per_cycle_per_processor``, e.g. the SFU's 16 exp/clk/SM); a spatial PE array states its mesh and
``ops_per_cycle`` per PE (Timeloop/Accelergy vocabulary). Every unit lists the operations it executes.
Ops that no unit executes may be decomposed (``op_decomposition``: FuseMax computes exp as 6 MACs + 1 add).
"""
from __future__ import annotations

import math
from typing import Literal

import networkx as nx
from pydantic import ConfigDict, Field, field_validator, model_validator

from simlib.dtypes import DTYPE_BITS
from simlib.strict_schema import NestedValueError, StrictModel

OPERATIONS = ("mac", "mul", "add", "max", "exp", "div")

DtypeName = Literal["fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8", "fp4"]
OpName = Literal["mac", "mul", "add", "max", "exp", "div"]


class _Strict(StrictModel):
    """Unknown fields are errors, numbers are written as numbers (:class:`StrictModel`); specs are frozen."""
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MemoryLevel(_Strict):
    """One storage level. ``instances`` > 1 for per-SM / per-PE storage (capacity is per instance)."""

    name: str
    kind: Literal["dram", "cache", "scratchpad", "registers"]
    capacity_bytes: float | None = Field(default=None, gt=0)
    capacity_words: float | None = Field(default=None, gt=0)
    bandwidth_bytes_per_s: float | None = Field(default=None, gt=0)
    sustained_bandwidth_bytes_per_s: float | None = Field(default=None, gt=0)
    per: str | None = None
    # Unloaded access latency: with Little's law it bounds what one processor with a given number of bytes in
    # flight can pull (bytes in flight / latency).
    latency_ns: float | None = Field(default=None, gt=0)
    # Writing into newly allocated memory (each page zeroed by the OS on first touch), which is what unfused
    # framework kernels do with every output; measured by simlib calibrate on CPUs.
    fresh_write_bandwidth_bytes_per_s: float | None = Field(default=None, gt=0)
    # Outputs smaller than this come from memory the allocator reuses and are written at the normal bandwidth
    # (glibc malloc maps blocks above its mmap threshold afresh; simlib measure and calibrate fix that threshold
    # with mallopt); measured by simlib calibrate. Absent: every unfused output is a fresh write.
    fresh_write_min_bytes: float | None = Field(default=None, gt=0)
    area_um2_per_byte: float | None = Field(default=None, gt=0)
    energy_pj_per_read: float | None = Field(default=None, ge=0)
    energy_pj_per_write: float | None = Field(default=None, ge=0)
    access_bits: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_capacity(self):
        """One capacity; a sustained bandwidth only beside the peak it is measured against, and at most that peak
        (as ``sustained_tflops`` is at most ``peak_tflops``): a higher one would predict faster transfers with
        --sustained than the level's peak allows."""
        if self.capacity_bytes is not None and self.capacity_words is not None:
            raise ValueError("give capacity_bytes or capacity_words, not both")
        sustained, peak = self.sustained_bandwidth_bytes_per_s, self.bandwidth_bytes_per_s
        if sustained is not None and peak is None:
            raise NestedValueError(("sustained_bandwidth_bytes_per_s",),
                                   f"needs bandwidth_bytes_per_s, the peak it is at most (got {sustained} alone)")
        if sustained is not None and sustained > peak:
            raise NestedValueError(("sustained_bandwidth_bytes_per_s",),
                                   f"expected at most bandwidth_bytes_per_s ({peak:g}), got {sustained:g}")
        return self


class ComputeUnit(_Strict):
    kind: Literal["matrix", "vector", "special"]
    operations: list[OpName] = Field(min_length=1)
    peak_tflops: dict[DtypeName, float] | None = None
    sustained_tflops: dict[DtypeName, float] | None = None
    ops_per_cycle_per_processor: float | None = Field(default=None, gt=0)
    mesh: list[int] | None = None
    ops_per_cycle: float | None = Field(default=None, gt=0)
    dtypes: list[DtypeName] | None = None
    energy_pj_per_op: dict[OpName, float] | None = None

    @field_validator("energy_pj_per_op")
    @classmethod
    def _non_negative_energy(cls, value):
        for op, energy in (value or {}).items():
            if not energy >= 0:
                raise ValueError(f"energy for {op} must be >= 0")
        return value
    # Fraction of the peak that warp-synchronous MMA instructions (mma.sync, the Ampere-style path used by
    # FlashAttention-1/2) reach; on Hopper only the asynchronous warpgroup instructions (wgmma) reach the peak.
    warp_mma_fraction_of_peak: float = Field(default=1.0, gt=0, le=1)
    area_um2_per_pe: float | None = Field(default=None, gt=0)

    @field_validator("peak_tflops", "sustained_tflops")
    @classmethod
    def _positive_rates(cls, value):
        for dtype, rate in (value or {}).items():
            if not rate > 0:
                raise ValueError(f"rate for {dtype} must be > 0")
        return value

    @field_validator("mesh")
    @classmethod
    def _positive_mesh(cls, value):
        if value is not None and (not value or any(d <= 0 for d in value)):
            raise ValueError("mesh must list positive PE counts, e.g. [256, 256]")
        return value

    @model_validator(mode="after")
    def _one_rate(self):
        ways = [self.peak_tflops is not None, self.ops_per_cycle_per_processor is not None,
                self.mesh is not None]
        if sum(ways) != 1:
            raise ValueError("give exactly one of peak_tflops, ops_per_cycle_per_processor, mesh")
        if self.mesh is not None and self.ops_per_cycle is None:
            raise ValueError("a PE array (mesh) needs ops_per_cycle per PE")
        return self

    @property
    def pe_count(self) -> int:
        return math.prod(self.mesh) if self.mesh else 0


class Processors(_Strict):
    count: int = Field(gt=0)
    kind: str = "SM"


class Interconnect(_Strict):
    nvlink_bytes_per_s: float | None = Field(default=None, gt=0)


class FmhaTile(_Strict):
    """Tokens per Q tile and per KV tile of the part's fused attention forward kernel (head dim 128).

    Each a power of two of at least 64: the GNA model shapes them as NATTEN's default tiles (T,), (16, T/16)
    and (T/64, 8, 8) and searches power-of-two boxes of T tokens, which hold exactly T tokens only then
    (96 would give a 3-D default of 1x8x8 = 64 tokens; 192 has no power-of-two box)."""
    q_tokens: int = Field(gt=0)
    kv_tokens: int = Field(gt=0)

    @field_validator("q_tokens", "kv_tokens")
    @classmethod
    def _power_of_two(cls, value):
        if value < 64 or value & (value - 1):
            raise ValueError(f"expected a power of two of at least 64 tokens (the GNA model's default tiles "
                             f"(T,), (16, T/16), (T/64, 8, 8) and searched boxes need one), got {value}")
        return value


class HardwareSpec(_Strict):
    name: str
    family: Literal["gpu", "spatial", "cpu"]
    description: str = ""
    clock_ghz: float = Field(gt=0)
    word_bits: int | None = Field(default=None, gt=0)
    processors: Processors | None = None
    memory: list[MemoryLevel] = Field(min_length=1)
    compute: dict[str, ComputeUnit] = Field(min_length=1)
    op_decomposition: dict[OpName, dict[OpName, float]] = Field(default_factory=dict)
    interconnect: Interconnect | None = None
    features: list[str] = Field(default_factory=list)
    fmha_tile: FmhaTile | None = None
    source_file: str | None = None

    @model_validator(mode="after")
    def _consistent(self):
        if self.memory[0].kind != "dram":
            raise ValueError("memory levels go from the outside in: the first must be kind 'dram'")
        if self.family in ("gpu", "cpu") and self.processors is None:
            raise ValueError(f"a {self.family} needs 'processors' (its SM or core count)")
        words = any(level.capacity_words is not None for level in self.memory)
        if words and self.word_bits is None:
            raise ValueError("capacity_words needs word_bits")
        names = [level.name for level in self.memory]
        if len(set(names)) != len(names):
            raise ValueError(f"memory level names must differ, got {names}")
        if self.memory[0].bandwidth_bytes_per_s is None:
            raise ValueError(f"memory level {self.memory[0].name} (dram) needs bandwidth_bytes_per_s")
        for level in self.memory:
            if level.per is not None and level.per not in self.compute and level.per != "processor":
                raise ValueError(f"memory level {level.name}: per must be 'processor' or a compute unit name")
            if level.per == "processor" and self.processors is None:
                raise ValueError(f"memory level {level.name}: per 'processor' needs 'processors'")
        for op, parts in self.op_decomposition.items():
            if not parts:           # an empty decomposition would make the op free
                raise ValueError(f"op_decomposition.{op}: expected the operations {op} decomposes into with "
                                 f"their counts (e.g. exp: {{mac: 6, add: 1}}), got none")
            if any(not count > 0 for count in parts.values()):
                raise ValueError(f"op_decomposition.{op}: counts must be > 0")
        graph = nx.DiGraph((op, sub) for op, parts in self.op_decomposition.items() for sub in parts)
        cycle = next(nx.simple_cycles(graph), None)
        if cycle:
            raise ValueError(f"op_decomposition.{cycle[0]}: decomposes into itself "
                             f"({' -> '.join([*cycle, cycle[0]])})")
        for name, unit in self.compute.items():
            for dtype, rate in (unit.sustained_tflops or {}).items():
                peak = (unit.peak_tflops or {}).get(dtype)
                if peak is None or rate > peak:
                    raise ValueError(f"compute.{name}.sustained_tflops.{dtype}: expected at most the peak_tflops "
                                     f"for {dtype} ({peak})")
        for name, unit in self.compute.items():
            if unit.ops_per_cycle_per_processor is not None and self.processors is None:
                raise ValueError(f"compute.{name}: ops_per_cycle_per_processor needs 'processors'")
        return self

    # --- derived quantities -------------------------------------------------------------------------------
    @property
    def clock_hz(self) -> float:
        return self.clock_ghz * 1e9

    @property
    def dram(self) -> MemoryLevel:
        return self.memory[0]

    def level(self, name: str) -> MemoryLevel | None:
        return next((lvl for lvl in self.memory if lvl.name == name), None)

    def first_level(self, kind: str) -> MemoryLevel | None:
        return next((lvl for lvl in self.memory if lvl.kind == kind), None)

    def level_instances(self, level: MemoryLevel) -> int:
        if level.per is None:
            return 1
        if level.per == "processor":
            return self.processors.count
        return self.compute[level.per].pe_count or 1

    def level_capacity_bytes(self, level: MemoryLevel) -> float | None:
        """Total capacity of a level over all its instances."""
        if level.capacity_bytes is not None:
            per_instance = level.capacity_bytes
        elif level.capacity_words is not None:
            per_instance = level.capacity_words * self.word_bits / 8
        else:
            return None
        return per_instance * self.level_instances(level)

    def level_bandwidth(self, level: MemoryLevel, sustained: bool = False) -> float | None:
        if sustained and level.sustained_bandwidth_bytes_per_s is not None:
            return level.sustained_bandwidth_bytes_per_s
        return level.bandwidth_bytes_per_s

    def unit_dtypes(self, unit: ComputeUnit) -> list[str]:
        if unit.peak_tflops is not None:
            return list(unit.peak_tflops)
        return list(unit.dtypes or [])

    def issue_rate(self, unit_name: str, dtype: str, sustained: bool = False) -> float | None:
        """Operation slots per second of a unit for ``dtype``; None when the unit lacks the dtype.

        ``peak_tflops`` counts a MAC as 2 FLOPs, so slots/s = peak / 2; every other op takes one slot (an
        FMA-issue slot on GPU CUDA cores). Per-processor units: ops/clk/SM × SMs × clock. PE arrays:
        PEs × ops_per_cycle × clock. A unit with no dtype list (e.g. an SFU) accepts any dtype.
        """
        unit = self.compute[unit_name]
        if unit.peak_tflops is not None:
            table = unit.peak_tflops
            if sustained and unit.sustained_tflops and dtype in unit.sustained_tflops:
                table = unit.sustained_tflops
            if dtype not in table:
                return None
            return table[dtype] * 1e12 / 2
        if unit.dtypes is not None and dtype not in unit.dtypes:
            return None
        if unit.ops_per_cycle_per_processor is not None:
            return unit.ops_per_cycle_per_processor * self.processors.count * self.clock_hz
        return unit.pe_count * unit.ops_per_cycle * self.clock_hz

    def peak_flops(self, dtype: str) -> float | None:
        """Highest matrix-unit FLOP/s for ``dtype`` (MAC = 2 FLOPs); falls back to any unit doing MACs."""
        best = None
        for name, unit in self.compute.items():
            if "mac" not in unit.operations:
                continue
            rate = self.issue_rate(name, dtype)
            if rate is not None and (best is None or 2 * rate > best):
                best = 2 * rate
        return best

    def all_dtypes(self) -> set[str]:
        found: set[str] = set()
        for unit in self.compute.values():
            found.update(self.unit_dtypes(unit))
        return found & set(DTYPE_BITS)
