"""What a sweep evaluates: each workload's parameters in, named output columns out, on whole arrays.

* ``attention``: the FlashAttention tile model (``attention_forward``), vectorized over every parameter, one
  call per kernel in the chunk.
* ``tts``: the Kinetics cost, vectorized, one call per model in the chunk; the intensity defaults to the
  hardware's peak over bandwidth in the ``dtype`` (fp8 unless given).
* ``gna``: each point's shapes parsed and checked, then one vectorized simulation per dimensionality and dtype.
* ``fusemax`` (spatial designs) and cascades (any workload YAML): one prediction per point (their parameters
  are names). A fusemax design runs on its own architecture (its design YAML's ``hardware``: FuseMax on
  ``fusemax``, FLAT and the unfused baseline on ``flat``), so the spec's hardware entry does not choose it: a
  fusemax sweep takes exactly one entry, and each row's ``hardware`` column names the architecture its design
  ran on.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from simlib.api import predict
from simlib.errors import SimlibInputError
from simlib.models.attention_cli import DEFAULTS as ATTENTION_DEFAULTS, REQUIRED_FEATURES, supported_kernels
from simlib.models.attention_cli import _parameters as attention_parameters
from simlib.models.flash_attention import attention_forward
from simlib.models.gna import default_tile_shape, predict_gna_many
from simlib.models.gna_cli import DEFAULTS as GNA_DEFAULTS, gna_parameters
from simlib.models.kinetics import tts_cost
from simlib.models.kinetics_cli import DEFAULTS as TTS_DEFAULTS, NEEDS, default_intensity, model_shape, tts_parameters
from simlib.models.spatial_cli import DEFAULTS as FUSEMAX_DEFAULTS, predict_fusemax
from simlib.models.spatial_design import load_design
from simlib.workload.model_spec import load_model
from simlib.workload.workload import load_workload

ATTENTION_PARAMETERS = set(ATTENTION_DEFAULTS) | {"seq"}


def _groups(params: dict, keys: tuple[str, ...]):
    """(first row's parameters as Python values, row mask) per distinct combination of ``keys``."""
    frame = pd.DataFrame({k: pd.Series(params[k]).astype(str) for k in keys})
    for _, rows in frame.groupby(list(keys), sort=False, dropna=False).indices.items():
        mask = np.zeros(len(frame), dtype=bool)
        mask[rows] = True
        first = {k: (v[rows[0]].item() if isinstance(v[rows[0]], np.generic) else v[rows[0]])
                 for k, v in params.items()}
        yield first, mask


ATTENTION_OUTPUTS = ("time_s", "tflops", "flops", "bytes_dram", "waves", "fits", "bound")
ATTENTION_GROUPS = ("kernel", "dtype", "backward", "dropout", "efficiency")


def _attention(hw, params: dict) -> dict:
    """One attention_forward call per (kernel, dtype, backward, dropout, efficiency); each combination is
    checked the way ``simlib predict attention`` checks its settings."""
    size = len(next(iter(params.values())))
    p = {k: params.get(k, np.full(size, ATTENTION_DEFAULTS[k], dtype=object)) for k in ATTENTION_DEFAULTS}
    if "seq" in params:
        p["seq_q"] = p["seq_kv"] = params["seq"]
    columns = {k: np.empty(size, dtype=object if k == "bound" else bool if k == "fits" else float)
               for k in ATTENTION_OUTPUTS}
    for first, mask in _groups(p, ATTENTION_GROUPS):
        settings = _check_attention(hw, {k: v for k, v in first.items() if v is not None})
        ints = {k: p[k][mask].astype(np.int64) for k in ("batch", "heads", "seq_q", "seq_kv", "head_dim")}
        ints["kv_heads"] = p["kv_heads"][mask].astype(np.int64) if first["kv_heads"] is not None else ints["heads"]
        dv = p["head_dim_v"][mask] if first["head_dim_v"] is not None else ints["head_dim"]
        tiles = {k: p[k][mask].astype(np.int64) if first[k] is not None else np.full(int(mask.sum()), 128)
                 for k in ("block_q", "block_kv")}
        r = attention_forward(hw, **ints, head_dim_v=np.asarray(dv).astype(np.int64), dtype=settings["dtype"],
                              causal=p["causal"][mask].astype(bool), kernel=settings["kernel"],
                              efficiency=settings["efficiency"], backward=settings["backward"],
                              dropout=settings["dropout"], **tiles)
        for key in ATTENTION_OUTPUTS:
            columns[key][mask] = np.broadcast_to(r[key], (int(mask.sum()),))
    return columns


def _check_attention(hw, first: dict) -> dict:
    """The group's settings checked as ``simlib predict attention`` checks them, except the tiles: a sweep's
    tiles vary per point, and a point whose tiles do not fit is reported in its ``fits`` column."""
    kernel = first.get("kernel", ATTENTION_DEFAULTS["kernel"])
    if kernel in REQUIRED_FEATURES and kernel not in supported_kernels(hw):
        raise SimlibInputError("sweep", "kernel", f"{kernel} does not run on {hw.name} (it needs "
                                                  f"'{REQUIRED_FEATURES[kernel]}')")
    return attention_parameters({k: v for k, v in first.items() if k not in ("seq", "block_q", "block_kv")})


TTS_OUTPUTS = ("compute_flops", "memory_bytes", "eflops", "attention_share")


def _tts(hw, params: dict) -> dict:
    """One Kinetics call per (model, attention, dtype), each checked as ``simlib predict tts`` checks it."""
    size = len(next(iter(params.values())))
    p = {k: params.get(k, np.full(size, TTS_DEFAULTS[k], dtype=object)) for k in TTS_DEFAULTS}
    columns = {k: np.empty(size) for k in TTS_OUTPUTS}
    for first, mask in _groups(p, ("model", "attention", "dtype")):
        settings = tts_parameters({k: v for k, v in first.items() if v is not None})
        intensity = p["intensity"][mask].astype(float) if first["intensity"] is not None else \
            default_intensity(hw, settings["dtype"])
        sparse = {k: p[k][mask].astype(float) for k in NEEDS[settings["attention"]]}
        r = tts_cost(**model_shape(load_model(settings["model"])), prompt_len=p["prompt_len"][mask].astype(float),
                     gen_len=p["gen_len"][mask].astype(float), samples=p["samples"][mask].astype(float),
                     intensity=intensity, attention=settings["attention"], **sparse)
        for key in columns:
            columns[key][mask] = r[key]
    return columns


def _per_point(fn, outputs: tuple[str, ...]):
    """One prediction per point; ``fn(hw, parameters)`` returns a dict holding ``outputs``."""
    def run(hw, params: dict) -> dict:
        size = len(next(iter(params.values())))
        rows = [fn(hw, {k: (v[i].item() if isinstance(v[i], np.generic) else v[i]) for k, v in params.items()})
                for i in range(size)]
        return {name: np.array([r[name] for r in rows]) for name in outputs}
    return run


GNA_OUTPUTS = ("time_s", "speedup", "speedup_bound", "tile_speedup_bound", "fully_block_sparse")
# the simulator holds arrays of points x longest extent for causal masks: batches keep that product bounded
GNA_BATCH_ELEMENTS = 1 << 22


def _gna(hw, params: dict) -> dict:
    """Each point parsed and checked as ``simlib predict gna`` does; then one vectorized simulation per
    (dimensionality, dtype), in batches of bounded size."""
    size = len(next(iter(params.values())))
    points = [gna_parameters(hw, {k: (v[i].item() if isinstance(v[i], np.generic) else v[i])
                                  for k, v in params.items() if v[i] is not None}) for i in range(size)]
    for p in points:
        p["q_tile"] = p["q_tile"] or default_tile_shape(hw.fmha_tile.q_tokens, len(p["shape"]))
        p["kv_tile"] = p["kv_tile"] or default_tile_shape(hw.fmha_tile.kv_tokens, len(p["shape"]))
    columns = {k: np.empty(size, dtype=bool if k == "fully_block_sparse" else float) for k in GNA_OUTPUTS}
    keys = pd.DataFrame({"ndim": [len(p["shape"]) for p in points], "dtype": [p["dtype"] for p in points]})
    for (ndim, dtype), rows in keys.groupby(["ndim", "dtype"], sort=False).indices.items():
        longest = max(max(points[i]["shape"]) for i in rows)
        step = max(1, GNA_BATCH_ELEMENTS // longest)
        for part in (rows[i:i + step] for i in range(0, len(rows), step)):
            chosen = [points[i] for i in part]
            per_dim = {name: tuple(np.array([p[name][d] for p in chosen]) for d in range(ndim))
                       for name in ("shape", "window", "stride", "dilation", "causal", "q_tile", "kv_tile")}
            r = predict_gna_many(hw, **per_dim, **{name: np.array([p[name] for p in chosen])
                                                   for name in ("batch", "heads", "head_dim")}, dtype=dtype)
            for key in GNA_OUTPUTS:
                columns[key][part] = np.broadcast_to(r[key], (len(part),))
    return columns
FUSEMAX_OUTPUTS = ("time_s", "energy_j", "speedup_vs_unfused", "speedup_vs_flat")
OUTPUT_COLUMNS = (*ATTENTION_OUTPUTS, *TTS_OUTPUTS, *GNA_OUTPUTS, *FUSEMAX_OUTPUTS)   # everything a sweep adds


def _fusemax(hw, params: dict) -> dict:
    """``simlib predict fusemax`` on one point, and ``hardware``: the architecture the design ran on (its design
    YAML's hardware; ``hw``, the spec's entry, is not used)."""
    result = predict_fusemax(None, params)
    return {**result, "hardware": load_design(result["parameters"]["design"]).hardware}


def evaluator_for(workload: str, source: str | None, check: list[str] | None = None,
                  hardware: list[str] | None = None):
    """The evaluator of ``workload``; with ``check``, parameter names it does not know are an input error, and
    with ``hardware`` (the spec's list), a list the workload cannot use. An evaluator returns its output columns
    and, where the hardware a point ran on is not the spec's entry (fusemax), a ``hardware`` column naming it."""
    if workload == "attention":
        known, fn = ATTENTION_PARAMETERS, _attention
    elif workload == "tts":
        known, fn = set(TTS_DEFAULTS), _tts
    elif workload == "gna":
        known, fn = set(GNA_DEFAULTS), _gna
    elif workload == "fusemax":
        known, fn = set(FUSEMAX_DEFAULTS), _per_point(_fusemax, (*FUSEMAX_OUTPUTS, "hardware"))
        if hardware is not None and len(hardware) > 1:
            raise SimlibInputError(source, "hardware", f"a fusemax sweep runs each design on its own architecture "
                                                       f"(the design YAML's hardware: fusemax on fusemax, flat and "
                                                       f"unfused on flat), so more hardware entries would only "
                                                       f"repeat every point; expected one entry, got "
                                                       f"{len(hardware)}: {', '.join(hardware)}")
    else:
        spec = load_workload(workload)
        known = set(spec.parameter_names) | {"execution"}
        fn = _per_point(lambda hw, p: {"time_s": predict(spec, hw, **p).time_s}, ("time_s",))
    for name in check or []:
        if name not in known:
            raise SimlibInputError(source, f"axes.{name}", f"{workload} has no parameter '{name}' (expected one of: "
                                                           f"{', '.join(sorted(known))})")
    return fn
