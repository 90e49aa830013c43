"""The one attention pooling: HERO's query encoder (the official ``modular_vector_mapping``) and its QA /
VIOLIN heads."""

from __future__ import annotations

import torch
from torch import nn

MASK_VALUE = -1e4  # score at padded positions (the official mask_logits uses a large negative number)


class AttentionPool(nn.Linear):
    """Softmax attention pooling with a learned ``d -> 1`` scoring vector over one dimension.

    A bias-free ``nn.Linear(d, 1)`` so that its one weight is ``<name>.weight``, the key the official HERO
    checkpoints use for the query encoder's pooling vector."""

    def __init__(self, dim: int):
        super().__init__(dim, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """x (..., D), mask bool like x[..., 0] (True = valid) -> x pooled over the non-negative axis `dim`
        (x without `dim`)."""
        scores = super().forward(x).squeeze(-1).masked_fill(~mask, MASK_VALUE)
        return (scores.softmax(dim=dim).unsqueeze(-1) * x).sum(dim=dim)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        old = prefix + "score.weight"  # checkpoints written before the pooling moved here (QA heads)
        if old in state_dict and prefix + "weight" not in state_dict:
            state_dict[prefix + "weight"] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
