"""``simlib predict gna`` and ``simlib search gna``: parameters from ``--set`` (sizes per dimension written
``30x48x80``), checked against the mask's definition, then the simulator."""
from __future__ import annotations

import math

from simlib.cli.values import check_positive_int, with_defaults
from simlib.dtypes import DTYPE_BITS
from simlib.errors import SimlibInputError
from simlib.hardware.schema import HardwareSpec
from simlib.models.attention_cli import MAX_COUNT, MAX_SEQ
from simlib.models.gna import default_tiles, predict_gna, search_gna, tile_problem, tile_shapes

DEFAULTS = {"shape": None, "window": None, "stride": None, "dilation": None, "causal": False, "q_tile": None,
            "kv_tile": None, "batch": 1, "heads": 1, "head_dim": 128, "dtype": "bf16"}
PER_DIMENSION = ("shape", "window", "stride", "dilation", "q_tile", "kv_tile")


def _sizes(name: str, value) -> tuple[int, ...]:
    parts = value.split("x") if isinstance(value, str) else [value]
    try:
        sizes = tuple(int(p) for p in parts)
        if any(isinstance(p, float) or (isinstance(p, str) and not p.strip().isdigit()) for p in parts):
            sizes = ()                                   # 8.5 is not a size, int() would cut it to 8
    except (TypeError, ValueError):
        sizes = ()
    if not sizes or any(isinstance(p, bool) for p in parts) or any(x <= 0 for x in sizes):
        raise SimlibInputError("--set", name, f"expected positive integers per dimension like 30x48x80, got {value!r}")
    return sizes


def _check_layout_size(shape: tuple[int, ...], given) -> None:
    """The layout's bounds, the attention models' sequence cap (attention_cli.MAX_SEQ, 2**26 tokens) on each
    extent and on the total token count. Why: the mask model builds arrays over the tokens of a dimension and
    multiplies extents in 64-bit integers, so a larger layout overflowed (OverflowError), ran out of memory
    (numpy MemoryError, or the process killed) or hit numpy's 'array is too big' instead of an input error.
    Checked before anything else uses the layout, so predict, search, figure and sweeps all refuse it alike."""
    for d, n in enumerate(shape):
        if n > MAX_SEQ:
            raise SimlibInputError("--set", "shape", f"extent {n} in dimension {d} is too large: expected at most "
                                                     f"{MAX_SEQ} tokens (2**26, the attention models' sequence cap)")
    tokens = math.prod(shape)
    if tokens > MAX_SEQ:
        raise SimlibInputError("--set", "shape", f"layout {given} has {tokens} tokens: expected at most {MAX_SEQ} "
                                                 f"in all (2**26, the attention models' sequence cap)")


def _flags(value, ndim: int) -> tuple[bool, ...]:
    if isinstance(value, bool):
        return (value,) * ndim
    parts = str(value).lower().split("x")
    table = {"1": True, "true": True, "0": False, "false": False}
    if parts in (["true"], ["false"]):         # one flag for every dimension, also as text (a sweep's column)
        return (table[parts[0]],) * ndim
    if len(parts) != ndim or any(p not in table for p in parts):
        raise SimlibInputError("--set", "causal", f"expected true/false or one 0/1 per dimension like 1x0x0, got "
                                                  f"{value!r}")
    return tuple(table[p] for p in parts)


