"""The `train:` section of a config, as a strict dataclass, and its up-front validation.

The engine reads only this section; `model`, `task` and `data` belong to the task. Everything that can be
checked before any work starts (types, unknown keys, files that must exist, precision the device supports)
is checked in :func:`train_config`, so a bad config fails in a second with a message naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from tempovl.config import from_dict
from tempovl.errors import ConfigError, InputError


@dataclass
class BestMetric:
    """Which evaluation metric picks the `best/` checkpoint."""

    name: str = "loss"
    mode: Literal["min", "max"] = "min"


@dataclass
class TrainConfig:
    output_dir: str = "runs/train"
    seed: int = 0
    deterministic: bool = True
    resume: bool = False
    max_steps: int = 1000
    decay_steps: int | None = None  # length of the lr schedule; defaults to max_steps
    batch_size: int = 8  # per rank and micro-step
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    warmup_steps: int = 0
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    compile: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = 0
    log_every: int = 10
    eval_every: int = 0  # 0 = only at the end (if the task evaluates anything)
    save_every: int = 0  # 0 = only at the end and on interrupt
    keep_last: int = 3
    best_metric: BestMetric = field(default_factory=BestMetric)
    max_bad_steps: int = 10
    progress: bool = True
    curves: bool = True  # write curves.png at the end
    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "tempovl"
    find_unused_parameters: bool | None = None  # None = True when the task has several sub-tasks
    fsdp: bool = False
    init: str | None = None  # checkpoint / export dir (or .safetensors file) whose weights start training
    init_strict: bool = False  # every key of the task and of the checkpoint must match
    # load only what matches (and say what was and was not loaded); without it a checkpoint that does
    # not fit (mis-shaped keys, under half the weights found) is an error naming what did not match
    init_partial: bool = False

    @property
    def schedule_steps(self) -> int:
        return self.decay_steps if self.decay_steps is not None else self.max_steps


def train_config(cfg: dict) -> TrainConfig:
    """Build and validate the `train` section of a whole config. Raises ConfigError naming the key."""
    tc = from_dict(TrainConfig, cfg.get("train"), "train")
    positive = ["max_steps", "batch_size", "grad_accum", "log_every", "max_bad_steps"]
    for key in positive:
        if getattr(tc, key) < 1:
            raise ConfigError(f"train.{key}: must be >= 1, got {getattr(tc, key)}")
    non_negative = ["warmup_steps", "eval_every", "save_every", "keep_last", "num_workers", "weight_decay"]
    for key in non_negative:
        if getattr(tc, key) < 0:
            raise ConfigError(f"train.{key}: must be >= 0, got {getattr(tc, key)}")
    if tc.lr <= 0:
        raise ConfigError(f"train.lr: must be > 0, got {tc.lr}")
    if tc.decay_steps is not None and tc.decay_steps < 1:
        raise ConfigError(f"train.decay_steps: must be >= 1, got {tc.decay_steps}")
    if not 0.0 <= tc.min_lr_ratio <= 1.0:
        raise ConfigError(f"train.min_lr_ratio: must be in [0, 1], got {tc.min_lr_ratio}")
    if tc.grad_clip is not None and tc.grad_clip <= 0:
        raise ConfigError(f"train.grad_clip: must be > 0 or null, got {tc.grad_clip}")
    if len(tc.betas) != 2 or not all(0.0 <= b < 1.0 for b in tc.betas):
        raise ConfigError(f"train.betas: must be two numbers in [0, 1), got {list(tc.betas)}")
    if tc.keep_last < 1:
        raise ConfigError("train.keep_last: must be >= 1 (resume needs at least one checkpoint)")
    cuda = torch.cuda.is_available() and tc.device != "cpu"
    if tc.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: 'cuda' asked for but no CUDA device is available")
    if tc.precision == "fp16" and not cuda:
        raise ConfigError("train.precision: fp16 needs a CUDA device (use bf16 on CPU)")
    if tc.fsdp and not cuda:
        raise ConfigError("train.fsdp: FSDP needs CUDA devices; use plain DDP (fsdp: false) on CPU")
    if tc.init is not None:
        init_weights_file(tc.init, key="train.init")
    return tc


def init_weights_file(path: str | Path, key: str = "train.init") -> Path:
    """The safetensors file behind a checkpoint dir, export dir, run dir (its ``latest``) or file; ConfigError
    if there is none."""
    from tempovl.engine.checkpoint import MODEL_FILE, resolve_checkpoint

    p = Path(path)
    if p.is_file() or (p / MODEL_FILE).is_file():
        return p if p.is_file() else p / MODEL_FILE
    try:
        return resolve_checkpoint(p) / MODEL_FILE
    except InputError:
        raise ConfigError(
            f"{key}: no such checkpoint: {path} (expected a checkpoint directory with {MODEL_FILE} and "
            "config.yaml, or a run directory with a `latest` file)"
        ) from None
