"""HiTeA pre-training task: engine steps, momentum encoders, evaluation, loss ablations."""

from __future__ import annotations

import math

import pytest
import torch

from tempovl.config import load_config
from tempovl.engine.trainer import Trainer
from tempovl.errors import ConfigError
from tempovl.objectives.vtc import momentum_pairs
from tempovl.registry import build_task

ALL = ["vtc_loss", "vtm_loss", "mlm_loss", "prefixlm_loss", "cme_loss", "mtre_loss"]


def _cfg(corpus, out=None, overrides=()) -> dict:
    base = [
        f"data.corpus={corpus}",
        "data.frame_size=32",
        "data.max_text_len=24",
        "model.max_positions=32",
        "model.queue_size=16",
        "train.batch_size=4",
        "train.progress=false",
        "train.curves=false",
        "train.warmup_steps=0",
        "train.lr=1e-3",
        "train.device=cpu",
        f"train.output_dir={out}",
    ]
    return load_config("hitea-tiny-pretrain", [*base, *overrides])


@pytest.mark.slow
def test_engine_steps_losses_finite_and_momentum_not_trained(tiny_corpus, tmp_path):
    trainer = Trainer(_cfg(tiny_corpus, tmp_path / "run"))
    model = trainer.task.model
    trained = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    for name in model.momentum_names:
        twin = getattr(model, f"{name}_m")
        if twin is None:  # no projection when the backbone already has the model width
            continue
        assert not list(twin.parameters())  # momentum copies are buffers: no optimiser, no gradient
        assert not any(id(b) in trained for b in twin.buffers())
    pairs = momentum_pairs(model.text_encoder, model.text_encoder_m)
    online, twin = pairs[0]
    start = twin.clone()

    r = trainer.train_step()
    assert not r["bad"]
    assert set(ALL) <= set(r["values"]) and all(math.isfinite(r["values"][k]) for k in ALL)
    assert torch.equal(twin, start)  # the first step's momentum update averages identical weights
    after_step1 = online.detach().clone()
    assert not torch.equal(after_step1, start)  # the optimiser moved the online encoder

    r = trainer.train_step()  # starts with the momentum update towards the step-1 weights
    assert not r["bad"] and all(math.isfinite(r["values"][k]) for k in ALL)
    m = model.cfg.momentum
    torch.testing.assert_close(twin, m * start + (1 - m) * after_step1)
    assert int(model.vtc.queue.ptr) == 8 % 16  # two batches of 4 enqueued


def test_evaluate_metrics_deterministic_and_rng_untouched(tiny_corpus, tmp_path):
    task = build_task(_cfg(tiny_corpus, tmp_path))
    queue, alpha = task.model.vtc.queue, task.model.vtc.alpha
    task.train()
    rng = torch.get_rng_state()
    m1 = task.evaluate("val")
    assert torch.equal(torch.get_rng_state(), rng) and task.training
    assert task.model.vtc.queue is queue and task.model.vtc.alpha == alpha
    m2 = task.evaluate("val")
    assert m1 == m2
    assert set(ALL) <= set(m1)
    assert m1["loss"] == pytest.approx(sum(m1[k] for k in ALL))
    n = m1["num_videos"]
    assert n == 2.0 and m1["chance_r1"] == 50.0 and m1["chance_r5"] == 100.0 and m1["chance_medr"] == 1.5
    for k in ("t2v_r1", "t2v_r5", "t2v_r10", "v2t_r1"):
        assert 0.0 <= m1[k] <= 100.0
    assert 1.0 <= m1["t2v_medr"] <= n


def test_retrieval_ranks_by_dot_product(tiny_corpus, tmp_path):
    task = build_task(_cfg(tiny_corpus, tmp_path))
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # captions of videos 7, 3, 3
    videos = {3: torch.tensor([0.0, 1.0]), 7: torch.tensor([1.0, 0.0]), 9: torch.tensor([0.8, 0.6])}
    m = task._retrieval(text, videos, [7, 3, 3])
    # caption 0: video 7 first; caption 1: video 3 first; caption 2: scores 3->0.8, 7->0.6, 9->0.96: rank 2
    assert m["t2v_r1"] == pytest.approx(200 / 3) and m["t2v_r5"] == 100.0 and m["t2v_medr"] == 1.0
    assert m["chance_r1"] == pytest.approx(100 / 3) and m["chance_medr"] == 2.0


@pytest.mark.parametrize(
    "losses,want",
    [
        (["vtc", "mlm"], ["vtc_loss", "mlm_loss"]),
        (["cme"], ["cme_loss"]),
        (["vtm", "prefixlm", "mtre"], ["vtm_loss", "prefixlm_loss", "mtre_loss"]),
    ],
)
def test_ablation_switches_remove_terms(tiny_corpus, tmp_path, losses, want):
    task = build_task(_cfg(tiny_corpus, tmp_path, [f"model.losses=[{', '.join(losses)}]"]))
    data, collate = task.dataset("train"), task.collate()
    torch.manual_seed(0)
    batch = collate([data[i] for i in range(3)])
    if not task._needs_short():
        batch["video_short"] = None  # not even read when no temporal term is on
    task.train()
    out = task(batch)
    assert sorted(k for k in out if k.endswith("_loss")) == sorted(want)
    total = sum(v for k, v in out.items() if k.endswith("_loss"))
    total.backward()
    assert math.isfinite(float(total.detach()))


def test_tokenizer_must_match_the_model(tiny_corpus, tmp_path):
    task = build_task(_cfg(tiny_corpus, tmp_path, ["model.cls_id=5"]))
    with pytest.raises(ConfigError, match="model.cls_id"):
        task.dataset("train")
    task = build_task(_cfg(tiny_corpus, tmp_path, ["data.max_text_len=40"]))
    with pytest.raises(ConfigError, match="data.max_text_len"):
        task.dataset("val")
