"""HiTeA's losses against hand-computed values: CME, MTRE, VTC (+ queue, momentum), VTM sampling."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tempovl.objectives.temporal import MTREHead, cme_loss, cme_select, mtre_loss, negative_cosine
from tempovl.objectives.vtc import FeatureQueue, VTCLoss, make_momentum_copy, momentum_update
from tempovl.objectives.vtm import sample_hard_negatives, vtm_loss


def test_cme_selects_top_k_valid_words_and_matches_hand_softmax():
    video = torch.tensor([[1.0, 0.0]])
    # cosines to the video: 1.0, 0.6, -1.0, (masked) 1.0, 0.0
    words = torch.tensor([[[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    mask = torch.tensor([[True, True, True, False, True]])
    index, selected = cme_select(words, mask, video, k=2)
    assert index.tolist() == [[0, 1]] and selected.all()
    temp = torch.tensor(0.5)
    loss, _, _ = cme_loss(words, mask, video, temp, k=2)
    logits = [1.0 / 0.5, 0.6 / 0.5, -1.0 / 0.5, 0.0 / 0.5]  # valid words only
    log_z = math.log(sum(math.exp(x) for x in logits))
    expected = -((logits[0] - log_z) + (logits[1] - log_z)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_cme_with_fewer_valid_words_than_k_and_empty_rows():
    video = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    words = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    mask = torch.tensor([[True, False, False], [False, False, False]])
    temp = torch.tensor(0.07, requires_grad=True)
    loss, index, selected = cme_loss(words, mask, video, temp, k=5)
    assert index.shape == (2, 3) and selected.tolist() == [[True, False, False], [False, False, False]]
    assert loss.item() == pytest.approx(0.0, abs=1e-6)  # one valid word: log-softmax = 0
    loss.backward()
    assert temp.grad is not None


def test_mtre_matches_hand_value_and_stops_gradient():
    p_long = torch.tensor([[1.0, 0.0]], requires_grad=True)
    z_long = torch.tensor([[0.0, 2.0]], requires_grad=True)
    p_short = torch.tensor([[1.0, 1.0]], requires_grad=True)
    z_short = torch.tensor([[3.0, 0.0]], requires_grad=True)
    loss = mtre_loss(p_long, z_long, p_short, z_short)
    # D(p_L, z_S) = -cos(0) = -1;  D(p_S, z_L) = -cos(45 deg) = -1/sqrt(2)
    assert loss.item() == pytest.approx(0.5 * (-1 - 1 / math.sqrt(2)), rel=1e-6)
    loss.backward()
    assert z_long.grad is None and z_short.grad is None
    assert p_long.grad is not None and p_short.grad is not None
    assert negative_cosine(p_long, z_short).item() == pytest.approx(-1.0)


def test_mtre_head_gradient_reaches_g_only_through_the_predictor_branch():
    torch.manual_seed(0)
    head = MTREHead(8, proj_dim=16, pred_dim=4)
    long_cls, short_cls = torch.randn(3, 8, requires_grad=True), torch.randn(3, 8)
    z_long = head.g(long_cls)
    grad_via_z = torch.autograd.grad(
        mtre_loss(head.h(z_long).detach(), z_long, head.h(head.g(short_cls)), head.g(short_cls)),
        long_cls,
        allow_unused=True,
    )[0]
    assert grad_via_z is None  # z_L enters only through sg(.)
    head(long_cls, short_cls).backward()
    assert all(p.grad is not None for p in head.parameters())


def test_queue_enqueue_dequeue_wraps_around():
    q = FeatureQueue(dim=2, size=5)
    a = torch.arange(6.0).view(3, 2)
    q.enqueue(a, a + 100, torch.tensor([0, 1, 2]))
    assert int(q.ptr) == 3 and q.ids.tolist() == [0, 1, 2, -1, -1]
    assert torch.equal(q.video[:3], a) and torch.equal(q.text[:3], a + 100)
    b = torch.arange(6.0, 12.0).view(3, 2)
    q.enqueue(b, b, torch.tensor([3, 4, 5]))  # slots 3, 4, then 0: the oldest row is dequeued
    assert int(q.ptr) == 1 and q.ids.tolist() == [5, 1, 2, 3, 4]
    assert torch.equal(q.video[0], b[2]) and torch.equal(q.video[1], a[1])
    q.enqueue(torch.zeros(7, 2), torch.zeros(7, 2))  # more rows than slots: the newest 5 are kept
    assert q.ids.tolist() == [-1] * 5


def test_momentum_copy_is_buffers_and_update_is_an_ema():
    online = nn.Linear(2, 2)
    twin = make_momentum_copy(online)
    assert list(twin.parameters()) == [] and {n for n, _ in twin.named_buffers()} == {"weight", "bias"}
    with torch.no_grad():
        online.weight.fill_(1.0)
        online.bias.fill_(1.0)
        twin.weight.zero_()
        twin.bias.fill_(2.0)
    momentum_update(online, twin, 0.9)
    assert torch.allclose(twin.weight, torch.full((2, 2), 0.1)) and torch.allclose(
        twin.bias, torch.full((2,), 1.9)
    )


def test_vtc_in_batch_matches_hand_value():
    v = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8]]), dim=-1)
    t = F.normalize(torch.tensor([[0.8, 0.6], [0.0, 1.0]]), dim=-1)
    vtc = VTCLoss(embed_dim=2, queue_size=0, temp=0.5)
    out = vtc(v, t)
    sim = (v @ t.t()) / 0.5
    expected = (F.cross_entropy(sim, torch.arange(2)) + F.cross_entropy(sim.t(), torch.arange(2))) / 2
    assert out["vtc_loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(out["sim_v2t"], sim) and out["pos_mask"].tolist() == [[True, False], [False, True]]
    out["vtc_loss"].backward()
    assert vtc.temp.grad is not None


def test_vtc_queue_adds_negatives_and_enqueues_only_in_training():
    torch.manual_seed(0)
    v, t = F.normalize(torch.randn(2, 4), dim=-1), F.normalize(torch.randn(2, 4), dim=-1)
    vtc = VTCLoss(embed_dim=4, queue_size=6, temp=0.1)
    queue_t = vtc.queue.text.clone()
    sim = v @ torch.cat([t, queue_t]).t() / 0.1
    expected_v2t = F.cross_entropy(sim, torch.arange(2))
    sim_t = t @ torch.cat([v, vtc.queue.video]).t() / 0.1
    expected = (expected_v2t + F.cross_entropy(sim_t, torch.arange(2))) / 2
    vtc.eval()
    assert vtc(v, t)["vtc_loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert int(vtc.queue.ptr) == 0
    vtc.train()
    vtc(v, t, pair_ids=torch.tensor([7, 8]))
    assert int(vtc.queue.ptr) == 2 and vtc.queue.ids[:2].tolist() == [7, 8]
    assert torch.allclose(vtc.queue.text[:2], t)
    # the same video ids in the queue are positives now (targets spread over both)
    out = vtc(v, t, pair_ids=torch.tensor([7, 8]))
    assert out["vtc_loss"].item() > 0


def test_hard_negatives_never_pick_the_positive():
    gen = torch.Generator().manual_seed(0)
    b = 4
    eye = torch.eye(b, dtype=torch.bool)
    one_hot = torch.eye(b) * 1e4  # all the mass on the positive: weights underflow to 0 elsewhere
    ties = torch.zeros(b, b)
    for sim in (one_hot, ties, torch.randn(b, b)):
        for _ in range(50):
            idx, valid = sample_hard_negatives(sim, eye, gen)
            assert valid.all() and (idx != torch.arange(b)).all()
    dup = eye.clone()
    dup[0, 1] = dup[1, 0] = True  # captions 0 and 1 belong to the same video
    for _ in range(50):
        idx, _ = sample_hard_negatives(one_hot, dup, gen)
        assert idx[0] not in (0, 1) and idx[1] not in (0, 1)
    idx, valid = sample_hard_negatives(torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.bool), gen)
    assert valid.tolist() == [False, False]


def test_hard_negatives_follow_the_similarity():
    gen = torch.Generator().manual_seed(0)
    sim = torch.tensor([[0.0, 10.0, -10.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    picks = [int(sample_hard_negatives(sim, torch.eye(3, dtype=torch.bool), gen)[0][0]) for _ in range(100)]
    assert picks.count(1) > 95


def test_vtm_loss_hand_value():
    pos, neg = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    p = math.exp(1) / (1 + math.exp(1))
    expected = -(math.log(p) + math.log(p) + math.log(0.5)) / 3
    assert vtm_loss(pos, neg).item() == pytest.approx(expected, rel=1e-6)
