import math

import pytest
import torch
from torch import nn

from tempovl.engine.config import TrainConfig
from tempovl.engine.optim import LRSchedule, build_optimizer, build_scheduler, lr_multiplier, param_groups


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.pos_embed = nn.Parameter(torch.zeros(1, 3, 4))
        self.body = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 2)
        self.head_out = nn.Linear(2, 2)  # "head_out" must not match the prefix "head"
        self.tied = nn.Linear(4, 10, bias=False)
        self.tied.weight = self.embed.weight


def _groups_by_name(groups):
    return {n: g for g in groups for n in g["names"]}


def test_no_decay_on_norms_biases_embeddings_and_tied_once():
    groups = _groups_by_name(param_groups(Net(), lr=1.0, weight_decay=0.1))
    decayed = {n for n, g in groups.items() if g["weight_decay"] > 0}
    assert decayed == {"body.weight", "head.weight", "head_out.weight"}
    assert groups["embed.weight"]["weight_decay"] == 0.0
    assert groups["pos_embed"]["weight_decay"] == 0.0
    assert groups["norm.weight"]["weight_decay"] == 0.0
    assert "tied.weight" not in groups  # shared with embed.weight: optimised once
    assert len(groups) == len({id(p) for p in Net().parameters()})


def test_lr_multipliers_longest_prefix_on_dot_boundary():
    mults = {"head": 10.0, "body": 2.0, "body.bias": 0.5}
    assert lr_multiplier("head.weight", mults) == 10.0
    assert lr_multiplier("head_out.weight", mults) == 1.0
    assert lr_multiplier("body.bias", mults) == 0.5
    assert lr_multiplier("body.weight", mults) == 2.0
    groups = _groups_by_name(param_groups(Net(), lr=0.01, weight_decay=0.1, multipliers=mults))
    assert groups["head.weight"]["lr"] == pytest.approx(0.1)
    assert groups["head.bias"]["lr"] == pytest.approx(0.1) and groups["head.bias"]["weight_decay"] == 0
    assert groups["head_out.weight"]["lr"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    "kind,step,expected",
    [
        ("linear", 0, 1 / 5),  # warm-up: (step + 1) / (warmup + 1)
        ("linear", 3, 4 / 5),
        ("linear", 4, 1.0),  # p = 0
        ("linear", 9, 0.1 + 0.9 * (1 - 5 / 10)),  # p = (9 - 4) / (14 - 4)
        ("linear", 14, 0.1),
        ("linear", 99, 0.1),  # clipped after the end
        ("cosine", 9, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))),
        ("cosine", 14, 0.1),
        ("constant", 2, 3 / 5),
        ("constant", 50, 1.0),
    ],
)
def test_schedule_hand_computed(kind, step, expected):
    assert LRSchedule(warmup=4, total=14, kind=kind, min_ratio=0.1)(step) == pytest.approx(expected)


def test_scheduler_keeps_multipliers_and_steps():
    tc = TrainConfig(lr=0.1, warmup_steps=1, max_steps=3, schedule="linear", weight_decay=0.0)
    net = Net()
    opt = build_optimizer(net, tc, {"head": 10.0})
    sched = build_scheduler(opt, tc)
    lrs = []
    for _ in range(3):
        lrs.append({g["lr_mult"]: g["lr"] for g in opt.param_groups})
        opt.step()
        sched.step()
    # factors: step0 warm-up 1/2, step1 p=0 -> 1, step2 p=1/2 -> 0.5
    assert [d[1.0] for d in lrs] == pytest.approx([0.05, 0.1, 0.05])
    assert [d[10.0] for d in lrs] == pytest.approx([0.5, 1.0, 0.5])
