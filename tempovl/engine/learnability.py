"""The learnability check: can a task, at its preset's settings, fit a small training subset?

A model that cannot overfit 64 examples has a bug, whatever the scale. For every sub-task of a task, the
check takes the first `n` items of the train split, trains on them alone (the preset's model, optimiser,
learning rate and batch size; the learning-rate schedule held at its peak), and measures before and
after, in eval mode on the same items: the mean of the accuracy-like outputs (`*acc*`, `accuracy`) the
task's forward returns, and the sum of its `*_loss` outputs. A sub-task passes when its accuracy reaches
`min_acc`, or, for one that reports no accuracy, when its loss falls to `max_loss_ratio` of the start.

    tempovl learnability hero-tiny-violin data.corpus=... data.features=...
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Subset

from tempovl.config import from_dict
from tempovl.engine.config import TrainConfig
from tempovl.engine.optim import build_optimizer
from tempovl.engine.trainer import seed_everything


@dataclass
class Fit:
    task: str
    subtask: str
    examples: int
    steps: int
    loss_before: float
    loss_after: float
    acc_before: float | None
    acc_after: float | None
    seconds: float
    passed: bool

    def row(self) -> str:
        acc = (
            "" if self.acc_after is None else f"{100 * self.acc_before:.0f} % -> {100 * self.acc_after:.0f} %"
        )
        return (
            f"| {self.task} | {self.subtask} | {self.examples} | {self.steps} | "
            f"{self.loss_before:.3f} -> {self.loss_after:.3f} | {acc} | {self.seconds:.0f} | "
            f"{'yes' if self.passed else '**no**'} |"
        )


HEADER = (
    "| task | sub-task | examples | steps | loss | train accuracy | s | fits |\n"
    "| --- | --- | ---: | ---: | --- | --- | ---: | --- |"
)


def _measure(task: torch.nn.Module, batches: list[dict], subtask: str) -> tuple[float, float | None]:
    task.eval()
    losses, accs = [], []
    with torch.no_grad():
        for batch in batches:
            out = task(batch, subtask)
            losses.append(float(sum(v for k, v in out.items() if k.endswith("_loss"))))
            acc = [float(v) for k, v in out.items() if ("acc" in k) and torch.is_tensor(v) and v.numel() == 1]
            if acc:
                accs.append(sum(acc) / len(acc))
    task.train()
    return sum(losses) / len(losses), (sum(accs) / len(accs) if accs else None)


def check_task(
    cfg: dict,
    n: int = 64,
    max_steps: int = 300,
    min_acc: float = 0.9,
    max_loss_ratio: float = 0.2,
    subtasks: list[str] | None = None,
) -> list[Fit]:
    """Fit each sub-task of the task `cfg` describes on its first `n` train items; see the module doc."""
    from tempovl.registry import build_task

    tc = from_dict(TrainConfig, cfg.get("train"), "train")
    seed_everything(tc.seed)
    task = build_task(cfg)
    task.train()
    fits = []
    for sub in subtasks or [s for s, r in task.subtasks().items() if r > 0]:
        start = time.perf_counter()
        data = task.dataset("train", sub)
        subset = Subset(data, range(min(n, len(data))))
        collate = task.collate(sub)
        gen = torch.Generator().manual_seed(tc.seed)
        loader = DataLoader(subset, batch_size=tc.batch_size, shuffle=True, collate_fn=collate, generator=gen)
        fixed = list(DataLoader(subset, batch_size=tc.batch_size, collate_fn=collate))  # measured batches
        optimizer = build_optimizer(task, tc, task.lr_multipliers())
        loss0, acc0 = _measure(task, fixed, sub)
        steps = 0
        while steps < max_steps:
            for batch in loader:
                out = task(batch, sub)
                loss = sum(v for k, v in out.items() if k.endswith("_loss"))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if tc.grad_clip:
                    torch.nn.utils.clip_grad_norm_(task.parameters(), tc.grad_clip)
                optimizer.step()
                steps += 1
                if steps >= max_steps:
                    break
        loss1, acc1 = _measure(task, fixed, sub)
        passed = acc1 >= min_acc if acc1 is not None else loss1 <= max_loss_ratio * loss0
        fits.append(Fit(cfg["task"]["name"], sub, len(subset), steps, loss0, loss1, acc0, acc1,
                        time.perf_counter() - start, passed))  # fmt: skip
    return fits
