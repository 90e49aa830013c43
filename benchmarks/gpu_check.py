"""One short, prepared check of the training step on a GPU, and on the CPU in the tests so it cannot rot.

    bash benchmarks/gpu_check.sh                              # CUDA: hero-base and hitea-base, every setting
    bash benchmarks/gpu_check.sh --device cpu --size tiny --settings bf16,fp16-scaler,bf16-ddp,bf16-fsdp

For HERO and HiTeA it builds the model (dropout off) and one fixed batch, takes the reference loss in fp32
on the CPU, then runs real training steps (forward, backward, AdamW) on the device under each setting:

    bf16                  bf16 autocast
    fp16-scaler           fp16 autocast with a GradScaler
    bf16-compile          bf16, the loss module under torch.compile
    fp16-scaler-compile   fp16 + GradScaler under torch.compile
    bf16-ddp              bf16 under DistributedDataParallel, world size 1 (nccl on CUDA, gloo on CPU)
    bf16-fsdp             bf16 under FSDP (fully_shard), world size 1

Each row gives the first step's loss beside the CPU fp32 one (relative difference within TOLERANCE, else
the row fails), the median step time of the timed steps, MFU = model FLOPs of one step (forward + backward,
counted by torch's FlopCounterMode on the reference step) / step time / the device's matmul peak in the
autocast dtype measured in this run, and peak memory (CUDA: max allocated; CPU: the process's max RSS).

The compared loss is deterministic on both devices: HERO's is a regression of its encoder outputs (the
loss of ``bench_hero.py``; the step is the whole hierarchical encoder, where the compute is); HiTeA's is
VTC + CME + MTRE of its pre-training objective (``tasks/hitea/losses.py``). MLM, PrefixLM and VTM draw
masks and negatives from the device's own random stream, so they are trained in the timed steps but
not compared. A failing row prints its error; the script exits 1 if any row failed.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import resource
import socket
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hero import make_clips  # noqa: E402
from bench_hitea import make_batch  # noqa: E402
from machine import machine_line, matmul_peak, publish, sync  # noqa: E402

from tempovl.config import load_config  # noqa: E402
from tempovl.data.packing import pack_clips  # noqa: E402
from tempovl.registry import build_model  # noqa: E402
from tempovl.tasks.hitea.losses import pretraining_losses  # noqa: E402

# bf16 keeps 8 mantissa bits: over a step's reductions the loss moves by a few 1e-3 relative; fp16 less
TOLERANCE = 2e-2
SETTINGS = {  # name -> (autocast dtype, GradScaler, torch.compile, wrapper)
    "bf16": (torch.bfloat16, False, False, None),
    "fp16-scaler": (torch.float16, True, False, None),
    "bf16-compile": (torch.bfloat16, False, True, None),
    "fp16-scaler-compile": (torch.float16, True, True, None),
    "bf16-ddp": (torch.bfloat16, False, False, "ddp"),
    "bf16-fsdp": (torch.bfloat16, False, False, "fsdp"),
}
PRESETS = {
    "base": {"hero": "hero-base", "hitea": "hitea-base"},
    "tiny": {"hero": "hero-tiny", "hitea": "hitea-tiny"},
}


class HeroStep(nn.Module):
    """HERO's hierarchical encoder on a packed batch -> {"loss", "compared"}: the squared projections of
    its frame and token outputs on a fixed direction (their squared norms would be constant after the
    final LayerNorms)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        probe = torch.randn(model.cfg.hidden, generator=torch.Generator().manual_seed(1))
        self.register_buffer("probe", probe / probe.norm(), persistent=False)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        out = self.model.encode(batch)
        frames, tokens = out["frame_temporal"].float() @ self.probe, out["token_cross"].float() @ self.probe
        loss = frames.square().mean() + tokens.square().mean()
        return {"loss": loss, "compared": loss}


