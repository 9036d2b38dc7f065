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

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictBool, StrictInt, ValidationError

from simlib.errors import SimlibInputError
from simlib.schema_errors import raise_for_validation
from simlib.yaml_loading import load_yaml_file

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _SdpaAxes(_Strict):
    backends: list[Literal["math", "flash", "efficient", "cudnn"]] = Field(default_factory=lambda: ["math"],
                                                                            min_length=1)
    dtype: list[Literal["fp32", "fp16", "bf16"]] = Field(default_factory=lambda: ["fp32"], min_length=1)
    batch: list[StrictInt] = Field(default_factory=lambda: [1], min_length=1)
    heads: list[StrictInt] = Field(default_factory=lambda: [4], min_length=1)
    head_dim: list[StrictInt] = Field(default_factory=lambda: [64], min_length=1)


class AttentionAxes(_SdpaAxes):
    seq: list[StrictInt] | None = Field(default=None, min_length=1)
    seq_q: list[StrictInt] | None = Field(default=None, min_length=1)
    seq_kv: list[StrictInt] | None = Field(default=None, min_length=1)
    causal: list[bool] = Field(default_factory=lambda: [False], min_length=1)


class GemmAxes(_Strict):
    dtype: list[Literal["fp32", "fp16", "bf16", "fp8"]] = Field(default_factory=lambda: ["fp32"], min_length=1)
    size: list[StrictInt] | None = Field(default=None, min_length=1)
    m: list[StrictInt] | None = Field(default=None, min_length=1)
    n: list[StrictInt] | None = Field(default=None, min_length=1)
    k: list[StrictInt] | None = Field(default=None, min_length=1)


class DecodeAxes(_SdpaAxes):
    seq_kv: list[StrictInt] = Field(min_length=1)


class MeasureGrid(_Strict):
    device: Literal["cpu", "cuda"] | None = None
    repeats: StrictInt = Field(default=5, gt=0)
    warmup: StrictInt = Field(default=2, ge=0)
    rounds: StrictInt = Field(default=1, gt=0)
    attention: AttentionAxes | None = None
    unfused: StrictBool = False
    gemm: GemmAxes | None = None
    decode: DecodeAxes | None = None
    _source: str = PrivateAttr(default="grid")

    @property
    def source_file(self) -> str:
        """Where the grid came from (its YAML, or the --set flags), for error messages."""
        return self._source


LIST_FIELDS = {"attention": AttentionAxes, "gemm": GemmAxes, "decode": DecodeAxes}
# a square size and its per-dimension lists say the same thing two ways: a flag giving one form replaces the
# file's other form, and a grid giving both is refused
ALTERNATIVES = {"attention": ("seq", ("seq_q", "seq_kv")), "gemm": ("size", ("m", "n", "k"))}


def settings_to_grid(settings: dict) -> dict:
    """``--set`` flags as grid fields: ``section.field=v1,v2`` (``attention.seq=256,512``,
    ``gemm.size=512``) or a top-level field (``repeats=3``, ``unfused=true``); one value of a list field becomes a
    one-item list."""
    data: dict = {}
    for key, value in settings.items():
        section, _, field = key.partition(".")
        if not field:
            data[section] = value
            continue
        axes = LIST_FIELDS.get(section)
        if axes is not None and field in axes.model_fields and not isinstance(value, list):
            value = [value]
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise SimlibInputError("--set", key, f"{section} is set as a whole and by field; give one")
        data[section][field] = value
    return data


