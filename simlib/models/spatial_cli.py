"""``simlib predict fusemax``: a spatial design (fusemax, flat, unfused or a design YAML) on a transformer
layer shape, with speedups against the unfused baseline and FLAT.

Attention runs the model's query heads (``heads`` of ``head_dim``), each on its own: under grouped-query
attention every query head streams its K and V. With ``layer=true`` the projections and MLP follow the model's
shape (``layer_gemms``: K/V projections of ``kv_heads``, a third MLP matrix where the MLP is gated)."""
from __future__ import annotations

from simlib.cli.values import check_positive_int, with_defaults
from simlib.dtypes import DTYPE_BITS
from simlib.errors import SimlibInputError
from simlib.hardware.schema import HardwareSpec
from simlib.models.attention_cli import MAX_COUNT, MAX_SEQ
from simlib.models.spatial_attention import predict_design, predict_layer
from simlib.models.spatial_design import design_hardware, design_workload, load_design
from simlib.workload.model_spec import load_model

DEFAULTS = {"design": "fusemax", "model": "bert", "seq": 65536, "seq_q": None, "seq_kv": None, "batch": 64,
            "dtype": "fp16", "layer": False}
BASELINES = ("unfused", "flat")


def _check_limit(name: str, value: int, limit: int, what: str, source: str = "--set") -> None:
    if value > limit:
        raise SimlibInputError(source, name, f"expected at most {limit} {what}, got {value}")


SEQ_LIMIT = "tokens (2**26, the attention models' sequence cap)"
COUNT_LIMIT = "(the counts stay exact in 64-bit integers, as predict attention's)"


def _parameters(settings: dict) -> dict:
    """The checked settings: seq / seq_q / seq_kv positive and at most MAX_SEQ, batch positive and at most
    MAX_COUNT, the bounds ``predict attention`` uses, so an absurd size (batch=1e20) is an input error rather
    than a meaningless answer. heads come from the model; ``run_design`` caps them the same way."""
    if "seq" in settings and ("seq_q" in settings or "seq_kv" in settings):
        raise SimlibInputError("--set", "seq", "given with seq_q or seq_kv; seq sets both, give one or the other")
    params = with_defaults("fusemax", DEFAULTS, settings)
    if "seq" in settings:                        # a bad seq is reported as seq, not as the seq_q it fills in
        check_positive_int("seq", params["seq"])
        _check_limit("seq", params["seq"], MAX_SEQ, SEQ_LIMIT)
    for name in ("seq_q", "seq_kv"):             # not given: seq; a given 0 is checked (and refused) below
        params[name] = params["seq"] if params[name] is None else params[name]
    for name in ("seq_q", "seq_kv", "batch"):
        check_positive_int(name, params[name])
        _check_limit(name, params[name], MAX_COUNT if name == "batch" else MAX_SEQ,
                     COUNT_LIMIT if name == "batch" else SEQ_LIMIT)
    if not isinstance(params["layer"], bool):
        raise SimlibInputError("--set", "layer", f"expected true or false, got {params['layer']!r}")
    if params["dtype"] not in DTYPE_BITS:
        raise SimlibInputError("--set", "dtype", f"unknown dtype {params['dtype']!r}")
    return params


def run_design(design_name: str, params: dict, hw: HardwareSpec | None = None) -> dict:
    """Attention alone, or with ``layer`` the whole layer (attention + projections + MLP on the 2D array)."""
    design = load_design(design_name)
    shape = load_model(params["model"])
    _check_limit("heads", shape.heads, MAX_COUNT, COUNT_LIMIT, shape.source_file or shape.name)
    hw = hw or design_hardware(design)
    if params["dtype"] not in hw.all_dtypes():
        raise SimlibInputError("--set", "dtype", f"{hw.name}'s arrays compute in {', '.join(sorted(hw.all_dtypes()))}"
                                                 f", not {params['dtype']}")
    args = (design, design_workload(design), hw)
    if params.get("layer"):
        if params["seq_q"] != params["seq_kv"]:
            raise SimlibInputError("--set", "seq_q", "a whole layer needs seq_q = seq_kv (self attention)")
        layer = predict_layer(*args, model=shape, batch=params["batch"], seq=params["seq_q"], dtype=params["dtype"])
        attention = layer.pop("attention")
        return {**attention, **layer, "attention_time_s": attention["time_s"],
                "attention_energy_j": attention["energy_j"]}
    return predict_design(*args, batch=params["batch"], heads=shape.heads, seq_q=params["seq_q"],
                          seq_kv=params["seq_kv"], head_dim=shape.head_dim, dtype=params["dtype"])


def predict_fusemax(hw: HardwareSpec | None, settings: dict) -> dict:
    """The design on its own hardware (or ``hw``), and each baseline on its own, for the speedups."""
    params = _parameters(settings)
    result = run_design(params["design"], params, hw)
    for baseline in BASELINES:
        other = run_design(baseline, params)
        result[f"speedup_vs_{baseline}"] = other["time_s"] / result["time_s"]
        result[f"energy_ratio_vs_{baseline}"] = result["energy_j"] / other["energy_j"]
    result["speedup"] = result["speedup_vs_unfused"]
    result["parameters"] = params
    return result
