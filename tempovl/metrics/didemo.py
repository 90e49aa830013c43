"""DiDeMo moment localisation: the official several-annotator rule (LisaAnne/LocalizingMoments eval.py).

A DiDeMo video is cut into 6 five-second segments; a moment is a pair of inclusive segment indices
(start, end) with 0 <= start <= end <= 5, which gives 21 candidate moments. Each query has several
annotators' moments ("times", usually 4). For a ranked list of the candidates the official rule is:

- tIoU on inclusive segments: (min(end) + 1 - max(start)) / (max(end) + 1 - min(start)), floored at 0;
- mIoU: the top-ranked moment's tIoU with each annotator, averaged over the 3 largest (the most
  outlying annotator is dropped), then averaged over queries;
- rank: the position (1-based) of every annotator's moment in the ranked list, averaged over the 3
  smallest; R@K = share of queries whose averaged rank is <= K (so R@1 needs 3 annotators to agree
  with the top moment).

Numbers are percentages (the official script prints fractions).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tempovl.errors import InputError

N_SEGMENTS = 6
DIDEMO_MOMENTS: tuple[tuple[int, int], ...] = tuple(
    (s, e) for s in range(N_SEGMENTS) for e in range(s, N_SEGMENTS)
)  # the 21 candidate moments


def didemo_iou(pred: Sequence[int], gt: Sequence[int]) -> float:
    """tIoU of two moments given as inclusive segment indices (start, end)."""
    inter = max(0, min(pred[1], gt[1]) + 1 - max(pred[0], gt[0]))
    union = max(pred[1], gt[1]) + 1 - min(pred[0], gt[0])
    return float(inter) / union


def rank_didemo_moments(scores) -> list[list[tuple[int, int]]]:
    """Rank the 21 candidate moments of each query by score (Q, 21), best first (stable for ties)."""
    if hasattr(scores, "detach"):  # torch.Tensor
        scores = scores.detach().float().cpu().numpy()
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(DIDEMO_MOMENTS):
        raise InputError(
            f"DiDeMo scores: expected shape (queries, {len(DIDEMO_MOMENTS)}), got {scores.shape}"
        )
    order = np.argsort(-scores, axis=1, kind="stable")  # (Q, 21)
    return [[DIDEMO_MOMENTS[i] for i in row] for row in order]


def didemo_eval(
    rankings: Sequence[Sequence[Sequence[int]]], gt_times: Sequence[Sequence[Sequence[int]]]
) -> dict[str, float]:
    """R@1, R@5 and mIoU (percent) of ranked moment lists under the DiDeMo annotator rule.

    rankings: per query, the candidate moments (start, end) best first; every annotator's moment
    must appear in it (rank all 21). gt_times: per query, the annotators' moments.
    """
    if len(rankings) != len(gt_times):
        raise InputError(f"DiDeMo: {len(rankings)} ranked lists for {len(gt_times)} queries")
    if not rankings:
        raise InputError("DiDeMo: no queries to evaluate")
    avg_ranks, avg_ious = [], []
    for q, (ranked, times) in enumerate(zip(rankings, gt_times)):
        ranked = [tuple(int(x) for x in m) for m in ranked]
        if not ranked or not times:
            raise InputError(f"DiDeMo query {q}: empty ranked list or no annotator moments")
        position = {}
        for i, m in enumerate(ranked):
            position.setdefault(m, i + 1)  # the first occurrence counts, as list.index
        ranks = []
        for t in times:
            t = tuple(int(x) for x in t)
            if t not in position:
                raise InputError(f"DiDeMo query {q}: annotator moment {t} is not in the ranked list")
            ranks.append(position[t])
        ious = [didemo_iou(ranked[0], t) for t in times]
        avg_ious.append(np.mean(np.sort(ious)[-3:]))
        avg_ranks.append(np.mean(np.sort(ranks)[:3]))
    avg_ranks = np.asarray(avg_ranks)
    return {
        "R@1": float(100.0 * np.sum(avg_ranks <= 1) / len(avg_ranks)),
        "R@5": float(100.0 * np.sum(avg_ranks <= 5) / len(avg_ranks)),
        "mIoU": float(100.0 * np.mean(avg_ious)),
        "n": len(avg_ranks),
    }
