"""Figures for the GPU attention model.

* TFLOP/s against sequence length, one line per kernel and head dim (the layout of the FlashAttention-2/3
  papers' benchmark plots).
* HBM bytes and runtime against block size (FlashAttention paper, Figure 2 middle: bytes fall as the block
  grows; runtime follows until the kernel turns compute-bound).
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from simlib.hardware.schema import HardwareSpec
from simlib.models.attention_cli import supported_kernels
from simlib.models.flash_attention import attention_forward

SEQS = np.array([512, 1024, 2048, 4096, 8192, 16384])


def throughput_vs_sequence(hw: HardwareSpec, head_dims=(64, 128), causal=False, total_tokens=16384,
                           block_q=128, block_kv=64):
    """Batch chosen so batch × seq = total_tokens, as in the FlashAttention-2 benchmarks."""
    fig, axes = plt.subplots(1, len(head_dims), figsize=(5 * len(head_dims), 4), squeeze=False)
    for ax, d in zip(axes[0], head_dims):
        for kernel in supported_kernels(hw):
            r = attention_forward(hw, batch=np.maximum(total_tokens // SEQS, 1), heads=2048 // d, seq_q=SEQS,
                                  seq_kv=SEQS, head_dim=d, causal=causal, kernel=kernel, block_q=block_q,
                                  block_kv=block_kv)
            ax.plot(SEQS, r["tflops"], marker="o", label=kernel)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length")
        ax.set_ylabel("TFLOP/s (forward)")
        ax.set_title(f"{hw.name}, head dim {d}{', causal' if causal else ''}")
        ax.legend()
    fig.tight_layout()
    return fig


def bytes_vs_block_size(hw: HardwareSpec, seq=1024, head_dim=64, batch=64, heads=16,
                        blocks=(32, 64, 128, 256, 512)):
    """FlashAttention (Algorithm 1) with K/V block B_c and Q block B_r = min(B_c, d), the paper's rule: HBM
    bytes and runtime against B_c."""
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
    fig.tight_layout()
    return fig, r
