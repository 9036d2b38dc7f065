"""Data types known to simlib and their storage size.

fp4 and fp8 follow the OCP microscaling element sizes (4 and 8 bits); tf32 is stored as 32 bits.
"""
from __future__ import annotations

from simlib.errors import SimlibInputError

DTYPE_BITS: dict[str, int] = {
    "fp64": 64, "fp32": 32, "tf32": 32, "fp16": 16, "bf16": 16,
    "fp8": 8, "int8": 8, "fp4": 4,
}


def dtype_bytes(dtype: str) -> float:
    """Bytes per element of ``dtype`` (fp4 gives 0.5); an input error naming the known ones otherwise."""
    if dtype not in DTYPE_BITS:
        raise SimlibInputError("--set", "dtype", f"unknown dtype {dtype!r} (expected one of: {', '.join(DTYPE_BITS)})")
    return DTYPE_BITS[dtype] / 8
