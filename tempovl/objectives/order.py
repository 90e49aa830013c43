"""Frame Order Modelling (FOM): shuffle a fraction of the frames after cross-modal fusion and classify,
at each shuffled position, the original index of the frame that now sits there."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FOMLoss(nn.Module):
    """Mean cross-entropy over the chosen positions (``fom_targets != -1``)."""

    def forward(self, fom_logits: torch.Tensor, fom_targets: torch.Tensor) -> torch.Tensor:
        """fom_logits (B, T, C) with C = max_clip_len; fom_targets (B, T) long."""
        return F.cross_entropy(fom_logits.flatten(0, 1).float(), fom_targets.flatten(), ignore_index=-1)
