"""Which attention kernel is faster on this machine, per shape and precision: the explicit
softmax(QK^T)V ("math") or torch's scaled_dot_product_attention ("sdpa").

Prints a table of forward+backward times and the ratio sdpa/math, and writes it to --out. The "auto"
rule in tempovl/layers/attention.py (math for Lk <= AUTO_MATH_MAX_LEN under bf16 on CPU) comes from this.

    python benchmarks/bench_attention.py --out runs/bench/attention.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from tempovl.layers.attention import attend


def time_kernel(impl: str, shape: tuple[int, int, int, int], dtype: torch.dtype, repeats: int) -> float:
    b, h, n, d = shape
    q, k, v = (torch.randn(b, h, n, d, dtype=dtype, requires_grad=True) for _ in range(3))
    mask = torch.ones(b, 1, 1, n, dtype=torch.bool)
    mask[:, :, :, n - n // 4 :] = False  # a quarter padding, as in real batches
    best = float("inf")
    for _ in range(repeats + 1):  # first run warms up
        t0 = time.perf_counter()
        attend(q, k, v, mask, impl=impl).float().sum().backward()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512])
    parser.add_argument("--tokens", type=int, default=8192, help="batch * length kept about constant")
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="runs/bench/attention.md")
    args = parser.parse_args()

    rows = [
        "| precision | length | batch | math ms | sdpa ms | sdpa / math | faster |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for dtype in (torch.float32, torch.bfloat16):
        for n in args.lengths:
            shape = (max(1, args.tokens // n), args.heads, n, args.head_dim)
            t_math = time_kernel("math", shape, dtype, args.repeats)
            t_sdpa = time_kernel("sdpa", shape, dtype, args.repeats)
            name = "fp32" if dtype == torch.float32 else "bf16"
            faster = "math" if t_math < t_sdpa else "sdpa"
            rows.append(
                f"| {name} | {n} | {shape[0]} | {t_math * 1e3:.1f} | {t_sdpa * 1e3:.1f} | {t_sdpa / t_math:.2f} | {faster} |"
            )
            print(rows[-1], flush=True)
    table = "\n".join([f"torch {torch.__version__}, {torch.get_num_threads()} threads", "", *rows])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")
    print(f"\n{table}\n\nwritten to {out}")


if __name__ == "__main__":
    main()
