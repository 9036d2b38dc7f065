"""What a sweep evaluates: each workload's parameters in, named output columns out, on whole arrays.

* ``attention``: each row as ``simlib predict attention`` predicts it, vectorized over every parameter: the
  FlashAttention tile model (``attention_forward``) with the tiles given, or where a row gives none (or null)
  the tile pair predict chooses (``search_tiles``: the kernel's own launch-template tiles, else searched); rows
  with seq_q = 1 on flash2, flashdecoding or lean by the decode model (``decode_forward``). One call per kernel
  (and tile class) in the chunk.
* ``tts``: the Kinetics cost, vectorized, one call per model in the chunk; the intensity defaults to the
  hardware's peak over bandwidth in the ``dtype`` (fp8 unless given).
* ``gna``: each point's shapes parsed and checked, then one vectorized simulation per dimensionality and dtype.
* ``fusemax`` (spatial designs) and cascades (any workload YAML): one prediction per point (their parameters
  are names). A cascade row is the workload's own prediction (``predict_cascade``): a baseline the workload
  names is not run, as a row keeps only ``time_s``. A fusemax design runs on its own architecture (its design
  YAML's ``hardware``: FuseMax on ``fusemax``, FLAT and the unfused baseline on ``flat``), so the spec's
  hardware entry does not choose it: a fusemax sweep takes exactly one entry, and each row's ``hardware``
  column names the architecture its design ran on.

Every value an attention or tts sweep gives is checked before any chunk runs, as ``simlib predict`` checks it
(``VALUE_CHECKS``), and the rules between the values of one point on every row of each chunk, so a bad value
anywhere is an input error, never a written row.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from simlib.engine.roofline import predict_cascade
from simlib.errors import SimlibInputError
from simlib.models.attention_cli import DEFAULTS as ATTENTION_DEFAULTS, REQUIRED_FEATURES, search_tiles, \
    supported_kernels
from simlib.models.attention_cli import _parameters as attention_parameters
from simlib.models.decode_attention import DECODE_KERNELS, decode_forward, split_block_kv
from simlib.models.flash_attention import MIN_BLOCK_Q, TILE_CHOICES
from simlib.models.gna import default_tile_shape, predict_gna_many
from simlib.models.gna_cli import DEFAULTS as GNA_DEFAULTS, gna_parameters
from simlib.models.kinetics import tts_cost
from simlib.models.kinetics_cli import DEFAULTS as TTS_DEFAULTS, NEEDS, default_intensity, model_shape, tts_parameters
from simlib.models.spatial_cli import DEFAULTS as FUSEMAX_DEFAULTS, predict_fusemax
from simlib.models.spatial_design import load_design
from simlib.workload.model_spec import load_model
from simlib.workload.workload import Workload, load_workload

ATTENTION_PARAMETERS = set(ATTENTION_DEFAULTS) | {"seq"}


def _python(value):
    return value.item() if isinstance(value, np.generic) else value


def _groups(params: dict, keys: tuple[str, ...]):
    """(first row's parameters as Python values, row mask) per distinct combination of ``keys``."""
    frame = pd.DataFrame({k: pd.Series(params[k]).astype(str) for k in keys})
    for _, rows in frame.groupby(list(keys), sort=False, dropna=False).indices.items():
        mask = np.zeros(len(frame), dtype=bool)
        mask[rows] = True
        yield {k: _python(v[rows[0]]) for k, v in params.items()}, mask


def _columns(params: dict, defaults: dict, size: int) -> dict[str, np.ndarray]:
    """Every parameter of the model as a column: the sweep's own, else the default; a None (null) in a column
    stands for the default too (for block_q, kv_heads, splits and the like: derived or searched, as in
    ``simlib predict``)."""
    columns = {}
    for name, default in defaults.items():
        column = params.get(name)
        if column is None:
            column = np.full(size, default, dtype=object)
        elif default is not None and column.dtype == object:
            column = np.where(pd.isna(column), default, column)
        columns[name] = column
    return columns


def _ints(column: np.ndarray, fill=0) -> np.ndarray:
    """An integer column; None (not given) as ``fill``."""
    if column.dtype != object:
        return column.astype(np.int64)
    return np.where(pd.isna(column), fill, column).astype(np.int64)


def _given(column: np.ndarray) -> np.ndarray:
    return ~pd.isna(column) if column.dtype == object else np.ones(len(column), dtype=bool)


def _refuse(rows: np.ndarray, field: str, message) -> None:
    """An input error for the first row where ``rows`` is true; ``message(i)`` describes row i's values."""
    if rows.any():
        raise SimlibInputError("sweep", field, message(int(np.argmax(rows))))


def check_attention_value(name: str, value) -> None:
    """One value of one parameter, checked by ``simlib predict attention``'s own checks, with the other settings
    chosen so that only this value can be wrong (a decode kernel or splits with seq_q=1, tiles on the kernel
    with the smallest Q block, kv_heads with as many heads). A null is the default (or a searched tile)."""
    if value is None:
        return
    if name == "kernel" and value == "all":
        raise SimlibInputError("sweep", name, "a sweep row runs one kernel, not all: expected one of standard, "
                                              "flash1, flash2, flash3, flashdecoding, lean (vary it with an axis, "
                                              "kernel: [standard, flash2])")
    context = {"kernel": {"seq_q": 1} if value in DECODE_KERNELS[1:] else {},
               "kv_heads": {"heads": value},
               "block_q": {"kernel": "standard"}, "block_kv": {"kernel": "standard"},
               "splits": {"seq_q": 1, "kernel": "flashdecoding"}}.get(name, {})
    try:
        attention_parameters({**context, name: value})
    except SimlibInputError as exc:
        raise SimlibInputError("sweep", name, exc.message) from None
    except TypeError:                      # a value of the wrong kind, compared with a number
        raise SimlibInputError("sweep", name, f"expected a number, got {value!r}") from None


def check_tts_value(name: str, value) -> None:
    """One value of one parameter, checked by ``simlib predict tts``'s own checks, under an attention variant
    that uses it (window for window, duo for full_fraction, ...) and a stand-in model."""
    if value is None:
        return
    uses = {n: variant for variant, needs in NEEDS.items() for n in needs}
    context = {"model": "any"}
    if name in uses and name != "window":
        context = {**context, "attention": uses[name], **{n: 1 for n in NEEDS[uses[name]]}}
    elif name == "window":
        context = {**context, "attention": "window"}
    elif name == "attention" and value in NEEDS:
        context = {**context, **{n: 1 for n in NEEDS[value]}}
    try:
        tts_parameters({**context, name: value})
    except SimlibInputError as exc:
        raise SimlibInputError("sweep", name, exc.message) from None
    except TypeError:
        raise SimlibInputError("sweep", name, f"expected a number, got {value!r}") from None


ATTENTION_OUTPUTS = ("time_s", "tflops", "flops", "bytes_dram", "bytes_dram_read", "bytes_dram_written", "waves",
                     "fits", "bound")
ATTENTION_GROUPS = ("kernel", "dtype", "backward", "dropout", "efficiency")


def _attention(hw, params: dict) -> dict:
    """Every row as ``simlib predict attention`` predicts it: decode rows (seq_q = 1 on flash2, flashdecoding or
    lean) by ``decode_forward``, the others by ``attention_forward`` with the tiles given or, where a row gives
    none (or null), the tile pair ``search_tiles`` chooses (the kernel's own, else searched). One vectorized call
    per (kernel, dtype, backward, dropout, efficiency) and per tile class (each of block_q / block_kv given or
    not). The values were checked one by one (``check_attention_value``); here the rules between values of one row."""
    if hw.family != "gpu":
        raise SimlibInputError("sweep", "hardware", f"{hw.name} is a {hw.family}; the attention model needs a gpu")
    size = len(next(iter(params.values())))
    p = _columns(params, ATTENTION_DEFAULTS, size)
    if "seq" in params:
        p["seq_q"] = p["seq_kv"] = _columns({"seq": params["seq"]}, {"seq": ATTENTION_DEFAULTS["seq_q"]},
                                            size)["seq"]
    v = {k: _ints(p[k]) for k in ("batch", "heads", "seq_q", "seq_kv", "head_dim")}
    v["kv_heads"] = np.where(_given(p["kv_heads"]), _ints(p["kv_heads"], 1), v["heads"])
    v["head_dim_v"] = np.where(_given(p["head_dim_v"]), _ints(p["head_dim_v"], 8), v["head_dim"])
    v["causal"] = p["causal"].astype(bool)
    for kernel in pd.unique(p["kernel"]):
        if kernel in REQUIRED_FEATURES and kernel not in supported_kernels(hw):
            raise SimlibInputError("sweep", "kernel", f"{kernel} does not run on {hw.name} (it needs "
                                                      f"'{REQUIRED_FEATURES[kernel]}')")
    _check_attention_rows(p, v)
    columns = {k: np.empty(size, dtype=object if k == "bound" else bool if k == "fits" else float)
               for k in ATTENTION_OUTPUTS}
    for first, mask in _groups(p, ATTENTION_GROUPS):
        kernel = first["kernel"]
        decode = mask & (v["seq_q"] == 1) if kernel in DECODE_KERNELS else np.zeros(size, dtype=bool)
        if decode.any():
            _decode_rows(hw, p, v, first, np.flatnonzero(decode), columns)
        for q_given in (True, False):
            for kv_given in (True, False):
                rows = np.flatnonzero(mask & ~decode & (_given(p["block_q"]) == q_given)
                                      & (_given(p["block_kv"]) == kv_given))
                if rows.size:
                    _forward_rows(hw, p, v, first, rows, q_given, kv_given, columns)
    return columns


# the tile model enumerates every Q block of every point and candidate tile pair: batches of rows keep that
# product bounded (a searched 64M-token point alone has a million Q blocks per pair)
SEARCH_BATCH_ELEMENTS = 1 << 22


def _batches(cost: np.ndarray):
    """Consecutive (start, stop) row ranges whose summed ``cost`` stays within SEARCH_BATCH_ELEMENTS (a row
    costing more runs alone)."""
    ends = np.cumsum(cost)
    start = 0
    while start < len(cost):
        before = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, before + SEARCH_BATCH_ELEMENTS, side="right")))
        yield start, stop
        start = stop


