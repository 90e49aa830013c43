"""Masked modelling: MLM (token masking 15 %, 80/10/10, cross-entropy on masked tokens) and MFFR
(regression of masked frames' input features from the temporal output)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tempovl.data.masking import IGNORE


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
