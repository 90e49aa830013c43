"""The input corruptions of masked and order modelling, applied by the data pipelines: BERT token
masking (MLM, HERO and HiTeA) and frame shuffling (HERO's FOM). The losses that read their targets live in
``tempovl/objectives``."""

from __future__ import annotations

import torch

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
