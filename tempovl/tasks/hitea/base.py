"""What HiTeA's downstream tasks share: the ``data:`` section, frame sampling, batching, the base task.

Frames (paper section 4.2 and appendix A): ``data.num_frames`` frames per video (paper: 12 for
retrieval, 16 for QA and captioning), one per equal segment of the video (of the question's span for
TVQA-style QA with ``data.use_span``): a uniformly random time in each segment plus a random crop
(``data.crop_scale``) and horizontal flip (``data.flip_prob``) when training, the segment middles with no
augmentation when evaluating. The crop and flip are the same for every frame of a video.

Rules for odd inputs:

- **images** (``.jpg .jpeg .png .bmp .webp``) are single-frame videos: the one frame is repeated
  ``num_frames`` times (a still video), so images and videos share batches and backbones;
- a **video with fewer decoded frames than ``num_frames``** is an ``InputError`` naming the file, its
  frame count and the request (``data.short_video: error``), or its frames repeat for consecutive sample
  times (``data.short_video: repeat``, the rule of :mod:`tempovl.data.hitea_data`);
- a **QA span** that holds fewer frames than ``num_frames`` is widened around its centre (within the
  video) until it does; only a whole video that is too short is an error;
- a **time span an annotation gives** is checked when the annotations are read, against the video's
  probed duration, as the HERO readers check theirs: a QA ``ts`` that ends past the video (by more than
  ``DURATION_TOLERANCE``) or starts after it ends (:func:`check_span`), a DiDeMo moment with a segment
  that starts past it (``retrieval.check_didemo_times``), is an ``InputError`` naming the file, the
  record and the video.

The temporal shuffling test (``data.shuffle_frames``, set by ``tempovl evaluate --shuffle-frames``):
every evaluation video's sampled frames are permuted with ``np.random.default_rng([shuffle_seed, i])``
for item ``i``; the frames themselves are unchanged.

Zero-shot evaluation: the ``data:`` section here is a superset of the pre-training one
(:class:`tempovl.data.hitea_data.DataConfig`), and every downstream task keeps its :class:`Hitea` under
``self.model`` as the pre-training task does, so a pre-training checkpoint loads into any downstream task
(``tempovl evaluate PRETRAIN_CKPT --task hitea-retrieval``): heads the downstream tasks use (VTC
projections, VTM head, decoder) are all pre-trained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import av
import numpy as np
import torch
import torch.nn.functional as F

from tempovl.config import from_dict
from tempovl.data.annotations import DURATION_TOLERANCE
from tempovl.data.hitea_data import NORMALIZATION, DataConfig, FrameReader, to_float_video
from tempovl.data.video import frame_rgb, probe, resize_crop, sparse_times
from tempovl.errors import ConfigError, InputError
from tempovl.registry import build_model
from tempovl.tasks.base import Task

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _caption_files() -> dict[str, list[str]]:
    return {s: [f"annotations/captions_{s}.jsonl"] for s in ("train", "val", "test")}


@dataclass
class DownstreamDataConfig(DataConfig):
    """The ``data:`` section of HiTeA's downstream tasks (a superset of pre-training's)."""

    annotations: dict[str, list[str]] = field(default_factory=_caption_files)  # split -> files
    format: Literal["captions", "msrvtt", "didemo", "ssv2", "tvqa"] = "captions"
    num_frames: int = 12
    short_video: Literal["error", "repeat"] = "error"  # a video with fewer frames than num_frames
    crop_scale: list[float] = field(default_factory=lambda: [0.5, 1.0])  # training crop area range
    flip_prob: float = 0.5  # training horizontal flip (0 where captions say "left" / "right")
    use_span: bool = True  # TVQA-style QA: sample inside the question's "ts" span
    num_answers: int = 5  # TVQA-style candidates a0..a{n-1}
    shuffle_frames: bool = False  # evaluation: permute each video's frames (temporal shuffling test)
    shuffle_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        lo_hi = list(self.crop_scale)
        if len(lo_hi) != 2 or not 0.0 < lo_hi[0] <= lo_hi[1] <= 1.0:
            raise ConfigError(f"data.crop_scale: need [low, high] with 0 < low <= high <= 1, got {lo_hi}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ConfigError(f"data.flip_prob: must be in [0, 1], got {self.flip_prob}")
        if self.num_answers < 2:
            raise ConfigError(f"data.num_answers: must be >= 2, got {self.num_answers}")


def annotation_files(cfg: DownstreamDataConfig, split: str) -> list[Path]:
    """The annotation files of `split`, resolved against the corpus root; ConfigError if absent."""
    root = Path(cfg.corpus)
    if not root.is_dir():
        raise ConfigError(f"data.corpus: {root} is not a directory (make one: tempovl corpus make)")
    files = cfg.annotations.get(split)
    if not files:
        raise ConfigError(f"data.annotations: no files for split {split!r}")
    paths = [root / f for f in files]
    for p in paths:
        if not p.is_file():
            raise ConfigError(f"data.annotations.{split}: {p} does not exist")
    return paths


def check_span(span: Sequence[float], duration: float, where: str, video: str, what: str = "span") -> None:
    """An annotation's time span [start, end] (seconds) must lie in its video: 0 <= start <= end <=
    duration + DURATION_TOLERANCE, the HERO readers' rule (a probed duration is rounded to packets).
    Otherwise an InputError naming `where` (the file and record), `what` and the video."""
    st, ed = float(span[0]), float(span[1])
    if st > ed:
        raise InputError(f"{where}: {what} [{st:g}, {ed:g}] starts after it ends (video {video})")
    if st < 0:
        raise InputError(f"{where}: {what} [{st:g}, {ed:g}] starts before 0 (video {video})")
    if ed > duration + DURATION_TOLERANCE:
        raise InputError(
            f"{where}: {what} [{st:g}, {ed:g}] ends after the end of video {video} ({duration:.2f} s)"
        )


def find_video(root: Path, name: str, where: str) -> str:
    """A video named by path relative to `root` or by id (``videos/{id}.*``); InputError naming `where`."""
    candidates = [root / name, root / "videos" / name]
    if not Path(name).suffix:
        candidates += sorted((root / "videos").glob(f"{name}.*"))
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise InputError(f"{where}: video {name!r} does not exist under {root}")
    return str(found)


class FrameSampler:
    """HiTeA's downstream frame sampling (module docstring): (T, H, W, 3) uint8 tensors per video."""

    def __init__(self, cfg: DownstreamDataConfig):
        self.cfg = cfg
        cache_dir = None
        if cfg.cache == "disk":  # as the pre-training data (a shared decoded-frame grid per video)
            cache_dir = cfg.cache_dir or str(Path(cfg.corpus) / ".cache" / "hitea_frames")
        self.reader = FrameReader(cfg.frame_size, cfg.cache == "memory", cfg.cache_max_fps, cache_dir)
        self._fps: dict[str, float] = {}

    def _frame_count(self, path: str, seconds: float) -> float:
        if path not in self._fps:
            self._fps[path] = probe(path).fps
        return seconds * self._fps[path]

    def times(
        self, path: str, train: bool, span: Sequence[float] | None, rng: np.random.Generator
    ) -> np.ndarray:
        """Sample times (T,) in seconds, checked against the video's frame count."""
        n = self.cfg.num_frames
        duration = self.reader.duration(path)
        have = self._frame_count(path, duration)
        if have + 1e-6 < n and self.cfg.short_video == "error":
            raise InputError(
                f"{path}: {int(have)} frames ({duration:.2f} s), fewer than the {n} requested "
                "(data.num_frames); lower data.num_frames or set data.short_video=repeat"
            )
        start, end = 0.0, duration
        if span is not None:  # a point, or a span at the very end (in the tolerance), is widened too
            start = min(max(0.0, float(span[0])), duration)
            end = min(max(start, float(span[1])), duration)
            need = n / max(self._fps[path], 1e-6)  # seconds holding n frames
            if end - start < need:  # widen around the centre, inside the video
                mid = (start + end) / 2
                start = max(0.0, min(mid - need / 2, duration - need))
                end = min(duration, start + need)
        return sparse_times(start, end, n, jitter=train, rng=rng)

    def sample(self, path: str, index: int, train: bool, span: Sequence[float] | None = None) -> torch.Tensor:
        """Item `index`'s frames (T, H, W, 3) uint8: augmented when `train`, shuffled when configured."""
        cfg = self.cfg
        if train:  # from torch's global RNG: seeded and checkpointed by the engine
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        else:
            rng = np.random.default_rng([cfg.eval_seed, index])
        if path.lower().endswith(IMAGE_SUFFIXES):
            frames = np.repeat(read_image(path, cfg.frame_size)[None], cfg.num_frames, axis=0)
        else:
            frames = self.reader.frames(path, self.times(path, train, span, rng))
        video = torch.from_numpy(np.ascontiguousarray(frames))  # (T, H, W, 3)
        if train:
            return augment(video, cfg.crop_scale, cfg.flip_prob)
        if cfg.shuffle_frames:
            perm = np.random.default_rng([cfg.shuffle_seed, index]).permutation(len(video))
            video = video[torch.from_numpy(perm)]
        return video


