"""A small real task on synthetic token sequences, for the engine's tests and benchmark.

Each item is a sequence of `seq_len` tokens drawn from a seeded RNG (item `i` is always the same).
Sub-task ``cls``: classify whether the first half holds more of token 1 than the second half (needs
positions, not a bag of tokens). Sub-task ``match``: in-batch InfoNCE between two noisy views of the same
sequence, with negatives gathered from every rank (exercises ``all_gather_with_grad``). The encoder is a
tiny pre-norm transformer built from ``torch.nn``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from tempovl.config import from_dict
from tempovl.engine.distributed import all_gather_with_grad, get_rank
from tempovl.registry import register_task
from tempovl.tasks.base import Task


@dataclass
class ToyConfig:
    name: str = "toy"
    vocab_size: int = 16
    seq_len: int = 16
    hidden: int = 32
    layers: int = 2
    heads: int = 4
    dropout: float = 0.0
    num_train: int = 256
    num_val: int = 64
    data_seed: int = 0
    noise: float = 0.1  # fraction of tokens replaced in each view of the `match` sub-task
    temperature: float = 0.1
    head_lr_mult: float = 1.0
    ratios: dict[str, float] = field(default_factory=lambda: {"cls": 1.0})


class ToySequences(Dataset):
    """Item `i` of a split: tokens (L,), label, and two noisy views (L,) each; deterministic per item."""

    def __init__(self, cfg: ToyConfig, split: str):
        self.cfg = cfg
        self.size = cfg.num_train if split == "train" else cfg.num_val
        self.offset = {"train": 0, "val": 10_000_000, "test": 20_000_000}[split]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict:
        c = self.cfg
        rng = np.random.default_rng([c.data_seed, self.offset + i])
        tokens = rng.integers(0, c.vocab_size, size=c.seq_len)
        half = c.seq_len // 2
        label = int((tokens[:half] == 1).sum() > (tokens[half:] == 1).sum())
        views = []
        for _ in range(2):
            v = tokens.copy()
            flip = rng.random(c.seq_len) < c.noise
            v[flip] = rng.integers(0, c.vocab_size, size=int(flip.sum()))
            views.append(v)
        return {"tokens": tokens, "label": label, "view_a": views[0], "view_b": views[1]}


def collate_toy(items: list[dict]) -> dict:
    return {
        "tokens": torch.as_tensor(np.stack([it["tokens"] for it in items]), dtype=torch.long),  # (B, L)
        "label": torch.as_tensor([it["label"] for it in items], dtype=torch.long),  # (B,)
        "view_a": torch.as_tensor(np.stack([it["view_a"] for it in items]), dtype=torch.long),
        "view_b": torch.as_tensor(np.stack([it["view_b"] for it in items]), dtype=torch.long),
    }


class ToyEncoder(nn.Module):
    """Token + position embeddings, a pre-norm transformer, mean pooling -> (B, D)."""

    def __init__(self, c: ToyConfig):
        super().__init__()
        self.tok_embed = nn.Embedding(c.vocab_size, c.hidden)
        self.pos_embed = nn.Parameter(torch.zeros(1, c.seq_len, c.hidden))
        layer = nn.TransformerEncoderLayer(
            c.hidden, c.heads, 2 * c.hidden, c.dropout, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.hidden)
        nn.init.normal_(self.pos_embed, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tok_embed(tokens) + self.pos_embed[:, : tokens.shape[1]]  # (B, L, D)
        return self.norm(self.blocks(x)).mean(dim=1)  # (B, D)


@register_task("toy")
class ToyTask(Task):
    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.c = from_dict(ToyConfig, cfg.get("task"), "task")
        self.encoder = ToyEncoder(self.c)
        self.head = nn.Linear(self.c.hidden, 2)
        self.proj = nn.Linear(self.c.hidden, self.c.hidden)

    def subtasks(self) -> dict[str, float]:
        return dict(self.c.ratios)

    def dataset(self, split: str, subtask: str = "cls") -> Dataset:
        return ToySequences(self.c, split)

    def collate(self, subtask: str = "cls") -> Callable[[list], dict]:
        return collate_toy

    def lr_multipliers(self) -> dict[str, float]:
        return {"head": self.c.head_lr_mult}

    def forward(self, batch: dict, subtask: str = "cls") -> dict[str, torch.Tensor]:
        if subtask == "match":
            return self._match(batch)
        logits = self.head(self.encoder(batch["tokens"]))  # (B, 2)
        acc = (logits.argmax(-1) == batch["label"]).float().mean()
        return {"cls_loss": F.cross_entropy(logits, batch["label"]), "cls_logits": logits, "acc": acc}

    def _match(self, batch: dict) -> dict[str, torch.Tensor]:
        a = F.normalize(self.proj(self.encoder(batch["view_a"])), dim=-1)  # (B, D)
        b = F.normalize(self.proj(self.encoder(batch["view_b"])), dim=-1)  # (B, D)
        b_all = all_gather_with_grad(b)  # (world * B, D)
        logits = a @ b_all.t() / self.c.temperature  # (B, world * B)
        target = torch.arange(a.shape[0], device=a.device) + get_rank() * a.shape[0]
        return {"match_loss": F.cross_entropy(logits, target)}

    @torch.no_grad()
    def evaluate(self, split: str = "val", out_dir: str | Path | None = None) -> dict[str, float]:
        data = ToySequences(self.c, split)
        batch = collate_toy([data[i] for i in range(len(data))])
        device = self.head.weight.device
        out = self.forward({k: v.to(device) for k, v in batch.items()}, "cls")
        return {"accuracy": float(out["acc"]), "loss": float(out["cls_loss"])}
