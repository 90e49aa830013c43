"""Every registered model x every task it serves takes one training step: finite loss, finite gradients, and
the first encoder layer and every head weight reached. A new task or model that is not listed here fails
the completeness check below, so the matrix cannot silently fall behind the registries."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tempovl.registry import MODELS, TASKS, _load_builtins, build_task

HERO_MODELS = ["hero", "hero-ftrm", "hero-htrm"]
HERO_PRESETS = {  # task name -> its tiny experiment preset
    "hero-pretrain": "hero-tiny-pretrain",
    "hero-tvqa": "hero-tiny-tvqa",
    "hero-violin": "hero-tiny-violin",
    "hero-tvc": "hero-tiny-tvc",
    "hero-vcmr": "hero-tiny-vcmr",
    "hero-didemo": "hero-tiny-didemo",
    "hero-msrvtt": "hero-tiny-msrvtt",
}
# HiTeA's tasks take a step under its one model in tests/tasks/test_hitea_downstream.py and
# tests/tasks/test_hitea_pretrain.py; `toy` is the engine's own test task
ELSEWHERE = {"hitea-caption", "hitea-pretrain", "hitea-mcqa", "hitea-oeqa", "hitea-retrieval", "toy"}


def test_the_matrix_covers_every_registered_model_and_task():
    _load_builtins()
    assert set(TASKS) == set(HERO_PRESETS) | ELSEWHERE
    assert set(MODELS) == set(HERO_MODELS) | {"hitea"}


@pytest.mark.parametrize("model", HERO_MODELS)
@pytest.mark.parametrize("task_name", list(HERO_PRESETS))
def test_every_hero_model_takes_a_step_on_every_hero_task(
    model, task_name, tiny_corpus, tiny_features, tmp_path, hero_tiny_config
):
    torch.manual_seed(0)
    cfg = hero_tiny_config(
        HERO_PRESETS[task_name], tiny_corpus, tiny_features, tmp_path, f"model.name={model}"
    )
    task = build_task(cfg)
    task.train()
    for subtask, ratio in task.subtasks().items():
        if ratio <= 0:
            continue
        data = task.dataset("train", subtask)
        batch = task.collate(subtask)([data[i] for i in range(min(3, len(data)))])
        task.zero_grad()
        out = task(batch, subtask)
        loss = sum(v for k, v in out.items() if k.endswith("_loss"))
        assert torch.isfinite(loss), (model, task_name, subtask)
        loss.backward()
        grads = {n: p.grad for n, p in task.named_parameters() if p.grad is not None}
        assert all(torch.isfinite(g).all() for g in grads.values()), (model, task_name, subtask)
        first = "model.cross.blocks.0.attn.q.weight"
        assert grads[first].abs().sum() > 0, (model, task_name, subtask, "no gradient reaches", first)
        heads = getattr(task, "heads", None)
        for name, p in [] if heads is None else heads.named_parameters():
            if p.ndim >= 2:
                assert p.grad is not None and p.grad.abs().sum() > 0, (model, task_name, subtask, name)


def test_the_packages_import_nothing_so_task_modules_cannot_form_a_cycle():
    code = (
        "import sys, tempovl.tasks, tempovl.models; "
        "print(sorted(m for m in sys.modules if m.startswith(('tempovl.tasks.', 'tempovl.models.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_data_imports_neither_models_nor_objectives():
    """The boundary of issue 14: data pipelines (packing, masking, shuffling, alignment) live in data/."""
    import ast
    from pathlib import Path

    import tempovl

    root = Path(tempovl.__file__).parent
    bad = []
    for path in sorted((root / "data").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            bad += [
                f"{path.relative_to(root)}: {n}"
                for n in names
                if n.startswith(("tempovl.models", "tempovl.objectives"))
            ]
    assert not bad, "\n".join(bad)


def test_every_task_takes_the_whole_evaluate_contract():
    """`tempovl evaluate` calls ``evaluate(split, out_dir=...)`` on any task without inspecting it."""
    import inspect

    _load_builtins()
    for name, cls in TASKS.items():
        params = list(inspect.signature(cls.evaluate).parameters)
        assert params[:3] == ["self", "split", "out_dir"], (name, params)


REQUESTS = {  # what a user asks each predicting HERO task
    "hero-tvqa": {"question": "Where is the box?", "answers": ["kitchen", "garden"]},
    "hero-violin": {"statement": "The red circle jumps."},
    "hero-tvc": {"start": 1.0, "end": 4.0},
    "hero-vcmr": {"query": "the red circle jumps"},
    "hero-didemo": {"query": "the red circle jumps"},
    "hero-msrvtt": {"query": "the red circle jumps"},
}


@pytest.mark.parametrize("task_name", list(HERO_PRESETS))
def test_every_hero_task_evaluates_exports_and_predicts_without_its_data(
    task_name, tiny_corpus, tiny_features, tmp_path, hero_tiny_config
):
    """Evaluate, export, then load the export with its training corpus and features gone, and predict."""
    import numpy as np
    import yaml

    from tempovl.engine.checkpoint import CONFIG_FILE, export
    from tempovl.inference import load_task
    from tempovl.tasks.base import PredictRequest

    torch.manual_seed(0)
    cfg = hero_tiny_config(HERO_PRESETS[task_name], tiny_corpus, tiny_features, tmp_path)
    task = build_task(cfg)
    metrics = task.eval().evaluate("val", out_dir=tmp_path / "eval")
    assert metrics and all(np.isfinite(v) for v in metrics.values()), metrics
    out = export(task, cfg, tmp_path / "export")
    moved = yaml.safe_load((out / CONFIG_FILE).read_text())
    moved["data"].update(corpus=str(tmp_path / "gone"), features=str(tmp_path / "gone-features"))
    (out / CONFIG_FILE).write_text(yaml.safe_dump(moved))
    loaded, _, _ = load_task(out, device="cpu")
    mine, theirs = task.export_module().state_dict(), loaded.export_module().state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    if task_name not in REQUESTS:
        assert loaded.predict_input is None
        return
    assert set(loaded.predict_needs) <= set(REQUESTS[task_name])
    feats = np.random.default_rng(0).standard_normal((12, loaded.model.cfg.frame_dim)).astype(np.float32)
    result = loaded.predict(PredictRequest(feats, interval=cfg["data"]["interval"], **REQUESTS[task_name]))
    assert result and all(v is not None for v in result.values())


def test_every_task_declares_what_it_predicts_from():
    """``predict_input`` / ``predict_needs`` name real request fields, and a task that predicts overrides
    ``predict``: `tempovl predict` reads the declaration, never a signature."""
    from tempovl.tasks.base import PredictRequest, Task

    _load_builtins()
    fields = set(PredictRequest.__dataclass_fields__)
    for name, cls in TASKS.items():
        assert cls.predict_input in (None, "features", "video"), name
        assert set(cls.predict_needs) <= fields, (name, cls.predict_needs)
        assert (cls.predict is not Task.predict) == (cls.predict_input is not None), name
