"""Helpers for the engine tests: whole configs for the toy task, small and deterministic."""

from __future__ import annotations

import pytest

from tempovl.config import deep_merge, load_config


@pytest.fixture
def toy_cfg(tmp_path):
    """`toy_cfg(name, **train_overrides)` -> a whole config dict writing to tmp_path/name."""

    def make(name: str = "run", task: dict | None = None, **train) -> dict:
        cfg = load_config("task/toy")
        base = {
            "output_dir": str(tmp_path / name),
            "max_steps": 6,
            "batch_size": 8,
            "lr": 1e-3,
            "warmup_steps": 2,
            "schedule": "cosine",
            "log_every": 1,
            "progress": False,
            "curves": False,
        }
        return deep_merge(cfg, {"task": task or {}, "train": {**base, **train}})

    return make