def load_grid(path: str | Path | None = None, settings: dict | None = None) -> MeasureGrid:
    """The grid from a YAML file, from ``--set`` flags (:func:`settings_to_grid`), or the file with the flags
    overriding its fields."""
    source = str(path) if path is not None else "--set"
    data = load_yaml_file(Path(path)) if path is not None else {}
    for section, value in settings_to_grid(settings or {}).items():
        if isinstance(value, dict) and isinstance(data.get(section), dict):
            kept = dict(data[section])
            square, split = ALTERNATIVES.get(section, (None, ()))
            if square in value:
                kept = {k: v for k, v in kept.items() if k not in split}
            elif any(k in value for k in split):
                kept.pop(square, None)
            data[section] = {**kept, **value}
        else:
            data[section] = value
    for section, (square, split) in ALTERNATIVES.items():
        given = data.get(section)
        if isinstance(given, dict) and given.get(square) is not None and any(given.get(k) is not None
                                                                            for k in split):
            raise SimlibInputError(source, f"{section}.{square}", f"give {square} or {', '.join(split)}, not both")
    try:
        grid = MeasureGrid.model_validate(data)
    except ValidationError as exc:
        raise_for_validation(source, MeasureGrid, exc)
    grid._source = source
    for name, axes in (("attention", grid.attention), ("gemm", grid.gemm), ("decode", grid.decode)):
        if axes is None:
            continue
        for field, values in axes.model_dump().items():
            if isinstance(values, list) and any(isinstance(v, int) and not isinstance(v, bool) and v <= 0
                                                for v in values):
                raise SimlibInputError(source, f"{name}.{field}", "sizes must be positive integers")
    if grid.unfused and grid.attention is None:
        raise SimlibInputError(source, "unfused", "unfused attention runs on the attention section's shapes: "
                                                  "give an attention section")
    if not (grid.attention or grid.gemm or grid.decode):
        raise SimlibInputError(source, "attention", "the grid has no cases: expected an attention, decode or "
                                                    "gemm section")
    return grid


def _seq_pairs(axes: AttentionAxes, source: str) -> list[tuple[int, int]]:
    if axes.seq is not None:
        return [(s, s) for s in axes.seq]
    if axes.seq_q is None or axes.seq_kv is None:
        raise SimlibInputError(source, "attention.seq", "give seq, or both seq_q and seq_kv")
    return list(itertools.product(axes.seq_q, axes.seq_kv))


def expand(grid: MeasureGrid) -> list[dict]:
    """Every case of the grid, in a fixed order (attention, unfused, decode, gemm)."""
    cases = []
    if grid.attention:
        a = grid.attention
        shapes = list(itertools.product(a.dtype, a.batch, a.heads, _seq_pairs(a, grid.source_file), a.head_dim,
                                        a.causal))
        for backend, (dtype, b, h, (sq, skv), d, causal) in itertools.product(a.backends, shapes):
            cases.append({"op": "sdpa", "backend": backend, "dtype": dtype, "batch": b, "heads": h, "seq_q": sq,
                          "seq_kv": skv, "head_dim": d, "causal": causal, "section": "attention"})
        if grid.unfused:
            for dtype, b, h, (sq, skv), d, causal in shapes:
                cases.append({"op": "attention_unfused", "backend": "torch", "dtype": dtype, "batch": b,
                              "heads": h, "seq_q": sq, "seq_kv": skv, "head_dim": d, "causal": causal})
    if grid.decode:
        a = grid.decode
        for backend, dtype, b, h, skv, d in itertools.product(a.backends, a.dtype, a.batch, a.heads, a.seq_kv,
                                                              a.head_dim):
            cases.append({"op": "sdpa", "backend": backend, "dtype": dtype, "batch": b, "heads": h, "seq_q": 1,
                          "seq_kv": skv, "head_dim": d, "causal": False, "section": "decode"})
    if grid.gemm:
        g = grid.gemm
        sizes = [(s, s, s) for s in g.size] if g.size else list(itertools.product(g.m or [], g.n or [], g.k or []))
        if not sizes:
            raise SimlibInputError(grid.source_file, "gemm.size", "give size, or m, n and k lists")
        for dtype, (m, n, k) in itertools.product(g.dtype, sizes):
            cases.append({"op": "gemm", "backend": "torch", "dtype": dtype, "m": m, "n": n, "k": k})
    return cases
