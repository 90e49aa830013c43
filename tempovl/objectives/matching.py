"""Video-Subtitle Matching (VSM): local start/end cross-entropy of a query sentence inside its clip and a
global hinge loss between clips and queries with in-batch negatives on both sides."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def vsm_global_scores(
    query: torch.Tensor, frame_temporal: torch.Tensor, frame_mask: torch.Tensor
) -> torch.Tensor:
    """Max-pooled cosine: query (Nq, D), frames (Nv, T, D), mask (Nv, T) -> scores (Nq, Nv).

    Padding frames score -1e4 (the official ``mask_logits``) so they never win the max. Negatives
    across ranks: gather ``frame_temporal``/``frame_mask``/``query`` with the engine's all-gather first.
    """
    q = F.normalize(query.float(), dim=-1, eps=1e-5)
    v = F.normalize(frame_temporal.float(), dim=-1, eps=1e-5)
    scores = torch.einsum("qd,vtd->qvt", q, v).masked_fill(~frame_mask[None], -1e4)  # (Nq, Nv, T)
    return scores.amax(dim=-1)


def hinge_both_ways(
    scores: torch.Tensor, query_video: torch.Tensor, margin: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """scores (Nq, Nv); query_video (Nq,) the index of each query's clip.

    Returns (neg_ctx, neg_q): mean of ``max(0, margin + s(q, v') - s(q, v))`` over every query and every
    other clip v', and of ``max(0, margin + s(q', v) - s(q, v))`` over every clip v, each of its queries
    q and every query q' of another clip (official ``use_all_neg``)."""
    nq, nv = scores.shape
    is_pos = F.one_hot(query_video, nv).bool()  # (Nq, Nv)
    pos = scores.gather(1, query_video[:, None])  # (Nq, 1)
    neg_ctx = (margin + scores - pos).clamp(min=0)[~is_pos].mean()
    pair = margin + scores.t()[query_video] - pos  # (Nq, Nq'): margin + s(q', v_q) - s(q, v_q)
    valid = query_video[None, :] != query_video[:, None]  # q' belongs to another clip
    neg_q = pair.clamp(min=0)[valid].mean()
    return neg_ctx, neg_q


class VSMLoss(nn.Module):
    """``λ1 (CE(start) + CE(end)) + λ2 (hinge over negative clips + hinge over negative queries)``,
    λ1 = 0.01 and λ2 = 8 by default (the official pre-training config: lw_st_ed, lw_neg_ctx, lw_neg_q)."""

    def __init__(self, margin: float = 0.1, local_weight: float = 0.01, global_weight: float = 8.0):
        super().__init__()
        self.margin, self.local_weight, self.global_weight = margin, local_weight, global_weight

    def parts(
        self,
        start_logits: torch.Tensor,
        end_logits: torch.Tensor,
        span_targets: torch.Tensor,
        scores: torch.Tensor,
        query_video: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Unweighted parts: ``local`` (start + end CE, targets -1 ignored), ``neg_ctx``, ``neg_q``."""
        local = F.cross_entropy(start_logits.float(), span_targets[:, 0], ignore_index=-1) + F.cross_entropy(
            end_logits.float(), span_targets[:, 1], ignore_index=-1
        )
        if scores.shape[1] > 1:
            neg_ctx, neg_q = hinge_both_ways(scores, query_video, self.margin)
        else:  # a single clip has no negatives
            neg_ctx = neg_q = scores.sum() * 0.0
        return {"local": local, "neg_ctx": neg_ctx, "neg_q": neg_q}

    def forward(
        self,
        start_logits: torch.Tensor,
        end_logits: torch.Tensor,
        span_targets: torch.Tensor,
        scores: torch.Tensor,
        query_video: torch.Tensor,
    ) -> torch.Tensor:
        """start/end_logits (Nq, T) over each query's own clip; span_targets (Nq, 2) frame indices;
        scores (Nq, Nv) from :func:`vsm_global_scores`; query_video (Nq,)."""
        p = self.parts(start_logits, end_logits, span_targets, scores, query_video)
        return self.local_weight * p["local"] + self.global_weight * (p["neg_ctx"] + p["neg_q"])
