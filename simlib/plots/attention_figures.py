"""Figures for the GPU attention model.

* TFLOP/s against sequence length, one line per kernel and head dim (the layout of the FlashAttention-2/3
  papers' benchmark plots).
* HBM bytes and runtime against block size (FlashAttention paper, Figure 2 middle: bytes fall as the block
  grows; runtime follows until the kernel turns compute-bound).

Both draw only what ``simlib predict attention`` would run: each point is put to ``predict_attention`` (its
tile checks: multiples of 16, the kernel's MIN_BLOCK_Q, shared memory and registers on the part), and a point
it refuses is left out and named on the figure, so a figure never shows a tile size predict refuses. A figure
left with no point at all is an input error (exit 2), naming the hardware.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from simlib.errors import SimlibInputError
from simlib.hardware.schema import HardwareSpec
from simlib.models.attention_cli import predict_attention, supported_kernels
from simlib.models.flash_attention import attention_forward

SEQS = np.array([512, 1024, 2048, 4096, 8192, 16384])


def refusal(hw: HardwareSpec, **settings) -> str | None:
    """Why ``simlib predict attention`` refuses these ``--set`` values on ``hw`` (its message), or None where it
    runs them. The figures call predict's own checks rather than a copy, so they cannot drift apart."""
    try:
        predict_attention(hw, settings)
    except SimlibInputError as error:
        return error.message
    return None


def _nothing_left(hw: HardwareSpec, what: str, reasons: list[str]):
    return SimlibInputError(hw.source_file or hw.name, "tiles",
                            f"the {what} figure has no point predict attention runs on {hw.name}: "
                            + "; ".join(dict.fromkeys(reasons)))


def throughput_vs_sequence(hw: HardwareSpec, head_dims=(64, 128), causal=False, total_tokens=16384,
                           block_q=128, block_kv=64):
    """Batch chosen so batch × seq = total_tokens, as in the FlashAttention-2 benchmarks. A kernel whose tiles
    ``predict attention`` refuses (too small a Q block for it, or not fitting the part's shared memory and
    registers) is left out of that panel and named in its legend; no point in any panel raises
    SimlibInputError."""
    fig, axes = plt.subplots(1, len(head_dims), figsize=(5 * len(head_dims), 4), squeeze=False)
    reasons, drawn = [], 0
    for ax, d in zip(axes[0], head_dims):
        for kernel in supported_kernels(hw):
            batch = np.maximum(total_tokens // SEQS, 1)
            why = [refusal(hw, kernel=kernel, batch=int(b), heads=2048 // d, seq=int(n), head_dim=d, causal=causal,
                           block_q=block_q, block_kv=block_kv) for b, n in zip(batch, SEQS)]
            keep = np.array([w is None for w in why])
            if not keep.any():
                reasons.append(f"{kernel}, head dim {d}: {why[0]}")
                ax.plot([], [], linestyle="none",
                        label=f"{kernel}: left out (predict refuses {block_q}x{block_kv} tiles)")
                continue
            r = attention_forward(hw, batch=batch[keep], heads=2048 // d, seq_q=SEQS[keep], seq_kv=SEQS[keep],
                                  head_dim=d, causal=causal, kernel=kernel, block_q=block_q, block_kv=block_kv)
            ax.plot(SEQS[keep], r["tflops"], marker="o", label=kernel)
            drawn += 1
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length")
        ax.set_ylabel("TFLOP/s (forward)")
        ax.set_title(f"{hw.name}, head dim {d}{', causal' if causal else ''}")
        ax.legend(fontsize="small")
    if not drawn:
        plt.close(fig)
        raise _nothing_left(hw, "TFLOP/s against sequence length", reasons)
    fig.tight_layout()
    return fig


def bytes_vs_block_size(hw: HardwareSpec, seq=1024, head_dim=64, batch=64, heads=16,
                        blocks=(64, 128, 256, 512)):
    """FlashAttention (Algorithm 1) with K/V block B_c and Q block B_r = min(B_c, d), the paper's rule: HBM
    bytes and runtime against B_c. The default block sizes are Figure 2 middle's (64 to 512; flash1 runs Q
    blocks of at least MIN_BLOCK_Q = 64 rows, so a block of 32 is one predict refuses). Block sizes
    ``predict attention`` refuses on ``hw`` are left out and named under the axis; the returned outputs are those
    of the block sizes drawn (``r["block_kv"]`` says which). None left raises SimlibInputError."""
    why = {int(x): refusal(hw, kernel="flash1", batch=batch, heads=heads, seq=seq, head_dim=head_dim,
                           block_q=int(min(x, head_dim)), block_kv=int(x)) for x in blocks}
    kept = [x for x in why if why[x] is None]
    if not kept:
        raise _nothing_left(hw, "HBM bytes against block size", [f"block {x}: {w}" for x, w in why.items()])
    blocks = kept
    b = np.asarray(blocks)
    r = attention_forward(hw, batch=batch, heads=heads, seq_q=seq, seq_kv=seq, head_dim=head_dim,
                          kernel="flash1", block_q=np.minimum(b, head_dim), block_kv=b)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.bar([str(x) for x in blocks], r["bytes_dram"] / 1e9, color="tab:blue", label="HBM bytes")
    ax.set_xlabel("block size")
    ax.set_ylabel("HBM bytes (GB)")
    twin = ax.twinx()
    twin.plot([str(x) for x in blocks], r["time_s"] * 1e3, color="tab:red", marker="o", label="runtime")
    twin.set_ylabel("runtime (ms)")
    ax.set_title(f"{hw.name}: seq {seq}, head dim {head_dim}")
    left_out = [x for x in why if why[x] is not None]
    if left_out:
        ax.set_xlabel(f"block size (left out, predict refuses: {', '.join(map(str, left_out))})")
    fig.tight_layout()
    return fig, r
