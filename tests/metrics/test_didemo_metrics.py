"""The DiDeMo several-annotator rule (LocalizingMoments eval.py) on a hand-computed case."""

import numpy as np
import pytest

from tempovl.errors import InputError
from tempovl.metrics import DIDEMO_MOMENTS, didemo_eval, didemo_iou, rank_didemo_moments


def test_candidate_moments_and_inclusive_iou():
    assert len(DIDEMO_MOMENTS) == 21 and DIDEMO_MOMENTS[0] == (0, 0) and DIDEMO_MOMENTS[-1] == (5, 5)
    assert didemo_iou((0, 0), (0, 1)) == 0.5  # one of two 5-s segments
    assert didemo_iou((1, 1), (0, 0)) == 0.0  # neighbouring segments do not overlap
    assert didemo_iou((0, 5), (2, 3)) == pytest.approx(2 / 6)


def test_didemo_rule_hand_computed():
    lexicographic = list(DIDEMO_MOMENTS)  # (0,0)=1st, (0,1)=2nd, ..., (1,1)=7th, (1,2)=8th, (4,5)=20th
    q1 = [(0, 0), (0, 1), (1, 1), (3, 3)] + [
        m for m in DIDEMO_MOMENTS if m not in {(0, 0), (0, 1), (1, 1), (3, 3)}
    ]
    q2 = [(2, 2)] + [m for m in DIDEMO_MOMENTS if m != (2, 2)]
    rankings = [q1, q2, lexicographic]
    times = [
        [[0, 0], [0, 0], [0, 1], [3, 3]],  # ranks 1, 1, 2, 4 -> mean of best 3 = 4/3: R@5 only
        [[2, 2], [2, 2], [2, 2], [5, 5]],  # ranks 1, 1, 1, x -> 1: R@1
        [[4, 5], [4, 5], [1, 1], [1, 2]],  # ranks 20, 20, 7, 8 -> 35/3: neither
    ]
    m = didemo_eval(rankings, times)
    # top-moment IoUs: q1 (0,0) vs [1, 1, 0.5, 0] -> best 3 mean 5/6; q2 -> 1; q3 (0,0) -> 0
    assert m["R@1"] == pytest.approx(100 / 3)
    assert m["R@5"] == pytest.approx(200 / 3)
    assert m["mIoU"] == pytest.approx(100 * (5 / 6 + 1 + 0) / 3)
    assert m["n"] == 3


def test_rank_from_scores():
    scores = np.zeros((2, 21))
    scores[0, DIDEMO_MOMENTS.index((2, 2))] = 1.0
    ranked = rank_didemo_moments(scores)
    assert ranked[0][0] == (2, 2) and ranked[1][:2] == [(0, 0), (0, 1)]  # ties keep candidate order
    with pytest.raises(InputError, match="expected shape"):
        rank_didemo_moments(np.zeros((2, 20)))


def test_missing_moment_in_ranking_is_an_error():
    with pytest.raises(InputError, match=r"query 0: annotator moment \(5, 5\) is not in the ranked list"):
        didemo_eval([[(0, 0), (1, 1)]], [[[0, 0], [1, 1], [5, 5], [0, 0]]])
    with pytest.raises(InputError, match="2 ranked lists for 1 queries"):
        didemo_eval([[(0, 0)], [(0, 0)]], [[[0, 0]]])