def read_image(path: str, size: int) -> np.ndarray:
    """One image file as (size, size, 3) uint8 (shorter side resized, centre crop)."""
    try:
        with av.open(path) as container:
            frame = next(container.decode(video=0))
            image = frame_rgb(frame)  # EXIF orientation, where the decoder exports it
    except (av.FFmpegError, OSError, StopIteration) as e:
        raise InputError(f"{path}: not a readable image ({e})") from None
    return resize_crop(image, size)


def augment(video: torch.Tensor, crop_scale: Sequence[float], flip_prob: float) -> torch.Tensor:
    """Random square crop of area share in `crop_scale`, resized back, and a horizontal flip with
    probability `flip_prob`; the same for every frame. video (T, H, W, 3) uint8 -> same shape."""
    t, h, w, _ = video.shape
    lo, hi = float(crop_scale[0]), float(crop_scale[1])
    area = lo + (hi - lo) * float(torch.rand(()))
    side_h, side_w = max(1, round(h * math.sqrt(area))), max(1, round(w * math.sqrt(area)))
    if (side_h, side_w) != (h, w):
        top = int(torch.randint(0, h - side_h + 1, ()))
        left = int(torch.randint(0, w - side_w + 1, ()))
        crop = (
            video[:, top : top + side_h, left : left + side_w].permute(0, 3, 1, 2).float()
        )  # (T, 3, h', w')
        crop = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        video = crop.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)  # (T, H, W, 3)
    if flip_prob > 0 and float(torch.rand(())) < flip_prob:
        video = video.flip(2)
    return video.contiguous()


