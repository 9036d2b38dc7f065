"""What ``simlib measure`` runs: a grid of shapes from a YAML file, expanded into one case per
(op, backend, dtype, shape). No torch here, so a grid can be checked and listed anywhere.

    device: cpu                      # or cuda; default: cuda when torch sees one, else cpu
    repeats: 5
    warmup: 2
    rounds: 1                        # visit the grid this many times; rows pool every round's runs
    attention:                       # scaled_dot_product_attention, one case per backend
      backends: [math, flash]        # math, flash, efficient, cudnn
      dtype: [fp32]
      batch: [1]
      heads: [4]
      seq: [256, 512]                # seq_q = seq_kv; or give seq_q and seq_kv lists
      head_dim: [64]
      causal: [false]
    unfused: true                    # also the explicit QK^T, softmax, PV in torch, on the attention shapes
    gemm: {dtype: [fp32], size: [256, 512]}      # square M = N = K, or m, n, k lists
    decode: {seq_kv: [4096], heads: [8], head_dim: [64], batch: [1]}   # seq_q = 1 through SDPA
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simlib.errors import SimlibInputError
from simlib.schema_errors import raise_for_validation
from simlib.yaml_loading import load_yaml_file

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _SdpaAxes(_Strict):
    backends: list[Literal["math", "flash", "efficient", "cudnn"]] = Field(default_factory=lambda: ["math"],
                                                                            min_length=1)
    dtype: list[Literal["fp32", "fp16", "bf16"]] = Field(default_factory=lambda: ["fp32"], min_length=1)
    batch: list[int] = Field(default_factory=lambda: [1], min_length=1)
    heads: list[int] = Field(default_factory=lambda: [4], min_length=1)
    head_dim: list[int] = Field(default_factory=lambda: [64], min_length=1)


class AttentionAxes(_SdpaAxes):
    seq: list[int] | None = None
    seq_q: list[int] | None = None
    seq_kv: list[int] | None = None
    causal: list[bool] = Field(default_factory=lambda: [False], min_length=1)


class GemmAxes(_Strict):
    dtype: list[Literal["fp32", "fp16", "bf16", "fp8"]] = Field(default_factory=lambda: ["fp32"], min_length=1)
    size: list[int] | None = None
    m: list[int] | None = None
    n: list[int] | None = None
    k: list[int] | None = None


class DecodeAxes(_SdpaAxes):
    seq_kv: list[int] = Field(min_length=1)


class MeasureGrid(_Strict):
    device: Literal["cpu", "cuda"] | None = None
    repeats: int = Field(default=5, gt=0)
    warmup: int = Field(default=2, ge=0)
    rounds: int = Field(default=1, gt=0)
    attention: AttentionAxes | None = None
    unfused: bool = False
    gemm: GemmAxes | None = None
    decode: DecodeAxes | None = None
    source_file: str | None = None


def load_grid(path: str | Path) -> MeasureGrid:
    data = load_yaml_file(Path(path))
    try:
        grid = MeasureGrid.model_validate({**data, "source_file": str(path)})
    except ValidationError as exc:
        raise_for_validation(str(path), MeasureGrid, exc)
    for name, axes in (("attention", grid.attention), ("gemm", grid.gemm), ("decode", grid.decode)):
        if axes is None:
            continue
        for field, values in axes.model_dump().items():
            if isinstance(values, list) and any(isinstance(v, int) and not isinstance(v, bool) and v <= 0
                                                for v in values):
                raise SimlibInputError(str(path), f"{name}.{field}", "sizes must be positive integers")
    return grid


def _seq_pairs(axes: AttentionAxes) -> list[tuple[int, int]]:
    if axes.seq is not None:
        return [(s, s) for s in axes.seq]
    if axes.seq_q is None or axes.seq_kv is None:
        raise SimlibInputError(None, "attention.seq", "give seq, or both seq_q and seq_kv")
    return list(itertools.product(axes.seq_q, axes.seq_kv))


def expand(grid: MeasureGrid) -> list[dict]:
    """Every case of the grid, in a fixed order (attention, unfused, decode, gemm)."""
    cases = []
    if grid.attention:
        a = grid.attention
        shapes = list(itertools.product(a.dtype, a.batch, a.heads, _seq_pairs(a), a.head_dim, a.causal))
        for backend, (dtype, b, h, (sq, skv), d, causal) in itertools.product(a.backends, shapes):
            cases.append({"op": "sdpa", "backend": backend, "dtype": dtype, "batch": b, "heads": h, "seq_q": sq,
                          "seq_kv": skv, "head_dim": d, "causal": causal})
        if grid.unfused:
            for dtype, b, h, (sq, skv), d, causal in shapes:
                cases.append({"op": "attention_unfused", "backend": "torch", "dtype": dtype, "batch": b,
                              "heads": h, "seq_q": sq, "seq_kv": skv, "head_dim": d, "causal": causal})
    if grid.decode:
        a = grid.decode
        for backend, dtype, b, h, skv, d in itertools.product(a.backends, a.dtype, a.batch, a.heads, a.seq_kv,
                                                              a.head_dim):
            cases.append({"op": "sdpa", "backend": backend, "dtype": dtype, "batch": b, "heads": h, "seq_q": 1,
                          "seq_kv": skv, "head_dim": d, "causal": False})
    if grid.gemm:
        g = grid.gemm
        sizes = [(s, s, s) for s in g.size] if g.size else list(itertools.product(g.m or [], g.n or [], g.k or []))
        if not sizes:
            raise SimlibInputError(grid.source_file, "gemm.size", "give size, or m, n and k lists")
        for dtype, (m, n, k) in itertools.product(g.dtype, sizes):
            cases.append({"op": "gemm", "backend": "torch", "dtype": dtype, "m": m, "n": n, "k": k})
    return cases
