"""HiTeA's temporal objectives: cross-modal moment exploration (CME, eq. 1-2) and multi-modal temporal
relation exploration (MTRE, eq. 3-7).

CME: the K words most cosine-similar to the short view's v_cls are its positives; the loss is the mean
over those K of -log softmax over all the sentence's words of ``v·w / tau`` (learnable tau, init 0.07).
The features are the L2-normalised contrastive projections, so ``v·w`` is the cosine of eq. 1.

MTRE: SimSiam between the text-guided v_cls of the long view (fused with the whole text) and of the short
view (fused with the CME-selected words): ``p = h(g(x))``, ``z = g(x)``,
``L = (D(p_L, sg(z_S)) + D(p_S, sg(z_L))) / 2`` with ``D = -cos``. g and h use LayerNorm where SimSiam uses
BatchNorm, so that per-rank batches of 1-2 clips (base model at 224²) still work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def cme_select(
    word_feats: torch.Tensor, word_mask: torch.Tensor, video_cls: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k words by cosine to the video: word_feats (B, N, D), word_mask (B, N) bool, video_cls (B, D)
    -> (index (B, k') long, selected (B, k') bool) with k' = min(k, N); `selected` is False for padding
    picks (rows with fewer than k valid words)."""
    cos = F.cosine_similarity(word_feats.float(), video_cls.float()[:, None, :], dim=-1)  # (B, N)
    cos = cos.masked_fill(~word_mask, float("-inf"))
    k = min(k, word_feats.shape[1])
    index = cos.topk(k, dim=1).indices  # (B, k)
    selected = torch.gather(word_mask, 1, index)
    return index, selected


def cme_loss(
    word_feats: torch.Tensor,
    word_mask: torch.Tensor,
    video_cls: torch.Tensor,
    temp: torch.Tensor,
    k: int = 5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CME loss (eq. 2) on normalised word_feats (B, N, E) and video_cls (B, E); temp a scalar tensor.

    Returns (loss, index (B, k'), selected (B, k')); rows without any valid word are left out.
    """
    index, selected = cme_select(word_feats, word_mask, video_cls, k)
    logits = torch.einsum("bd,bnd->bn", video_cls.float(), word_feats.float()) / temp  # (B, N)
    logits = logits.masked_fill(~word_mask, float("-inf"))
    log_prob = F.log_softmax(logits, dim=1)
    picked = torch.gather(log_prob, 1, index).masked_fill(~selected, 0.0)  # (B, k')
    n_sel = selected.sum(dim=1)
    rows = n_sel > 0
    if not rows.any():
        return logits.new_zeros(()) + 0.0 * temp, index, selected
    per_row = -picked.sum(dim=1)[rows] / n_sel[rows]
    return per_row.mean(), index, selected


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """D(p, z) of eq. 6, averaged over the batch. The caller decides whether z is detached."""
    return -(F.normalize(p.float(), dim=-1) * F.normalize(z.float(), dim=-1)).sum(dim=-1).mean()


def mtre_loss(
    p_long: torch.Tensor, z_long: torch.Tensor, p_short: torch.Tensor, z_short: torch.Tensor
) -> torch.Tensor:
    """Eq. 7: (D(p_L, sg(z_S)) + D(p_S, sg(z_L))) / 2 -- no gradient ever reaches z_S or z_L here."""
    return 0.5 * (negative_cosine(p_long, z_short.detach()) + negative_cosine(p_short, z_long.detach()))


class MTREHead(nn.Module):
    """Projection g (2-layer MLP) and prediction h (bottleneck MLP); forward gives the MTRE loss."""

    def __init__(self, dim: int, proj_dim: int = 2048, pred_dim: int = 512):
        super().__init__()
        self.g = nn.Sequential(
            nn.Linear(dim, proj_dim),
            nn.LayerNorm(proj_dim),
            nn.ReLU(inplace=True),
            nn.Linear(proj_dim, proj_dim),
            nn.LayerNorm(proj_dim),
        )
        self.h = nn.Sequential(
            nn.Linear(proj_dim, pred_dim),
            nn.LayerNorm(pred_dim),
            nn.ReLU(inplace=True),
            nn.Linear(pred_dim, proj_dim),
        )

    def forward(self, long_cls: torch.Tensor, short_cls: torch.Tensor) -> torch.Tensor:
        """long_cls, short_cls (B, D): text-guided v_cls of the two views -> scalar loss."""
        z_long, z_short = self.g(long_cls), self.g(short_cls)
        return mtre_loss(self.h(z_long), z_long, self.h(z_short), z_short)
