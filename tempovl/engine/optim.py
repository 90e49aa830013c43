"""AdamW with decoupled weight decay over parameter groups, and the learning-rate schedules.

Weight decay applies only to weight matrices of linear / convolution layers: never to biases, norms,
embeddings (``nn.Embedding`` tables, and parameters named like position embeddings or special tokens).
Per-module learning-rate multipliers come from ``task.lr_multipliers()`` (name prefix -> multiplier; the
longest matching prefix wins).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from tempovl.engine.config import TrainConfig

NO_DECAY_MODULES = (
    nn.Embedding,
    nn.EmbeddingBag,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
)
# parameters registered directly on a module with one of these in their name are embeddings or scalars
NO_DECAY_NAME_PARTS = ("embed", "token", "pos", "norm", "temp", "logit_scale", "bias")


def decays(module: nn.Module, param_name: str, param: torch.Tensor) -> bool:
    """Whether `param` (attribute `param_name` of `module`) gets weight decay."""
    if param.ndim < 2 or isinstance(module, NO_DECAY_MODULES):
        return False
    return not any(part in param_name.lower() for part in NO_DECAY_NAME_PARTS)


def lr_multiplier(name: str, multipliers: dict[str, float]) -> float:
    """The multiplier of the longest prefix of `name` (on a ``.`` boundary) in `multipliers`, else 1."""
    best, best_len = 1.0, -1
    for prefix, mult in multipliers.items():
        if (name == prefix or name.startswith(prefix + ".") or prefix == "") and len(prefix) > best_len:
            best, best_len = float(mult), len(prefix)
    return best


def param_groups(
    model: nn.Module, lr: float, weight_decay: float, multipliers: dict[str, float] | None = None
) -> list[dict]:
    """Optimiser groups keyed by (decay, lr multiplier); each group records its names and `lr_mult`."""
    multipliers = multipliers or {}
    groups: dict[tuple[bool, float], dict] = {}
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:  # tied weights are optimised once
                continue
            seen.add(id(p))
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            decay = decays(module, p_name, p)
            mult = lr_multiplier(full, multipliers)
            g = groups.setdefault(
                (decay, mult),
                {
                    "params": [],
                    "names": [],
                    "weight_decay": weight_decay if decay else 0.0,
                    "lr": lr * mult,
                    "lr_mult": mult,
                },
            )
            g["params"].append(p)
            g["names"].append(full)
    return [groups[k] for k in sorted(groups)]


def build_optimizer(model: nn.Module, tc: TrainConfig, multipliers: dict[str, float]) -> torch.optim.AdamW:
    groups = param_groups(model, tc.lr, tc.weight_decay, multipliers)
    fused = any(p.is_cuda for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=tc.lr, betas=tuple(tc.betas), eps=tc.eps, fused=fused or None)


@dataclass
class LRSchedule:
    """Learning-rate factor of optimisation step `step` (0-based): linear warm-up, then decay.

    Warm-up: ``(step + 1) / (warmup + 1)`` for ``step < warmup``. Then with progress
    ``p = (step - warmup) / (total - warmup)`` clipped to [0, 1]: linear ``1 - p``, cosine
    ``(1 + cos(pi p)) / 2``, or constant 1, rescaled to end at `min_ratio`.
    """

    warmup: int
    total: int
    kind: str = "linear"
    min_ratio: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        if self.kind == "constant":
            return 1.0
        p = min(1.0, max(0.0, (step - self.warmup) / max(1, self.total - self.warmup)))
        decay = 1.0 - p if self.kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))
        return self.min_ratio + (1.0 - self.min_ratio) * decay


def build_scheduler(optimizer: torch.optim.Optimizer, tc: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR over every group (multipliers are kept: each group's lr is its base lr times the factor)."""
    sched = LRSchedule(tc.warmup_steps, tc.schedule_steps, tc.schedule, tc.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, sched)
