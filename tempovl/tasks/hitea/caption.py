"""HiTeA video captioning (paper section 4.2): the video encoder's tokens go straight into the text
decoder, which continues the prefix prompt "A video of"; beam search, 40 tokens at most.

Data (``data.format``): ``msrvtt`` (``{"video_id", "caption"}``, several captions per clip) or
``captions`` (caption pairs). Training: one item per (video, caption), teacher-forced cross-entropy on
the caption tokens after the prompt (the prompt's own tokens are not targets). Evaluation: one item per
video, every caption of it a reference; BLEU-4, METEOR, ROUGE-L and CIDEr-D by
:func:`tempovl.metrics.caption_scores` (the same code as HERO's captioning), selectable with
``task.metrics``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from tempovl.data.annotations import read_caption_pairs, read_msrvtt
from tempovl.data.packing import pad_ids
from tempovl.errors import ConfigError, InputError
from tempovl.io import write_jsonl
from tempovl.metrics.caption import CAPTION_METRICS, caption_scores
from tempovl.models.text import lm_cross_entropy, target_positions
from tempovl.registry import register_task
from tempovl.tasks.base import PredictRequest, TextPrediction
from tempovl.tasks.hitea.base import HiteaDownstreamTask, annotation_files


@dataclass
class HiteaCaptionConfig:
    """The ``task:`` section."""

    name: str = "hitea-caption"
    prompt: str = "A video of"
    max_len: int = 40  # generated tokens at most (after the prompt)
    num_beams: int = 3
    length_penalty: float = 1.0
    eval_batch_size: int = 8
    metrics: list[str] = field(default_factory=lambda: list(CAPTION_METRICS))


def load_captions(task: HiteaDownstreamTask, split: str) -> tuple[list[str], list[list[str]]]:
    """(video paths, captions per video) of `split` in ``data.format``."""
    cfg = task.data_cfg
    videos: list[str] = []
    refs: dict[str, list[str]] = {}
    for path in annotation_files(cfg, split):
        if cfg.format == "msrvtt":
            rows = [
                (task.video_path(str(r["video_id"]), f"{path} (sen_id={r['sen_id']})"), [r["caption"]])
                for r in read_msrvtt(path)
            ]
        elif cfg.format == "captions":
            rows = [
                (
                    task.video_path(r["video"], f"{path} [{i}]"),
                    r["caption"] if isinstance(r["caption"], list) else [r["caption"]],
                )
                for i, r in enumerate(read_caption_pairs(path, root=cfg.corpus))
            ]
        else:
            raise ConfigError(f"data.format: captioning reads 'msrvtt' or 'captions', got {cfg.format!r}")
        for video, caps in rows:
            if video not in refs:
                videos.append(video)
                refs[video] = []
            refs[video] += caps
    if not videos:
        raise InputError(f"{cfg.corpus}: no captions in {cfg.annotations.get(split)}")
    return videos, [refs[v] for v in videos]


class CaptionItems(Dataset):
    """Training: one item per (video, caption); evaluation: one per video. ``video``, ``captions``."""

    def __init__(self, task: HiteaDownstreamTask, videos: list[str], refs: list[list[str]], train: bool):
        self.task, self.videos, self.refs, self.train = task, videos, refs, train
        self.items = (
            [(v, [c]) for v, caps in enumerate(refs) for c in caps]
            if train
            else [(v, refs[v]) for v in range(len(videos))]
        )
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        v, caps = self.items[i]
        if self.train:
            video = self.task.sampler.sample(self.videos[v], i, True)
        else:
            if i not in self._cache:
                self._cache[i] = self.task.sampler.sample(self.videos[v], i, False)
            video = self._cache[i]
        return {"video": video, "captions": caps, "video_index": v}


@register_task("hitea-caption")
class HiteaCaptionTask(HiteaDownstreamTask):
    losses = ("prefixlm",)

    def __init__(self, cfg: dict):
        super().__init__(cfg, HiteaCaptionConfig)
        c = self.c
        if c.max_len < 1 or c.num_beams < 1 or c.eval_batch_size < 1:
            raise ConfigError("task.max_len, task.num_beams and task.eval_batch_size must be >= 1")
        bad = [m for m in c.metrics if m not in CAPTION_METRICS]
        if bad:
            raise ConfigError(f"task.metrics: unknown {bad}; choose from {list(CAPTION_METRICS)}")
        self._splits: dict[str, tuple[list[str], list[list[str]]]] = {}
        self._eval_sets: dict[str, CaptionItems] = {}

    @property
    def prompt_ids(self) -> list[int]:
        """The prompt's token ids, without [CLS] / [SEP]."""
        return self.tokenizer(self.c.prompt, add_special_tokens=False)["input_ids"]

    def split_data(self, split: str) -> tuple[list[str], list[list[str]]]:
        if split not in self._splits:
            self._splits[split] = load_captions(self, split)
        return self._splits[split]

    def dataset(self, split: str, subtask: str = "main") -> Dataset:
        if split == "train":
            return CaptionItems(self, *self.split_data(split), train=True)
        if split not in self._eval_sets:
            self._eval_sets[split] = CaptionItems(self, *self.split_data(split), train=False)
        return self._eval_sets[split]

    def collate(self, subtask: str = "main") -> Callable[[list], dict]:
        return self.make_batch

    def make_batch(self, items: list[dict]) -> dict:
        """``video`` (B, T, 3, H, W); ``text_ids``/``text_mask`` (B, L) = [CLS] prompt caption [SEP];
        ``labels`` (B, L-1) next-token targets, -100 on the prompt and padding."""
        prompt = self.prompt_ids
        max_caption = self.c.max_len + 1  # caption tokens + [SEP]
        rows = []
        for it in items:
            cap = self.tokenizer(it["captions"][0], add_special_tokens=False)["input_ids"][: self.c.max_len]
            rows.append(
                [self.model.cfg.cls_id, *prompt, *cap, self.model.cfg.sep_id][: 1 + len(prompt) + max_caption]
            )
        ids, mask = pad_ids(rows, self.model.cfg.pad_id)
        labels = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
        labels[:, : len(prompt)] = -100  # the prompt is given, not predicted
        return {
            "video": self.float_video([it["video"] for it in items]).cpu(),
            "text_ids": ids,
            "text_mask": mask,
            "labels": labels,
            "video_index": torch.as_tensor([it["video_index"] for it in items]),
        }

    def forward(self, batch: dict, subtask: str = "main") -> dict[str, torch.Tensor]:
        video = self.model.encode_video(batch["video"])  # (B, 1+M, D): the decoder attends to it alone
        v_mask = torch.ones(video.shape[:2], dtype=torch.bool, device=video.device)
        positions, labels = target_positions(batch["labels"])
        logits = self.model.decoder(batch["text_ids"], batch["text_mask"], video, v_mask, positions=positions)
        return {"caption_loss": lm_cross_entropy(logits, labels)}  # logits (N, V) of the targeted positions

    @torch.no_grad()
    def caption(self, video: torch.Tensor) -> list[str]:
        """Captions of a batch of videos (B, T, 3, H, W), without the prompt."""
        prompt = self.prompt_ids
        ids, _ = self.model.generate(
            video,
            prompt_ids=prompt,
            max_len=self.c.max_len,
            num_beams=self.c.num_beams,
            length_penalty=self.c.length_penalty,
        )
        out = []
        for row in ids.tolist():
            row = row[len(prompt) :] if row[: len(prompt)] == prompt else row
            out.append(self.tokenizer.decode(row, skip_special_tokens=True).strip())
        return out

    @torch.no_grad()
    def evaluate(self, split: str = "val", out_dir: str | Path | None = None) -> dict[str, float]:
        data = self.dataset(split)
        was_training = self.training
        self.eval()
        res: dict[str, str] = {}
        gts: dict[str, list[str]] = {}
        try:
            for s in range(0, len(data), self.c.eval_batch_size):
                items = [data[i] for i in range(s, min(len(data), s + self.c.eval_batch_size))]
                batch = self.make_batch(items)
                for it, cap in zip(items, self.caption(batch["video"].to(self.device))):
                    key = Path(data.videos[it["video_index"]]).stem
                    res[key], gts[key] = cap, list(it["captions"])
        finally:
            self.train(was_training)
        scores = caption_scores(gts, res, self.c.metrics)
        if out_dir is not None:
            write_jsonl(
                Path(out_dir) / "captions.jsonl",
                [{"video": k, "caption": res[k], "references": gts[k]} for k in res],
            )
        scores["mean_length"] = float(np.mean([len(c.split()) for c in res.values()]))
        scores["num_videos"] = float(len(res))
        return scores

    @torch.no_grad()
    def predict(self, request: PredictRequest) -> TextPrediction:
        """Caption a video file (or (T, H, W, 3) uint8 frames)."""
        self.eval()
        return {
            "caption": self.caption(self.float_video([self.frames_of(request.video)]))[0],
            "prompt": self.c.prompt,
        }
