"""Moment retrieval metrics: temporal IoU, temporal NMS, and the TVR standalone evaluation.

`eval_tvr` gives the same keys and numbers as TVRetrieval's `standalone_eval/eval.py` on the same
prediction file (written from its conventions, not copied):

- the submission is ``{"video2idx": {vid_name: idx}, "VCMR": [...], "SVMR": [...], "VR": [...]}``,
  each list holding ``{"desc_id", "predictions": [[video_idx, st, ed, score], ...]}`` sorted best
  first; only the first `max_pred_per_query` (100) predictions of a query are read and the score is
  ignored. Values are cast to float32 and tIoU is computed in float32, as the official script does.
- VCMR: a prediction is correct when its video is the query's video and its tIoU with the ground
  truth is >= the threshold; R@K = share of queries with a correct prediction in their first K.
- SVMR: predictions on other videos are skipped; R@K looks at the first K predictions that are on
  the query's video.
- VR: R@K = share of queries whose video is among the first K predictions (st/ed unused, repeated
  videos are not collapsed).
- tIoU uses the convex hull as the "union" (equal to the true union whenever the spans overlap);
  a zero-length union gives 0. Ground truth with >= 4 spans (DiDeMo-style annotators) counts a
  prediction as correct when it reaches the threshold with at least 2 of them.
- Numbers are percentages rounded to 2 decimals (numpy rounding of a float64). Keys: VCMR/SVMR
  ``"0.5-r1"``; VR ``"r1"``; ``"<task>_by_type"`` holds ``"v-0.5-r1"`` (or ``"v-r1"``) per query
  type v/t/vt, where the share is over the queries of that type (NaN when there are none, as
  official), and ``"desc_type_ratio": "v 74.0 t 9.0 vt 17.0"``.
- Duplicate desc_ids: the last entry wins (in the submission and in the ground truth).

Where the official script crashes we give a clear InputError (missing or extra queries, ground
truth naming a video that video2idx lacks, prediction rows that are not numbers), or a defined
value (an empty prediction list scores no hit). `allow_partial=True` evaluates the queries that are
present, like the official ``match_number=False``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from tempovl.errors import InputError

log = logging.getLogger(__name__)

TVR_TASKS = ("VCMR", "SVMR", "VR")
DESC_TYPES = ("v", "t", "vt")


def temporal_iou(spans_a, spans_b) -> np.ndarray:
    """Pairwise temporal IoU (N, M) of spans_a (N, 2) and spans_b (M, 2), [start, end] each.

    Touching spans ([0, 5] and [5, 9]) and zero-length spans give 0; a span inside another gives
    len(inner) / len(outer). A span with start > end is an InputError.
    """
    a = np.asarray(spans_a, dtype=np.float64).reshape(-1, 2)  # (N, 2)
    b = np.asarray(spans_b, dtype=np.float64).reshape(-1, 2)  # (M, 2)
    for name, s in (("spans_a", a), ("spans_b", b)):
        bad = np.flatnonzero(s[:, 0] > s[:, 1])
        if len(bad):
            raise InputError(f"{name}[{bad[0]}]: start {s[bad[0], 0]} is after end {s[bad[0], 1]}")
    inter = np.clip(
        np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None
    )
    union = np.maximum(a[:, None, 1], b[None, :, 1]) - np.minimum(a[:, None, 0], b[None, :, 0])  # (N, M)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def temporal_nms(spans, scores, threshold: float = 0.5, max_keep: int | None = None) -> np.ndarray:
    """Greedy temporal non-maximum suppression; returns the kept indices, best score first.

    Spans are visited by descending score (equal scores keep their input order); a span is dropped
    when its tIoU with an already kept span is strictly greater than `threshold` (TVRetrieval's rule).
    """
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)  # (N, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(spans) != len(scores):
        raise InputError(f"temporal_nms: {len(spans)} spans but {len(scores)} scores")
    order = np.argsort(-scores, kind="stable")
    iou = temporal_iou(spans, spans)  # (N, N)
    kept: list[int] = []
    suppressed = np.zeros(len(spans), dtype=bool)
    for i in order:
        if suppressed[i]:
            continue
        kept.append(int(i))
        if max_keep is not None and len(kept) >= max_keep:
            break
        suppressed |= iou[i] > threshold
    return np.asarray(kept, dtype=np.int64)


def nms_moments(
    predictions: Sequence[Sequence[float]],
    threshold: float = 0.5,
    max_before: int = 1000,
    max_after: int = 100,
) -> list[list[float]]:
    """NMS over one query's corpus-level predictions [[video_idx, st, ed, score], ...].

    As TVRetrieval/HERO post-processing: the first `max_before` rows are grouped by video, NMS runs
    inside each video, and the survivors are re-sorted by score across videos (stable) and cut to
    `max_after`. Computed lazily: whether a row survives depends only on the better rows of its video,
    so rows are visited best first (equal scores: the video seen first, then input order, the order
    the grouped computation gives) and the visit stops at `max_after` survivors.
    """
    rows = [list(r) for r in list(predictions)[:max_before]]
    for i, r in enumerate(rows):
        if r[1] > r[2]:
            raise InputError(f"predictions[{i}]: start {r[1]} is after end {r[2]}")
    first_seen: dict[float, int] = {}
    for r in rows:
        first_seen.setdefault(r[0], len(first_seen))
    order = sorted(range(len(rows)), key=lambda i: (-rows[i][3], first_seen[rows[i][0]], i))
    kept: dict[float, list[list[float]]] = {}
    out: list[list[float]] = []
    for i in order:
        if len(out) >= max_after:
            break
        r = rows[i]
        mine = kept.setdefault(r[0], [])
        if any(_iou(r[1], r[2], m[1], m[2]) > threshold for m in mine):
            continue
        mine.append(r)
        out.append(r)
    return out


def _iou(s1: float, e1: float, s2: float, e2: float) -> float:
    """tIoU of two spans, as `temporal_iou` (touching or zero-length: 0)."""
    inter = min(e1, e2) - max(s1, s2)
    union = max(e1, e2) - min(s1, s2)
    return inter / union if inter > 0 and union > 0 else 0.0


def _tvr_iou(pred_spans: np.ndarray, gt_span: np.ndarray) -> np.ndarray:
    """The official float32 tIoU of pred_spans (P, 2) against one gt_span (2,): hull union, 0/0 = 0."""
    inter = np.maximum(0, np.minimum(pred_spans[:, 1], gt_span[1]) - np.maximum(pred_spans[:, 0], gt_span[0]))
    union = np.maximum(pred_spans[:, 1], gt_span[1]) - np.minimum(pred_spans[:, 0], gt_span[0])
    return np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)


def _pct(x) -> float:
    """The official rounding: round(np.float64 * 100, 2)."""
    return float(round(np.float64(x) * 100, 2))


def _ratio(count, total) -> float:
    """count / total as the official by-type numbers: NaN when total is 0."""
    return _pct(1.0 * count / total) if total else math.nan


def _gt_spans(item: dict, where: str) -> np.ndarray:
    """Ground truth "ts" as float32 (S, 2): one [st, ed] or >= 4 annotator spans."""
    ts = item.get("ts")
    try:
        arr = np.asarray(ts, dtype=np.float32)
    except (TypeError, ValueError):
        arr = None
    if arr is None or not (arr.shape == (2,) or (arr.ndim == 2 and arr.shape[1] == 2 and len(arr) >= 4)):
        raise InputError(f"{where}: 'ts' must be [st, ed] or a list of >= 4 [st, ed] spans, got {ts!r}")
    return arr.reshape(-1, 2)


def _index_ground_truth(ground_truth: Sequence[dict], use_desc_type: bool) -> dict:
    gt_by_id: dict = {}
    for i, item in enumerate(ground_truth):
        where = f"ground truth record {i}"
        if not isinstance(item, dict):
            raise InputError(f"{where}: expected an object, got {type(item).__name__}")
        for key in ("desc_id", "vid_name", "ts") + (("type",) if use_desc_type else ()):
            if key not in item:
                raise InputError(f"{where}: missing key '{key}'")
        if use_desc_type and item["type"] not in DESC_TYPES:
            raise InputError(
                f"{where} (desc_id {item['desc_id']}): type {item['type']!r} is not one of {DESC_TYPES}"
            )
        _gt_spans(item, f"{where} (desc_id {item['desc_id']})")
        if item["desc_id"] in gt_by_id:
            log.warning("ground truth: duplicate desc_id %s, the last record is used", item["desc_id"])
        gt_by_id[item["desc_id"]] = item
    return gt_by_id


def _index_predictions(entries, task: str, max_pred: int) -> dict:
    """{desc_id: entry}, checking that the rows that will be read are [video_idx, st, ed, ...] numbers."""
    if not isinstance(entries, list):
        raise InputError(
            f"submission['{task}']: expected a list of query entries, got {type(entries).__name__}"
        )
    by_id: dict = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "desc_id" not in e or not isinstance(e.get("predictions"), list):
            raise InputError(f"submission['{task}'][{i}]: expected {{'desc_id', 'predictions': [...]}}")
        for j, r in enumerate(e["predictions"][:max_pred]):
            ok = isinstance(r, list | tuple) and len(r) >= 3
            if not ok or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in r[:3]):
                raise InputError(
                    f"submission['{task}'] desc_id {e['desc_id']}: prediction {j} must be "
                    f"[video_idx, st, ed, score] numbers, got {r!r}"
                )
        if e["desc_id"] in by_id:
            log.warning("submission['%s']: duplicate desc_id %s, the last entry is used", task, e["desc_id"])
        by_id[e["desc_id"]] = e
    return by_id


def _prediction_matrix(entry: dict, max_pred: int) -> np.ndarray:
    """The first `max_pred` rows' [video_idx, st, ed] as float32 (P, 3), as the official script reads them."""
    rows = entry["predictions"][:max_pred]
    return np.array([r[:3] for r in rows], dtype=np.float32).reshape(-1, 3)


def _short(ids) -> str:
    ids = sorted(ids, key=str)
    return ", ".join(map(str, ids[:10])) + (f" (and {len(ids) - 10} more)" if len(ids) > 10 else "")


def _check_coverage(
    task: str, pred_by_id: dict, gt_by_id: dict, video2idx: dict, max_pred: int, allow_partial: bool
) -> None:
    """Missing or extra desc_ids and unknown video indices: an InputError, or a warning when partial."""
    missing = [k for k in gt_by_id if k not in pred_by_id]
    extra = [k for k in pred_by_id if k not in gt_by_id]
    known = set(video2idx.values())
    unknown = sorted(
        {
            r[0]
            for k, e in pred_by_id.items()
            if k in gt_by_id
            for r in e["predictions"][:max_pred]
            if r[0] not in known
        },
        key=str,
    )
    if allow_partial:
        if missing or extra or unknown:
            log.warning(
                "%s: %d queries without predictions, %d unknown desc_ids, %d unknown video indices; "
                "evaluating the %d present queries",
                task,
                len(missing),
                len(extra),
                len(unknown),
                len(gt_by_id) - len(missing),
            )
        return
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} ground-truth queries have no predictions (desc_id {_short(missing)})"
        )
    if extra:
        problems.append(f"{len(extra)} predicted desc_ids are not in the ground truth ({_short(extra)})")
    if unknown:
        problems.append(f"predictions name video indices not in video2idx ({_short(unknown)})")
    if problems:
        raise InputError(
            f"submission['{task}']: " + "; ".join(problems) + " (use allow_partial to evaluate the rest)"
        )


