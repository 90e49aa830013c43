"""The contract between a task and the training engine.

A Task owns a model, its heads and its losses. The engine never looks inside it: it asks for a dataset
and a collate function per sub-task, calls ``forward(batch, subtask)`` and sums every output whose key
ends in ``_loss``; the other scalar outputs are logged. Multi-task pre-training (HERO samples one task per
mini-batch) is expressed by :meth:`Task.subtasks`, a name -> sampling-ratio mapping.

A task that answers about one of a user's videos (``tempovl predict``, :func:`tempovl.predict`) sets
``predict_input`` and ``predict_needs`` and implements :meth:`Task.predict`: a :class:`PredictRequest` in,
one of the typed predictions below out.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, NotRequired, TypedDict

import torch
from torch import nn
from torch.utils.data import Dataset

from tempovl.errors import ConfigError


@dataclass(frozen=True)
class PredictRequest:
    """What a user asks about one video.

    ``video`` is what the task's ``predict_input`` names: ``"features"`` -> a (T, F) float array, one row
    per ``interval`` seconds (None = the interval of the features the task was trained on), extracted as
    the checkpoint's features were; ``"video"`` -> a video file path or (T, H, W, 3) uint8 frames.
    ``sentences``: the video's subtitles (``tempovl.data.subtitles.Sentence``), maybe none. The remaining
    fields are the request; a task lists the ones it cannot do without in ``predict_needs`` and ignores
    the others."""

    video: Any
    sentences: Sequence = ()
    query: str | None = None  # moment retrieval: rank the video's moments for this text
    top_k: int = 10  # moment retrieval: moments to return
    question: str | None = None  # QA
    answers: Sequence[str] | None = None  # multiple-choice QA: the candidates
    statement: str | None = None  # VIOLIN: the statement to check
    start: float | None = None  # captioning a moment: its start and end, in seconds
    end: float | None = None
    beam_size: int | None = None  # captioning: None = the task's configured beam
    interval: float | None = None


class Moment(TypedDict):
    start: float  # seconds
    end: float
    score: float


class MomentsPrediction(TypedDict):
    video_score: float  # how well the whole video matches the query
    moments: list[Moment]  # best first


class ChoicePrediction(TypedDict):
    answer_idx: int
    probs: list[float]  # one per candidate answer
    question: NotRequired[str]
    answer: NotRequired[str]


class EntailmentPrediction(TypedDict):
    label: Literal[0, 1]  # 1 = entailed
    prob: float  # P(entailed)


class TextPrediction(TypedDict):
    """A generated caption (``caption``, with the moment's ``frames`` or the ``prompt``) or an open-ended
    answer (``question``, ``answer``)."""

    caption: NotRequired[str]
    frames: NotRequired[list[int]]
    prompt: NotRequired[str]
    question: NotRequired[str]
    answer: NotRequired[str]


Prediction = MomentsPrediction | ChoicePrediction | EntailmentPrediction | TextPrediction


class Task(nn.Module, abc.ABC):
    predict_input: ClassVar[Literal["features", "video"] | None] = None  # None: the task does not predict
    predict_needs: ClassVar[tuple[str, ...]] = ()  # PredictRequest fields that must be given

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

    def predict(self, request: PredictRequest) -> Prediction:
        """Answer `request` about one video (eval mode, no gradients); see :class:`PredictRequest`."""
        raise ConfigError(f"task {type(self).__name__} cannot answer about a single video")
