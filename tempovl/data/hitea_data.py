"""HiTeA's pre-training data: caption pairs, each with two temporal views of its video (paper section 4.1).

For every (video, caption) pair:

- the **long view** is the whole video: ``num_frames`` frames, one per equal segment of [0, duration]
  (a uniformly random time in each segment when training, the segment middle in evaluation);
- the **short view** is a random segment of ``short_frac`` (1/8) of the duration, sampled the same way
  inside that segment. Frames keep their temporal order in both views.

Sampling is by time: the frame taken for time t is the one on screen at t. A span that holds fewer
decoded frames than ``num_frames`` (a short video, or the 1/8 segment of a low-frame-rate one) therefore
repeats a frame for consecutive sample times - the **repeat rule**; order is still kept. Training draws
its randomness from torch's global RNG (seeded, checkpointed and restored by the engine), evaluation from
``(eval_seed, item index)``, so both are reproducible.

Decoding cost: with ``cache: memory`` each video is decoded once, at ``frame_size``, onto a regular
time grid (its frame rate, at most ``cache_max_fps``), and kept as uint8; every later sample is an index
lookup. ``cache: disk`` also keeps that grid in ``cache_dir`` as one ``.npy`` per video (written
atomically, keyed by the file's path, size and mtime and the grid settings), so later runs skip decoding. Evaluation items are fixed, so their frames are cached per item (uint8) whatever ``cache`` says.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from tempovl.data.annotations import read_caption_pairs
from tempovl.data.packing import pad_ids
from tempovl.data.video import _frames_at, probe, sparse_times
from tempovl.errors import ConfigError, InputError
from tempovl.io import atomic_path

NORMALIZATION = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}


def _default_annotations() -> dict[str, list[str]]:
    return {
        "train": ["annotations/captions_pretrain.jsonl", "annotations/captions_train.jsonl"],
        "val": ["annotations/captions_val.jsonl"],
        "test": ["annotations/captions_test.jsonl"],
    }


@dataclass
class DataConfig:
    """The ``data:`` section of HiTeA pre-training."""

    corpus: str = "runs/demo/corpus"  # root that the caption files' "video" paths are relative to
    annotations: dict[str, list[str]] = field(default_factory=_default_annotations)  # split -> files
    num_frames: int = 8  # frames per view
    frame_size: int = 224  # square side after resize + centre crop
    short_frac: float = 0.125  # the short view's share of the duration
    max_text_len: int = 40  # tokens, [CLS] and [SEP] included
    tokenizer: str | None = None  # local tokenizer directory (None = the MiniLM package's)
    normalize: Literal["imagenet", "clip"] = "imagenet"
    cache: Literal["none", "memory", "disk"] = "none"  # decoded-frame cache (see module docstring)
    cache_max_fps: float = 8.0
    cache_dir: str | None = None  # for cache: disk (None = {corpus}/.cache/hitea_frames)
    eval_seed: int = 0  # seeds the short-view segment of every evaluation item

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise ConfigError(f"data.num_frames: must be >= 1, got {self.num_frames}")
        if self.frame_size < 8:
            raise ConfigError(f"data.frame_size: must be >= 8, got {self.frame_size}")
        if not 0.0 < self.short_frac <= 1.0:
            raise ConfigError(f"data.short_frac: must be in (0, 1], got {self.short_frac}")
        if self.max_text_len < 3:
            raise ConfigError(f"data.max_text_len: must be >= 3, got {self.max_text_len}")
        if self.cache_max_fps <= 0:
            raise ConfigError(f"data.cache_max_fps: must be > 0, got {self.cache_max_fps}")


def view_times(
    duration: float,
    num_frames: int,
    short_frac: float,
    train: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Sample times of both views: (long (T,), short (T,), short segment (start, end)), seconds.

    The short segment is ``short_frac * duration`` long and starts uniformly in [0, duration - length];
    within each span the times are HiTeA's sparse sampling (segment-jittered only when `train`).
    """
    if duration <= 0:
        raise InputError(f"cannot sample a video of duration {duration}")
    long_times = sparse_times(0.0, duration, num_frames, jitter=train, rng=rng)
    length = duration * short_frac
    start = float(rng.uniform(0.0, duration - length)) if length < duration else 0.0
    short_times = sparse_times(start, start + length, num_frames, jitter=train, rng=rng)
    return long_times, short_times, (start, start + length)


