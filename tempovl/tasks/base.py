"""The contract between a task and the training engine.

A Task owns a model, its heads and its losses. The engine never looks inside it: it asks for a dataset
and a collate function per sub-task, calls ``forward(batch, subtask)`` and sums every output whose key
ends in ``_loss``; the other scalar outputs are logged. Multi-task pre-training (HERO samples one task per
mini-batch) is expressed by :meth:`Task.subtasks`, a name -> sampling-ratio mapping.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset


class Task(nn.Module, abc.ABC):
    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg  # the whole merged config (model, task, data, train sections)

    def subtasks(self) -> dict[str, float]:
        """Sub-task name -> sampling ratio. One sub-task is drawn per step, the same on every rank."""
        return {"main": 1.0}

    @abc.abstractmethod
    def dataset(self, split: str, subtask: str = "main") -> Dataset:
        """The dataset of `split` ("train", "val", "test") for one sub-task."""

    @abc.abstractmethod
    def collate(self, subtask: str = "main") -> Callable[[list], dict]:
        """Turns a list of dataset items into a batch dict of tensors."""

    @abc.abstractmethod
    def forward(self, batch: dict, subtask: str = "main") -> dict[str, torch.Tensor]:
        """Named outputs; every ``*_loss`` entry is summed into the training loss."""

    @torch.no_grad()
    def evaluate(self, split: str = "val", out_dir: str | Path | None = None) -> dict[str, float]:
        """Metrics on `split` (higher is better unless the name ends in ``loss``). Runs on rank 0.

        ``out_dir``: where a task that writes files beside its metrics (predictions, plots) puts them;
        None = the task's own default place (or nothing). ``tempovl evaluate`` passes its output folder."""
        return {}

    def lr_multipliers(self) -> dict[str, float]:
        """Parameter-name prefix -> learning-rate multiplier (HERO fine-tuning: ``{"head": 10.0}``)."""
        return {}

    def export_module(self) -> nn.Module:
        """The module whose weights are exported for inference (by default the whole task)."""
        return self
