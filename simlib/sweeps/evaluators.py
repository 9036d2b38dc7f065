"""What a sweep evaluates: each workload's parameters in, named output columns out, on whole arrays.

* ``attention``: the FlashAttention tile model (``attention_forward``), vectorized over every parameter, one
  call per kernel in the chunk.
* ``tts``: the Kinetics cost, vectorized, one call per model in the chunk; the intensity defaults to the
  hardware's peak over bandwidth in the ``dtype`` (fp8 unless given).
* ``gna``, ``fusemax`` (spatial designs; the hardware list is ignored, each design runs on its own) and cascades
  (any workload YAML): one prediction per point (their parameters are shapes or names).
"""
from __future__ import annotations

import numpy as np

from simlib.api import predict
from simlib.errors import SimlibInputError
from simlib.models.attention_cli import DEFAULTS as ATTENTION_DEFAULTS
from simlib.models.flash_attention import attention_forward
from simlib.models.gna_cli import DEFAULTS as GNA_DEFAULTS, predict_gna_cli
from simlib.models.kinetics import tts_cost
from simlib.models.kinetics_cli import DEFAULTS as TTS_DEFAULTS, default_intensity, model_shape
from simlib.models.spatial_cli import DEFAULTS as FUSEMAX_DEFAULTS, predict_fusemax
from simlib.workload.model_spec import load_model
from simlib.workload.workload import load_workload

ATTENTION_PARAMETERS = set(ATTENTION_DEFAULTS) | {"seq"}


def _attention(hw, params: dict) -> dict:
    size = len(next(iter(params.values())))
    p = {k: params.get(k, np.full(size, ATTENTION_DEFAULTS.get(k), dtype=object)) for k in ATTENTION_DEFAULTS}
    if "seq" in params:
        p["seq_q"] = p["seq_kv"] = params["seq"]
    for name in ("block_q", "block_kv"):
        if p[name][0] is None:
            p[name] = np.full(size, 128)
    if p["head_dim_v"][0] is None:
        p["head_dim_v"] = p["head_dim"]
    dtype = str(p["dtype"][0])
    columns = {k: np.empty(size) for k in ("time_s", "tflops", "flops", "bytes_dram", "waves")}
    columns["fits"] = np.empty(size, dtype=bool)
    columns["bound"] = np.empty(size, dtype=object)
    for kernel in np.unique(p["kernel"].astype(str)):
        mask = p["kernel"].astype(str) == kernel
        r = attention_forward(hw, batch=p["batch"][mask].astype(np.int64), heads=p["heads"][mask].astype(np.int64),
                              seq_q=p["seq_q"][mask].astype(np.int64), seq_kv=p["seq_kv"][mask].astype(np.int64),
                              head_dim=p["head_dim"][mask].astype(np.int64),
                              head_dim_v=p["head_dim_v"][mask].astype(np.int64), dtype=dtype,
                              causal=p["causal"][mask].astype(bool), kernel=kernel,
                              block_q=p["block_q"][mask].astype(np.int64), block_kv=p["block_kv"][mask].astype(np.int64),
                              backward=bool(p["backward"][0]), dropout=bool(p["dropout"][0]))
        for key, out in (("time_s", "time_s"), ("tflops", "tflops"), ("flops", "flops"), ("bytes_dram", "bytes_dram"),
                         ("waves", "waves"), ("fits", "fits"), ("bound", "bound")):
            columns[key][mask] = np.broadcast_to(r[out], (int(mask.sum()),))
    return columns


def _tts(hw, params: dict) -> dict:
    size = len(next(iter(params.values())))
    p = {k: params.get(k, np.full(size, TTS_DEFAULTS.get(k), dtype=object)) for k in TTS_DEFAULTS}
    intensity = p["intensity"] if p["intensity"][0] is not None else \
        np.full(size, default_intensity(hw, str(p["dtype"][0])))
    columns = {k: np.empty(size) for k in ("compute_flops", "memory_bytes", "eflops", "attention_share")}
    for model in np.unique(p["model"].astype(str)):
        for attention in np.unique(p["attention"].astype(str)):
            mask = (p["model"].astype(str) == model) & (p["attention"].astype(str) == attention)
            if not mask.any():
                continue
            sparse = {k: p[k][mask].astype(float) for k in ("budget", "block_size", "block_topk", "local", "window",
                                                             "full_fraction") if p[k][0] is not None}
            r = tts_cost(**model_shape(load_model(model)), prompt_len=p["prompt_len"][mask].astype(float),
                         gen_len=p["gen_len"][mask].astype(float), samples=p["samples"][mask].astype(float),
                         intensity=intensity[mask].astype(float), attention=attention, **sparse)
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
FUSEMAX_OUTPUTS = ("time_s", "energy_j", "speedup_vs_unfused", "speedup_vs_flat")


def evaluator_for(workload: str, source: str | None, check: list[str] | None = None):
    """The evaluator of ``workload``; with ``check``, parameter names it does not know are an input error."""
    if workload == "attention":
        known, fn = ATTENTION_PARAMETERS, _attention
    elif workload == "tts":
        known, fn = set(TTS_DEFAULTS), _tts
    elif workload == "gna":
        known, fn = set(GNA_DEFAULTS), _per_point(predict_gna_cli, GNA_OUTPUTS)
    elif workload == "fusemax":
        known, fn = set(FUSEMAX_DEFAULTS), _per_point(lambda hw, p: predict_fusemax(None, p), FUSEMAX_OUTPUTS)
    else:
        spec = load_workload(workload)
        known = set(spec.parameter_names) | {"execution"}
        fn = _per_point(lambda hw, p: {"time_s": predict(spec, hw, **p).time_s}, ("time_s",))
    for name in check or []:
        if name not in known:
            raise SimlibInputError(source, f"axes.{name}", f"{workload} has no parameter '{name}' (expected one of: "
                                                           f"{', '.join(sorted(known))})")
    return fn
