"""MFM-NCE (HERO's MNCE): softmax NCE between a masked frame's predicted feature and its true feature,
against the other masked frames' true features and the predictions at unmasked real frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MNCELoss(nn.Module):
    """``logits = [pred · target_jᵀ for masked j ; pred · neg_kᵀ for unmasked real k] / temperature``,
    cross-entropy with the frame's own target as the positive.

    As in the official code the negatives are the regression head's outputs at the unmasked frames;
    unlike it (it takes ``~mask`` over the padded batch), padding frames are never negatives.
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def forward(
        self,
        frame_pred: torch.Tensor,
        frame_target: torch.Tensor,
        frame_masked: torch.Tensor,
        frame_mask: torch.Tensor,
    ) -> torch.Tensor:
        """frame_pred (B, T, F) head output everywhere; frame_target (B, T, F) original features;
        frame_masked (B, T) MFM mask; frame_mask (B, T) real frames."""
        pred = frame_pred[frame_masked].float()  # (N, F)
        pos = frame_target[frame_masked].float()  # (N, F)
        neg = frame_pred[frame_mask & ~frame_masked].float()  # (K, F)
        logits = torch.cat([pred @ pos.t(), pred @ neg.t()], dim=1) / self.temperature  # (N, N + K)
        return F.cross_entropy(logits, torch.arange(pred.shape[0], device=pred.device))
