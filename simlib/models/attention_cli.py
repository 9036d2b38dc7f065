"""``simlib predict attention``: parameters from ``--set``, tile choice, one kernel or a comparison of all."""
from __future__ import annotations

import numpy as np

from simlib.cli.values import check_positive_int, with_defaults
from simlib.dtypes import DTYPE_BITS
from simlib.errors import SimlibInputError
from simlib.hardware.schema import HardwareSpec
from simlib.models.decode_attention import DECODE_KERNELS, MAX_SPLITS, decode_forward, split_block_kv
from simlib.models.flash_attention import KERNEL_TILE_DTYPES, KERNEL_TILES, KERNELS, MIN_BLOCK_Q, TILE_CHOICES, \
    attention_forward, kernel_tiles

DEFAULTS = {"batch": 1, "heads": 16, "kv_heads": None, "seq_q": 4096, "seq_kv": 4096, "head_dim": 128,
            "head_dim_v": None, "dtype": "bf16", "causal": False, "kernel": "flash2", "block_q": None,
            "block_kv": None, "efficiency": None, "splits": None, "backward": False,
            "dropout": False}
MAX_HEAD_DIM = 256   # largest head dim FlashAttention-2/3 kernels support (their READMEs)
MAX_BLOCK = 1024     # no tile edge beyond this fits any shipped GPU's shared memory and registers
# 64M tokens: a head's seq_q x seq_kv x (d + dv) x bytes stays below 2^63, and at most 2^22 Q blocks of the
# smallest tile (16 rows) for the tile model to enumerate
MAX_SEQ = 1 << 26
MAX_COUNT = (1 << 31) - 1


def _parameters(settings: dict) -> dict:
    params = with_defaults("attention", DEFAULTS, settings, aliases={"seq": ("seq_q", "seq_kv")})
    for name in ("batch", "heads", "seq_q", "seq_kv", "head_dim", "kv_heads", "head_dim_v", "block_q",
                 "block_kv", "splits"):            # the last five default to None: derived or searched
        if params[name] is not None:
            check_positive_int(name, params[name])
            limit = MAX_SEQ if name.startswith("seq") else MAX_COUNT
            if params[name] > limit:
                raise SimlibInputError("--set", name, f"expected at most {limit} (the counts stay exact in 64-bit "
                                                      f"integers), got {params[name]}")
    for name in ("causal", "backward", "dropout"):
        if not isinstance(params[name], bool):
            raise SimlibInputError("--set", name, f"expected true or false, got {params[name]!r}")
    if params["dtype"] not in DTYPE_BITS:
        raise SimlibInputError("--set", "dtype", f"unknown dtype {params['dtype']!r} (expected one of: "
                                                 f"{', '.join(DTYPE_BITS)})")
    efficiency = params["efficiency"]
    if efficiency is not None and (isinstance(efficiency, bool) or not isinstance(efficiency, (int, float))
                                   or not 0 < efficiency <= 1):
        raise SimlibInputError("--set", "efficiency", f"expected a fraction of peak in (0, 1], got {efficiency!r}")
    params["kv_heads"] = params["kv_heads"] or params["heads"]
    params["head_dim_v"] = params["head_dim_v"] or params["head_dim"]
    if params["heads"] % params["kv_heads"]:
        raise SimlibInputError("--set", "kv_heads", f"kv_heads={params['kv_heads']} must divide "
                                                    f"heads={params['heads']} (grouped-query attention)")
    for name in ("head_dim", "head_dim_v"):
        if params[name] > MAX_HEAD_DIM or params[name] % 8:
            raise SimlibInputError("--set", name, f"head dim {params[name]} not supported: expected a multiple "
                                                  f"of 8 up to {MAX_HEAD_DIM}")
    if params["kernel"] not in (*KERNELS, *DECODE_KERNELS, "all"):
        raise SimlibInputError("--set", "kernel", f"unknown kernel {params['kernel']!r} (expected one of: "
                                                  f"{', '.join((*KERNELS, *DECODE_KERNELS[1:]))}, all)")
    if params["kernel"] in DECODE_KERNELS[1:] and params["seq_q"] != 1:
        raise SimlibInputError("--set", "seq_q", f"{params['kernel']} is a decode kernel: expected seq_q=1")
    if params["seq_q"] == 1:
        _check_decode(params)
    else:
        if params["splits"] is not None:
            raise SimlibInputError("--set", "splits", "splits apply to kernel=flashdecoding (seq_q=1)")
        _check_tiles(params)
    return params


def _check_tiles(params: dict) -> None:
    """Given tiles: multiples of 16 (the matrix instructions' tile edge); each kernel's smallest Q block
    (MIN_BLOCK_Q) is checked where it runs (:func:`predict_kernel`), in a comparison too."""
    for name in ("block_q", "block_kv"):
        _check_tile_edge(params, name)


