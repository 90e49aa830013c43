"""`HeroEncoder`: a trained HERO retrieval checkpoint behind the search index's `MomentEncoder` protocol.

    tempovl index build VIDEOS --subtitles DIR --model runs/x/best OUT      (bare path -> "ckpt")
    tempovl index build VIDEOS --model hero:runs/x/best OUT

What the index stores per frame, and why (HERO section 3.2, VSM; appendix A.3 for VCMR inference):

- A video is encoded as the checkpoint's task does it: features extracted on the fly with the extractor
  recorded in the checkpoint (`tempovl.tasks.cli_predict.extract_video`), subtitles aligned to the
  feature-frames (HERO appendix A.4, `clip_units`), Cross-modal + Temporal Transformer -> V_temp (T, D).
  A video longer than `data.max_frames` frames is encoded in overlapping windows of that length (each
  with the subtitles that overlap it, times shifted to the window), each frame's row taken from the
  window whose centre is nearest (`HeroRetrievalTask.encode_whole_video`), so nothing past the first
  window is lost and `evaluate`, `predict` and the index agree on every frame.
- The global score is HERO's max-pooled cosine, so the first D numbers of a frame row are V_temp_t / |V_temp_t|
  and the first D of a query are q / |q|: the index's inner product is the cosine exactly.
- Localisation is not a cosine: VSM's start/end heads are 1-D convolutions over the raw scores
  proj(q) · V_temp_t, which depend on both norms (and proj has a bias). So every row carries its own
  norm in a private column that the other side leaves at zero:

      frame row  [V_temp_t / |V_temp_t|,  NORM_SCALE * |V_temp_t|,  0               ]   (D + 2,)
      query row  [q / |q|,                0,                        NORM_SCALE * |q|]   (D + 2,)

  The two extra columns never meet in an inner product; `localize` rebuilds the raw V_temp and q from
  them. NORM_SCALE keeps the columns small (a query row's L2 norm is 1 + O(1e-4)), so they barely
  touch the frame-to-frame inner products the approximate faiss indexes are built from.

A `hero-pretrain` checkpoint works too: its VSM heads (query encoder, projection, start/end
convolutions) are the same modules, so it is loaded as a `hero-vcmr` task.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import torch

from tempovl.data.hero_data import window_stride
from tempovl.data.subtitles import Sentence
from tempovl.errors import ConfigError, InputError
from tempovl.search.encoders import CHECKPOINT_ENCODER, VideoEncoding, register_encoder

NORM_SCALE = 1e-3  # frame / query norms are stored times this (see the module docstring)
_EPS = 1e-5  # as vsm_global_scores' F.normalize


class HeroEncoder:
    """A HERO retrieval (or pre-training) checkpoint as a `MomentEncoder`; see the module docstring.

    Build it with `HeroEncoder.from_checkpoint(path)`; `task` is the loaded `HeroRetrievalTask` (eval
    mode). Calls are serialised by a lock (the tokenizer is not thread-safe; the HTTP service queries
    from a thread pool).
    """

    name = "hero"

    def __init__(
        self,
        task,
        checkpoint: Path,
        extractor: str,
        interval: float,
        size: int | None,
        weights_sha256: str,
    ):
        from tempovl.tasks.hero.retrieval import HeroRetrievalTask

        if not isinstance(task, HeroRetrievalTask):
            raise ConfigError(
                f"{checkpoint}: HeroEncoder needs a HERO retrieval task, got {type(task).__name__}"
            )
        if not interval > 0:
            raise ConfigError(f"{checkpoint}: data.interval must be > 0 seconds, got {interval}")
        self.task = task
        self.checkpoint = Path(checkpoint)
        self.extractor = extractor
        self.frame_interval = float(interval)
        self.size = size
        self.hidden = int(task.model.cfg.hidden)
        self.dim = self.hidden + 2
        # the task's span-length window, so that `tempovl search` decodes moments as `tempovl evaluate`
        self.span_frames = (int(task.c.min_span_frames), int(task.c.max_span_frames))
        self.spec = f"{self.name}:{self.checkpoint}"
        # the windows a long video is read in change its rows, so they are part of what an index records
        windows = f"{task.data_cfg.max_frames}/{window_stride(task.data_cfg)}"
        settings = f"{weights_sha256}|{extractor}|{self.frame_interval}|{size}|{NORM_SCALE}|{windows}"
        self.fingerprint = hashlib.sha256(settings.encode()).hexdigest()[:16]
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "cpu",
        extractor: str | None = None,
        interval: float | None = None,
        size: int | None = None,
    ) -> HeroEncoder:
        """Load a checkpoint or export directory (or a run directory with `latest`).

        The feature extractor, interval and frame size default to those recorded in the checkpoint's
        data config (or its feature store's manifest); pass them to override.
        """
        from tempovl.engine.checkpoint import MODEL_FILE, resolve_checkpoint
        from tempovl.inference import extraction_settings, load_retrieval_task
        from tempovl.io import sha256_file

        ckpt = resolve_checkpoint(path).resolve()
        task, cfg = load_retrieval_task(ckpt, device)
        spec, step, frame_size = extraction_settings(cfg)
        return cls(
            task,
            ckpt,
            extractor or spec,
            interval or step,
            size if size is not None else frame_size,
            sha256_file(ckpt / MODEL_FILE),
        )

    # ------------------------------------------------------------------------------------- videos
    def encode_video(self, video_path: str | Path, subtitles: list[Sentence] | None) -> VideoEncoding:
        """Extract features, align the subtitles, run HERO; rows as in the module docstring."""
        from tempovl.data.video import probe
        from tempovl.inference import extract_video

        duration = probe(video_path).duration
        feats = extract_video(video_path, self.extractor, self.frame_interval, self.size)  # (T, F)
        frame_embs = self.encode_features(feats, subtitles or [], where=str(video_path))
        num = len(frame_embs)
        starts = np.arange(num, dtype=np.float64) * self.frame_interval  # (T,)
        ends = np.maximum(np.minimum(starts + self.frame_interval, duration), starts + 1e-3)
        return VideoEncoding(frame_embs, np.stack([starts, ends], axis=1), duration)  # spans (T, 2)

    def temporal_outputs(
        self, feats: np.ndarray, subtitles: list[Sentence], where: str = "video"
    ) -> torch.Tensor:
        """HERO's V_temp (T, D) of one video from its features (T, F), in clips of `data.max_frames`."""
        with self._lock:
            frames = self.task.encode_whole_video(feats, subtitles, self.frame_interval, where)
        return frames.float().cpu()

    def encode_features(
        self, feats: np.ndarray, subtitles: list[Sentence], where: str = "video"
    ) -> np.ndarray:
        """Index rows (T, D + 2) of one video from its features (T, F) and subtitles."""
        return self._rows(self.temporal_outputs(feats, subtitles, where), own_column=0)

    # ------------------------------------------------------------------------------------ queries
    def encode_query(self, texts: list[str]) -> np.ndarray:
        """Query rows (Q, D + 2): the unit query vector and its norm (module docstring)."""
        with self._lock:
            query = self.task.encode_queries(list(texts)).float().cpu()  # (Q, D)
        return self._rows(query, own_column=1)

    def _rows(self, vectors: torch.Tensor, own_column: int) -> np.ndarray:
        """(N, D) raw vectors -> (N, D + 2) rows: unit direction, and the norm in column D + own_column."""
        vectors = vectors.double()
        norms = vectors.norm(dim=-1, keepdim=True)  # (N, 1)
        rows = torch.zeros(len(vectors), self.dim, dtype=torch.float64)
        rows[:, : self.hidden] = vectors / norms.clamp(min=_EPS)
        rows[:, self.hidden + own_column] = NORM_SCALE * norms[:, 0]
        return rows.float().numpy()

    def _raw(self, rows: np.ndarray, own_column: int) -> torch.Tensor:
        """Inverse of `_rows`: (N, D + 2) -> raw (N, D)."""
        rows = torch.as_tensor(
            np.array(rows, dtype=np.float32)
        )  # a copy: index rows are read-only mmaps.double()
        norms = rows[:, self.hidden + own_column : self.hidden + own_column + 1] / NORM_SCALE  # (N, 1)
        return (rows[:, : self.hidden] * norms).float()

    # ------------------------------------------------------------------------------- localisation
    def localize(self, query_vec: np.ndarray, frame_embs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """VSM's start/end probabilities (T,) each: softmax of the two 1-D convolutions over proj(q)·V_temp."""
        query_vec, frame_embs = np.asarray(query_vec), np.asarray(frame_embs)
        if query_vec.shape != (self.dim,) or frame_embs.ndim != 2 or frame_embs.shape[1] != self.dim:
            raise InputError(
                f"hero localize: expected a query ({self.dim},) and frames (T, {self.dim}), got "
                f"{query_vec.shape} and {frame_embs.shape}"
            )
        device = next(self.task.parameters()).device
        query = self._raw(query_vec[None], own_column=1).to(device)  # (1, D)
        frames = self._raw(frame_embs, own_column=0)[None].to(device)  # (1, T, D)
        mask = torch.ones(frames.shape[:2], dtype=torch.bool, device=device)  # (1, T)
        with self._lock, torch.no_grad():
            start, end = self.task.span_probs_on(query, frames, mask)  # (1, T) each
        return start[0].double().cpu().numpy(), end[0].double().cpu().numpy()


def _hero_factory(arg: str | None) -> HeroEncoder:
    if not arg:
        raise ConfigError("--model hero:PATH: give the checkpoint directory after 'hero:'")
    return HeroEncoder.from_checkpoint(arg)


def register_defaults() -> None:
    """Register "hero" and the bare-checkpoint-path factory "ckpt" (called by `build_encoder`); a
    factory registered by hand under either name is kept."""
    register_encoder("hero", _hero_factory, overwrite=False)
    register_encoder(CHECKPOINT_ENCODER, _hero_factory, overwrite=False)


register_defaults()
