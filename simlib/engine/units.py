"""Which compute unit executes which operation, and at what rate.

Rules (stated once, used by every cascade): the multiply-accumulates of a contraction go to a ``matrix`` unit
that does MACs in the tensors' dtype (tensor core, 2D PE array), else to a ``vector`` unit. Every other operation
goes to a ``special`` unit that lists it (SFU for exp), else a ``vector`` unit, else a ``matrix`` unit. Elementwise
work runs in fp32 when a unit has no rate for the narrower dtype (softmax is computed in fp32 in practice). A
unit that lists ``mac`` but not ``mul`` executes a plain ``mul`` as a MAC with a zero addend (and it is costed
as that action). An operation no unit lists is decomposed with the hardware's ``op_decomposition`` (FuseMax:
exp = 6 MACs + 1 add).
An operation some unit does, but in no dtype the workload can use, is a dtype error (field ``dtype``), not a
missing unit: fp32 attention on FuseMax's 16-bit arrays is refused for its dtype.
"""
from __future__ import annotations

from simlib.dtypes import DTYPE_BITS
from simlib.errors import SimlibInputError
from simlib.hardware.schema import HardwareSpec

_PREFERENCE = {"contraction": ("matrix", "vector"), "other": ("special", "vector", "matrix")}


def _unit_rate(hw: HardwareSpec, unit: str, dtype: str, elementwise: bool, sustained: bool) -> float | None:
    rate = hw.issue_rate(unit, dtype, sustained)
    if rate is None and elementwise:
        rate = hw.issue_rate(unit, "fp32", sustained)
    return rate


def assign(hw: HardwareSpec, op: str, dtype: str, contraction: bool,
           sustained: bool = False) -> list[tuple[str, str, float, float]]:
    """Where ``op`` runs: a list of (unit, op, ops per original op, rate in ops/s)."""
    order = _PREFERENCE["contraction" if contraction and op == "mac" else "other"]
    for kind in order:
        for name, unit in hw.compute.items():
            action = op if op in unit.operations else "mac" if op == "mul" and "mac" in unit.operations else None
            if unit.kind != kind or action is None:
                continue
            rate = _unit_rate(hw, name, dtype, not contraction, sustained)
            if rate is not None:
                return [(name, action, 1.0, rate)]
    if op in hw.op_decomposition:
        parts = []
        for sub_op, count in hw.op_decomposition[op].items():
            for unit, sop, _, rate in assign(hw, sub_op, dtype, False, sustained):
                parts.append((unit, sop, count, rate))
        return parts
    if contraction and op == "mac":
        have = {n: hw.unit_dtypes(u) for n, u in hw.compute.items() if "mac" in u.operations}
        listing = "; ".join(f"{n} has {', '.join(d) or 'no dtype list'}" for n, d in have.items())
        raise SimlibInputError(hw.source_file or hw.name, "dtype",
                               f"hardware {hw.name} has no unit doing {dtype} products ({listing}); "
                               f"expected one of: {', '.join(sorted(hw.all_dtypes()))}")
    able = {n: hw.unit_dtypes(u) for n, u in hw.compute.items()
            if op in u.operations or op == "mul" and "mac" in u.operations}
    if able:          # a unit does the operation, only not in this dtype: the dtype is what to change
        listing = "; ".join(f"{n} has {', '.join(d) or 'no dtype list'}" for n, d in able.items())
        dtypes = sorted({d for ds in able.values() for d in ds} & set(DTYPE_BITS))
        raise SimlibInputError(hw.source_file or hw.name, "dtype",
                               f"hardware {hw.name} has no unit doing '{op}' in {dtype} (units that do it: {listing}); "
                               f"expected one of: {', '.join(dtypes)}")
    raise SimlibInputError(hw.source_file or hw.name, "compute",
                           f"hardware {hw.name} has no unit for operation '{op}' and no op_decomposition for it")
