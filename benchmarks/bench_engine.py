"""Training-engine throughput: steps/s and peak memory of a small transformer task (the toy task at a
larger size) with and without bf16 autocast and torch.compile.

Each configuration runs in its own subprocess so that peak memory (ru_maxrss, and CUDA peak allocated on
GPU) is its own. Warm-up steps (compilation included) are excluded from the timing.

    python benchmarks/bench_engine.py --steps 30 --hidden 256 --layers 4 --out runs/bench/engine.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = [("fp32", False), ("bf16", False), ("fp32", True), ("bf16", True)]


def child(args: argparse.Namespace) -> None:
    """Run one configuration and print a JSON line with its numbers."""
    import resource

    import torch

    from tempovl.config import deep_merge, load_config
    from tempovl.engine.trainer import Trainer

    out_dir = tempfile.mkdtemp(prefix="bench_engine_")
    task = {"hidden": args.hidden, "layers": args.layers, "heads": max(1, args.hidden // 64)}
    task.update(seq_len=args.seq_len, vocab_size=1000, num_train=4096, ratios={"cls": 1.0})
    train = {
        "output_dir": out_dir,
        "max_steps": args.warmup + args.steps,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "compile": args.compile,
        "deterministic": False,
        "log_every": 10**9,
        "progress": False,
        "curves": False,
        "device": args.device,
    }
    cfg = deep_merge(load_config("task/toy"), {"task": task, "train": train})
    trainer = Trainer(cfg)
    for _ in range(args.warmup):  # compile and allocator warm-up, not timed
        trainer.train_step()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    result = {
        "steps_per_s": args.steps / dt,
        "samples_per_s": args.steps * args.batch_size / dt,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if trainer.device.type == "cuda" else None,
        "params": sum(p.numel() for p in trainer.task.parameters()),
        "device": str(trainer.device),
    }
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    p.add_argument("--out", default="runs/bench/engine.md")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return

    rows = []
    for precision, compiled in VARIANTS:
        if compiled and args.no_compile:
            continue
        cmd = [sys.executable, __file__, "--child", "--precision", precision]
        cmd += [
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--batch-size",
            str(args.batch_size),
        ]
        cmd += ["--hidden", str(args.hidden), "--layers", str(args.layers), "--seq-len", str(args.seq_len)]
        cmd += ["--device", args.device] + (["--compile"] if compiled else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            rows.append({"precision": precision, "compile": compiled, "error": err[:120]})
            continue
        rows.append({"precision": precision, "compile": compiled, **json.loads(line[len("RESULT ") :])})

    first = next((r for r in rows if "error" not in r), {})
    head = (
        f"engine benchmark: toy transformer, hidden {args.hidden}, {args.layers} layers, seq {args.seq_len}, "
        f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up; "
        f"{first.get('params', 0):,} params on {first.get('device', '?')}, torch threads "
        f"{os.environ.get('OMP_NUM_THREADS', 'default')}"
    )
    lines = [
        head,
        "",
        "| precision | compile | steps/s | samples/s | peak RSS MB | peak CUDA MB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['precision']} | {r['compile']} | failed: {r['error']} | | | |")
            continue
        cuda = f"{r['peak_cuda_mb']:.0f}" if r["peak_cuda_mb"] is not None else "-"
        lines.append(
            f"| {r['precision']} | {r['compile']} | {r['steps_per_s']:.2f} | {r['samples_per_s']:.1f} "
            f"| {r['peak_rss_mb']:.0f} | {cuda} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
