"""Moment inference for HERO retrieval, as the official HERO / TVRetrieval evaluation does it.

* Video retrieval (VR): the global (max-pooled cosine) score ``s`` of a query against every video,
  turned into ``exp(alpha * s)`` (alpha 20: sharpens the top) and ranked.
* Single-video moment retrieval (SVMR): on the query's own video, ``P_st(i) * P_ed(j)`` with both
  probabilities a softmax over the frames, for every span allowed by the span-length window
  ``min_len <= j - i < max_len`` (in frames; ``j`` is the last frame, inclusive).
* Video corpus moment retrieval (VCMR): the same product on each of the top ``max_videos`` videos of VR,
  multiplied by that video's ``exp(alpha * s)``, ranked across videos.
* Spans are ranked by :func:`tempovl.metrics.spans.top_spans` (re-exported here) within the
  span-length window min_span_frames <= j - i < max_span_frames, the decoder ``tempovl search`` uses too.
* Frame indices become seconds as ``[i * interval, (j + 1) * interval]``; NMS (optional, tIoU 0.5) runs
  per video with :func:`tempovl.metrics.nms_moments` / :func:`tempovl.metrics.temporal_nms`.

Training targets come from seconds by :func:`tempovl.data.align.seconds_to_frames`. Also
:func:`plot_moments` (the paper's Figure 2 style timeline of predicted vs true moments).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tempovl.data.align import seconds_to_frames
from tempovl.io import atomic_path
from tempovl.metrics import nms_moments, temporal_nms
from tempovl.metrics.spans import top_spans as top_spans  # re-exported: the shared decoder


def span_probs(start_logits: torch.Tensor, end_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over frames of start/end logits (..., T); padded frames carry -1e4 and get ~0."""
    return start_logits.float().softmax(dim=-1), end_logits.float().softmax(dim=-1)


def to_seconds(st_idx: int, ed_idx: int, interval: float) -> tuple[float, float]:
    """Frame indices (end inclusive) -> [start, end) seconds."""
    return float(st_idx * interval), float((ed_idx + 1) * interval)


def nms_svmr(rows: list[list[float]], threshold: float | None, max_before: int, max_after: int) -> list:
    """NMS over one query's single-video predictions [[video_idx, st, ed, score], ...] (already sorted)."""
    rows = rows[:max_before]
    if threshold is None or not rows:
        return rows[:max_after]
    keep = temporal_nms([r[1:3] for r in rows], [r[3] for r in rows], threshold, max_keep=max_after)
    return [rows[i] for i in keep]


def nms_vcmr(rows: list[list[float]], threshold: float | None, max_before: int, max_after: int) -> list:
    """Per-video NMS over one query's corpus predictions, then re-ranked across videos."""
    if threshold is None:
        return rows[:max_after]
    return nms_moments(rows, threshold, max_before, max_after)


def plot_moments(path: str | Path, items: Sequence[dict], title: str = "") -> Path:
    """Timeline of predicted vs true moments, one row per query (as the HERO paper's Figure 2).

    Each item: ``desc``, ``duration`` (s), ``gt`` ([st, ed] or a list of them), ``preds`` (the top
    predicted [st, ed, score] on the query's own video, best first), optional ``note``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(items), 1)
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.2 * n + 0.6), squeeze=False)
    for ax, item in zip(axes[:, 0], items, strict=False):
        duration = float(item["duration"])
        ax.barh(0, duration, left=0, height=0.9, color="#eeeeee")
        gts = item["gt"] if isinstance(item["gt"][0], list | tuple) else [item["gt"]]
        for g in gts:
            ax.barh(1, g[1] - g[0], left=g[0], height=0.7, color="#2ca02c", alpha=0.6)
        for rank, (st, ed, _) in enumerate(item["preds"][:3]):
            ax.barh(0 - 0.25 * rank, ed - st, left=st, height=0.25, color="#1f77b4", alpha=1.0 - 0.25 * rank)
        if item["preds"]:
            st, ed, score = item["preds"][0]
            ax.text(ed + 0.3, 0, f"top-1 {st:.1f}-{ed:.1f}s", va="center", fontsize=7)
        ax.set_xlim(0, duration)
        ax.set_yticks([0, 1], ["pred", "true"], fontsize=7)
        desc = item["desc"] if len(item["desc"]) < 90 else item["desc"][:87] + "..."
        note = f" [{item['note']}]" if item.get("note") else ""
        ax.set_title(desc + note, fontsize=8, loc="left")
        ax.tick_params(axis="x", labelsize=7)
    axes[-1, 0].set_xlabel("seconds")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def didemo_moment_scores(
    st_probs: np.ndarray,
    ed_probs: np.ndarray,
    interval: float,
    moments: Sequence[tuple[int, int]],
    seg: float = 5.0,
) -> np.ndarray:
    """Scores (Q, M) of DiDeMo's candidate moments (inclusive 5-s segments) from frame probabilities.

    A moment (s, e) covers seconds ``[seg * s, seg * (e + 1)]``; its frames come from
    :func:`tempovl.data.align.seconds_to_frames` and its score is ``P_st(first frame) * P_ed(last frame)``.
    """
    q, t = st_probs.shape
    out = np.zeros((q, len(moments)), dtype=np.float64)
    for m, (s, e) in enumerate(moments):
        i, j = seconds_to_frames(seg * s, seg * (e + 1), interval, t)
        out[:, m] = st_probs[:, i] * ed_probs[:, j]
    return out
