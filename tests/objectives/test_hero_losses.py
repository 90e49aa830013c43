"""HERO's pre-training losses against hand-computed values on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch

from tempovl.data.masking import mask_tokens, shuffle_frames
from tempovl.objectives.contrastive import MNCELoss
from tempovl.objectives.masked import MFFRLoss, MLMLoss
from tempovl.objectives.matching import (
    VSMLoss,
    global_terms,
    hinge_both_ways,
    nce_both_ways,
    vsm_global_scores,
)
from tempovl.objectives.order import FOMLoss


def test_mlm_loss_hand_computed():
    logits = torch.tensor(
        [[0.0, math.log(3.0)], [math.log(2.0), 0.0]]
    )  # softmax rows: [1/4, 3/4], [2/3, 1/3]
    labels = torch.tensor([[-100, 1, -100], [0, -100, -100]])  # masked slots in row-major order: 1, then 0
    expected = -(math.log(3 / 4) + math.log(2 / 3)) / 2
    assert MLMLoss()(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_mask_tokens_rates_and_candidates():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 20, (200, 100), generator=g)
    cand = torch.ones_like(ids, dtype=torch.bool)
    cand[:, :10] = False
    masked, labels = mask_tokens(ids, cand, mask_id=3, random_range=(100, 200), prob=0.15, generator=g)
    chosen = labels != -100
    assert not chosen[:, :10].any()
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(masked[~chosen], ids[~chosen])
    assert chosen.float().sum() / cand.sum() == pytest.approx(0.15, abs=0.01)
    n = chosen.sum().item()
    frac_mask = (masked[chosen] == 3).sum().item() / n
    frac_rand = ((masked[chosen] >= 100) & (masked[chosen] < 200)).sum().item() / n
    frac_keep = (masked[chosen] == ids[chosen]).sum().item() / n
    assert (frac_mask, frac_rand, frac_keep) == pytest.approx((0.8, 0.1, 0.1), abs=0.02)


def test_mask_tokens_masks_at_least_one():
    ids = torch.tensor([[5, 6, 7]])
    _, labels = mask_tokens(ids, torch.tensor([[False, True, False]]), 3, (10, 20), prob=0.0)
    assert labels.tolist() == [[-100, 6, -100]]


def test_mffr_hand_computed():
    pred = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
    target = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])
    masked = torch.tensor([[True, False]])
    assert MFFRLoss()(pred, target, masked).item() == pytest.approx((1 + 4) / 2)


def test_mffr_mse_and_l2_hand_computed():
    """mse: mean over frames and dims; l2 (official HERO training loss): mean over frames of the L2 distance."""
    pred = torch.tensor([[[1.0, 2.0], [0.0, 0.0], [9.0, 9.0]]])  # (B=1, T=3, F=2)
    target = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]])
    masked = torch.tensor([[True, True, False]])
    assert MFFRLoss("mse")(pred, target, masked).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    assert MFFRLoss("l2")(pred, target, masked).item() == pytest.approx((5**0.5 + 5.0) / 2)
    assert MFFRLoss("l2")(pred[masked], target, masked).item() == pytest.approx((5**0.5 + 5.0) / 2)
    exact = pred.clone().requires_grad_()
    MFFRLoss("l2")(exact, exact.detach(), masked).backward()  # zero error: a zero gradient, not NaN
    assert torch.equal(exact.grad, torch.zeros_like(exact))
    with pytest.raises(ValueError, match="MFFR loss 'l1'"):
        MFFRLoss("l1")


def test_mnce_hand_computed_and_padding_is_never_a_negative():
    pred = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]])  # frame 0 masked, 1 unmasked, 2 padding
    target = torch.tensor([[[2.0, 0.0], [5.0, 5.0], [0.0, 0.0]]])
    masked = torch.tensor([[True, False, False]])
    real = torch.tensor([[True, True, False]])
    # logits of frame 0: positive pred0·target0 = 2, negative pred0·pred1 = 0
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(0)))
    assert MNCELoss()(pred, target, masked, real).item() == pytest.approx(expected, rel=1e-6)
    pred2 = pred.clone()
    pred2[0, 2] = torch.tensor([-50.0, 80.0])
    assert MNCELoss()(pred2, target, masked, real).item() == pytest.approx(expected, rel=1e-6)


def test_vsm_global_scores_max_pooled_cosine():
    q = torch.tensor([[1.0, 0.0]])
    frames = torch.tensor([[[0.0, 1.0], [1.0, 1.0], [5.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])  # the best frame is padding: it must not win
    assert vsm_global_scores(q, frames, mask).item() == pytest.approx(1 / math.sqrt(2), rel=1e-5)


def test_vsm_hinge_hand_computed():
    scores = torch.tensor([[0.9, 0.85], [0.2, 0.5]])  # query i belongs to clip i
    neg_ctx, neg_q = hinge_both_ways(scores, torch.tensor([0, 1]), margin=0.1)
    # q0: max(0, .1 + .85 - .9) = .05; q1: max(0, .1 + .2 - .5) = 0
    assert neg_ctx.item() == pytest.approx(0.025, rel=1e-5)
    # clip 0, q0 vs q1: max(0, .1 + .2 - .9) = 0; clip 1, q1 vs q0: max(0, .1 + .85 - .5) = .45
    assert neg_q.item() == pytest.approx(0.225, rel=1e-5)


def test_vsm_nce_hand_computed():
    """query -> clip CE over clips; clip -> query CE over its own query and other clips' queries only."""
    scores = torch.tensor([[0.9, 0.85], [0.2, 0.5], [0.7, 0.1]])  # q0, q2 belong to clip 0; q1 to clip 1
    qv = torch.tensor([0, 1, 0])
    t = 0.5
    to_video, to_query = nce_both_ways(scores, qv, temperature=t)

    def ce(logits, target):
        z = [x / t for x in logits]
        return -z[target] + math.log(sum(math.exp(x) for x in z))

    assert to_video.item() == pytest.approx((ce([0.9, 0.85], 0) + ce([0.2, 0.5], 1) + ce([0.7, 0.1], 0)) / 3)
    # row q0 (clip 0): s(q0,c0), s(q1,c0); q2 is the same clip, excluded. row q1 (clip 1): s(q0,c1), s(q1,c1),
    # s(q2,c1). row q2 (clip 0): s(q1,c0), s(q2,c0).
    expect = (ce([0.9, 0.2], 0) + ce([0.85, 0.5, 0.1], 1) + ce([0.2, 0.7], 1)) / 3
    assert to_query.item() == pytest.approx(expect, rel=1e-5)
    assert [x.item() for x in global_terms(scores, qv, "nce", temperature=t)] == [
        to_video.item(),
        to_query.item(),
    ]
    one_clip = global_terms(scores[:, :1], qv * 0, "nce")  # no negatives: zeros, graph kept
    assert one_clip[0].item() == 0.0
    with pytest.raises(ValueError, match="'hinge' or 'nce'"):
        global_terms(scores, qv, "triplet")


