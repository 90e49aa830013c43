"""HERO forward+backward throughput, peak memory and model FLOPs utilisation (MFU) on CPU.

MFU = model FLOPs / time / matmul peak, where the peak is a large fp32 (or bf16) matmul timed in the
same process. Model FLOPs are counted analytically: 2 x MACs of every matmul of the encoder (frame
projections, cross-modal layers over the real sentence lengths, temporal layers), x3 for forward +
backward. Compares packed vs padded sentence groups and the attention kernels.

    python benchmarks/bench_hero.py --clips 8 --frames 50 --steps 3 --out runs/bench/hero.txt
"""

from __future__ import annotations

import argparse
import random
import resource
import time

import torch
from machine import machine_line, matmul_peak, publish, target_line

from tempovl.config import load_config
from tempovl.data.packing import pack_clips
from tempovl.registry import build_model

TARGET_BF16_MFU = 0.5  # issue 16: HERO-base in bf16 at >= 50 % of the bf16 matmul peak


def make_clips(
    n_clips: int, n_frames: int, seed: int = 0, vocab: int = 50265
) -> list[list[tuple[list[int], list[int]]]]:
    """A sentence per 2-4 frames with 10-25 tokens each ([SEP] + words below `vocab`)."""
    rng = random.Random(seed)
    clips = []
    for _ in range(n_clips):
        groups, t = [], 0
        while t < n_frames:
            k = min(rng.randint(2, 4), n_frames - t)
            groups.append(
                (
                    [2] + [rng.randint(4, vocab - 1) for _ in range(rng.randint(10, 25) - 1)],
                    list(range(t, t + k)),
                )
            )
            t += k
        clips.append(groups)
    return clips


def model_flops(cfg, clips, n_frames: int) -> float:
    """fwd+bwd FLOPs: 3 x 2 x MACs of the encoder's matmuls (useful work only, no padding)."""
    d, m = cfg.hidden, cfg.mlp_hidden
    per_token = 4 * d * d + 2 * d * m  # q, k, v, out projections + MLP
    lens = [len(tok) + len(fr) for clip in clips for tok, fr in clip]
    cross = cfg.cross_layers * (sum(lens) * per_token + 2 * d * sum(n * n for n in lens))
    frames = len(clips) * n_frames
    temporal = cfg.temporal_layers * (frames * per_token + 2 * d * len(clips) * n_frames**2)
    embed = 2 * frames * cfg.frame_dim * d  # cross-modal frame projection + frame transform
    return 3 * 2 * float(cross + temporal + embed)


def bench(model, batch, bf16: bool, steps: int) -> float:
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model.encode(batch)
            loss = out["frame_temporal"].float().pow(2).mean() + out["token_cross"].float().pow(2).mean()
        loss.backward()

    step()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="hero-base")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--frames", type=int, default=50)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--modes", default="pack,pad")
    p.add_argument("--attn", default="auto,sdpa,math")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--out", default="runs/bench/hero.txt")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    vocab = load_config(f"model/{args.preset}")["model"].get("text_vocab_size", 50265)
    clips = make_clips(args.clips, args.frames, vocab=vocab)
    peaks = {"fp32": matmul_peak("cpu", torch.float32), "bf16": matmul_peak("cpu", torch.bfloat16)}
    rows = []
    for attn in args.attn.split(","):
        cfg_dict = load_config(f"model/{args.preset}")["model"]
        cfg_dict.update(attn_impl=attn, dropout=0.0, attn_dropout=0.0)
        model = build_model(cfg_dict).train()
        flops = model_flops(model.cfg, clips, args.frames)
        for mode in args.modes.split(","):
            batch = pack_clips(
                clips, [args.frames] * args.clips, None if mode == "pad" else model.cfg.pack_max_len
            )
            batch["frame_feats"] = torch.randn(args.clips, args.frames, model.cfg.frame_dim)
            batch["frame_mask"] = torch.ones(args.clips, args.frames, dtype=torch.bool)
            slots = batch["pack_group"].numel()
            for dt in args.dtypes.split(","):
                sec = bench(model, batch, dt == "bf16", args.steps)
                model.zero_grad(set_to_none=True)
                rows.append(
                    (attn, mode, dt, slots, args.clips / sec, flops / sec / 1e9, flops / sec / peaks[dt])
                )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        f"hero bench: preset {args.preset}, {args.clips} clips x {args.frames} frames, "
        f"{torch.get_num_threads()} threads; matmul peak fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s, "
        f"bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s; peak RSS {rss:.0f} MiB",
        f"{'attn':<5} {'mode':<4} {'dtype':<5} {'slots':>6} {'clips/s':>8} {'GFLOP/s':>8} {'MFU':>6}",
    ]
    lines += [f"{a:<5} {m:<4} {d:<5} {s:>6} {c:>8.2f} {g:>8.1f} {u:>6.1%}" for a, m, d, s, c, g, u in rows]
    best = max((u for _, _, d, _, _, _, u in rows if d == "bf16"), default=None)
    if best is not None:  # issue 16's target for HERO-base
        target = f"bf16 MFU >= {TARGET_BF16_MFU:.0%} of the bf16 matmul peak"
        lines.append(target_line(target, f"best {best:.1%}", best >= TARGET_BF16_MFU))
    lines.append(machine_line())
    publish("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
