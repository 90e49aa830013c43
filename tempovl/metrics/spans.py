"""Moment decoding: ranked frame spans from start/end probabilities, the official HERO / TVRetrieval rule.

The one decoder of tempovl: `tempovl evaluate` (SVMR / VCMR), `tempovl predict` and `tempovl search` all
rank the spans of a video with :func:`top_spans`, so the same probabilities give the same moments.

* A span is (i, j): first frame i, last frame j (inclusive). It is allowed when the span-length window
  says so: ``min_len <= j - i < max_len`` (HERO's defaults 2 / 16, its official length mask).
* Its score is ``P_st(i) * P_ed(j)``, times the video's score when spans of several videos compete
  (VCMR: ``exp(alpha * cosine)``).
* Only allowed spans are returned, best first.

Kept out of ``tempovl.metrics``' own imports: it needs torch, the other metrics only numpy.
"""

from __future__ import annotations

import torch


def top_spans(
    st_probs: torch.Tensor,
    ed_probs: torch.Tensor,
    min_len: int,
    max_len: int,
    top_n: int,
    video_scores: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best spans of each query over K candidate videos.

    st_probs, ed_probs (Q, K, T); a span (i, j) is allowed when ``min_len <= j - i < max_len`` and,
    with `lengths` (Q, K) (videos padded to T frames), j < the video's length; video_scores (Q, K)
    or None (= 1). Returns (scores, video_k, st_idx, ed_idx), each (Q, n), best
    first, with n = min(top_n, number of allowed spans over the K videos): only allowed spans are
    returned, except that with `lengths` a query with fewer allowed spans than n has its row padded
    with score -1. ``video_k`` indexes the K candidates. Only the band of allowed lengths is scored, so the
    cost is Q * K * T * (max_len - min_len), linear in T: an hour of frames is cheap.
    """
    q, k, t = st_probs.shape
    widths = torch.arange(max(min_len, 0), min(max_len, t), device=st_probs.device)  # (W,) j - i
    w = len(widths)
    ends = torch.arange(t, device=st_probs.device)[:, None] + widths[None, :]  # (T, W): j of span (i, w)
    if lengths is None:
        allowed = (ends < t).expand(q, k, t, w)  # (Q, K, T, W)
    else:
        allowed = ends < lengths[:, :, None, None].to(ends.device)  # (Q, K, T, W)
    prod = st_probs[..., None] * ed_probs[..., ends.clamp(max=t - 1)]  # (Q, K, T, W)
    if video_scores is not None:
        prod = prod * video_scores[:, :, None, None]
    prod = prod.masked_fill(~allowed, -1.0)  # below every allowed span, never returned
    flat = prod.reshape(q, k * t * w)  # (Q, K, T, W) -> (Q, K*T*W)
    scores, index = flat.topk(min(top_n, int(allowed.reshape(q, -1).sum(1).max())), dim=1)
    video_k = index // (t * w)
    st_idx = (index % (t * w)) // w
    ed_idx = st_idx + widths[index % w]
    return scores, video_k, st_idx, ed_idx
