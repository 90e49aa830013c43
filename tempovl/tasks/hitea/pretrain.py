"""HiTeA pre-training (paper section 3 and 4.1): VTC, VTM, MLM, PrefixLM + CME, MTRE on caption pairs.

The task owns a :class:`tempovl.models.hitea.Hitea` built from the ``model:`` section and the two-view
caption-pair data of :mod:`tempovl.data.hitea_data` (``data:`` section). ``model.losses`` switches the
terms (the paper's Table 4 ablation); ``forward`` returns every enabled ``*_loss``, composed in
:mod:`tempovl.tasks.hitea.losses`, which the engine sums.

Momentum encoders: the engine has no post-optimiser-step hook, so the momentum copies move at the start
of every training-mode forward (in VTC, :mod:`tempovl.tasks.hitea.losses`), right after the previous
step's update.

``evaluate(split)`` gives, with fixed seeds and without touching the training RNG:

- the held-out value of every enabled loss term (and ``loss``, their sum). VTC is measured in-batch with
  hard targets (no memory queue, no momentum distillation), so values are comparable across training
  (the queue's content and the momentum targets change as training goes on);
- zero-shot text-to-video (and video-to-text) retrieval over the split's captions: all videos ranked by
  the VTC dot product of the caption's and the long view's embeddings; R@1/5/10 (percent), median rank,
  and the chance level of each for the number of videos.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tempovl.config import from_dict
from tempovl.data.hitea_data import CaptionPairs, CollateCaptionPairs, DataConfig
from tempovl.errors import ConfigError
from tempovl.metrics.retrieval import retrieval_metrics
from tempovl.registry import build_model, register_task
from tempovl.tasks.base import Task
from tempovl.tasks.hitea.losses import pretraining_losses


@dataclass
class HiteaPretrainConfig:
    """The ``task:`` section."""

    name: str = "hitea-pretrain"
    eval_batch_size: int = 16  # items per held-out loss batch (VTC / VTM negatives come from the batch)
    eval_seed: int = 0  # torch seed of the held-out losses' masking, prefix cuts and negative sampling
    eval_max_items: int | None = None  # evaluate on the first N items only (None = all)
    retrieval_ks: list[int] = field(default_factory=lambda: [1, 5, 10])


@register_task("hitea-pretrain")
class HiteaPretrainTask(Task):
    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.c = from_dict(HiteaPretrainConfig, cfg.get("task"), "task")
        if self.c.eval_batch_size < 1:
            raise ConfigError(f"task.eval_batch_size: must be >= 1, got {self.c.eval_batch_size}")
        self.data_cfg = from_dict(DataConfig, cfg.get("data"), "data")
        self.model = build_model(cfg.get("model") or {})
        self._tokenizer = None
        self._eval_sets: dict[str, CaptionPairs] = {}

    # ------------------------------------------------------------------ data
    @property
    def tokenizer(self):
        """The caption tokenizer, checked against the model's special-token ids and vocabulary."""
        if self._tokenizer is None:
            from tempovl.data.tokenizer import load_tokenizer

            tok = load_tokenizer(self.data_cfg.tokenizer)
            m = self.model.cfg
            want = {"pad": m.pad_id, "cls": m.cls_id, "sep": m.sep_id, "mask": m.mask_id}
            for name, model_id in want.items():
                tok_id = getattr(tok, f"{name}_token_id")
                if tok_id != model_id:
                    raise ConfigError(
                        f"model.{name}_id: {model_id}, but the tokenizer's [{name.upper()}] is {tok_id}"
                    )
            if len(tok) > m.vocab_size:
                raise ConfigError(f"model.vocab_size: {m.vocab_size} < the tokenizer's {len(tok)} tokens")
            if self.data_cfg.max_text_len > m.max_positions:
                raise ConfigError(
                    f"data.max_text_len: {self.data_cfg.max_text_len} > model.max_positions {m.max_positions}"
                )
            self._tokenizer = tok
        return self._tokenizer

    def dataset(self, split: str, subtask: str = "main") -> Dataset:
        return CaptionPairs(self.data_cfg, split, train=split == "train", tokenizer=self.tokenizer)

    def collate(self, subtask: str = "main") -> Callable[[list], dict]:
        return CollateCaptionPairs(self.model.cfg.pad_id, self.data_cfg.normalize)

    # ------------------------------------------------------------------ training
    def _needs_short(self) -> bool:
        return bool({"cme", "mtre"} & set(self.model.cfg.losses))

    def forward(self, batch: dict, subtask: str = "main") -> dict[str, torch.Tensor]:
        return pretraining_losses(
            self.model,
            batch["video_long"],
            batch["text_ids"],
            batch["text_mask"],
            video_short=batch["video_short"] if self._needs_short() else None,
            pair_ids=batch["pair_ids"],
        )

    # ------------------------------------------------------------------ evaluation
    def eval_set(self, split: str) -> CaptionPairs:
        """The evaluation dataset of `split`, kept so its decoded frames are cached across evaluations."""
        if split not in self._eval_sets:
            self._eval_sets[split] = CaptionPairs(self.data_cfg, split, train=False, tokenizer=self.tokenizer)
        return self._eval_sets[split]

    @contextlib.contextmanager
    def _plain_vtc(self) -> Iterator[None]:
        """In-batch VTC with hard targets for the duration (queue and momentum distillation set aside)."""
        vtc = self.model.vtc
        queue, alpha = vtc.queue, vtc.alpha
        vtc.queue, vtc.alpha = None, 0.0
        try:
            yield
        finally:
            vtc.queue, vtc.alpha = queue, alpha

    def _batches(self, data: CaptionPairs) -> Iterator[dict]:
        n = len(data) if self.c.eval_max_items is None else min(len(data), self.c.eval_max_items)
        collate = self.collate()
        device = next(self.model.parameters()).device
        for chunk in np.array_split(np.arange(n), max(1, math.ceil(n / self.c.eval_batch_size))):
            batch = collate([data[int(i)] for i in chunk])
            yield {k: v.to(device) for k, v in batch.items()}

    @torch.no_grad()
    def evaluate(self, split: str = "val", out_dir: str | Path | None = None) -> dict[str, float]:
        data = self.eval_set(split)
        was_training = self.training
        self.eval()
        device = next(self.model.parameters()).device
        devices = [device] if device.type == "cuda" else []
        sums: dict[str, float] = {}
        count = 0
        text_feats, video_feats, text_video = [], {}, []
        try:
            with torch.random.fork_rng(devices=devices), self._plain_vtc():
                torch.manual_seed(self.c.eval_seed)
                for batch in self._batches(data):
                    b = batch["text_ids"].shape[0]
                    out = self.forward(batch)
                    for k, v in out.items():
                        if k.endswith("_loss"):
                            sums[k] = sums.get(k, 0.0) + float(v) * b
                    count += b
                    text = self.model.encode_text(batch["text_ids"], batch["text_mask"])
                    text_feats.append(self.model.text_embed(text, batch["text_mask"]).float().cpu())
                    text_video.extend(batch["pair_ids"].tolist())
                    video = self.model.video_embed(self.model.encode_video(batch["video_long"]))
                    for pid, feat in zip(batch["pair_ids"].tolist(), video.float().cpu()):
                        video_feats.setdefault(pid, feat)  # the long view is the same for every caption
        finally:
            self.train(was_training)
        metrics = {k: s / count for k, s in sums.items()}
        metrics["loss"] = sum(metrics.values())
        metrics.update(self._retrieval(torch.cat(text_feats), video_feats, text_video))
        return metrics

    def _retrieval(
        self, text_feats: torch.Tensor, video_feats: dict, text_video: list[int]
    ) -> dict[str, float]:
        """Zero-shot retrieval by the VTC dot product; text_feats (T, E), video_feats {pair_id: (E,)}."""
        pids = sorted(video_feats)
        column = {pid: j for j, pid in enumerate(pids)}
        videos = torch.stack([video_feats[p] for p in pids])  # (V, E)
        sim = text_feats @ videos.t()  # (T, V)
        result = retrieval_metrics(sim, [column[p] for p in text_video], ks=self.c.retrieval_ks)
        n_videos = len(pids)
        out: dict[str, float] = {}
        for direction in ("t2v", "v2t"):
            r = result[direction]
            for k in self.c.retrieval_ks:
                out[f"{direction}_r{k}"] = r[f"R@{k}"]
            out[f"{direction}_medr"] = r["median_rank"]
        for k in self.c.retrieval_ks:  # a random ranking of the videos, one relevant per caption
            out[f"chance_r{k}"] = 100.0 * min(k, n_videos) / n_videos
        out["chance_medr"] = (n_videos + 1) / 2
        out["num_videos"] = float(n_videos)
        return out
