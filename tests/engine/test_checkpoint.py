import pytest
import torch
from torch import nn

import tempovl
from tempovl.engine import checkpoint as ckpt
from tempovl.engine.config import init_weights_file
from tempovl.engine.trainer import train
from tempovl.errors import ConfigError, InputError
from tempovl.registry import build_task


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.out = nn.Linear(3, 5, bias=False)
        self.out.weight = self.embed.weight


def test_tied_weights_round_trip(tmp_path):
    a, b = Tied(), Tied()
    ckpt.save_weights(a.state_dict(), tmp_path / "w.safetensors")
    missing, unexpected = ckpt.load_into(b, tmp_path / "w.safetensors", mode="strict")
    assert missing == [] and unexpected == []
    assert torch.equal(a.embed.weight, b.embed.weight)
    assert b.out.weight is b.embed.weight  # still tied after loading


def test_strict_load_names_the_mismatch(tmp_path):
    ckpt.save_weights(Tied().state_dict(), tmp_path / "w.safetensors")
    with pytest.raises(ConfigError, match="missing .*weight"):
        ckpt.load_into(nn.Sequential(nn.Linear(3, 3)), tmp_path / "w.safetensors", mode="strict")
    missing, unexpected = ckpt.load_into(nn.Linear(3, 5), tmp_path / "w.safetensors", mode="partial")
    assert set(missing) == {"weight", "bias"} and "embed.weight" in unexpected
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(InputError, match="bad.safetensors"):
        ckpt.load_into(Tied(), tmp_path / "bad.safetensors")


def test_fit_load_refuses_another_family_or_feature_size(tmp_path):
    """Issue 13: --init with a checkpoint that does not fit used to load almost nothing and exit 0."""
    ckpt.save_weights(Tied().state_dict(), tmp_path / "w.safetensors")
    with pytest.raises(ConfigError, match=r"0% of the model's weights found.*init_partial"):
        ckpt.load_into(nn.Sequential(nn.Linear(3, 3)), tmp_path / "w.safetensors", mode="fit")
    wider = nn.Module()
    wider.embed, wider.out = nn.Embedding(5, 4), nn.Linear(4, 5, bias=False)  # another feature size
    with pytest.raises(
        ConfigError, match=r"2 of another shape \(embed.weight \(5, 3\) vs \(5, 4\).*0 of 2 tensors"
    ):
        ckpt.load_into(wider, tmp_path / "w.safetensors", mode="fit")
    missing, unexpected = ckpt.load_into(wider, tmp_path / "w.safetensors", mode="partial")
    assert "embed.weight" in missing and "embed.weight" in unexpected
    grown = Tied()
    grown.head = nn.Linear(3, 2)  # a new head: a fit (the backbone is there)
    missing, _ = ckpt.load_into(grown, tmp_path / "w.safetensors", mode="fit")
    assert missing == ["head.bias", "head.weight"]


def test_killed_write_leaves_nothing_resumable(tmp_path):
    task = Tied()
    good = ckpt.save_checkpoint(tmp_path, 2, task.state_dict(), {"a": 1}, {"step": 2})

    def die_after_weights(name):
        if name == ckpt.MODEL_FILE:
            raise OSError("disk full")

    with pytest.raises(OSError):
        ckpt.save_checkpoint(
            tmp_path, 4, task.state_dict(), {"a": 1}, {"step": 4}, write_hook=die_after_weights
        )
    assert not (tmp_path / "ckpt-0000004").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]  # cleaned up
    # a kill leaves a hidden temp dir and maybe a hand-made partial dir: both ignored
    (tmp_path / ".tmp-ckpt-0000006-x").mkdir()
    (tmp_path / ".tmp-ckpt-0000006-x" / ckpt.MODEL_FILE).write_bytes(b"x")
    partial = tmp_path / "ckpt-0000008"
    partial.mkdir()
    (partial / ckpt.MODEL_FILE).write_bytes(b"x")
    (tmp_path / "latest").write_text("ckpt-0000008\n")
    assert ckpt.find_resumable(tmp_path) == good


def test_keep_last_prunes_oldest(tmp_path):
    sd = Tied().state_dict()
    for step in (1, 2, 3, 4):
        ckpt.save_checkpoint(tmp_path, step, sd, {}, {"step": step}, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["ckpt-0000003", "ckpt-0000004"]
    assert (tmp_path / "latest").read_text().strip() == "ckpt-0000004"


def test_export_and_load_round_trip(toy_cfg, tmp_path):
    cfg = toy_cfg("run", max_steps=2)
    result = train(cfg)
    loaded = tempovl.load(result.checkpoint)
    assert not loaded.training
    trained = ckpt.load_weights(result.checkpoint / ckpt.MODEL_FILE)[0]
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, trained[k]), k
    ckpt.export(loaded, cfg, tmp_path / "export")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["config.yaml", "model.safetensors"]
    again = tempovl.load(tmp_path / "export")
    assert torch.equal(again.head.weight, loaded.head.weight)
    with pytest.raises(InputError, match="not a tempovl checkpoint"):
        tempovl.load(tmp_path)


def test_init_from_checkpoint_non_strict_reports(toy_cfg, caplog):
    first = train(toy_cfg("pre", max_steps=2))
    bigger = toy_cfg("ft", max_steps=1, init=str(first.checkpoint), task={"num_train": 64})
    task = build_task(bigger)
    task.extra = nn.Linear(2, 2)  # a new head: reported missing, training still starts
    with caplog.at_level("INFO", logger="tempovl.train"):
        train(bigger, task=task)
    assert "2 keys not loaded" in caplog.text and "extra.weight" in caplog.text
    with pytest.raises(ConfigError, match="train.init: no such checkpoint"):
        train(toy_cfg("ft2", init=str(first.checkpoint / "nope")))


def test_run_directory_resolves_to_its_latest_checkpoint(toy_cfg):
    """`--init RUN`, `tempovl evaluate RUN` and `tempovl.load(RUN)` all take the run directory itself."""
    first = train(toy_cfg("pre", max_steps=2))
    run_dir = first.checkpoint.parent
    assert ckpt.resolve_checkpoint(run_dir) == first.checkpoint
    assert ckpt.resolve_checkpoint(run_dir / "latest") == first.checkpoint
    assert init_weights_file(run_dir) == first.checkpoint / ckpt.MODEL_FILE
    loaded = tempovl.load(run_dir)
    assert torch.equal(
        loaded.head.weight, ckpt.load_weights(first.checkpoint / ckpt.MODEL_FILE)[0]["head.weight"]
    )
    train(toy_cfg("ft", max_steps=1, init=str(run_dir)))
