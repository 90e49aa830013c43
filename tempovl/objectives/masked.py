"""Masked modelling: MLM (token masking 15 %, 80/10/10, cross-entropy on masked tokens) and MFFR
(regression of masked frames' input features from the temporal output)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100


def mask_tokens(
    token_ids: torch.Tensor,
    candidates: torch.Tensor,
    mask_id: int,
    random_range: tuple[int, int],
    prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking (HERO's and HiTeA's MLM): each candidate token is chosen with ``prob``; of those 80 %
    become ``mask_id``, 10 % a random id in ``[lo, hi)`` and 10 % stay. Returns ``(masked_ids, labels)``;
    labels hold the original id at chosen slots and -100 elsewhere. ``candidates`` (bool, same shape)
    excludes padding, frames and special tokens. Every row (last dimension) with a candidate gets at
    least one target, as the official code guarantees one masked token per example."""
    u = torch.rand(token_ids.shape, generator=generator, device=token_ids.device)
    chosen = (u < prob) & candidates
    force = candidates.any(dim=-1) & ~chosen.any(dim=-1)  # rows left without a target take their
    first = u.masked_fill(~candidates, 2.0).argmin(dim=-1, keepdim=True)  # lowest-drawn candidate
    chosen |= force.unsqueeze(-1) & (torch.arange(u.shape[-1], device=u.device) == first)
    action = torch.rand(token_ids.shape, generator=generator, device=token_ids.device)
    random_ids = torch.randint(*random_range, token_ids.shape, generator=generator, device=token_ids.device)
    masked = torch.where(chosen & (action < 0.8), torch.full_like(token_ids, mask_id), token_ids)
    masked = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, masked)
    labels = torch.where(chosen, token_ids, torch.full_like(token_ids, IGNORE))
    return masked, labels


class MLMLoss(nn.Module):
    """Mean cross-entropy over the masked tokens. ``mlm_logits (N, V)`` are computed only at the N
    slots with ``mlm_labels != -100`` (row-major order), so the labels are selected the same way."""

    def forward(self, mlm_logits: torch.Tensor, mlm_labels: torch.Tensor) -> torch.Tensor:
        targets = mlm_labels[mlm_labels != IGNORE]
        return F.cross_entropy(mlm_logits.float(), targets)


MFFR_LOSSES = ("mse", "l2")


class MFFRLoss(nn.Module):
    """Masked frame feature regression between the regression head's output at masked frames and their
    original (unmasked) input features.

    ``kind="mse"``: squared error averaged over frames and feature dims, ``mean_{n,d} (p - t)^2``.
    ``kind="l2"``: the official HERO training loss (``train_task == "mffr"`` in its pretrain.py): the L2
    distance of each masked frame, averaged over frames, ``mean_n sqrt(sum_d (p - t)^2)``; also what its
    validation reports."""

    def __init__(self, kind: str = "mse"):
        super().__init__()
        if kind not in MFFR_LOSSES:
            raise ValueError(f"MFFR loss {kind!r} is not one of {MFFR_LOSSES}")
        self.kind = kind

    def forward(
        self, frame_pred: torch.Tensor, frame_target: torch.Tensor, frame_masked: torch.Tensor
    ) -> torch.Tensor:
        """frame_pred (B, T, F) or (N, F) already at masked frames; frame_target (B, T, F); frame_masked (B, T)."""
        pred = frame_pred if frame_pred.dim() == 2 else frame_pred[frame_masked]
        target = frame_target[frame_masked].float()  # (N, F)
        if self.kind == "mse":
            return F.mse_loss(pred.float(), target)
        # vector_norm, not sqrt(sum): its gradient at a zero error is 0 rather than NaN
        return torch.linalg.vector_norm(pred.float() - target, dim=-1).mean()  # (N, F) -> (N,) -> ()