def _check_decode(params: dict) -> None:
    """Decode (seq_q = 1) runs the decode model, which has no backward pass, block_q or efficiency ceiling;
    splits only apply to the split-KV kernel."""
    kernel = params["kernel"]
    if kernel in ("flash1", "flash3"):
        raise SimlibInputError("--set", "kernel", f"seq_q=1 is decode: expected one of "
                                                  f"{', '.join(('standard', *DECODE_KERNELS))} or all, got {kernel}")
    unused = [n for n in ("backward", "dropout") if params[n]] + \
             [n for n in ("block_q", "efficiency") if params[n] is not None]
    if params["splits"] is not None and kernel not in ("flashdecoding", "all"):
        unused.append("splits")
    if unused:
        raise SimlibInputError("--set", unused[0], f"not used by the decode kernels (seq_q=1)"
                                                   + (": splits apply to kernel=flashdecoding"
                                                      if unused[0] == "splits" else ""))
    if params["splits"] is not None and params["splits"] > MAX_SPLITS:
        raise SimlibInputError("--set", "splits", f"expected at most {MAX_SPLITS} splits, got {params['splits']}")
    _check_tile_edge(params, "block_kv")


def _check_tile_edge(params: dict, name: str) -> None:
    value = params[name]
    if value is not None and (value % 16 or value > MAX_BLOCK):
        raise SimlibInputError("--set", name, f"expected a multiple of 16 up to {MAX_BLOCK}, got {value}")


def _model_args(params: dict) -> dict:
    return {k: params[k] for k in ("batch", "heads", "kv_heads", "seq_q", "seq_kv", "head_dim", "head_dim_v",
                                   "dtype", "causal", "efficiency", "backward", "dropout")}


REQUIRED_FEATURES = {"flash3": "warp_specialization"}   # FlashAttention-3 targets Hopper-class parts


def supported_kernels(hw: HardwareSpec) -> list[str]:
    return [k for k in KERNELS if REQUIRED_FEATURES.get(k, "") in ("", *hw.features)]


def search_tiles(hw: HardwareSpec, kernel: str, block_q=None, block_kv=None, **model_args) -> tuple[dict, dict]:
    """The tile pair each point runs with: ``block_q`` / ``block_kv`` where given (a number, or an array over the
    points); else, for flash2 and flash3 forward in fp16/bf16, the pair the kernel's own launch template runs
    (``kernel_tiles``) where it fits the part; else searched over TILE_CHOICES (Q blocks of at least the kernel's
    MIN_BLOCK_Q rows). Among the pairs that fit in an SM's shared memory and registers, those within 0.1 % of the
    fastest are near-equal, and of those the one moving the fewest bytes (on chip plus DRAM) wins; ties go to the
    smaller Q, then K/V, block. Where no pair fits, the same rule runs over all pairs and the chosen row's ``fits``
    is false. ``tile_source`` says which way each point's pair came: given, kernel or searched.

    ``model_args`` are attention_forward's other arguments, numbers or arrays over the points (any shape). Returns
    (the chosen pair's outputs, arrays shaped as the points; every output of every candidate, with the candidate
    Q and K/V tiles as two trailing axes: the kernel's own pair alone where every point runs it), so ``simlib
    predict attention`` and sweeps choose by one rule."""
    # the launch templates' tiles are the forward kernels' in fp16/bf16; the backward kernels run other tiles
    if block_q is not None or block_kv is not None or kernel not in KERNEL_TILES or model_args.get("backward") \
            or model_args.get("dtype", "bf16") not in KERNEL_TILE_DTYPES:
        chosen, grid = _searched_tiles(hw, kernel, block_q, block_kv, **model_args)
        source = "given" if block_q is not None and block_kv is not None else "searched"
        return {**chosen, "tile_source": np.full(np.shape(chosen["time_s"]), source, dtype=object)}, grid
    own_q, own_kv = kernel_tiles(hw, kernel, model_args["head_dim"], model_args.get("causal", False),
                                 model_args.get("dropout", False))
    own = attention_forward(hw, kernel=kernel, block_q=np.maximum(own_q, 16), block_kv=np.maximum(own_kv, 16),
                            **model_args)
    shape = np.broadcast_shapes(*(np.shape(v) for v in own.values()))
    own = {k: np.broadcast_to(v, shape) for k, v in own.items()}
    use = np.broadcast_to((own_q > 0) & own["fits"].astype(bool), shape)
    if use.all():                          # no point needs the search
        return {**own, "tile_source": np.full(shape, "kernel", dtype=object)}, \
            {k: v[..., None, None] for k, v in own.items()}
    searched, grid = _searched_tiles(hw, kernel, None, None, **model_args)
    shape = np.broadcast_shapes(shape, np.shape(searched["time_s"]))
    use = np.broadcast_to(use, shape)
    chosen = {k: np.where(use, np.broadcast_to(own[k], shape), np.broadcast_to(v, shape))
              for k, v in searched.items()}
    return {**chosen, "tile_source": np.where(use, "kernel", "searched").astype(object)}, grid


