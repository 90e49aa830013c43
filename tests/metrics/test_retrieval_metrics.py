"""Clip retrieval metrics on hand-computed similarity matrices, both directions, both tie rules."""

import numpy as np
import pytest
import torch

from tempovl.errors import InputError
from tempovl.metrics import chance_recall, ranks_from_scores, recall_metrics, retrieval_metrics

# 3 texts x 3 videos; text i belongs to video i. Text 2 scores every video the same.
SIM = [[0.9, 0.5, 0.1], [0.8, 0.7, 0.2], [0.3, 0.3, 0.3]]


def test_ranks_pessimistic_and_optimistic_ties():
    assert ranks_from_scores(SIM, [0, 1, 2]).tolist() == [1, 2, 3]  # tie: both others count above
    assert ranks_from_scores(SIM, [0, 1, 2], ties="optimistic").tolist() == [1, 2, 1]


def test_relevant_items_do_not_push_each_other_down():
    # two relevant items tied at the top: rank 1 under either rule
    assert ranks_from_scores([[0.5, 0.5, 0.1]], [[0, 1]]).tolist() == [1]
    # a non-relevant item tied with the best relevant one: pessimistic 2, optimistic 1
    assert ranks_from_scores([[0.5, 0.5, 0.5]], [[0, 1]]).tolist() == [2]
    assert ranks_from_scores([[0.5, 0.5, 0.5]], [[0, 1]], ties="optimistic").tolist() == [1]


def test_recall_metrics_hand_computed():
    m = recall_metrics([1, 2, 3, 7, 12], ks=(1, 5, 10))
    assert m["R@1"] == pytest.approx(20.0)
    assert m["R@5"] == pytest.approx(60.0)
    assert m["R@10"] == pytest.approx(80.0)
    assert m["mean_recall"] == pytest.approx(160.0 / 3)
    assert m["median_rank"] == 3.0
    assert m["mean_rank"] == pytest.approx(5.0)
    assert m["n"] == 5
    assert recall_metrics([1, 4])["median_rank"] == 2.5


def test_retrieval_both_directions_single_caption():
    m = retrieval_metrics(np.array(SIM), [0, 1, 2], ks=(1, 5))
    assert m["t2v"]["R@1"] == pytest.approx(100 / 3)
    assert m["t2v"]["median_rank"] == 2.0 and m["t2v"]["mean_rank"] == 2.0
    # video->text: columns [0.9, 0.8, 0.3], [0.5, 0.7, 0.3], [0.1, 0.2, 0.3] -> every video at rank 1
    assert m["v2t"]["R@1"] == 100.0 and m["v2t"]["n"] == 3


def test_video_to_text_hit_when_any_caption_ranks_within_k():
    # 4 texts, 2 videos: texts 0, 1 describe video 0; texts 2, 3 describe video 1
    sim = torch.tensor([[0.2, 0.9], [0.8, 0.1], [0.6, 0.5], [0.4, 0.4]])
    m = retrieval_metrics(sim, [0, 0, 1, 1], ks=(1, 5))
    # t2v ranks: 2, 1, 2, 2 (text 3 ties: pessimistic)
    assert m["t2v"]["R@1"] == 25.0 and m["t2v"]["mean_rank"] == 1.75
    # v2t: video 0 -> best caption text 1 (0.8) beats every other text: rank 1;
    #      video 1 -> best caption text 2 (0.5), text 0 (0.9) is above it: rank 2
    assert m["v2t"]["R@1"] == 50.0 and m["v2t"]["median_rank"] == 1.5 and m["v2t"]["R@5"] == 100.0
    # chance: a text has 1 of 2 videos; a video has 2 of 4 texts (1 - C(2,1)/C(4,1) at K=1)
    assert (
        m["t2v"]["chance_R@1"] == 50.0 and m["v2t"]["chance_R@1"] == 50.0 and m["v2t"]["chance_R@5"] == 100.0
    )
    m_opt = retrieval_metrics(sim, [0, 0, 1, 1], ks=(1,), ties="optimistic")
    assert m_opt["t2v"]["R@1"] == 50.0


def test_separate_video_text_scores_and_videos_without_text():
    sim = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]])  # 2 texts, 3 videos; video 2 has no text
    v2t = np.array([[0.1, 0.9], [0.9, 0.1], [0.5, 0.5]])  # an asymmetric scorer gets both v2t wrong
    m = retrieval_metrics(sim, [0, 1], ks=(1,), video_text_scores=v2t)
    assert m["t2v"]["R@1"] == 100.0
    assert m["v2t"]["R@1"] == 0.0 and m["v2t"]["n"] == 2


@pytest.mark.parametrize(
    "scores, positives, match",
    [
        (SIM, [0, 1, 3], "relevant item 3 is not an index"),
        (SIM, [0, 1], "2 ground-truth entries for 3 queries"),
        (SIM, [0, [], 2], "query 1 has no relevant item"),
        ([[0.1, float("nan")]], [0], "NaN score at \\(query 0, item 1\\)"),
        ([0.1, 0.2], [0], "2-D"),
    ],
)
def test_bad_input(scores, positives, match):
    with pytest.raises(InputError, match=match):
        ranks_from_scores(scores, positives)


def test_bad_tie_rule_and_multi_video_text():
    with pytest.raises(InputError, match="ties"):
        ranks_from_scores(SIM, [0, 1, 2], ties="random")
    with pytest.raises(InputError, match="exactly one video"):
        retrieval_metrics(SIM, [[0, 1], 1, 2])


def test_chance_recall_by_hand_and_by_simulation():
    m = chance_recall([0, 3], 10, ks=(1, 5))
    assert m["R@1"] == pytest.approx(10.0) and m["R@5"] == pytest.approx(50.0)
    m = chance_recall([[0, 1]], 4, ks=(1, 3))  # two positives of four: 1 - C(2,1)/C(4,1); top 3 always hits
    assert chance_recall([0], 4, ks=(10,))["R@10"] == 100.0  # K beyond the gallery
    assert m["R@1"] == pytest.approx(50.0) and m["R@3"] == pytest.approx(100.0)
    assert m["mean_recall"] == pytest.approx(75.0)
    positives = [[0, 1, 2], [3], [4, 5]]
    rng = np.random.default_rng(0)
    sims = [
        recall_metrics(ranks_from_scores(rng.random((3, 12)), positives), (1, 5))["R@5"] for _ in range(4000)
    ]
    assert np.mean(sims) == pytest.approx(chance_recall(positives, 12, (1, 5))["R@5"], abs=1.0)
