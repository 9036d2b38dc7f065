"""Test-time-scaling cost (Kinetics: Sadhukhan et al. 2025, "Rethinking Test-Time Scaling Laws"), as
reference/kinetics.md states it, plus what it leaves out: time on a given GPU, prefill, and sliding-window and
mixed-head (DuoAttention-style) attention.

Symbols: P parameters a token computes with (in a mixture of experts the active ones), H query heads, Hkv
key/value heads, d head dim, L layers (the paper folds L into d, so dL = d·L), c prompt length, g tokens
generated per sample, n samples sharing one prompt; I intensity (FLOP per byte); 2-byte KV elements.
eFLOPs = compute + I · memory, parameter reads left out (amortized over a serving batch).

* dense:      compute = n·[2Pg + 2(2c+g)g·H·dL],  memory = 2(2c + n·g)g·Hkv·dL (the prompt's KV read once for
              all n samples).
* topk:       S = B·g + ½·max(0, B − c)²;  compute = n·[2Pg + 4S·H·dL],  memory = n·4S·Hkv·dL.
* blocktopk:  B = local + block_size·block_topk;  S = B·g − ½·max(0, B − c)²;  block scoring adds
              ⌊(2c+g)/b⌋·g·H·dL to each sample's compute and ⌊(2c+n·g)/b⌋·g·Hkv·dL to the memory.
* window:     (sliding window / neighborhood attention) each token reads its last w keys, exactly
              S = Σ_{t<g} min(c + t, w) = c·t* + t*(t*−1)/2 + (g − t*)·w with t* = clip(w − c, 0, g);
              compute = n·[2Pg + 4S·H·dL], memory = n·4S·Hkv·dL.
* duo:        a fraction f of the heads (and KV heads) keep dense attention, the rest a window w.

The top-k and block top-k S are as the reference states them: block top-k's B·g − ½·max(0, B − c)² is the
continuum of Σ_t min(c + t, B) (valid once g ≥ B − c; for shorter generations with B > c it can even go negative),
top-k's "+" is the reference's own choice, an overestimate of that sum; ``window`` computes the exact sum. Every function is numpy-vectorized: any argument may be an
array and they broadcast.
"""
from __future__ import annotations

import numpy as np

from simlib.errors import SimlibInputError

ATTENTION_VARIANTS = ("dense", "topk", "blocktopk", "window", "duo")
KV_ELEMENT_BYTES = 2


def window_reads(c, g, w):
    """Σ_{t<g} min(c + t, w): keys a window of w reads over g generated tokens after a prompt of c."""
    c, g, w = (np.asarray(x, dtype=np.float64) for x in (c, g, w))
    t_star = np.clip(w - c, 0, g)
    return c * t_star + t_star * (t_star - 1) / 2 + (g - t_star) * w


def _attention(variant, *, c, g, n, heads, kv_heads, dl, budget=None, block_size=None, block_topk=None,
               local=None, window=None, full_fraction=None):
    """(attention compute FLOPs, memory bytes) for n samples."""
    if variant == "dense":
        return n * 2 * (2 * c + g) * g * heads * dl, 2 * (2 * c + n * g) * g * kv_heads * dl
    if variant == "topk":
        s = budget * g + 0.5 * np.maximum(0, budget - c) ** 2
        return n * 4 * s * heads * dl, n * 4 * s * kv_heads * dl
    if variant == "blocktopk":
        b = local + block_size * block_topk
        # the reference's continuum sum holds while the budget is within the context (b <= c + g); beyond it
        # every step reads its whole context, c·g + g²/2, which the formula equals at b = c + g
        s = np.where(b <= c + g, b * g - 0.5 * np.maximum(0, b - c) ** 2, c * g + 0.5 * g ** 2)
        search_compute = np.floor((2 * c + g) / block_size) * g * heads * dl
        search_memory = np.floor((2 * c + n * g) / block_size) * g * kv_heads * dl
        return n * (4 * s * heads * dl + search_compute), n * 4 * s * kv_heads * dl + search_memory
    if variant == "window":
        s = window_reads(c, g, window)
        return n * 4 * s * heads * dl, n * 4 * s * kv_heads * dl
    if variant == "duo":
        f = full_fraction
        dense = _attention("dense", c=c, g=g, n=n, heads=heads * f, kv_heads=kv_heads * f, dl=dl)
        local_part = _attention("window", c=c, g=g, n=n, heads=heads * (1 - f), kv_heads=kv_heads * (1 - f),
                                dl=dl, window=window)
        return dense[0] + local_part[0], dense[1] + local_part[1]
    raise SimlibInputError("--set", "attention", f"unknown attention {variant!r} (expected one of: "
                                                 f"{', '.join(ATTENTION_VARIANTS)})")


