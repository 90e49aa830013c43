"""What every HERO task starts from (:class:`HeroTask`) and the base of the downstream tasks
(:class:`HeroDownstreamTask`: QA, VIOLIN, captioning and retrieval).

A HERO task reads its ``data:`` section (:class:`tempovl.data.hero_data.DataConfig`), the tokenizer and the
feature store, checks the model config against them and builds the model. The feature store is opened
when first used: an exported model whose training features are not on this machine still loads and
predicts (from ``model.frame_dim`` and the ``data.extractor`` / ``data.interval`` its config recorded).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tempovl.config import from_dict
from tempovl.data.features.store import FeatureStore
from tempovl.data.hero_data import DataConfig, HeroClipDataset, TextSpecials, video_windows
from tempovl.data.subtitles import Sentence
from tempovl.data.tokenizer import load_tokenizer
from tempovl.errors import ConfigError, InputError
from tempovl.models.hero import Hero
from tempovl.registry import build_model
from tempovl.tasks.base import Task

log = logging.getLogger(__name__)


class HeroTask(Task):
    """``data_cfg``, ``tokenizer``, ``specials``, ``store`` (opened lazily) and ``model`` (a HERO model);
    the resolved model config (frame_dim) and the features' extractor and interval are written back into
    `cfg`, so checkpoints record them."""

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.data_cfg = from_dict(DataConfig, cfg.get("data"), "data")
        self.tokenizer = load_tokenizer(self.data_cfg.tokenizer)
        self.specials = TextSpecials.from_tokenizer(self.tokenizer)
        self._store: FeatureStore | None = None
        here = (Path(self.data_cfg.features) / "manifest.json").is_file()
        store = self.store if here else None
        cfg["model"] = configure_model(
            cfg.get("model") or {}, self.data_cfg, store, self.specials, len(self.tokenizer)
        )
        if store is not None:
            if self.data_cfg.extractor not in (None, store.extractor):
                log.warning(
                    "data.extractor %r, but %s holds %r features: recording %r",
                    self.data_cfg.extractor,
                    self.data_cfg.features,
                    store.extractor,
                    store.extractor,
                )
            self.data_cfg.extractor = store.extractor
            if self.data_cfg.interval not in (None, store.interval):
                log.warning(
                    "data.interval %s, but %s has %s s frames: recording %s",
                    self.data_cfg.interval,
                    self.data_cfg.features,
                    store.interval,
                    store.interval,
                )
            self.data_cfg.interval = store.interval
            size = store.details.get("size")  # what the store was extracted at (recorded since stop 22)
            if size is not None and self.data_cfg.extract_size not in (None, size):
                log.warning(
                    "data.extract_size %s, but %s was extracted at %s px: recording %s, so that predict and "
                    "index build extract a user's video as these features were",
                    self.data_cfg.extract_size,
                    self.data_cfg.features,
                    size,
                    size,
                )
            if size is not None:
                self.data_cfg.extract_size = int(size)
        cfg["data"] = {
            **(cfg.get("data") or {}),
            "extractor": self.data_cfg.extractor,
            "interval": self.data_cfg.interval,
            "extract_size": self.data_cfg.extract_size,
        }
        self.model = build_model(cfg["model"])
        if not isinstance(self.model, Hero):
            raise ConfigError(
                f"model.name: task {(cfg.get('task') or {}).get('name')!r} needs a HERO model "
                f"(hero, hero-ftrm, hero-htrm), got {cfg['model'].get('name')!r}"
            )
        self._clips: dict[str, HeroClipDataset] = {}

    @property
    def store(self) -> FeatureStore:
        if self._store is None:
            self._store = FeatureStore(self.data_cfg.features)
        return self._store

    def video_durations(self) -> dict[str, float | None]:
        """Each stored video's duration as `features extract` probed it (None when not recorded): the
        annotation readers check spans against it as `data validate` does, so training never reads a
        moment past a video's end."""
        return {vid: self.store.meta(vid).get("duration") for vid in self.store.keys()}

    @property
    def interval(self) -> float:
        """Seconds per feature-frame of the features the model reads."""
        if self.data_cfg.interval is None:
            raise ConfigError("data.interval: unknown (no feature store to read it from); set it")
        return float(self.data_cfg.interval)

    def clips(self, split: str) -> HeroClipDataset:
        """The clips (features + aligned, tokenised subtitles) of `split`, built once."""
        if split not in self._clips:
            self._clips[split] = HeroClipDataset(self.data_cfg, split, self.tokenizer, self.store)
        return self._clips[split]

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def device(self) -> torch.device:
        return next(self.parameters()).device

    def to_device(self, batch: dict) -> dict:
        """The batch's tensors on the model's device (other values as they are)."""
        device = self.device()
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class HeroDownstreamTask(HeroTask):
    """The base of HERO's downstream tasks: a ``task:`` section, new heads, and a user's video as input.

    Subclasses set ``config_cls`` (a dataclass with at least ``name``, ``annotations`` and
    ``head_lr_mult``) and build their heads under ``self.heads`` (the x``head_lr_mult`` learning-rate
    group)."""

    config_cls: type = object
    predict_input = "features"

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.c = from_dict(self.config_cls, cfg.get("task"), "task")

    def clip_index(self, split: str) -> dict[str, int]:
        data = self.clips(split)
        return {vid: i for i, vid in enumerate(data.vids)}

    def annotation_path(self, split: str) -> Path:
        """The split's annotation file, relative to ``data.corpus`` unless absolute: ``task.annotations``
        is one name with ``{split}`` filled in, or {split: name} (the public releases' own names, e.g.
        tvqa_test_public.jsonl)."""
        names = self.c.annotations
        if isinstance(names, dict):
            if split not in names:
                raise ConfigError(f"task.annotations: no file for split {split!r} (have {sorted(names)})")
            path = Path(names[split])
        else:
            path = Path(names.format(split=split))
        return path if path.is_absolute() else Path(self.data_cfg.corpus) / path

    def input_video(
        self, video_feats: np.ndarray | torch.Tensor, interval: float | None
    ) -> tuple[np.ndarray, float]:
        """One user video's features (T, F), checked against the model, and its seconds per frame."""
        feats = np.asarray(video_feats, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] != self.model.cfg.frame_dim:
            raise InputError(
                f"video features: expected shape (T, {self.model.cfg.frame_dim}), got {tuple(feats.shape)}"
            )
        if len(feats) == 0:
            raise InputError("video features: the video has no frames")
        return feats, self.interval if interval is None else float(interval)

    def input_windows(
        self, video_feats: np.ndarray | torch.Tensor, sentences: Sequence[Sentence], interval: float | None
    ) -> list[tuple[dict, tuple[int, int]]]:
        """One user video, whole, as the overlapping windows `evaluate` reads (`video_windows`)."""
        feats, step = self.input_video(video_feats, interval)
        return video_windows("input", feats, list(sentences), self.data_cfg, step, self.tokenize)

    def check_text_budget(self, text_tokens: int) -> None:
        """Subtitle group + appended text must fit the text positions of the model."""
        need = 1 + self.data_cfg.max_sentence_tokens + text_tokens
        if need > self.model.cfg.max_text_positions:
            raise ConfigError(
                f"data.max_sentence_tokens ({self.data_cfg.max_sentence_tokens}) + 1 + appended text "
                f"({text_tokens} tokens) = {need} exceeds model.max_text_positions "
                f"({self.model.cfg.max_text_positions}); lower one of them"
            )

    def lr_multipliers(self) -> dict[str, float]:
        return {"heads": self.c.head_lr_mult}

    def init_heads(self) -> None:
        """The model's own initialisation (N(0, 0.02), zero biases, unit LayerNorms) for the new heads."""
        self.heads.apply(self.model._init_weights)


