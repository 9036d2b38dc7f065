"""``simlib predict tts``: the Kinetics cost of a test-time-scaling request on a model and a GPU."""
from __future__ import annotations

import math

import numpy as np

from simlib.cli.values import check_positive_int, with_defaults
from simlib.dtypes import DTYPE_BITS, dtype_bytes
from simlib.errors import SimlibInputError
from simlib.hardware.schema import HardwareSpec
from simlib.models.attention_cli import MAX_COUNT, MAX_SEQ
from simlib.models.kinetics import ATTENTION_VARIANTS, decode_seconds, prefill_cost, tts_cost
from simlib.workload.model_spec import ModelSpec, load_model

DEFAULTS = {"model": None, "prompt_len": 1000, "gen_len": 16384, "samples": 1, "attention": "dense",
            "budget": None, "block_size": None, "block_topk": None, "local": None, "window": None,
            "full_fraction": None, "intensity": None, "dtype": "fp8", "serving_batch": 1}
NEEDS = {"topk": ("budget",), "blocktopk": ("block_size", "block_topk", "local"), "window": ("window",),
         "duo": ("window", "full_fraction"), "dense": ()}
SPARSE = ("budget", "block_size", "block_topk", "local", "window", "full_fraction")
# the longest generation per sample: the attention models' sequence cap (attention_cli.MAX_SEQ, 2**26 tokens);
# decode_seconds walks the steps in bounded chunks, so this bounds its time, not its memory
MAX_GEN_LEN = MAX_SEQ


def _check_sparse(name: str, value) -> None:
    """local: a whole number of keys >= 0 (B = local + block_size·block_topk is valid with no local window);
    full_fraction: a fraction of the heads in [0, 1]; the others: positive whole numbers."""
    if name == "full_fraction":
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or not 0 <= value <= 1):
            raise SimlibInputError("--set", name, f"expected a fraction of heads, a number in [0, 1], got {value!r}")
    elif name == "local":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SimlibInputError("--set", name, f"expected a whole number of keys >= 0, got {value!r}")
    else:
        check_positive_int(name, value)


def tts_parameters(settings: dict) -> dict:
    """``predict tts``'s settings over DEFAULTS, each checked: lengths and counts positive whole numbers, gen_len
    (one or a list) at most MAX_GEN_LEN and prompt_len at most MAX_SEQ (the attention models' sequence cap),
    samples and serving_batch at most MAX_COUNT (as ``predict attention`` caps its counts; larger values were
    accepted and gave meaningless, inexact costs), a known attention variant and dtype, intensity a finite FLOP per byte
    > 0. Every sparse setting given (SPARSE) is checked whatever the attention variant, and the variant's own
    (NEEDS) must be given; one the variant does not use is accepted and ignored, so that one table or sweep can
    give a budget for its top-k rows next to dense rows."""
    params = with_defaults("tts", DEFAULTS, settings)
    if params["model"] is None:
        raise SimlibInputError("--set", "model", "tts needs a model, e.g. --set model=qwen3-8b (or a config.json)")
    if not isinstance(params["model"], str):
        raise SimlibInputError("--set", "model", f"expected a model name or a model YAML / config.json path, got "
                                                 f"{params['model']!r}")
    lengths = params["gen_len"] if isinstance(params["gen_len"], list) else [params["gen_len"]]
    for value in lengths:
        check_positive_int("gen_len", value)
        if value > MAX_GEN_LEN:
            raise SimlibInputError("--set", "gen_len", f"expected at most {MAX_GEN_LEN} generated tokens per sample "
                                                       f"(2**26, the attention models' sequence cap), got {value}")
    params["gen_len"] = lengths
    for name in ("prompt_len", "samples", "serving_batch"):
        check_positive_int(name, params[name])
        limit = MAX_SEQ if name == "prompt_len" else MAX_COUNT
        if params[name] > limit:
            what = "prompt tokens (2**26, the attention models' sequence cap)" if name == "prompt_len" else \
                "(the counts stay exact in 64-bit integers, as predict attention's)"
            raise SimlibInputError("--set", name, f"expected at most {limit} {what}, got {params[name]}")
    if not isinstance(params["attention"], str) or params["attention"] not in ATTENTION_VARIANTS:
        raise SimlibInputError("--set", "attention", f"unknown attention {params['attention']!r} (expected one "
                                                     f"of: {', '.join(ATTENTION_VARIANTS)})")
    if not isinstance(params["dtype"], str) or params["dtype"] not in DTYPE_BITS:
        raise SimlibInputError("--set", "dtype", f"expected one dtype, one of: {', '.join(DTYPE_BITS)}; got "
                                                 f"{params['dtype']!r}")
    for name in SPARSE:
        if params[name] is not None:
            _check_sparse(name, params[name])
    for name in NEEDS[params["attention"]]:
        if params[name] is None:
            raise SimlibInputError("--set", name, f"attention={params['attention']} needs {name}")
    intensity = params["intensity"]
    if intensity is not None and (isinstance(intensity, bool) or not isinstance(intensity, (int, float))
                                  or not math.isfinite(intensity) or intensity <= 0):
        raise SimlibInputError("--set", "intensity", f"expected a finite FLOP per byte > 0, got {intensity!r}")
    return params


