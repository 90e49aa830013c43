import json
import os
import signal

import pytest
import torch

from tempovl.config import load_config
from tempovl.engine.checkpoint import find_resumable, load_weights
from tempovl.engine.config import train_config
from tempovl.engine.trainer import TrainingDivergedError, seed_everything, train
from tempovl.errors import ConfigError
from tempovl.registry import build_task
from tempovl.tasks.toy import ToyTask

MULTI = {"ratios": {"cls": 2.0, "match": 1.0}, "dropout": 0.1}


def losses(out_dir):
    rows = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]
    return [(r["step"], r["subtask"], r["loss"], r["lr"]) for r in rows]


def test_resume_reproduces_uninterrupted_losses_exactly(toy_cfg):
    full = toy_cfg("full", task=MULTI, max_steps=8)
    train(full)
    part = toy_cfg("part", task=MULTI, max_steps=4, decay_steps=8, eval_every=3)
    first = train(part)
    assert first.step == 4 and find_resumable(part["train"]["output_dir"]).name == "ckpt-0000004"
    part["train"]["max_steps"] = 8
    train(part, resume=True)
    assert losses(part["train"]["output_dir"]) == losses(full["train"]["output_dir"])
    a = load_weights(os.path.join(full["train"]["output_dir"], "ckpt-0000008", "model.safetensors"))[0]
    b = load_weights(os.path.join(part["train"]["output_dir"], "ckpt-0000008", "model.safetensors"))[0]
    assert all(torch.equal(a[k], b[k]) for k in a)


class SignalAt(ToyTask):
    """Sends itself SIGTERM during the training forward pass number `at`."""

    def __init__(self, cfg, at):
        super().__init__(cfg)
        self.at, self.calls = at, 0

    def forward(self, batch, subtask="cls"):
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                os.kill(os.getpid(), signal.SIGTERM)
        return super().forward(batch, subtask)


def test_sigterm_saves_and_resume_matches(toy_cfg):
    full = toy_cfg("full", task=MULTI, max_steps=7)
    train(full)
    cfg = toy_cfg("sig", task=MULTI, max_steps=7)
    seed_everything(cfg["train"].get("seed", 0))  # the same initial weights as the engine would build
    result = train(cfg, task=SignalAt(cfg, at=3))
    assert result.interrupted and result.step == 3
    assert result.checkpoint.name == "ckpt-0000003"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    train(cfg, resume=True)
    assert losses(cfg["train"]["output_dir"]) == losses(full["train"]["output_dir"])


class NanAt(ToyTask):
    def __init__(self, cfg, bad_calls):
        super().__init__(cfg)
        self.bad_calls, self.calls = set(bad_calls), 0

    def forward(self, batch, subtask="cls"):
        out = super().forward(batch, subtask)
        if self.training:
            self.calls += 1
            if self.calls in self.bad_calls:
                out["cls_loss"] = out["cls_loss"] * float("nan")
        return out


def test_nan_steps_are_skipped_and_counted(toy_cfg):
    cfg = toy_cfg("nan", max_steps=5, max_bad_steps=2)
    task = NanAt(cfg, bad_calls={2, 3})
    before = {k: v.clone() for k, v in task.state_dict().items()}
    result = train(cfg, task=task)
    assert result.bad_steps == 2
    rows = [json.loads(line) for line in open(os.path.join(cfg["train"]["output_dir"], "metrics.jsonl"))]
    assert [r["bad_steps"] for r in rows] == [0, 1, 2, 2, 2]
    assert any(not torch.equal(before[k], v) for k, v in task.state_dict().items())

    cfg2 = toy_cfg("nan2", max_steps=8, max_bad_steps=2)
    with pytest.raises(TrainingDivergedError, match="3 steps in a row.*max_bad_steps=2"):
        train(cfg2, task=NanAt(cfg2, bad_calls={2, 3, 4}))


def test_skipped_step_does_not_update(toy_cfg):
    cfg = toy_cfg("skip", max_steps=1, warmup_steps=0)
    task = NanAt(cfg, bad_calls={1})
    before = {k: v.clone() for k, v in task.state_dict().items()}
    train(cfg, task=task)
    assert all(torch.equal(before[k], v) for k, v in task.state_dict().items())


