"""Test-time-scaling cost (Kinetics: Sadhukhan et al. 2025, "Rethinking Test-Time Scaling Laws"), as
reference/kinetics.md states it, plus what it leaves out: time on a given GPU, prefill, and sliding-window and
mixed-head (DuoAttention-style) attention.

Symbols: P parameters a token computes with (in a mixture of experts the active ones), H query heads, Hkv
key/value heads, d head dim, L layers (the paper folds L into d, so dL = d·L), c prompt length, g tokens
generated per sample, n samples sharing one prompt; I intensity (FLOP per byte); 2-byte KV elements.
eFLOPs = compute + I · memory, parameter reads left out (amortized over a serving batch).

* dense:      compute = n·[2Pg + 2(2c+g)g·H·dL],  memory = 2(2c + n·g)g·Hkv·dL (the prompt's KV read once for
              all n samples).
* topk:       S = B·g + ½·max(0, B − c)² for B < c + g;  S = c·g + g²/2 (the whole context at every step,
              dense's continuum) for B ≥ c + g;  compute = n·[2Pg + 4S·H·dL],  memory = n·4S·Hkv·dL.
* blocktopk:  B = local + block_size·block_topk;  S = B·g − ½·max(0, B − c)² for B ≤ c + g, c·g + g²/2 beyond;
              block scoring adds ⌊(2c+g)/b⌋·g·H·dL to each sample's compute and ⌊(2c+n·g)/b⌋·g·Hkv·dL to the
              memory (the prompt's block summaries read once for all n samples).
* window:     (sliding window / neighborhood attention) each token reads its last w keys:
              S = ∫_0^g min(c + t, w) dt = c·t* + t*²/2 + (g − t*)·w with t* = clip(w − c, 0, g);
              compute = n·[2Pg + 4S·H·dL].  The prompt keys inside the window are the same positions for every
              sample, so they are read once per step for all n samples (as dense reads its prompt), each
              sample's own generated keys once per sample:
              memory = 4·Hkv·dL·∫_0^g [min(c, max(0, w − t)) + n·min(t, w)] dt = 4·Hkv·dL·(S + (n − 1)·G),
              G = ∫_0^g min(t, w) dt = m²/2 + (g − m)·w with m = min(w, g).
* duo:        a fraction f of the heads (and KV heads) keep dense attention, the rest a window w.

Continuum: like the reference's dense 2(2c+g)g = 4·∫_0^g (c + t) dt and block top-k's B·g − ½·(B − c)² =
∫_0^g min(c + t, B) dt, the window sums are integrals over the generated tokens; for integer c and w they equal
the sums over the steps with step t's position taken at its midpoint t + ½ (every kink falls on an integer), and
a window w ≥ c + g costs exactly what dense attention costs. The top-k and block top-k S are as the reference
states them for B < c + g (block top-k's is the integral above, valid once g ≥ B − c: for shorter generations
with B > c it can even go negative; top-k's "+" is the reference's own choice, an overestimate of that
integral); for B ≥ c + g every step reads its whole context, which block top-k's formula meets continuously at
B = c + g while top-k's jumps down there (from (c+g)·g + g²/2 to c·g + g²/2), rather than growing without bound
in B while no step can read more keys than its context holds.

``tts_cost``, ``window_reads``, ``window_own_reads``, ``step_reads`` and ``prefill_cost`` are numpy-vectorized:
any argument may be an array and they broadcast. ``decode_seconds`` takes scalars (one request shape) and
evaluates its g decode steps as arrays, in chunks of ``DECODE_CHUNK`` steps so that memory stays bounded for
any g.
"""
from __future__ import annotations

import math

import numpy as np

from simlib.errors import SimlibInputError

ATTENTION_VARIANTS = ("dense", "topk", "blocktopk", "window", "duo")
KV_ELEMENT_BYTES = 2
DECODE_CHUNK = 1 << 20      # decode steps per array in decode_seconds: 8 MiB per float64 array


def window_reads(c, g, w):
    """S = ∫_0^g min(c + t, w) dt = c·t* + t*²/2 + (g − t*)·w, t* = clip(w − c, 0, g): the keys a window of w
    reads over g generated tokens after a prompt of c, in the continuum the reference uses for dense attention
    (w ≥ c + g gives dense's c·g + g²/2)."""
    c, g, w = (np.asarray(x, dtype=np.float64) for x in (c, g, w))
    t_star = np.clip(w - c, 0, g)
    return c * t_star + t_star ** 2 / 2 + (g - t_star) * w


def window_own_reads(g, w):
    """G = ∫_0^g min(t, w) dt = m²/2 + (g − m)·w, m = min(w, g): the keys of those a window reads that the sample
    generated itself (the rest, S − G, are prompt keys, the same positions for every sample)."""
    g, w = (np.asarray(x, dtype=np.float64) for x in (g, w))
    m = np.minimum(w, g)
    return m ** 2 / 2 + (g - m) * w