def default_intensity(hw: HardwareSpec, dtype: str) -> float:
    """Peak FLOP/s in ``dtype`` over the HBM bandwidth (B200 fp8: 4.5e15 / 8e12 = 562.5, the paper's I)."""
    peak = hw.peak_flops(dtype)
    if peak is None:
        raise SimlibInputError(hw.source_file or hw.name, "dtype", f"{hw.name} has no {dtype} matrix rate; set "
                                                                   f"dtype (e.g. bf16) or intensity")
    return peak / hw.dram.bandwidth_bytes_per_s


def sparse_settings(params: dict) -> dict:
    return {name: params[name] for name in NEEDS[params["attention"]]}


def model_shape(model: ModelSpec) -> dict:
    """The Kinetics cost's model shape. ``parameters`` is P of the 2P FLOPs per token: the parameters a token
    computes with, which in a mixture of experts are the active ones (shared weights plus the experts routed
    to); the bytes of reading the weights (``predict_tts``'s time) count every parameter."""
    if model.layers is None:
        raise SimlibInputError(model.source_file or model.name, "layers", "the cost model needs the layer count")
    return {"parameters": model.active_parameter_count, "heads": model.heads, "kv_heads": model.key_value_heads,
            "head_dim": model.head_dim, "layers": model.layers}


def predict_tts(hw: HardwareSpec, settings: dict) -> dict:
    params = tts_parameters(settings)
    model = load_model(params["model"])
    shape = model_shape(model)
    intensity = params["intensity"] or default_intensity(hw, params["dtype"])
    lengths = np.array(params["gen_len"], dtype=np.float64)
    cost = tts_cost(**shape, prompt_len=params["prompt_len"], gen_len=lengths, samples=params["samples"],
                    intensity=intensity, attention=params["attention"], **sparse_settings(params))
    mean = {k: float(np.mean(v)) for k, v in cost.items() if k != "attention_share"}
    mean["attention_share"] = mean["attention_eflops"] / mean["eflops"]
    peak, bandwidth = hw.peak_flops(params["dtype"]) or intensity * hw.dram.bandwidth_bytes_per_s, \
        hw.dram.bandwidth_bytes_per_s
    parameter_bytes = model.parameter_count * dtype_bytes(params["dtype"])
    decode = [decode_seconds(peak_flops=peak, bandwidth=bandwidth, parameter_bytes=parameter_bytes,
                             active_parameters=model.active_parameter_count, heads=shape["heads"],
                             kv_heads=shape["kv_heads"], head_dim=shape["head_dim"], layers=shape["layers"],
                             prompt_len=params["prompt_len"], gen_len=g, samples=params["samples"],
                             serving_batch=params["serving_batch"], attention=params["attention"],
                             **sparse_settings(params)) for g in params["gen_len"]]
    prefill = prefill_cost(**shape, prompt_len=params["prompt_len"], intensity=intensity)
    prefill_s = max(float(prefill["compute_flops"]) / peak,
                    (parameter_bytes + float(prefill["memory_bytes"])) / bandwidth)
    decode_s = float(np.mean([d[0] for d in decode]))
    return {"model": model.name, "hardware": hw.name, "attention": params["attention"], "intensity": intensity,
            **mean, "time_s": prefill_s + decode_s, "decode_time_s": decode_s,
            "decode_compute_bound_fraction": float(np.mean([d[1] for d in decode])),
            "prefill": {"compute_flops": float(prefill["compute_flops"]),
                        "memory_bytes": float(prefill["memory_bytes"]), "eflops": float(prefill["eflops"]),
                        "time_s": prefill_s},
            "per_gen_len": [{"gen_len": int(g), **{k: float(v[i]) for k, v in cost.items()}}
                            for i, g in enumerate(params["gen_len"])],
            "parameters": {**params, "model_parameters": model.parameter_count}}
