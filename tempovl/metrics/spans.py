"""Moment decoding: ranked frame spans from start/end probabilities, the official HERO / TVRetrieval rule.

The one decoder of tempovl: `tempovl evaluate` (SVMR / VCMR), `tempovl predict` and `tempovl search` all
rank the spans of a video with :func:`top_spans`, so the same probabilities give the same moments.

* A span is (i, j): first frame i, last frame j (inclusive). It is allowed when the span-length window
  says so: ``min_len <= j - i < max_len`` (:func:`span_window`; HERO's defaults 2 / 16).
* Its score is ``P_st(i) * P_ed(j)``, times the video's score when spans of several videos compete
  (VCMR: ``exp(alpha * cosine)``).
* Only allowed spans are returned, best first.

Kept out of ``tempovl.metrics``' own imports: it needs torch, the other metrics only numpy.
"""

from __future__ import annotations

import torch


def span_window(num_frames: int, min_len: int, max_len: int, device=None) -> torch.Tensor:
    """(T, T) bool: span (i, j) is allowed when ``min_len <= j - i < max_len`` (official length mask)."""
    idx = torch.arange(num_frames, device=device)
    length = idx[None, :] - idx[:, None]  # (T, T): j - i
    return (length >= min_len) & (length < max_len)


def top_spans(
    st_probs: torch.Tensor,
    ed_probs: torch.Tensor,
    window: torch.Tensor,
    top_n: int,
    video_scores: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best spans of each query over K candidate videos.

    st_probs, ed_probs (Q, K, T); window (T, T) bool; video_scores (Q, K) or None (= 1).
    Returns (scores, video_k, st_idx, ed_idx), each (Q, n), best first, with n = min(top_n, K * number
    of allowed spans): only spans inside the window are returned. ``video_k`` indexes the K candidates.
    """
    q, k, t = st_probs.shape
    prod = st_probs[:, :, :, None] * ed_probs[:, :, None, :]  # (Q, K, T, T)
    if video_scores is not None:
        prod = prod * video_scores[:, :, None, None]
    prod = prod.masked_fill(~window[None, None], -1.0)  # below every allowed span, never returned
    flat = prod.reshape(q, k * t * t)  # (Q, K, T, T) -> (Q, K*T*T)
    scores, index = flat.topk(min(top_n, k * int(window.sum())), dim=1)
    video_k = index // (t * t)
    st_idx = (index % (t * t)) // t
    ed_idx = index % t
    return scores, video_k, st_idx, ed_idx
