"""The HERO pre-training task: config checks, one engine step per sub-task, gradients, evaluation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
import yaml

from tempovl.config import load_config
from tempovl.engine.trainer import Trainer, train
from tempovl.errors import ConfigError
from tempovl.registry import build_task

SUBTASKS = ["mlm", "mffr", "mnce", "fom", "vsm"]


def make_cfg(corpus, features, out, *overrides: str) -> dict:
    """The shipped experiment preset, pointed at the tiny corpus and shrunk to a few steps."""
    return load_config(
        "hero-tiny-pretrain",
        [
            f"data.corpus={corpus}",
            f"data.features={features}",
            "data.max_frames=16",
            f"train.output_dir={out}",
            "train.max_steps=2",
            "train.batch_size=4",
            "train.warmup_steps=0",
            "train.eval_every=0",
            "train.progress=false",
            "train.curves=false",
            "task.eval_batch_size=4",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def task(tiny_corpus, tiny_features, tmp_path_factory):
    cfg = make_cfg(tiny_corpus, tiny_features, tmp_path_factory.mktemp("run"))
    torch.manual_seed(0)
    return build_task(cfg)


def test_frame_dim_auto_is_filled_and_a_mismatch_names_the_key(task, tiny_corpus, tiny_features, tmp_path):
    assert task.model.cfg.frame_dim == task.store.dim == task.cfg["model"]["frame_dim"]
    cfg = make_cfg(tiny_corpus, tiny_features, tmp_path, "model.frame_dim=128")
    with pytest.raises(ConfigError, match=rf"model.frame_dim: 128.*dim {task.store.dim}"):
        build_task(cfg)
    with pytest.raises(ConfigError, match="task.ratios: unknown sub-task 'mfx'"):
        build_task(make_cfg(tiny_corpus, tiny_features, tmp_path, "task.ratios={mfx: 1}"))
    with pytest.raises(ConfigError, match="data.max_frames: 200 exceeds model.max_clip_len"):
        build_task(make_cfg(tiny_corpus, tiny_features, tmp_path, "data.max_frames=200"))


def test_default_ratios_are_the_official_ones(task):
    assert task.subtasks() == {"mlm": 2.0, "mnce": 2.0, "fom": 1.0, "vsm": 2.0, "mffr": 0.0}


@pytest.mark.parametrize("subtask", SUBTASKS)
def test_every_used_parameter_gets_a_gradient(task, subtask, hero_unused):
    data = task.dataset("train", subtask)
    batch = task.collate(subtask, torch.Generator().manual_seed(0))([data[i] for i in range(4)])
    task.train()
    task.zero_grad(set_to_none=True)
    out = task(batch, subtask)
    loss = out[f"{subtask}_loss"]
    assert math.isfinite(float(loss.detach()))
    loss.backward()
    missing = [
        n
        for n, p in task.model.named_parameters()
        if not any(n == u or n.startswith(u + ".") for u in hero_unused[subtask])
        and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert missing == []


@pytest.mark.parametrize("subtask", SUBTASKS)
def test_one_engine_step_per_subtask(task, subtask, tmp_path):
    cfg = dict(task.cfg, train=dict(task.cfg["train"], output_dir=str(tmp_path), max_steps=1))
    task.c.ratios = {subtask: 1.0}
    try:
        r = Trainer(cfg, task=task).train_step()
    finally:
        task.c.ratios = {"mlm": 2.0, "mnce": 2.0, "fom": 1.0, "vsm": 2.0, "mffr": 0.0}
    assert r["subtask"] == subtask and not r["bad"]
    assert math.isfinite(r["values"][f"{subtask}_loss"]) and r["grad_norm"] > 0


def test_evaluate_is_deterministic_and_reports_every_metric(task):
    first = task.evaluate("val")
    assert task.training  # evaluate restores the mode
    for key in ["mlm_loss", "mnce_loss", "fom_loss", "vsm_loss", "loss", "mlm_acc", "vsm_r1", "vsm_r10"]:
        assert math.isfinite(first[key]), key
    assert "mffr_loss" not in first  # ratio 0: not trained, not evaluated
    n = first["vsm_clips"]
    assert first["vsm_chance_r1"] == pytest.approx(100 / n)  # percent, as every tempovl recall
    assert first["vsm_chance_r10"] == pytest.approx(100 * min(10, n) / n)
    assert 0 <= first["vsm_r1"] <= first["vsm_r5"] <= first["vsm_r10"] <= 100
    assert first["vsm_queries"] >= n
    expected = (
        2 * first["mlm_loss"] + 2 * first["mnce_loss"] + first["fom_loss"] + 2 * first["vsm_loss"]
    ) / 7
    assert first["loss"] == pytest.approx(expected)
    assert task.evaluate("val") == first  # fixed seed: comparable over training


def test_vsm_recall_is_the_shared_metric_in_percent_with_pessimistic_ties(task, monkeypatch):
    """VSM R@K comes from tempovl.metrics.retrieval (issue 14): a model that scores every clip the same
    ranks each query's clip last (rank = number of clips), not first."""
    import tempovl.tasks.hero.pretrain as hp

    def tied(queries, frames, masks):
        return torch.zeros(len(queries), len(frames))  # (Nq, Nv): every clip scores the same

    monkeypatch.setattr(hp, "vsm_global_scores", tied)
    out = task.retrieval("val")
    n = out["vsm_clips"]
    assert n > 1
    for k in (1, 5, 10):
        assert out[f"vsm_r{k}"] == (100.0 if k >= n else 0.0), k