def gna_parameters(hw: HardwareSpec, settings: dict, *, resolve_tiles: bool = True) -> dict:
    """The checked parameters of one GNA problem from ``--set`` values (a sweep point or a trace row alike).

    With ``resolve_tiles`` (predict, sweeps, validation, figures) the tiles not given become the part's
    defaults and the pair actually run is checked (``_check_tiles``), so spelling a default tile out changes
    nothing. Without it (search, which searches the tiles not given) only the given tiles are checked, and
    ``q_tile`` / ``kv_tile`` stay None where not given."""
    params = with_defaults("gna", DEFAULTS, settings)
    for name in ("shape", "window"):
        if params[name] is None:
            raise SimlibInputError("--set", name, f"gna needs {name}, e.g. --set {name}=30x48x80")
    shape = _sizes("shape", params["shape"])
    ndim = len(shape)
    if ndim > 3:
        raise SimlibInputError("--set", "shape", f"expected a 1-D, 2-D or 3-D token layout, got {ndim} dimensions")
    _check_layout_size(shape, params["shape"])
    sizes = {"shape": shape}
    for name in PER_DIMENSION[1:]:
        if params[name] is not None:
            sizes[name] = _sizes(name, params[name])
            if len(sizes[name]) != ndim:
                raise SimlibInputError("--set", name, f"{name} has {len(sizes[name])} dimensions but the layout "
                                                      f"{params['shape']} has {ndim}")
    window = sizes["window"]
    stride = sizes.get("stride", (1,) * ndim)
    dilation = sizes.get("dilation", (1,) * ndim)
    for d, (n, w, s, dil) in enumerate(zip(shape, window, stride, dilation)):
        if not 2 <= w <= n:
            raise SimlibInputError("--set", "window", f"window {w} in dimension {d} must be between 2 and the "
                                                      f"layout's extent {n}")
        if s > w:
            raise SimlibInputError("--set", "stride", f"stride {s} in dimension {d} is larger than the window {w}")
        if w * dil > n:
            raise SimlibInputError("--set", "dilation", f"dilation {dil} x window {w} in dimension {d} exceeds the "
                                                        f"layout's extent {n}")
    for name in ("batch", "heads", "head_dim"):
        check_positive_int(name, params[name])
    for name in ("batch", "heads"):
        if params[name] > MAX_COUNT:
            raise SimlibInputError("--set", name, f"expected at most {MAX_COUNT} (the counts stay exact in 64-bit "
                                                  f"integers, as predict attention's), got {params[name]}")
    if params["dtype"] not in DTYPE_BITS:
        raise SimlibInputError("--set", "dtype", f"unknown dtype {params['dtype']!r}")
    if hw.family != "gpu":
        raise SimlibInputError(hw.source_file or hw.name, "family", "the GNA model needs a gpu")
    q_tile, kv_tile = default_tiles(hw, ndim, sizes.get("q_tile"), sizes.get("kv_tile"))
    _check_tiles(hw, shape, q_tile, kv_tile, sizes, params["head_dim"], params["dtype"], only_given=not resolve_tiles)
    if not resolve_tiles:
        q_tile, kv_tile = sizes.get("q_tile"), sizes.get("kv_tile")
    return {"shape": shape, "window": window, "stride": stride, "dilation": dilation,
            "causal": _flags(params["causal"], ndim), "q_tile": q_tile, "kv_tile": kv_tile,
            "batch": params["batch"], "heads": params["heads"], "head_dim": params["head_dim"],
            "dtype": params["dtype"]}


FIGURE_DEFAULTS = {"shape": "256x256", "window": "80x80"}      # ``simlib figure gna`` where --set omits them


