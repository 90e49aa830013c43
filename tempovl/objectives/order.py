"""Frame Order Modelling (FOM): shuffle a fraction of the frames after cross-modal fusion and classify,
at each shuffled position, the original index of the frame that now sits there."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def shuffle_frames(
    frame_mask: torch.Tensor, prob: float = 0.15, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose each real frame with ``prob`` and permute the chosen ones among their positions.

    Returns ``frame_order (B, T)`` (the frame at t moves to ``frame_order[b, t]``; identity elsewhere,
    padding included) and ``fom_targets (B, T)``: at position p, the original index of the frame moved
    there, -1 at positions not chosen (the official ``random_reorder``)."""
    b, t = frame_mask.shape
    order = torch.arange(t, device=frame_mask.device).repeat(b, 1)
    targets = torch.full((b, t), -1, dtype=torch.long, device=frame_mask.device)
    chosen = (torch.rand((b, t), generator=generator, device=frame_mask.device) < prob) & frame_mask
    for i in range(b):
        pos = chosen[i].nonzero().flatten()
        if pos.numel() == 0:
            continue
        dest = pos[torch.randperm(pos.numel(), generator=generator).to(pos.device)]
        order[i, pos] = dest
        targets[i, dest] = pos
    return order, targets


class FOMLoss(nn.Module):
    """Mean cross-entropy over the chosen positions (``fom_targets != -1``)."""

    def forward(self, fom_logits: torch.Tensor, fom_targets: torch.Tensor) -> torch.Tensor:
        """fom_logits (B, T, C) with C = max_clip_len; fom_targets (B, T) long."""
        return F.cross_entropy(fom_logits.flatten(0, 1).float(), fom_targets.flatten(), ignore_index=-1)