def resize_crop_batch(frames: np.ndarray, size: int) -> np.ndarray:
    """`tempovl.data.video.resize_crop` on a stack (N, H, W, 3) uint8 in one interpolation call (the
    per-frame call is dominated by overhead at demo sizes); same arithmetic, same result."""
    h, w = frames.shape[1:3]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    if (new_h, new_w) != (h, w):
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        frames = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N, H', W', 3)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(frames[:, top : top + size, left : left + size])


class FrameReader:
    """Frames of videos at given times: decoded per call, or from an in-memory time grid per video."""

    def __init__(self, size: int, cache: bool = False, max_fps: float = 8.0, cache_dir: str | None = None):
        self.size, self.cache, self.max_fps = size, cache or cache_dir is not None, max_fps
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._durations: dict[str, float] = {}
        self._grids: dict[str, tuple[float, np.ndarray]] = {}  # path -> (grid fps, frames (N, H, W, 3))

    def duration(self, path: str) -> float:
        if path not in self._durations:
            self._durations[path] = probe(path).duration
        return self._durations[path]

    def frames(self, path: str, times: np.ndarray) -> np.ndarray:
        """The frames on screen at `times` (seconds, any order): (len(times), size, size, 3) uint8."""
        if not self.cache:
            return _frames_at(path, times, self.size)
        fps, grid = self._grid(path)
        index = np.clip(np.floor(np.asarray(times) * fps).astype(np.int64), 0, len(grid) - 1)
        return grid[index]

    def _grid(self, path: str) -> tuple[float, np.ndarray]:
        if path not in self._grids:
            info = probe(path)
            self._durations[path] = info.duration
            fps = min(info.fps, self.max_fps) if info.fps > 0 else self.max_fps
            stored = self._stored(path, fps)
            if stored is not None and stored.is_file():
                try:
                    self._grids[path] = (fps, np.load(stored))
                    return self._grids[path]
                except (OSError, ValueError):  # unreadable cache entry: decode again and rewrite it
                    pass
            n = max(1, math.ceil(info.duration * fps - 1e-6))
            times = (np.arange(n) + 0.5) / fps  # the middle of each grid cell
            grid = resize_crop_batch(_frames_at(path, times, None), self.size)  # (N, size, size, 3)
            if stored is not None:
                with atomic_path(stored) as tmp, open(tmp, "wb") as f:
                    np.save(f, grid)
            self._grids[path] = (fps, grid)
        return self._grids[path]

    def _stored(self, path: str, fps: float) -> Path | None:
        """Where the disk cache keeps the grid of `path` (None without a disk cache)."""
        if self.cache_dir is None:
            return None
        st = Path(path).stat()
        key = f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{self.size}|{fps:.6f}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self.cache_dir / f"{Path(path).stem}-{digest}.npy"