def checked_tokenizer(data_cfg: DownstreamDataConfig, model_cfg):
    """The data's tokenizer, checked against the model's special-token ids and sizes."""
    from tempovl.data.tokenizer import load_tokenizer

    tok = load_tokenizer(data_cfg.tokenizer)
    want = {"pad": model_cfg.pad_id, "cls": model_cfg.cls_id, "sep": model_cfg.sep_id}
    for name, model_id in want.items():
        if getattr(tok, f"{name}_token_id") != model_id:
            raise ConfigError(
                f"model.{name}_id: {model_id}, but the tokenizer's [{name.upper()}] is "
                f"{getattr(tok, f'{name}_token_id')}"
            )
    if len(tok) > model_cfg.vocab_size:
        raise ConfigError(f"model.vocab_size: {model_cfg.vocab_size} < the tokenizer's {len(tok)} tokens")
    if data_cfg.max_text_len > model_cfg.max_positions:
        raise ConfigError(
            f"data.max_text_len: {data_cfg.max_text_len} > model.max_positions {model_cfg.max_positions}"
        )
    return tok


class HiteaDownstreamTask(Task):
    """A :class:`Hitea` under ``self.model`` (losses set to `losses`), the data section, frame sampling,
    tokenising and batching helpers. Subclasses add datasets, ``forward`` and ``evaluate``."""

    losses: tuple[str, ...] = ()  # the model's pre-training losses this task trains with
    predict_input = "video"  # `tempovl predict` hands the task the video file, not extracted features

    def __init__(self, cfg: dict, task_cls: type):
        super().__init__(cfg)
        self.c = from_dict(task_cls, cfg.get("task"), "task")
        self.data_cfg = from_dict(DownstreamDataConfig, cfg.get("data"), "data")
        if self.data_cfg.normalize not in NORMALIZATION:
            raise ConfigError(f"data.normalize: {self.data_cfg.normalize!r} is unknown")
        model_cfg = dict(cfg.get("model") or {})
        model_cfg["losses"] = list(self.losses)
        self.model = build_model(model_cfg)
        self.sampler = FrameSampler(self.data_cfg)
        self._tokenizer = None
        self._queue_reset = False

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = checked_tokenizer(self.data_cfg, self.model.cfg)
        return self._tokenizer

    def tokenize(self, text: str, max_len: int | None = None) -> list[int]:
        """[CLS] text [SEP] ids, truncated to ``data.max_text_len`` (or `max_len`)."""
        n = max_len or self.data_cfg.max_text_len
        return self.tokenizer(text, truncation=True, max_length=n)["input_ids"]

    def float_video(self, frames: Sequence[torch.Tensor]) -> torch.Tensor:
        """uint8 (T, H, W, 3) per item -> normalised (B, T, 3, H, W) float on the model's device."""
        mean, std = NORMALIZATION[self.data_cfg.normalize]
        return to_float_video(torch.stack(list(frames)), mean, std).to(self.device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def reset_stale_queue(self) -> None:
        """Once per process, at the first training step: VTC queue rows from another run (pre-training)
        carry pair ids of another dataset; they become pure negatives (id -1) instead of false positives."""
        if self._queue_reset or not self.training:
            return
        queue = getattr(self.model.vtc, "queue", None)
        if queue is not None:
            queue.ids.fill_(-1)
        self._queue_reset = True

    def video_path(self, name: str, where: str) -> str:
        return find_video(Path(self.data_cfg.corpus), name, where)

    def video_duration(self, path: str) -> float:
        """The video's duration in seconds, probed once by the frame sampler (which samples by it)."""
        return self.sampler.reader.duration(path)

    def frames_of(self, video: str | Path | np.ndarray | torch.Tensor) -> torch.Tensor:
        """A user's video (a path, or (T, H, W, 3) uint8 frames) as evaluation-sampled frames."""
        if isinstance(video, (str, Path)):
            if not Path(video).is_file():
                raise InputError(f"{video}: no such video file")
            return self.sampler.sample(str(video), 0, False)
        return torch.as_tensor(np.asarray(video), dtype=torch.uint8)