def figure_parameters(hw: HardwareSpec, settings: dict) -> dict:
    """``simlib figure gna``'s parameters: ``gna_parameters`` with the figure's default layout (256x256) and
    window (80x80) where ``--set`` does not give them. A default the user never wrote that does not fit what
    they did write (``--set shape=1024`` against the 2-D default window: 2 dimensions of 80, each at most the
    layout's extent) is reported as that default, asking for the setting with an example that fits."""
    given = {k: v for k, v in settings.items() if v is not None}
    if "shape" in given and "window" not in given:
        shape = _sizes("shape", given["shape"])
        default = _sizes("window", FIGURE_DEFAULTS["window"])
        if len(shape) != len(default) or any(w > n for w, n in zip(default, shape)):
            example = "x".join(str(min(default[0], n)) for n in shape)
            raise SimlibInputError("--set", "window", f"not given, and the figure's default window "
                                                      f"{FIGURE_DEFAULTS['window']} does not fit the layout "
                                                      f"{given['shape']} (a window has one size per dimension, each "
                                                      f"at most the layout's extent): give one, e.g. --set "
                                                      f"window={example}")
    if "window" in given and "shape" not in given:
        window = _sizes("window", given["window"])
        default = _sizes("shape", FIGURE_DEFAULTS["shape"])
        if len(window) != len(default) or any(w > n for w, n in zip(window, default)):
            example = "x".join(str(max(default[0], w)) for w in window)
            raise SimlibInputError("--set", "shape", f"not given, and the figure's default layout "
                                                     f"{FIGURE_DEFAULTS['shape']} does not fit the window "
                                                     f"{given['window']} (one extent per window dimension, each at "
                                                     f"least the window): give one, e.g. --set shape={example}")
    return gna_parameters(hw, {**FIGURE_DEFAULTS, **given})


def _check_tiles(hw: HardwareSpec, shape, q_tile, kv_tile, sizes: dict, head_dim: int, dtype: str, *,
                 only_given: bool = False) -> None:
    """``tile_problem`` on the tiles a problem runs, given or defaulted alike; a defaulted tile that cannot run
    is named as the part's default, with a tile of the same token count that fits the layout where one exists.
    ``only_given``: a problem that involves no given tile is left to the search (which skips such pairs)."""
    problem = tile_problem(hw, shape, q_tile, kv_tile, head_dim, dtype)
    if problem is None:
        return
    field, message = problem
    involved = [field] if field in ("q_tile", "kv_tile") else ["q_tile", "kv_tile"]
    if only_given and not any(name in sizes for name in involved):
        return
    defaulted = [name for name in involved if name not in sizes]
    if defaulted:
        tiles = {"q_tile": q_tile, "kv_tile": kv_tile}
        notes = [f"{name} not given: {hw.name}'s default is {'x'.join(map(str, tiles[name]))}" for name in defaulted]
        if field in tiles:       # a side too long: tile_shapes lists the same token count's boxes that fit
            fits = tile_shapes(math.prod(tiles[field]), shape)
            hint = f"give {field}" + (f", e.g. --set {field}={'x'.join(map(str, min(fits, key=max)))}" if fits else "")
        else:
            hint = "give smaller q_tile and kv_tile"
        message = f"{message} ({'; '.join(notes)}; {hint})"
    raise SimlibInputError("--set", field, message)


def predict_gna_cli(hw: HardwareSpec, settings: dict) -> dict:
    return predict_gna(hw, **gna_parameters(hw, settings))


def search_gna_cli(hw: HardwareSpec, settings: dict, top: int, block_sparse_only: bool):
    """Strides, dilations and tile shapes for a layout and window, best predicted speedups first; tile shapes
    given with q_tile / kv_tile restrict the search to them (checked as ``predict gna`` checks them), and tiles
    searched that cannot run the problem are skipped. Strides and dilations are what it searches, so giving one
    is an error rather than silently ignored. An empty table is a valid answer (nothing met
    ``block_sparse_only``), not an input error; the CLI says so on stderr."""
    for name in ("stride", "dilation"):
        if name in settings:
            raise SimlibInputError("--set", name, f"search gna searches every {name}; give shape, window, causal, "
                                                  f"tiles, batch, heads, head_dim or dtype")
    p = gna_parameters(hw, settings, resolve_tiles=False)
    return search_gna(hw, shape=p["shape"], window=p["window"], causal=p["causal"],
                      q_tiles=[p["q_tile"]] if p["q_tile"] else None, kv_tiles=[p["kv_tile"]] if p["kv_tile"] else None,
                      batch=p["batch"], heads=p["heads"], head_dim=p["head_dim"], dtype=p["dtype"], top=top,
                      block_sparse_only=block_sparse_only)