def _attention(variant, *, c, g, n, heads, kv_heads, dl, budget=None, block_size=None, block_topk=None,
               local=None, window=None, full_fraction=None):
    """(attention compute FLOPs, memory bytes) for n samples."""
    if variant == "dense":
        return n * 2 * (2 * c + g) * g * heads * dl, 2 * (2 * c + n * g) * g * kv_heads * dl
    whole_context = c * g + 0.5 * g ** 2          # every step reads its whole context: dense's continuum
    if variant == "topk":
        # the reference's "+" while the budget is below the context at the last step; then the whole context
        s = np.where(budget < c + g, budget * g + 0.5 * np.maximum(0, budget - c) ** 2, whole_context)
        return n * 4 * s * heads * dl, n * 4 * s * kv_heads * dl
    if variant == "blocktopk":
        b = local + block_size * block_topk
        # the reference's continuum sum holds while the budget is within the context (b <= c + g); beyond it
        # every step reads its whole context, c·g + g²/2, which the formula equals at b = c + g
        s = np.where(b <= c + g, b * g - 0.5 * np.maximum(0, b - c) ** 2, whole_context)
        search_compute = np.floor((2 * c + g) / block_size) * g * heads * dl
        search_memory = np.floor((2 * c + n * g) / block_size) * g * kv_heads * dl
        return n * (4 * s * heads * dl + search_compute), n * 4 * s * kv_heads * dl + search_memory
    if variant == "window":
        s = window_reads(c, g, window)
        # prompt keys (S − G) once per step for all samples, each sample's own generated keys (G) per sample
        return n * 4 * s * heads * dl, 4 * (s + (n - 1) * window_own_reads(g, window)) * kv_heads * dl
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


def step_reads(variant, t, c, *, budget=None, block_size=None, block_topk=None, local=None, window=None,
               full_fraction=None):
    """What one sample's attention reads at decode step t (context c + t keys, as in the cost formulas):
    (keys, prompt keys among them shared by the request's samples, blocks scored, prompt blocks among them shared).

    At step t every sample of a request is at the same position, so attention that reads the prompt by position
    reads the same prompt keys in every sample, and a batch reads them once for the request: dense (the whole
    prompt, c keys), a window w (prompt positions max(0, c + t − w) .. c − 1: min(c, max(0, w − t)) keys) and
    duo's dense and window heads (a fraction f and 1 − f of them). Top-k's selected keys depend on each
    sample's query, so none are shared; block top-k's selected blocks neither, but the summaries of the prompt's
    ⌊c/b⌋ whole blocks, which every sample scores, are (as the reference's search memory ⌊(2c + n·g)/b⌋ shares
    them); a block scored is read as a K and a V summary, like the formulas' 2(c + t)/b per step."""
    c, t = np.asarray(c, dtype=np.float64), np.asarray(t, dtype=np.float64)
    context = c + t
    none = np.zeros(np.shape(context))
    if variant == "dense":
        return context, none + c, none, none
    if variant == "topk":
        return np.minimum(context, budget), none, none, none
    if variant == "blocktopk":
        blocks = np.floor(context / block_size)
        prompt_blocks = none + np.floor(c / block_size)
        return np.minimum(context, local + block_size * block_topk), none, blocks, prompt_blocks
    window_keys, window_prompt = np.minimum(context, window), np.minimum(c, np.maximum(0, window - t))
    if variant == "window":
        return window_keys, window_prompt, none, none
    f = full_fraction
    return f * context + (1 - f) * window_keys, f * c + (1 - f) * window_prompt, none, none


def decode_seconds(*, peak_flops, bandwidth, parameter_bytes, active_parameters, heads, kv_heads, head_dim,
                   layers, prompt_len, gen_len, samples, serving_batch=1, attention="dense", **sparse):
    """(seconds, fraction of steps compute bound) of the decode phase on a GPU: per step a roofline
    max(FLOPs / peak, bytes / bandwidth) over the serving batch (serving_batch requests × samples sequences),
    summed over the g steps. Scalars in (one request shape); the steps are numpy arrays of at most
    ``DECODE_CHUNK`` steps at a time, so memory stays bounded however long the generation.

    FLOPs per step: each sequence 2·P_active + (4·keys + 2·blocks)·H·dL (``step_reads``). Bytes per step: every
    parameter once (shared by the batch: what the eFLOPs model calls amortized), and per request
    4·Hkv·dL·[shared + n·(keys − shared)] for the KV plus 2·Hkv·dL·[shared blocks + n·(blocks − shared blocks)]
    for block summaries: what the request's samples read at the same prompt positions once, the rest per
    sample (``step_reads`` says which, per variant)."""
    g = int(gen_len)
    dl = head_dim * layers
    sequences = serving_batch * samples
    seconds, compute_bound = [], 0
    for start in range(0, g, DECODE_CHUNK):
        t = np.arange(start, min(g, start + DECODE_CHUNK), dtype=np.float64)
        keys, shared, search, shared_search = step_reads(attention, t, prompt_len, **sparse)
        flops = sequences * (2 * active_parameters + (4 * keys + 2 * search) * heads * dl)
        per_request = shared + shared_search / 2 + samples * (keys - shared + (search - shared_search) / 2)
        kv_bytes = serving_batch * per_request * 2 * KV_ELEMENT_BYTES * kv_heads * dl
        compute_s, memory_s = flops / peak_flops, (parameter_bytes + kv_bytes) / bandwidth
        seconds.append(float(np.maximum(compute_s, memory_s).sum()))
        compute_bound += int(np.count_nonzero(compute_s >= memory_s))
    return math.fsum(seconds), compute_bound / g if g else 0.0


def prefill_cost(*, parameters, heads, kv_heads, head_dim, layers, prompt_len, intensity) -> dict:
    """The prompt's forward pass (once for all samples): 2Pc + 2c²·H·dL FLOPs (causal attention, the same
    continuum as the decode formulas) and its KV written, 4c·Hkv·dL bytes."""
    c = np.asarray(prompt_len, dtype=np.float64)
    dl = head_dim * layers
    compute = 2 * parameters * c + 2 * c ** 2 * heads * dl
    memory = 2 * KV_ELEMENT_BYTES * c * kv_heads * dl
    return {"compute_flops": compute, "memory_bytes": memory, "eflops": compute + intensity * memory}