def _searched_tiles(hw: HardwareSpec, kernel: str, block_q, block_kv, **model_args) -> tuple[dict, dict]:
    """``search_tiles``'s search: the given tiles, or the fastest pair over TILE_CHOICES by its rule."""
    def point_axes(value):
        return np.asarray(value)[..., None, None]

    def per_point(value):                  # numbers and arrays vary by point; flags, names and None do not
        return isinstance(value, np.ndarray) or (isinstance(value, (int, float, np.number))
                                                 and not isinstance(value, (bool, np.bool_)))
    bq = point_axes(block_q) if block_q is not None else \
        np.array([b for b in TILE_CHOICES if b >= MIN_BLOCK_Q[kernel]])[:, None]
    bkv = point_axes(block_kv) if block_kv is not None else np.array(TILE_CHOICES)[None, :]
    args = {k: point_axes(v) if per_point(v) else v for k, v in model_args.items()}
    grid = attention_forward(hw, kernel=kernel, block_q=bq, block_kv=bkv, **args)
    shape = np.broadcast_shapes(*(np.shape(v) for v in grid.values()))
    flat = {k: np.broadcast_to(v, shape).reshape(shape[:-2] + (-1,)) for k, v in grid.items()}
    time = np.where(flat["fits"], flat["time_s"], np.inf)
    fastest = time.min(axis=-1, keepdims=True)
    # no pair fits: every time is inf, so every pair is "near" and the fewest bytes choose among them all
    near = (time <= fastest * (1 + 1e-3)) | np.isinf(fastest)
    choice = np.argmin(np.where(near, flat["bytes_on_chip"] + flat["bytes_dram"], np.inf), axis=-1)[..., None]
    return {k: np.take_along_axis(v, choice, axis=-1)[..., 0] for k, v in flat.items()}, grid


def predict_kernel(hw: HardwareSpec, params: dict, kernel: str) -> dict:
    """One kernel; tiles given, else the kernel's own or searched over TILE_CHOICES (``search_tiles``)."""
    if kernel not in supported_kernels(hw):
        raise SimlibInputError(hw.source_file or hw.name, "features",
                               f"{kernel} needs '{REQUIRED_FEATURES[kernel]}', which {hw.name} does not list")
    if params["block_q"] is not None and params["block_q"] < MIN_BLOCK_Q[kernel]:
        raise SimlibInputError("--set", "block_q", f"{kernel} runs Q blocks of at least {MIN_BLOCK_Q[kernel]} "
                               f"rows, got {params['block_q']}")
    chosen, result = search_tiles(hw, kernel, params["block_q"], params["block_kv"], **_model_args(params))
    if not chosen["fits"]:
        smem = float(np.min(result["smem_bytes_per_block"]))
        regs = float(np.min(result["register_bytes_per_block"]))
        smem_cap, reg_cap = hw.level("smem").capacity_bytes, hw.level("registers").capacity_bytes
        short = [f"{need:.0f} B of {what} (an SM has {cap:.0f} B)"
                 for need, cap, what in ((smem, smem_cap, "shared memory"), (regs, reg_cap, "registers"))
                 if need > cap] or [f"{smem:.0f} B of shared memory and {regs:.0f} B of registers at once (no "
                                    f"tile pair fits both; an SM has {smem_cap:.0f} B and {reg_cap:.0f} B)"]
        raise SimlibInputError("--set", "block_q/block_kv",
                               f"tiles do not fit on {hw.name}: one {kernel} block needs " + " and ".join(short))
    row = {k: v.item() for k, v in chosen.items()}
    return {"kernel": kernel, "hardware": hw.name, "time_s": row["time_s"], "flops": row["flops"],
            "useful_flops": row["useful_flops"], "bytes": {"dram": row["bytes_dram"]},
            "bytes_read": {"dram": row["bytes_dram_read"]}, "bytes_written": {"dram": row["bytes_dram_written"]},
            "tflops": row["tflops"],
            "waves": int(row["waves"]) if np.isfinite(row["waves"]) else None,
            "thread_blocks": row["thread_blocks"] if np.isfinite(row["thread_blocks"]) else None,
            "block_q": None if kernel == "standard" else int(row["block_q"]),
            "block_kv": None if kernel == "standard" else int(row["block_kv"]),
            "tile_source": None if kernel == "standard" else row["tile_source"],
            "smem_bytes_per_block": row["smem_bytes_per_block"],
            "register_bytes_per_block": row["register_bytes_per_block"], "bound": row["bound"],
            "time_s_by_resource": {"tensor": row["tensor_s"], "exp": row["exp_s"], "vector": row["vector_s"],
                                   "hbm": row["hbm_s"], "smem": row["smem_s"],
                                   "l2": row["l2_s"] if hw.first_level("cache") and
                                   hw.first_level("cache").bandwidth_bytes_per_s else None},
            "exp_ops": row["exp_ops"], "other_ops": row["other_ops"]}