class HiteaStep(nn.Module):
    """HiTeA's six pre-training losses -> {"loss" (all six), "compared" (VTC + CME + MTRE)}."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, video, ids, mask, short) -> dict[str, torch.Tensor]:
        out = pretraining_losses(self.model, video, ids, mask, video_short=short)
        loss = sum(v for k, v in out.items() if k.endswith("_loss"))
        compared = out["vtc_loss"] + out["cme_loss"] + out["mtre_loss"]
        return {"loss": loss, "compared": compared}


def build(family: str, size: str, args) -> tuple[nn.Module, tuple]:
    """The step module (CPU, fp32, train mode) and its inputs (CPU)."""
    cfg = load_config(f"model/{PRESETS[size][family]}")["model"]
    torch.manual_seed(0)
    if family == "hero":
        cfg.update(dropout=0.0, attn_dropout=0.0)
        model = build_model(cfg)
        clips = make_clips(args.clips, args.frames, vocab=model.cfg.text_vocab_size)
        batch = pack_clips(clips, [args.frames] * args.clips, model.cfg.pack_max_len)
        batch["frame_feats"] = torch.randn(args.clips, args.frames, model.cfg.frame_dim)
        batch["frame_mask"] = torch.ones(args.clips, args.frames, dtype=torch.bool)
        return HeroStep(model).train(), (batch,)
    cfg.update(dropout=0.0)
    cfg["video"] = {**cfg.get("video", {}), "drop_path": 0.0}
    if size == "tiny":
        cfg["video"]["num_frames"] = args.hitea_frames
    else:
        cfg["video"].update(image_size=224, num_frames=args.hitea_frames)
    model = build_model(cfg)
    image = model.cfg.video["image_size"] if isinstance(model.cfg.video, dict) else cfg["video"]["image_size"]
    inputs = make_batch(args.hitea_batch, args.hitea_frames, image, args.text_len, torch.device("cpu"))
    return HiteaStep(model).train(), inputs


def to(inputs: tuple, device: torch.device) -> tuple:
    def move(x):
        if isinstance(x, torch.Tensor):
            return x.to(device)
        if isinstance(x, dict):
            return {k: move(v) for k, v in x.items()}
        return x

    return tuple(move(x) for x in inputs)


def reference(step: nn.Module, inputs: tuple) -> tuple[float, float]:
    """CPU fp32: (compared loss, FLOPs of forward + backward); parameters no loss reaches are frozen."""
    with FlopCounterMode(display=False) as counter:
        out = step(*inputs)
        out["loss"].backward()
    for p in step.parameters():
        if p.grad is None:
            p.requires_grad_(False)  # DDP / FSDP would wait for their gradients
    step.zero_grad(set_to_none=True)
    return float(out["compared"]), float(counter.get_total_flops())


def init_process_group(device: torch.device) -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1)


def run_setting(name: str, base: nn.Module, inputs: tuple, device: torch.device, steps: int) -> dict:
    dtype, scaled, compiled, wrapper = SETTINGS[name]
    step = copy.deepcopy(base).to(device)
    inputs = to(inputs, device)
    if wrapper == "ddp":
        init_process_group(device)
        step = nn.parallel.DistributedDataParallel(
            step, device_ids=[device.index] if device.type == "cuda" else None
        )
    elif wrapper == "fsdp":
        from torch.distributed.fsdp import fully_shard

        init_process_group(device)
        # fully_shard takes no 0-d parameters (HiTeA's VTC temperature): left replicated, which at world
        # size 1 is the same thing
        fully_shard(step, ignored_params={p for p in step.parameters() if p.ndim == 0})
    params = [p for p in step.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    scaler = torch.amp.GradScaler(device.type, enabled=scaled)
    call = torch.compile(step) if compiled else step

    def train_step() -> float:
        with torch.autocast(device.type, dtype=dtype):
            out = call(*inputs)
        scaler.scale(out["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return float(out["compared"])

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    first = train_step()  # the compared loss is that of the initial weights, as the reference
    times = []
    for _ in range(steps):
        sync(device)
        t = time.perf_counter()
        train_step()
        sync(device)
        times.append(time.perf_counter() - t)
    if device.type == "cuda":
        mem = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        mem = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"loss": first, "step_s": statistics.median(times), "mem_gib": mem}


HEADER = (
    "| model | setting | loss | CPU fp32 loss | rel. diff | ok | step (s) | MFU | peak mem (GiB) |\n"
    "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--size", choices=sorted(PRESETS), default="base")
    p.add_argument("--models", default="hero,hitea")
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--steps", type=int, default=5, help="timed steps per setting (after the compared one)")
    p.add_argument("--clips", type=int, default=8, help="HERO clips per batch")
    p.add_argument("--frames", type=int, default=50, help="HERO frames per clip")
    p.add_argument("--hitea-batch", type=int, default=4)
    p.add_argument("--hitea-frames", type=int, default=8)
    p.add_argument("--text-len", type=int, default=32)
    p.add_argument("--out", default="runs/bench/gpu_check.md")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run with --device cpu", file=sys.stderr)
        return 2
    unknown = [s for s in args.settings.split(",") if s not in SETTINGS]
    if unknown:
        print(f"gpu_check: unknown setting(s) {unknown}; choose from {', '.join(SETTINGS)}", file=sys.stderr)
        return 2
    lines = [f"gpu_check on {device}: {machine_line(device)}; tolerance {TOLERANCE:g} (relative)", HEADER]
    print("\n".join(lines), flush=True)
    peaks: dict[torch.dtype, float] = {}
    failed = 0
    for family in args.models.split(","):
        base, inputs = build(family, args.size, args)
        ref, flops = reference(base, inputs)
        for name in args.settings.split(","):
            dtype = SETTINGS[name][0]
            if dtype not in peaks:
                peaks[dtype] = matmul_peak(device, dtype, 4096 if device.type == "cuda" else 1024)
            label = PRESETS[args.size][family]
            try:
                r = run_setting(name, base, inputs, device, args.steps)
            except Exception as e:  # one failing setting must not hide the others
                traceback.print_exc()
                failed += 1
                line = f"| {label} | {name} | failed: {type(e).__name__}: {str(e).splitlines()[0][:120]} |"
            else:
                diff = abs(r["loss"] - ref) / max(abs(ref), 1e-12)
                ok = diff <= TOLERANCE
                failed += not ok
                # a CPU without fp16 matmul units runs fp16 autocast largely in fp32: no meaningful MFU
                no_mfu = device.type == "cpu" and dtype == torch.float16
                mfu = "n/a" if no_mfu else f"{100 * flops / r['step_s'] / peaks[dtype]:.1f} %"
                line = (
                    f"| {label} | {name} | {r['loss']:.5f} | {ref:.5f} | {diff:.1e} | {'yes' if ok else 'NO'} | "
                    f"{r['step_s']:.3f} | {mfu} | {r['mem_gib']:.2f} |"
                )
            lines.append(line)
            print(line, flush=True)
    lines.append(
        "matmul peaks: "
        + ", ".join(f"{str(k).split('.')[-1]} {v / 1e12:.1f} TFLOP/s" for k, v in peaks.items())
    )
    print(lines[-1])
    publish("\n".join(lines), args.out, echo=False)  # the rows were printed as they ran
    with contextlib.suppress(Exception):
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