@pytest.mark.parametrize("kind", ["mse", "l2"])
def test_mffr_loss_is_configurable(tiny_corpus, tiny_features, tmp_path, kind):
    task = build_task(make_cfg(tiny_corpus, tiny_features, tmp_path, f"task.mffr_loss={kind}"))
    assert task.mffr_loss.kind == kind
    data = task.dataset("train", "mffr")
    batch = task.collate("mffr", torch.Generator().manual_seed(0))([data[i] for i in range(2)])
    loss = task.forward(batch, "mffr")["mffr_loss"]
    assert math.isfinite(float(loss.detach()))


def test_mffr_loss_default_and_bad_value(task, tiny_corpus, tiny_features, tmp_path):
    assert task.c.mffr_loss == "mse" and task.mffr_loss.kind == "mse"  # the default is unchanged
    with pytest.raises(ConfigError, match="task.mffr_loss: 'l1'"):
        build_task(make_cfg(tiny_corpus, tiny_features, tmp_path, "task.mffr_loss=l1"))


@pytest.mark.parametrize("model", ["hero-ftrm", "hero-htrm"])
def test_baselines_train_every_subtask(model, tiny_corpus, tiny_features, tmp_path):
    cfg = make_cfg(tiny_corpus, tiny_features, tmp_path, f"model.name={model}")
    t = build_task(cfg)
    for subtask in SUBTASKS:
        data = t.dataset("train", subtask)
        batch = t.collate(subtask)([data[i] for i in range(3)])
        out = t(batch, subtask)
        assert math.isfinite(float(out[f"{subtask}_loss"].detach())), (model, subtask)
        out[f"{subtask}_loss"].backward()


def test_short_pretraining_run_through_the_engine(tiny_corpus, tiny_features, tmp_path):
    cfg = make_cfg(tiny_corpus, tiny_features, tmp_path / "run", "train.max_steps=6")
    result = train(cfg)
    assert result.step == 6 and result.bad_steps == 0
    assert (result.checkpoint / "model.safetensors").exists()
    assert {"mlm_loss", "vsm_r1"} <= set(result.eval_history[-1])


@pytest.mark.slow
def test_two_process_torchrun_smoke(tiny_corpus, tiny_features, tmp_path):
    """2 CPU ranks (gloo): VSM gathers clips and queries of both ranks; every sub-task runs."""
    out = tmp_path / "ddp"
    cfg = make_cfg(tiny_corpus, tiny_features, out, "train.max_steps=4", "train.batch_size=2")
    cfg["task"]["ratios"] = {"mlm": 1.0, "mnce": 1.0, "fom": 1.0, "vsm": 3.0}
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "tempovl.cli", "pretrain", str(tmp_path / "ddp.yaml")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    steps = [r for r in rows if "subtask" in r]
    assert steps and all(math.isfinite(r["loss"]) for r in steps) and (out / "ckpt-0000004").is_dir()
