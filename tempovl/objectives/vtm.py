"""Video-text matching with hard negatives (HiTeA appendix C.3, eq. 10; ALBEF's sampling).

For every video a negative text, and for every text a negative video, is drawn from the in-batch
contrastive similarities (softmax weights): similar but wrong pairs are the informative ones. The
positive (and any caption of the same video, ``pos_mask``) is never drawn, whatever the similarities
(ties, one-hot, underflow): rows whose weights vanish fall back to uniform over the non-positives, and
rows with no non-positive at all are reported as invalid and left out of the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def sample_hard_negatives(
    sim: torch.Tensor, pos_mask: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """sim (B, B) float, pos_mask (B, B) bool -> (neg_index (B,) long, valid (B,) bool).

    Row i's index is drawn with probability softmax(sim_i) restricted to columns where pos_mask is False.
    """
    candidates = ~pos_mask
    weights = torch.nan_to_num(F.softmax(sim.float(), dim=1), nan=0.0).masked_fill(pos_mask, 0.0)
    vanished = weights.sum(dim=1) <= 0
    weights = torch.where(vanished[:, None], candidates.float(), weights)  # uniform over non-positives
    valid = candidates.any(dim=1)
    weights = torch.where(valid[:, None], weights, torch.ones_like(weights))  # dummy row, result ignored
    index = torch.multinomial(weights, 1, generator=generator).squeeze(1)
    return index, valid


def vtm_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the matching head: pos_logits (P, 2) labelled 1, neg_logits (N, 2) labelled 0."""
    logits = torch.cat([pos_logits, neg_logits], dim=0).float()
    labels = torch.cat(
        [
            torch.ones(pos_logits.shape[0], dtype=torch.long, device=logits.device),
            torch.zeros(neg_logits.shape[0], dtype=torch.long, device=logits.device),
        ]
    )
    return F.cross_entropy(logits, labels)