def tts_cost(*, parameters, heads, kv_heads, head_dim, layers, prompt_len, gen_len, samples, intensity,
             attention="dense", **sparse) -> dict[str, np.ndarray]:
    """Kinetics cost of n samples of g tokens after one prompt: compute FLOPs, memory bytes, eFLOPs, and the
    split into the parameter part (2Pg per sample) and the attention part."""
    c, g, n = (np.asarray(x, dtype=np.float64) for x in (prompt_len, gen_len, samples))
    dl = np.asarray(head_dim, dtype=np.float64) * np.asarray(layers, dtype=np.float64)
    param_flops = n * 2 * np.asarray(parameters, dtype=np.float64) * g
    attn_flops, memory = _attention(attention, c=c, g=g, n=n, heads=np.asarray(heads, dtype=np.float64),
                                    kv_heads=np.asarray(kv_heads, dtype=np.float64), dl=dl, **sparse)
    compute = param_flops + attn_flops
    eflops = compute + np.asarray(intensity) * memory
    return {"compute_flops": compute, "memory_bytes": memory, "eflops": eflops, "parameter_eflops": param_flops,
            "attention_eflops": eflops - param_flops, "attention_share": (eflops - param_flops) / eflops}


def keys_per_step(variant, t, c, *, budget=None, block_size=None, block_topk=None, local=None, window=None,
                  full_fraction=None):
    """Keys one sample's attention reads at decode step t (c + t, as in the cost formulas) and the blocks its
    block scoring reads (each scored with a K and a V summary, like the formulas' 2(c+t)/b per step)."""
    context = c + t
    if variant == "dense":
        return context, 0.0
    if variant == "topk":
        return np.minimum(context, budget), 0.0
    if variant == "blocktopk":
        return np.minimum(context, local + block_size * block_topk), np.floor(context / block_size)
    if variant == "window":
        return np.minimum(context, window), 0.0
    f = full_fraction
    return f * context + (1 - f) * np.minimum(context, window), 0.0


def decode_seconds(*, peak_flops, bandwidth, parameter_bytes, active_parameters, heads, kv_heads, head_dim,
                   layers, prompt_len, gen_len, samples, serving_batch=1, attention="dense", **sparse):
    """Time of the decode phase on a GPU: per step a roofline max(FLOPs / peak, bytes / bandwidth) over the
    serving batch (serving_batch requests × samples sequences), summed over the g steps (a numpy array over
    steps). Bytes per step: every parameter once (shared by the batch: what the eFLOPs model calls amortized),
    each request's prompt KV once (shared by its samples) and each sample's generated KV."""
    t = np.arange(int(gen_len), dtype=np.float64)
    dl = head_dim * layers
    keys, search = keys_per_step(attention, t, prompt_len, **sparse)
    sequences = serving_batch * samples
    flops = sequences * (2 * active_parameters + (4 * keys + 2 * search) * heads * dl)
    shared_prompt = np.minimum(keys, prompt_len) if attention == "dense" else 0.0
    own_keys = keys - shared_prompt
    kv_bytes = (serving_batch * (shared_prompt + samples * (own_keys + search / 2)) * 2 * KV_ELEMENT_BYTES
                * kv_heads * dl)
    step = np.maximum(flops / peak_flops, (parameter_bytes + kv_bytes) / bandwidth)
    return float(step.sum()), float((flops / peak_flops >= (parameter_bytes + kv_bytes) / bandwidth).mean())


def prefill_cost(*, parameters, heads, kv_heads, head_dim, layers, prompt_len, intensity) -> dict:
    """The prompt's forward pass (once for all samples): 2Pc + 2c²·H·dL FLOPs (causal attention, the same
    continuum as the decode formulas) and its KV written, 4c·Hkv·dL bytes."""
    c = np.asarray(prompt_len, dtype=np.float64)
    dl = head_dim * layers
    compute = 2 * parameters * c + 2 * c ** 2 * heads * dl
    memory = 2 * KV_ELEMENT_BYTES * c * kv_heads * dl
    return {"compute_flops": compute, "memory_bytes": memory, "eflops": compute + intensity * memory}