def _task_correct(task, pred_by_id, gt_by_id, video2idx, iou_thds, max_pred):
    """Per query: vid_match (P,) bool and iou_correct (len(iou_thds), P) bool, plus the query types."""
    per_query, types = [], []
    for desc_id, gt in gt_by_id.items():
        if desc_id not in pred_by_id:
            continue
        preds = _prediction_matrix(pred_by_id[desc_id], max_pred)  # (P, 3)
        vid_match = preds[:, 0] == np.float32(video2idx[gt["vid_name"]])  # (P,)
        spans = _gt_spans(gt, f"desc_id {desc_id}")  # (S, 2)
        hits = np.stack(
            [[(_tvr_iou(preds[:, 1:3], s) * vid_match) >= np.float32(t) for t in iou_thds] for s in spans]
        )
        # hits (S, n_thd, P): >= 4 annotator spans need 2 agreeing, a single span needs itself
        iou_correct = hits.sum(axis=0) >= (2 if len(spans) >= 4 else 1)  # (n_thd, P)
        per_query.append((vid_match, iou_correct))
        types.append(gt.get("type"))
    return per_query, types


def eval_tvr(
    submission: dict,
    ground_truth: list[dict],
    iou_thds: Sequence[float] = (0.5, 0.7),
    topks: Sequence[int] = (1, 5, 10, 100),
    max_pred_per_query: int = 100,
    allow_partial: bool = False,
    use_desc_type: bool | None = None,
) -> dict:
    """The TVR standalone evaluation (see the module docstring): {"VCMR": {...}, ..., "VR_by_type": {...}}.

    use_desc_type: report the v/t/vt breakdown; None = when every ground-truth record has "type".
    """
    if not isinstance(submission, dict) or not isinstance(submission.get("video2idx"), dict):
        raise InputError("submission: expected an object with a 'video2idx' mapping {vid_name: index}")
    tasks = [t for t in TVR_TASKS if t in submission]
    if not tasks:
        raise InputError(f"submission: none of {list(TVR_TASKS)} is present")
    video2idx = submission["video2idx"]
    bad_idx = [k for k, v in video2idx.items() if isinstance(v, bool) or not isinstance(v, int)]
    if bad_idx:
        raise InputError(f"submission['video2idx']: indices must be integers (see {_short(bad_idx)})")
    if use_desc_type is None:
        use_desc_type = bool(ground_truth) and all(isinstance(g, dict) and "type" in g for g in ground_truth)
    gt_by_id = _index_ground_truth(ground_truth, use_desc_type)
    if not gt_by_id:
        raise InputError("ground truth: no records")
    unknown_gt = sorted({g["vid_name"] for g in gt_by_id.values() if g["vid_name"] not in video2idx}, key=str)
    if unknown_gt:
        raise InputError(f"submission['video2idx'] lacks ground-truth videos: {_short(unknown_gt)}")

    results, by_type = {}, {}
    for task in tasks:
        pred_by_id = _index_predictions(submission[task], task, max_pred_per_query)
        _check_coverage(task, pred_by_id, gt_by_id, video2idx, max_pred_per_query, allow_partial)
        per_query, types = _task_correct(task, pred_by_id, gt_by_id, video2idx, iou_thds, max_pred_per_query)
        if not per_query:
            raise InputError(f"submission['{task}']: no query of the ground truth has predictions")
        results[task], by_type[task] = _task_metrics(task, per_query, types, iou_thds, topks, use_desc_type)
    out = {t: results[t] for t in tasks}
    if use_desc_type:
        out.update({f"{t}_by_type": by_type[t] for t in tasks})
    return out