def test_vsm_loss_weights_local_and_global():
    st = torch.tensor([[0.0, 0.0]])
    ed = torch.tensor([[math.log(3.0), 0.0]])
    st2 = torch.cat([st, st])
    ed2 = torch.cat([ed, ed])
    targets = torch.tensor([[0, 0], [1, -1]])  # second query's end is ignored
    scores = torch.tensor([[0.9, 0.85], [0.2, 0.5]])
    loss = VSMLoss()(st2, ed2, targets, scores, torch.tensor([0, 1]))
    local = math.log(2) + (-math.log(3 / 4))  # start CE mean over 2 = ln 2; end CE on query 0 only
    assert loss.item() == pytest.approx(0.01 * local + 8 * (0.025 + 0.225), rel=1e-5)


def test_shuffle_frames_targets_invert_the_order():
    g = torch.Generator().manual_seed(3)
    mask = torch.tensor([[True] * 8 + [False] * 2, [True] * 10])
    order, targets = shuffle_frames(mask, prob=0.5, generator=g)
    x = torch.arange(10).repeat(2, 1)
    shuffled = torch.zeros_like(x).scatter(1, order, x)  # the frame at t now sits at order[t]
    chosen = targets >= 0
    assert chosen.any()
    assert torch.equal(shuffled[chosen], targets[chosen])
    assert torch.equal(order[0, 8:], torch.tensor([8, 9]))  # padding never moves
    assert not chosen[0, 8:].any()
    assert sorted(order[1].tolist()) == list(range(10))


def test_fom_loss_hand_computed():
    logits = torch.zeros(1, 3, 4)
    logits[0, 1, 2] = math.log(5.0)  # softmax over 4 classes: 5/8 on class 2
    targets = torch.tensor([[-1, 2, 0]])
    expected = (-math.log(5 / 8) + math.log(4)) / 2
    assert FOMLoss()(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_mask_tokens_gives_every_row_a_target():
    """Rows (the last dimension) are examples: each with a candidate gets a target, even at prob 0."""
    ids = torch.arange(12).view(3, 4)
    cand = torch.tensor([[False, True, True, False], [False] * 4, [True, False, False, False]])
    _, labels = mask_tokens(ids, cand, 99, (50, 60), prob=0.0)
    assert (labels != -100).sum(1).tolist() == [1, 0, 1]
    assert labels[2].tolist() == [8, -100, -100, -100]
    assert labels[0, 1] != -100 or labels[0, 2] != -100