def configure_model(
    model_cfg: dict, data: DataConfig, store: FeatureStore | None, specials: TextSpecials, vocab: int
) -> dict:
    """Check the model config against the features and tokenizer; fill ``frame_dim: auto``. `store` None:
    the features are not here (an exported model used elsewhere), so the recorded frame_dim is kept."""
    cfg = dict(model_cfg)
    dim = cfg.get("frame_dim", "auto")
    if store is None:
        if dim == "auto":
            raise ConfigError(
                f"model.frame_dim: 'auto' needs the feature store at data.features ({data.features}), "
                "which has no manifest.json"
            )
    elif dim == "auto":
        cfg["frame_dim"] = store.dim
    elif dim != store.dim:
        raise ConfigError(
            f"model.frame_dim: {dim}, but the features in {data.features} ({store.extractor}) have "
            f"dim {store.dim}; set model.frame_dim={store.dim} or model.frame_dim=auto"
        )
    limits = {"max_clip_len": 100, "max_temporal_positions": 514}
    for key, default in limits.items():
        if data.max_frames > cfg.get(key, default):
            raise ConfigError(
                f"data.max_frames: {data.max_frames} exceeds model.{key} = {cfg.get(key, default)}"
            )
    if data.max_sentence_tokens + 1 > cfg.get("max_text_positions", 514):
        raise ConfigError(
            f"data.max_sentence_tokens: {data.max_sentence_tokens} + 1 special token exceeds "
            f"model.max_text_positions = {cfg.get('max_text_positions', 514)}"
        )
    if cfg.get("pad_id", 1) != specials.pad:
        raise ConfigError(
            f"model.pad_id: {cfg.get('pad_id', 1)}, but the tokenizer pads with id {specials.pad}"
        )
    if cfg.get("text_vocab_size", 50265) < vocab:
        raise ConfigError(
            f"model.text_vocab_size: {cfg.get('text_vocab_size', 50265)} is smaller than the "
            f"tokenizer's vocabulary ({vocab})"
        )
    return cfg
