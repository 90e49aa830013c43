"""Temporal IoU edge cases, temporal NMS (order, ties, threshold) and the per-video NMS of VCMR lists."""

import numpy as np
import pytest

from tempovl.errors import InputError
from tempovl.metrics import nms_moments, temporal_iou, temporal_nms


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([0, 10], [0, 10], 1.0),  # identical
        ([0, 5], [5, 10], 0.0),  # touching
        ([2, 4], [0, 10], 0.2),  # containment
        ([0, 6], [4, 10], 0.2),  # partial overlap: 2 / 10
        ([0, 3], [7, 10], 0.0),  # disjoint
        ([3, 3], [0, 10], 0.0),  # zero-length inside
        ([3, 3], [3, 3], 0.0),  # both zero-length: 0/0 -> 0
        ([0.5, 1.5], [1.0, 2.0], 1 / 3),
    ],
)
def test_temporal_iou_edge_cases(a, b, expected):
    assert temporal_iou([a], [b])[0, 0] == pytest.approx(expected)
    assert temporal_iou([b], [a])[0, 0] == pytest.approx(expected)  # symmetric


def test_temporal_iou_is_pairwise():
    iou = temporal_iou([[0, 10], [5, 15]], [[0, 10], [10, 20], [5, 10]])
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou, [[1.0, 0.0, 0.5], [1 / 3, 1 / 3, 0.5]])


def test_temporal_iou_rejects_inverted_span():
    with pytest.raises(InputError, match=r"spans_b\[1\]: start 9.0 is after end 2.0"):
        temporal_iou([[0, 1]], [[0, 1], [9, 2]])


def test_nms_order_and_suppression():
    spans = [[0, 10], [1, 10], [20, 30], [0, 9]]
    scores = [0.9, 0.8, 0.7, 0.95]
    # [0,9] (0.95) first; it suppresses [0,10] (IoU 0.9) and [1,10] (IoU 0.8); [20,30] survives
    assert temporal_nms(spans, scores).tolist() == [3, 2]
    assert temporal_nms(spans, scores, threshold=0.95).tolist() == [3, 0, 1, 2]
    assert temporal_nms(spans, scores, threshold=0.85).tolist() == [3, 1, 2]  # [1,10] vs [0,9]: 0.8


def test_nms_threshold_is_strict():
    spans, scores = [[0, 4], [1, 3]], [0.9, 0.8]  # IoU exactly 0.5
    assert temporal_nms(spans, scores, threshold=0.5).tolist() == [0, 1]
    assert temporal_nms(spans, scores, threshold=0.49).tolist() == [0]


def test_nms_ties_keep_input_order_and_max_keep():
    assert temporal_nms([[0, 1], [10, 11], [20, 21]], [1.0, 1.0, 1.0]).tolist() == [0, 1, 2]
    assert temporal_nms([[0, 9], [0, 10]], [0.5, 0.5]).tolist() == [0]  # the first of a tie wins
    assert temporal_nms([[0, 1], [10, 11], [20, 21]], [0.1, 0.3, 0.2], max_keep=2).tolist() == [1, 2]
    assert temporal_nms(np.zeros((0, 2)), []).tolist() == []


def test_nms_moments_is_per_video_then_global_sort():
    preds = [[1, 0, 10, 0.9], [2, 0, 10, 0.8], [1, 0, 9, 0.7], [2, 20, 30, 0.95]]
    assert nms_moments(preds) == [[2, 20, 30, 0.95], [1, 0, 10, 0.9], [2, 0, 10, 0.8]]
    assert nms_moments(preds, max_after=1) == [[2, 20, 30, 0.95]]
    assert nms_moments(preds, max_before=2) == [[1, 0, 10, 0.9], [2, 0, 10, 0.8]]


def test_lazy_nms_moments_equals_the_grouped_computation():
    """nms_moments stops at max_after survivors; it must give exactly what grouping by video, NMS in
    each, and a stable global sort give, ties included (scores drawn from a few values)."""
    import numpy as np

    rng = np.random.default_rng(0)
    for trial in range(30):
        n = int(rng.integers(1, 60))
        starts = rng.integers(0, 40, n).astype(float)
        rows = [
            [
                float(rng.integers(0, 5)),
                s,
                s + float(rng.integers(0, 12)),
                float(rng.choice([0.1, 0.5, 0.9, rng.random()])),
            ]
            for s in starts
        ]
        groups: dict = {}
        for r in rows:
            groups.setdefault(r[0], []).append(r)
        merged = []
        for g in groups.values():
            merged.extend(g[i] for i in temporal_nms([r[1:3] for r in g], [r[3] for r in g], 0.5))
        merged.sort(key=lambda r: r[3], reverse=True)
        for max_after in (1, 5, 100):
            assert nms_moments(rows, 0.5, max_before=1000, max_after=max_after) == merged[:max_after], trial