def predict_decode(hw: HardwareSpec, params: dict, kernel: str) -> dict:
    """One decode kernel. The K/V block is the given one, else FlashAttention-2's split kernel's for the larger
    head dim (:func:`split_block_kv`), halved down to 16 keys until a block fits the SM; ``splits`` apply to
    flashdecoding only (in a comparison of all kernels too)."""
    splits = params["splits"] if kernel == "flashdecoding" else None
    candidates = [params["block_kv"]] if params["block_kv"] is not None else \
        [b for b in (256, 128, 64, 32, 16)
         if b <= int(split_block_kv(max(params["head_dim"], params["head_dim_v"])))]
    for block_kv in candidates:
        r = decode_forward(hw, batch=params["batch"], heads=params["heads"], kv_heads=params["kv_heads"],
                           seq_kv=params["seq_kv"], head_dim=params["head_dim"], head_dim_v=params["head_dim_v"],
                           dtype=params["dtype"], kernel=kernel, block_kv=block_kv, splits=splits)
        row = {k: np.asarray(v).item() for k, v in r.items()}
        if all(row[field] <= hw.level(level).capacity_bytes
               for level, field in (("smem", "smem_bytes_per_block"), ("registers", "register_bytes_per_block"))):
            break
    block_kv = int(row["block_kv"])
    for level, field in (("smem", "smem_bytes_per_block"), ("registers", "register_bytes_per_block")):
        if row[field] > hw.level(level).capacity_bytes:
            what = "shared memory" if level == "smem" else "registers"
            raise SimlibInputError("--set", "block_kv", f"tiles do not fit on {hw.name}: one {kernel} block of "
                                                        f"{block_kv} keys needs {row[field]:.0f} B of {what} (an "
                                                        f"SM has {hw.level(level).capacity_bytes:.0f} B)")
    if splits is not None and splits > -(-params["seq_kv"] // block_kv):
        raise SimlibInputError("--set", "splits", f"{splits} splits of seq_kv={params['seq_kv']}: "
                                                  f"expected at most its {-(-params['seq_kv'] // block_kv)} K/V "
                                                  f"blocks of {block_kv} keys")
    return {"kernel": kernel, "hardware": hw.name, "time_s": row["time_s"], "flops": row["flops"],
            "bytes": {"dram": row["bytes_dram"]}, "bytes_read": {"dram": row["bytes_dram_read"]},
            "bytes_written": {"dram": row["bytes_dram_written"]}, "tflops": row["tflops"],
            "waves": int(row["waves"]), "blocks_per_sm": int(row["blocks_per_sm"]),
            "thread_blocks": int(row["thread_blocks"]), "active_sms": int(row["active_sms"]),
            "splits": int(row["splits"]), "block_q": int(row["q_block_rows"]), "block_kv": block_kv,
            "tile_source": "given" if params["block_kv"] is not None else "kernel",
            "smem_bytes_per_block": row["smem_bytes_per_block"],
            "register_bytes_per_block": row["register_bytes_per_block"], "exp_ops": row["exp_ops"],
            "other_ops": row["other_ops"], "bound": "hbm" if row["hbm_s"] >= row["compute_s"] else "compute"}


def predict_attention(hw: HardwareSpec, settings: dict) -> dict | list[dict]:
    params = _parameters(settings)
    if hw.family != "gpu":
        raise SimlibInputError(hw.source_file or hw.name, "family", "the attention model needs a gpu")
    decode = params["seq_q"] == 1
    if params["kernel"] != "all":
        if params["kernel"] in DECODE_KERNELS[1:] or (decode and params["kernel"] == "flash2"):
            return {**predict_decode(hw, params, params["kernel"]), "parameters": params}
        return {**predict_kernel(hw, params, params["kernel"]), "parameters": params}
    rows = ([predict_kernel(hw, params, "standard"), *(predict_decode(hw, params, k) for k in DECODE_KERNELS)]
            if decode else [predict_kernel(hw, params, k) for k in supported_kernels(hw)])
    keys = list(dict.fromkeys(k for row in rows for k in row))
    base = rows[0]["time_s"]
    # one set of keys for every row of the comparison: a field a kernel does not have (splits of a prefill
    # kernel, the per-resource times of the decode model) is null
    return [{**{k: row.get(k) for k in keys}, "speedup": base / row["time_s"]} for row in rows]