def test_accumulation_equivalent_to_big_batch(toy_cfg):
    # a large eps makes AdamW ~ SGD with momentum, so float noise in near-zero gradients (e.g. attention
    # key biases) is not blown up to +-lr by Adam's normalisation
    opt = {"max_steps": 3, "lr": 0.05, "eps": 1.0, "warmup_steps": 0}
    big = train(toy_cfg("big", batch_size=8, grad_accum=1, **opt))
    acc = train(toy_cfg("acc", batch_size=2, grad_accum=4, **opt))
    a = load_weights(big.checkpoint / "model.safetensors")[0]
    b = load_weights(acc.checkpoint / "model.safetensors")[0]
    moved = max((a[k] - v).abs().max().item() for k, v in load_weights_init(toy_cfg).items())
    assert moved > 1e-3  # training really changed the weights
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5, msg=k)
    la = [r[2] for r in losses(big.checkpoint.parent)]
    lb = [r[2] for r in losses(acc.checkpoint.parent)]
    assert la == pytest.approx(lb, rel=1e-5)


def load_weights_init(toy_cfg):
    seed_everything(0)
    return build_task(toy_cfg("init")).state_dict()


def test_bf16_autocast_trains(toy_cfg):
    result = train(toy_cfg("bf16", max_steps=3, precision="bf16"))
    assert result.step == 3 and result.bad_steps == 0


def test_config_errors_name_the_key(toy_cfg, tmp_path):
    cfg = toy_cfg()
    cfg["train"]["max_stepz"] = 3
    with pytest.raises(ConfigError, match="train.max_stepz.*did you mean 'max_steps'"):
        train_config(cfg)
    for key, value, match in [
        ("lr", "fast", "train.lr: expected a number"),
        ("precision", "fp8", "train.precision"),
        ("precision", "fp16", "train.precision: fp16 needs a CUDA"),
        ("batch_size", 0, "train.batch_size: must be >= 1"),
        ("best_metric", {"name": "acc", "mode": "up"}, "train.best_metric.mode"),
    ]:
        cfg = toy_cfg(**{key: value})
        if key == "precision" and value == "fp16" and torch.cuda.is_available():
            continue
        with pytest.raises(ConfigError, match=match):
            train_config(cfg)
    with pytest.raises(ConfigError, match="task.hiden"):
        build_task(toy_cfg(task={"hiden": 3}))


def test_refuses_to_overwrite_a_run_without_resume(toy_cfg):
    cfg = toy_cfg("r", max_steps=1)
    train(cfg)
    with pytest.raises(ConfigError, match="already holds checkpoints; pass --resume"):
        train(cfg)


def test_cli_train_and_finetune(tmp_path, capsys):
    from tempovl.cli import main

    out = tmp_path / "cli"
    args = ["train", "task/toy", "train.max_steps=2", "train.progress=false", "--out", str(out)]
    assert main(args) == 0
    assert "finished at step 2" in capsys.readouterr().out
    assert (out / "curves.png").stat().st_size > 0
    assert main(["finetune", "task/toy", "--out", str(tmp_path / "ft")]) == 2
    assert "finetune needs initial weights" in capsys.readouterr().err
    ft = [
        "finetune",
        "task/toy",
        "train.max_steps=1",
        "train.progress=false",
        "--init",
        str(out / "ckpt-0000002"),
    ]
    assert main(ft + ["--out", str(tmp_path / "ft")]) == 0
    assert load_config("task/toy")["task"]["name"] == "toy"


def test_eval_best_checkpoint_tensorboard_and_longer_resume(toy_cfg):
    best = {"name": "accuracy", "mode": "max"}
    cfg = toy_cfg(
        "ev", max_steps=6, eval_every=2, save_every=3, keep_last=1, best_metric=best, tensorboard=True
    )
    cfg["train"].update(schedule="linear", warmup_steps=0, log_every=2)
    result = train(cfg)
    out = result.checkpoint.parent
    evals = [json.loads(line) for line in open(out / "eval.jsonl")]
    assert [e["step"] for e in evals] == [2, 4, 6]
    top = max(evals, key=lambda e: e["accuracy"])  # first of equals wins: later ties do not replace it
    assert result.best == {"name": "accuracy", "mode": "max", "value": top["accuracy"], "step": top["step"]}
    best_state = torch.load(out / "best" / "trainer.pt", weights_only=False)
    assert best_state["step"] == top["step"]
    assert [p.name for p in out.iterdir() if p.name.startswith("ckpt-")] == ["ckpt-0000006"]
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert [json.loads(line)["step"] for line in open(out / "metrics.jsonl")] == [1, 2, 4, 6]

    # a longer run: the schedule follows the new config (linear over 10 steps), the position is restored
    cfg["train"]["max_steps"] = 10
    train(cfg, resume=True)
    rows = {r[0]: r[3] for r in losses(out)}
    assert rows[8] == pytest.approx(1e-3 * (1 - 7 / 10))
    assert sorted(rows) == [1, 2, 4, 6, 8, 10]
