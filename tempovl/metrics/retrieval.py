"""Clip-level retrieval metrics from a similarity matrix: R@K, mean recall, median and mean rank.

Used for text->video and video->text retrieval (MSR-VTT, DiDeMo paragraph-to-video, SSv2-Template,
HiTeA's re-ranked lists). Recalls are percentages (0-100), ranks are 1-based.

Ties. A query's rank is the position of its best-scored relevant item, counting only the
*non-relevant* items that beat it (several relevant items, e.g. the captions of one video, never
push each other down). With ``ties="pessimistic"`` (the default) a non-relevant item that scores
*the same* as the best relevant one counts as ranked above it: ``rank = 1 + #{non-relevant items
with score >= best relevant score}``. A collapsed model that gives every item the same score then
gets the worst rank instead of a perfect R@1. ``ties="optimistic"`` counts only strictly higher
scores (``rank = 1 + #{non-relevant with score > best}``), which is what argsort-based code such as
CLIP4Clip's gives when the relevant item happens to sort first. Without ties both agree.

This is tempovl's one R@K: every task (retrieval fine-tuning, HERO and HiTeA pre-training's held-out
retrieval) reports it in percent with the default pessimistic ties; ``"optimistic"`` is only there to
reproduce numbers of external code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tempovl.errors import InputError

TIE_RULES = ("pessimistic", "optimistic")


def _as_matrix(scores, name: str) -> np.ndarray:
    """A 2-D float64 numpy copy of a numpy array, torch tensor or nested list."""
    if hasattr(scores, "detach"):  # torch.Tensor
        scores = scores.detach().float().cpu().numpy()
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a 2-D (queries x items) matrix, got shape {arr.shape}")
    bad = np.argwhere(np.isnan(arr))
    if len(bad):
        raise InputError(f"{name}: NaN score at (query {bad[0][0]}, item {bad[0][1]})")
    return arr


def _positive_mask(positives: Sequence, n_queries: int, n_items: int, name: str) -> np.ndarray:
    """(Q, N) bool mask, True where item n is relevant to query q; validates indices."""
    if len(positives) != n_queries:
        raise InputError(f"{name}: {len(positives)} ground-truth entries for {n_queries} queries")
    mask = np.zeros((n_queries, n_items), dtype=bool)
    for q, pos in enumerate(positives):
        idx = [pos] if np.isscalar(pos) else list(pos)
        if not idx:
            raise InputError(f"{name}: query {q} has no relevant item")
        for i in idx:
            if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < n_items:
                raise InputError(f"{name}: query {q}: relevant item {i!r} is not an index in [0, {n_items})")
            mask[q, int(i)] = True
    return mask


def ranks_from_scores(scores, positives: Sequence, ties: str = "pessimistic") -> np.ndarray:
    """1-based rank of the best-scored relevant item of every query.

    scores (Q, N): higher = more similar. positives: for each query an item index or a
    non-empty list of item indices. See the module docstring for the tie rule.
    """
    if ties not in TIE_RULES:
        raise InputError(f"ties: {ties!r} is not one of {TIE_RULES}")
    sim = _as_matrix(scores, "scores")
    pos_mask = _positive_mask(positives, sim.shape[0], sim.shape[1], "positives")
    best_pos = np.where(pos_mask, sim, -np.inf).max(axis=1, keepdims=True)  # (Q, 1)
    beats = sim >= best_pos if ties == "pessimistic" else sim > best_pos  # (Q, N)
    return 1 + np.sum(beats & ~pos_mask, axis=1)


def recall_metrics(ranks: Sequence[int] | np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@K (percent) for each K, their mean ("mean_recall"), median and mean rank, and the count."""
    ranks = np.asarray(ranks, dtype=np.int64)
    if ranks.ndim != 1 or len(ranks) == 0:
        raise InputError("recall_metrics: need a non-empty 1-D list of ranks")
    if (ranks < 1).any():
        raise InputError(f"recall_metrics: ranks are 1-based, got {int(ranks.min())}")
    out: dict[str, float] = {}
    for k in ks:
        out[f"R@{k}"] = float(100.0 * np.mean(ranks <= k))
    out["mean_recall"] = float(np.mean([out[f"R@{k}"] for k in ks]))
    out["median_rank"] = float(np.median(ranks))
    out["mean_rank"] = float(np.mean(ranks))
    out["n"] = len(ranks)
    return out


def chance_recall(positives: Sequence, n_items: int, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Expected R@K (percent) and mean recall of a uniformly random ranking, for the same ground truth.

    A query with P relevant items among N is within the top K unless its first K items are all
    non-relevant, so P(rank <= K) = 1 - C(N - P, K) / C(N, K). On a small gallery (or with many
    positives per query, as in SSv2-Template) chance is far from zero; report it beside the numbers."""
    mask = _positive_mask(positives, len(positives), n_items, "positives")
    counts = mask.sum(axis=1)

    def hit(p: int, k: int) -> float:
        k = min(k, n_items)  # a K beyond the gallery always hits
        return 1.0 - math.comb(n_items - p, k) / math.comb(n_items, k)

    out = {f"R@{k}": float(100.0 * np.mean([hit(int(p), k) for p in counts])) for k in ks}
    out["mean_recall"] = float(np.mean([out[f"R@{k}"] for k in ks]))
    return out


def retrieval_metrics(
    text_video_scores,
    text_to_video: Sequence[int],
    ks: Sequence[int] = (1, 5, 10),
    ties: str = "pessimistic",
    video_text_scores=None,
) -> dict[str, dict[str, float]]:
    """Text->video and video->text retrieval metrics.

    text_video_scores (T, V): score of every text against every video. text_to_video (T,): the
    index of each text's video (a video may have several texts). video->text uses the transpose
    (or `video_text_scores` (V, T) when the model scores that direction differently); a video hits
    at K when ANY of its texts is within the top K. Videos without any text are left out of the
    video->text numbers (their count is in "n"). Each direction also holds ``chance_R@K`` and
    ``chance_mean_recall``: what a random ranking scores on the same gallery (:func:`chance_recall`).
    """
    sim = _as_matrix(text_video_scores, "text_video_scores")
    n_text, n_video = sim.shape
    t2v = _positive_mask(text_to_video, n_text, n_video, "text_to_video")
    if t2v.sum(axis=1).max() > 1:
        raise InputError("text_to_video: each text must name exactly one video")
    video_to_texts = [np.flatnonzero(t2v[:, v]).tolist() for v in range(n_video)]
    has_text = [v for v in range(n_video) if video_to_texts[v]]
    v2t_sim = sim.T if video_text_scores is None else _as_matrix(video_text_scores, "video_text_scores")
    if v2t_sim.shape != (n_video, n_text):
        raise InputError(f"video_text_scores: expected shape {(n_video, n_text)}, got {v2t_sim.shape}")
    t2v_pos = [int(i) for i in np.argmax(t2v, axis=1)]
    t2v_ranks = ranks_from_scores(sim, t2v_pos, ties)
    v2t_ranks = ranks_from_scores(v2t_sim[has_text], [video_to_texts[v] for v in has_text], ties)
    out = {"t2v": recall_metrics(t2v_ranks, ks), "v2t": recall_metrics(v2t_ranks, ks)}
    for direction, positives, n_items in (
        ("t2v", t2v_pos, n_video),
        ("v2t", [video_to_texts[v] for v in has_text], n_text),
    ):  # what a random ranking scores on the same gallery
        out[direction].update({f"chance_{k}": v for k, v in chance_recall(positives, n_items, ks).items()})
    return out
