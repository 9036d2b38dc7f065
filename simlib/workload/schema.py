"""Typed schema for workload YAML files (Einsum cascades with named rank sizes and parameters)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorDecl(_Strict):
    """Rank order (upper-case rank names) and data type (a dtype name or the name of a parameter holding one).
    ``reuses``: the tensor is written in place into the storage of the named tensor, an operand of the Einsum
    that writes it and read by nothing after it (an in-place framework op such as ``masked_fill_``); it takes no
    newly allocated memory."""

    ranks: list[str] | None = None
    dtype: str | None = None
    reuses: str | None = None


class Baseline(_Strict):
    workload: str
    execution: Literal["fused", "unfused"] | None = None


class WorkloadSpec(_Strict):
    name: str
    description: str = ""
    parameters: dict[str, int | float | str | bool] = Field(default_factory=dict)
    ranks: dict[str, int | str] = Field(min_length=1)
    batch_ranks: list[str] = Field(default_factory=list)
    tensors: dict[str, TensorDecl] = Field(default_factory=dict)
    einsums: list[str] = Field(min_length=1)
    execution: Literal["fused", "unfused"] = "fused"
    # Unfused execution: Einsums (named by the tensors they write) that one framework kernel runs as loops over a
    # row held in cache, e.g. a row softmax; by default every Einsum is its own kernel. Fused execution runs the
    # whole cascade as one kernel and does not use these groups.
    kernels: list[list[str]] = Field(default_factory=list)
    stream_rank: str | None = None
    baseline: Baseline | None = None
    source_file: str | None = None

    @field_validator("ranks")
    @classmethod
    def _rank_names(cls, ranks):
        for name in ranks:
            if not (name[:1].isupper() and name.isalnum() and name == name.upper()):
                raise ValueError(f"rank name '{name}' must be upper case letters and digits, e.g. M or M0")
        return ranks