def _task_metrics(task, per_query, types, iou_thds, topks, use_desc_type):
    """(metrics, metrics_by_type) for one task from each query's correctness arrays."""

    def hit(k: int, thd_idx: int | None) -> np.ndarray:  # (n_query,) bool: a hit within the first k
        out = []
        for vid_match, iou_correct in per_query:
            if task == "VR":
                out.append(vid_match[:k].any())
            elif task == "VCMR":
                out.append(iou_correct[thd_idx, :k].any())
            else:  # SVMR: only the predictions on the query's own video count
                out.append(iou_correct[thd_idx][vid_match][:k].any())
        return np.asarray(out, dtype=bool)

    keys = [(f"r{k}", k, None) for k in topks] if task == "VR" else []
    for ti, thd in enumerate(iou_thds if task != "VR" else ()):
        keys += [(f"{thd}-r{k}", k, ti) for k in topks]
    hits = {name: hit(k, ti) for name, k, ti in keys}
    metrics = {name: _pct(np.mean(h)) for name, h in hits.items()}
    metrics_by_type: dict = {}
    if use_desc_type:
        types = np.asarray(types)
        for desc_type in DESC_TYPES:
            in_type = types == desc_type
            for name, h in hits.items():
                metrics_by_type[f"{desc_type}-{name}"] = _ratio(np.sum(h & in_type), np.sum(in_type))
        ratios = [_pct(1.0 * np.sum(types == t) / len(types)) for t in DESC_TYPES]
        metrics_by_type["desc_type_ratio"] = "v {} t {} vt {}".format(*ratios)
    return metrics, metrics_by_type


def tvr_table(metrics: dict) -> str:
    """A markdown table of `eval_tvr` output: one row per task (and per query type when present)."""
    lines = []
    for task in TVR_TASKS:
        if task not in metrics:
            continue
        cols = list(metrics[task])
        lines += [f"| {task} | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        lines.append("| all | " + " | ".join(f"{metrics[task][c]:.2f}" for c in cols) + " |")
        for t in DESC_TYPES if f"{task}_by_type" in metrics else ():
            row = metrics[f"{task}_by_type"]
            lines.append(f"| {t} | " + " | ".join(f"{row[f'{t}-{c}']:.2f}" for c in cols) + " |")
        if f"{task}_by_type" in metrics:
            lines.append(f"\n{task} query types (%): {metrics[f'{task}_by_type']['desc_type_ratio']}")
        lines.append("")
    return "\n".join(lines)