class CaptionPairs(Dataset):
    """One item per (video, caption); a video with a list of captions gives one item per caption.

    Item: ``video_long``/``video_short`` (T, H, W, 3) uint8 tensors, ``text_ids`` list[int] (with
    [CLS] ... [SEP]), ``pair_id`` (the video's index: captions of one video are positives of each
    other), ``index``, plus ``short_span`` (start, end) seconds.
    """

    def __init__(self, cfg: DataConfig, split: str, train: bool, tokenizer=None):
        files = cfg.annotations.get(split)
        if not files:
            raise ConfigError(f"data.annotations: no files for split {split!r}")
        root = Path(cfg.corpus)
        if not root.is_dir():
            raise ConfigError(f"data.corpus: {root} is not a directory (make one: tempovl corpus make)")
        self.cfg, self.split, self.train = cfg, split, train
        self.videos: list[str] = []  # pair_id -> video path
        self.pairs: list[tuple[int, str]] = []  # (pair_id, caption)
        video_ids: dict[str, int] = {}
        for name in files:
            path = root / name
            if not path.is_file():
                raise ConfigError(f"data.annotations.{split}: {path} does not exist")
            for rec in read_caption_pairs(path, root=root):
                video = str(rec["video_path"])
                if video not in video_ids:
                    video_ids[video] = len(self.videos)
                    self.videos.append(video)
                caps = rec["caption"] if isinstance(rec["caption"], list) else [rec["caption"]]
                self.pairs.extend((video_ids[video], c) for c in caps)
        if not self.pairs:
            raise InputError(f"{root}: no caption pairs in {', '.join(files)}")
        if tokenizer is None:
            from tempovl.data.tokenizer import load_tokenizer

            tokenizer = load_tokenizer(cfg.tokenizer)
        self.tokenizer = tokenizer
        cache_dir = None
        if cfg.cache == "disk":
            cache_dir = cfg.cache_dir if cfg.cache_dir is not None else str(root / ".cache" / "hitea_frames")
        self.reader = FrameReader(cfg.frame_size, cfg.cache == "memory", cfg.cache_max_fps, cache_dir)
        self._eval_items: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.pairs)

    def caption(self, i: int) -> str:
        return self.pairs[i][1]

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer(text, truncation=True, max_length=self.cfg.max_text_len)["input_ids"]

    def _rng(self, i: int) -> np.random.Generator:
        if self.train:  # from torch's global RNG: seeded and checkpointed by the engine
            return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        return np.random.default_rng([self.cfg.eval_seed, i])

    def views(self, i: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
        """Both views of item `i`: (long (T, H, W, 3), short (T, H, W, 3)) uint8 and the short span."""
        c = self.cfg
        path = self.videos[self.pairs[i][0]]
        rng = self._rng(i)
        long_t, short_t, span = view_times(
            self.reader.duration(path), c.num_frames, c.short_frac, self.train, rng
        )
        frames = self.reader.frames(path, np.concatenate([long_t, short_t]))  # one decode for both views
        return frames[: c.num_frames], frames[c.num_frames :], span

    def __getitem__(self, i: int) -> dict:
        if not self.train and i in self._eval_items:
            return self._eval_items[i]
        pair_id, caption = self.pairs[i]
        long_v, short_v, span = self.views(i)
        item = {
            "video_long": torch.from_numpy(np.ascontiguousarray(long_v)),
            "video_short": torch.from_numpy(np.ascontiguousarray(short_v)),
            "text_ids": self.tokenize(caption),
            "pair_id": pair_id,
            "index": i,
            "short_span": span,
        }
        if not self.train:
            self._eval_items[i] = item
        return item


def to_float_video(frames: torch.Tensor, mean: tuple, std: tuple) -> torch.Tensor:
    """frames (B, T, H, W, 3) uint8 -> (B, T, 3, H, W) float32 in [0, 1], normalised per channel."""
    x = frames.permute(0, 1, 4, 2, 3).float() / 255.0  # (B, T, H, W, 3) -> (B, T, 3, H, W)
    m = torch.tensor(mean, dtype=x.dtype).view(1, 1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 1, 3, 1, 1)
    return (x - m) / s


class CollateCaptionPairs:
    """Stacks items: ``video_long``/``video_short`` (B, T, 3, H, W) float, ``text_ids`` (B, L) long
    padded with `pad_id`, ``text_mask`` (B, L) bool, ``pair_ids`` (B,) long, ``index`` (B,) long."""

    def __init__(self, pad_id: int = 0, normalize: str = "imagenet"):
        if normalize not in NORMALIZATION:
            raise ConfigError(f"data.normalize: {normalize!r} is not one of {sorted(NORMALIZATION)}")
        self.pad_id = pad_id
        self.mean, self.std = NORMALIZATION[normalize]

    def __call__(self, items: list[dict]) -> dict:
        ids, mask = pad_ids([it["text_ids"] for it in items], self.pad_id)
        return {
            "video_long": to_float_video(
                torch.stack([it["video_long"] for it in items]), self.mean, self.std
            ),
            "video_short": to_float_video(
                torch.stack([it["video_short"] for it in items]), self.mean, self.std
            ),
            "text_ids": ids,
            "text_mask": mask,
            "pair_ids": torch.as_tensor([it["pair_id"] for it in items], dtype=torch.long),
            "index": torch.as_tensor([it["index"] for it in items], dtype=torch.long),
        }
