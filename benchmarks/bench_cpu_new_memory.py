"""The CPU part measurements behind the unfused-kernel model (needs the torch extra).

With glibc malloc's thresholds fixed as `simlib measure` fixes them, times each kernel of the explicit unfused
attention writing into a new tensor and into an existing one. The difference is the OS zeroing the new pages; it
adds to a compute-bound matmul's time instead of hiding behind it, and the softmax, one kernel, pays it once.
It also times the math backend's safe softmax, whose guard writes in place (no third new score matrix).

Run: python benchmarks/bench_cpu_new_memory.py
"""
from __future__ import annotations

import time

import numpy as np

from simlib.measure.runner import pin_malloc_threshold


def median_ms(fn, repeats: int = 9) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main() -> None:
    import torch
    threshold = pin_malloc_threshold()
    print(f"malloc threshold: {threshold} bytes, {torch.get_num_threads()} threads")
    for heads, seq in ((4, 1024), (8, 1024), (8, 2048)):
        q, k = torch.randn(heads, seq, 64), torch.randn(heads, 64, seq)
        scores = torch.bmm(q, k)
        into = torch.empty_like(scores)
        mib = scores.numel() * 4 / 2 ** 20
        print(f"{heads} heads x {seq}^2 fp32 scores ({mib:.0f} MiB), new tensor / existing tensor, ms:")
        print(f"  QK matmul  {median_ms(lambda: torch.bmm(q, k)):7.2f} / "
              f"{median_ms(lambda: torch.bmm(q, k, out=into)):7.2f}")
        print(f"  scale      {median_ms(lambda: scores * 0.125):7.2f} / "
              f"{median_ms(lambda: torch.mul(scores, 0.125, out=into)):7.2f}")
        print(f"  softmax    {median_ms(lambda: torch.softmax(scores, -1)):7.2f} / "
              f"{median_ms(lambda: torch.ops.aten._softmax.out(scores, -1, False, out=into)):7.2f}")
        print(f"  safe softmax (guard in place): {median_ms(lambda: torch.ops.aten._safe_softmax(scores, -1)):7.2f}")


if __name__ == "__main__":
    main()