def _forward_rows(hw, p, v, first, rows, q_given, kv_given, columns) -> None:
    """Rows on the tile model, tiles given, the kernel's own or searched (``search_tiles``, as ``simlib predict
    attention``)."""
    kernel = first["kernel"]
    block_q = _ints(p["block_q"][rows]) if q_given else None
    block_kv = _ints(p["block_kv"][rows]) if kv_given else None
    q_choices = [b for b in TILE_CHOICES if b >= MIN_BLOCK_Q[kernel]]
    pairs = (1 if q_given else len(q_choices)) * (1 if kv_given else len(TILE_CHOICES))
    q_blocks = -(-v["seq_q"][rows] // (block_q if q_given else q_choices[0]))
    for start, stop in _batches(q_blocks * pairs):
        part = rows[start:stop]
        chosen, _ = search_tiles(hw, kernel, None if block_q is None else block_q[start:stop],
                                 None if block_kv is None else block_kv[start:stop],
                                 **{k: v[k][part] for k in ("batch", "heads", "kv_heads", "seq_q", "seq_kv",
                                                            "head_dim", "head_dim_v", "causal")},
                                 dtype=first["dtype"], efficiency=first["efficiency"], backward=first["backward"],
                                 dropout=first["dropout"])
        for key in ATTENTION_OUTPUTS:
            columns[key][part] = chosen[key]


def _decode_rows(hw, p, v, first, rows, columns) -> None:
    """Decode rows, as ``predict_decode``: the K/V block given or the split kernel's for the head dim, the splits
    given or FlashAttention-2's heuristic (one call each way); tiles that do not fit an SM show in ``fits``."""
    block_kv = np.where(_given(p["block_kv"][rows]), _ints(p["block_kv"][rows]), split_block_kv(v["head_dim"][rows]))
    splits = _ints(p["splits"][rows])
    given = _given(p["splits"][rows])
    blocks = -(-v["seq_kv"][rows] // block_kv)
    _refuse(given & (splits > blocks), "splits",
            lambda i: f"{splits[i]} splits of seq_kv={v['seq_kv'][rows][i]}: expected at most its {blocks[i]} K/V "
                      f"blocks of {block_kv[i]} keys")
    for split_given in (True, False):
        part = np.flatnonzero(given == split_given)
        if not part.size:
            continue
        at = rows[part]
        r = decode_forward(hw, **{k: v[k][at] for k in ("batch", "heads", "kv_heads", "seq_kv", "head_dim",
                                                        "head_dim_v")},
                           dtype=first["dtype"], kernel=first["kernel"], block_kv=block_kv[part],
                           splits=splits[part] if split_given else None)
        fits = (r["smem_bytes_per_block"] <= hw.level("smem").capacity_bytes) & \
            (r["register_bytes_per_block"] <= hw.level("registers").capacity_bytes)
        outputs = {**{k: r[k] for k in ("time_s", "tflops", "flops", "bytes_dram", "bytes_dram_read",
                                         "bytes_dram_written", "waves")},
                   "fits": fits, "bound": np.where(r["hbm_s"] >= r["compute_s"], "hbm", "compute")}
        for key in ATTENTION_OUTPUTS:
            columns[key][at] = np.broadcast_to(outputs[key], (len(at),))


def _check_attention_rows(p: dict, v: dict) -> None:
    """The rules ``simlib predict attention`` applies between the values of one point, on every row at once:
    kv_heads divides heads, causal needs seq_q <= seq_kv, decode kernels need seq_q = 1 and decode (seq_q = 1)
    takes no backward pass, dropout, block_q or efficiency and runs no flash1/flash3, splits only on
    flashdecoding, and a given block_q is at least the kernel's smallest Q block."""
    kernel = p["kernel"].astype(str)
    decode = v["seq_q"] == 1
    _refuse(v["heads"] % v["kv_heads"] != 0, "kv_heads",
            lambda i: f"kv_heads={v['kv_heads'][i]} must divide heads={v['heads'][i]} (grouped-query attention)")
    _refuse(v["causal"] & (v["seq_q"] > v["seq_kv"]), "seq_q",
            lambda i: f"causal attention needs seq_q <= seq_kv, got seq_q={v['seq_q'][i]} and "
                      f"seq_kv={v['seq_kv'][i]}")
    _refuse(~decode & np.isin(kernel, DECODE_KERNELS[1:]), "seq_q",
            lambda i: f"{kernel[i]} is a decode kernel: expected seq_q=1, got {v['seq_q'][i]}")
    _refuse(decode & np.isin(kernel, ("flash1", "flash3")), "kernel",
            lambda i: f"seq_q=1 is decode: expected one of standard, {', '.join(DECODE_KERNELS)}, got {kernel[i]}")
    for name in ("backward", "dropout"):
        _refuse(decode & p[name].astype(bool), name, lambda i: "not used by the decode kernels (seq_q=1)")
    for name in ("block_q", "efficiency"):
        _refuse(decode & _given(p[name]), name, lambda i: "not used by the decode kernels (seq_q=1)")
    _refuse(_given(p["splits"]) & ~(decode & (kernel == "flashdecoding")), "splits",
            lambda i: f"splits apply to kernel=flashdecoding (seq_q=1), got kernel={kernel[i]} and "
                      f"seq_q={v['seq_q'][i]}")
    smallest = pd.Series(kernel).map(MIN_BLOCK_Q).fillna(0).to_numpy()
    block_q = _ints(p["block_q"])
    _refuse(_given(p["block_q"]) & (block_q < smallest), "block_q",
            lambda i: f"{kernel[i]} runs Q blocks of at least {MIN_BLOCK_Q[kernel[i]]} rows, got {block_q[i]}")


TTS_OUTPUTS = ("compute_flops", "memory_bytes", "eflops", "attention_share")


def _tts(hw, params: dict) -> dict:
    """One Kinetics call per (model, attention, dtype), each checked as ``simlib predict tts`` checks it; the
    values were checked one by one (``check_tts_value``), here that every row of a sparse variant gives what the
    variant needs."""
    size = len(next(iter(params.values())))
    p = _columns(params, TTS_DEFAULTS, size)
    columns = {k: np.empty(size) for k in TTS_OUTPUTS}
    for first, mask in _groups(p, ("model", "attention", "dtype")):
        attention = first["attention"]
        for name in NEEDS.get(attention, ()):
            _refuse(mask & ~_given(p[name]), name, lambda i: f"attention={attention} needs {name}")
        settings = tts_parameters({k: val for k, val in first.items() if val is not None})
        intensity = p["intensity"][mask]
        intensity = np.where(_given(intensity), intensity, np.nan).astype(float)
        if np.isnan(intensity).any():
            intensity = np.where(np.isnan(intensity), default_intensity(hw, settings["dtype"]), intensity)
        sparse = {k: p[k][mask].astype(float) for k in NEEDS[settings["attention"]]}
        r = tts_cost(**model_shape(load_model(settings["model"])), prompt_len=p["prompt_len"][mask].astype(float),
                     gen_len=p["gen_len"][mask].astype(float), samples=p["samples"][mask].astype(float),
                     intensity=intensity, attention=settings["attention"], **sparse)
        for key in columns:
            columns[key][mask] = r[key]
    return columns


VALUE_CHECKS = {"attention": check_attention_value, "tts": check_tts_value}


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


MODEL_WORKLOADS = ("attention", "tts", "gna", "fusemax")     # a sweep's other workloads are cascades


def _cascade_time(workload: Workload):
    """A cascade point's time as ``simlib predict`` gives it, without the baseline prediction ``simlib.predict``
    adds for the speedup, which a sweep row does not keep."""
    return lambda hw, p: {"time_s": predict_cascade(workload.bind(p), hw, False).time_s}


def evaluator_for(workload: str | Workload, source: str | None, check: list[str] | None = None,
                  hardware: list[str] | None = None):
    """The evaluator of ``workload`` (a model's name, or a cascade: a loaded Workload, or its name or path);
    with ``check``, parameter names it does not know are an input error, and with ``hardware`` (the spec's
    list), a list the workload cannot use. An evaluator returns its output columns and, where the hardware a
    point ran on is not the spec's entry (fusemax), a ``hardware`` column naming it."""
    if isinstance(workload, Workload) or workload not in MODEL_WORKLOADS:
        spec = workload if isinstance(workload, Workload) else load_workload(workload)
        known = set(spec.parameter_names())
        fn = _per_point(_cascade_time(spec), ("time_s",))
        workload = workload if isinstance(workload, str) else spec.name
    elif workload == "attention":
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
    for name in check or []:
        if name not in known:
            raise SimlibInputError(source, f"axes.{name}", f"{workload} has no parameter '{name}' (expected one of: "
                                                           f"{', '.join(sorted(known))})")
    return fn
