"""The library's inference API (``tempovl.load_task``, ``tempovl.predict``, ``tempovl.extract_video``); the
``tempovl predict`` / ``evaluate`` commands, the search index and the demo call it.

:func:`load_task` builds a checkpoint's task (or another compatible one) with its weights, in eval mode.
:func:`predict` runs a checkpoint on one of your own video files: the frame features are extracted on the
fly (:func:`extract_video`) with the extractor recorded in the checkpoint's data config
(``data.extractor``, ``data.interval``, ``data.extract_size``; older configs fall back to the manifest of
the feature store at ``data.features``), subtitles are read from an SRT / WebVTT file (none = a single-channel video), and
the task answers.

The contract a task implements to be usable here (in the style of ``tasks/base.py``)::

    def predict_video(self, video_feats, sentences, **kwargs) -> dict:
        '''video_feats: (T, F) float32 numpy array of the video's feature-frames, one per
        ``data.interval`` seconds, from the checkpoint's extractor; sentences: the subtitle
        ``tempovl.data.subtitles.Sentence`` list (maybe empty). kwargs: what the user asked:
        ``query=str, top_k=int`` (moment retrieval) or ``question=str, answers=list[str]`` (QA).
        Returns a JSON-serialisable dict: retrieval tasks ``{"video_score", "moments": [{"start",
        "end", "score"}, ...]}`` best first; QA tasks ``{"answer_idx", "answer", "probs", ...}``.
        A task raises ConfigError for a kind of request it cannot answer.'''

Tasks without ``predict_video`` are refused with a ConfigError naming the task.
"""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path

import numpy as np
import torch

from tempovl.config import apply_override, deep_merge, load_config
from tempovl.engine.checkpoint import resolve_checkpoint
from tempovl.errors import ConfigError, InputError

log = logging.getLogger(__name__)


def checkpoint_config(ckpt: Path, task: str | None, overrides: list[str]) -> tuple[dict, bool]:
    """The config to build the task from, and whether it is the checkpoint's own task."""
    cfg = load_config(ckpt / "config.yaml")
    own = (cfg.get("task") or {}).get("name")
    same = task is None or task == own
    if not same:
        try:
            preset = load_config(f"task/{task}")
        except ConfigError:
            preset = {"task": {"name": task}}
        cfg["task"] = preset["task"]
        if "data" in preset:
            cfg["data"] = deep_merge(cfg.get("data") or {}, preset["data"])
    for item in overrides:
        apply_override(cfg, item)
    return cfg, same


def load_task(ckpt: str | Path, task: str | None = None, overrides: list[str] = (), device: str = "auto"):
    """Build the task of checkpoint `ckpt` (or `task`) with `overrides` and load its weights; eval mode."""
    from tempovl.engine import checkpoint as ck
    from tempovl.registry import build_task

    path = resolve_checkpoint(ckpt)
    cfg, same = checkpoint_config(path, task, list(overrides))
    built = build_task(cfg)
    if same:
        ck.load_into(built, path / ck.MODEL_FILE, strict=True)
    else:
        state, prefix = ck.load_weights(path / ck.MODEL_FILE)
        own = built.state_dict()
        state = {(f"{prefix}.{k}" if prefix else k): v for k, v in state.items()}
        bad = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
        found = sum(own[k].numel() for k in own if k in state)
        total = sum(v.numel() for v in own.values())
        old = (load_config(path / "config.yaml").get("model") or {}).get("name")
        if bad or found < total / 2:
            raise ConfigError(
                f"{path}: its weights (model {old!r}) do not fit task {cfg['task']['name']!r} "
                f"(model {(cfg.get('model') or {}).get('name')!r}): {len(bad)} mis-shaped keys "
                f"{bad[:3]}, {found / max(total, 1):.0%} of the task's weights found"
            )
        missing, _ = ck.load_into(built, path / ck.MODEL_FILE, strict=False)
        log.info(
            "loaded %s into task %s; %d keys left at their initial values",
            path,
            cfg["task"]["name"],
            len(missing),
        )
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return built.to(device).eval(), cfg, path


def extraction_settings(cfg: dict) -> tuple[str, float, int | None]:
    """(extractor spec, interval, frame size) of the features a checkpoint was trained on."""
    data = cfg.get("data") or {}
    spec, interval, size = data.get("extractor"), data.get("interval"), data.get("extract_size")
    if spec is None or interval is None:
        features = data.get("features")
        manifest = Path(features) / "manifest.json" if features else None
        if manifest is None or not manifest.is_file():
            raise ConfigError(
                "data.extractor / data.interval: the checkpoint does not record its feature extractor and "
                f"its feature store ({features}) is not here; pass --extractor and --interval"
            )
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        spec, interval = spec or meta["extractor"], interval or meta["interval"]
    return str(spec), float(interval), size


def extract_video(path: str | Path, spec: str, interval: float, size: int | None) -> np.ndarray:
    """Features (T, F) float32 of one video: one window per `interval` seconds, as the feature store."""
    from tempovl.data.features import build_extractor
    from tempovl.data.features.extract import set_input_size
    from tempovl.data.video import read_windows

    extractor = build_extractor(spec)
    if size is not None:
        set_input_size(extractor, size)
    clips, _ = read_windows(path, interval, extractor.frames_per_window, extractor.size)
    with torch.inference_mode():
        feats = [
            extractor(torch.from_numpy(clips[i : i + 32])).float().numpy() for i in range(0, len(clips), 32)
        ]
    return np.concatenate(feats, axis=0)


def predict(
    ckpt: str | Path,
    video: str | Path,
    subtitles: str | Path | None = None,
    overrides: list[str] = (),
    extractor: str | None = None,
    interval: float | None = None,
    size: int | None = None,
    device: str = "auto",
    **request,
) -> dict:
    """Run checkpoint `ckpt` on one video file; `request` is ``query=...`` or ``question=..., answers=[...]``."""
    from tempovl.data.subtitles import read_subtitle_file

    if not Path(video).is_file():
        raise InputError(f"{video}: no such video file")
    task, cfg, path = load_task(ckpt, None, list(overrides), device)
    if not callable(getattr(task, "predict_video", None)):
        raise ConfigError(
            f"{path}: task {cfg['task']['name']!r} does not implement predict_video "
            "(it cannot answer queries or questions about a single video)"
        )
    sentences = read_subtitle_file(subtitles) if subtitles else []
    if getattr(task, "predict_input", "features") == "video":  # models over raw frames (HiTeA) read the file
        inputs = str(video)
    else:  # models over frame features (HERO) get them extracted on the fly, as the checkpoint was trained
        spec, step, frame_size = extraction_settings(cfg)
        inputs = extract_video(video, extractor or spec, interval or step, size or frame_size)
    given = {k: v for k, v in request.items() if v is not None}
    params = list(inspect.signature(task.predict_video).parameters.values())[2:]  # after (inputs, sentences)
    needed = [
        p.name for p in params if p.default is p.empty and p.kind != p.VAR_KEYWORD and p.name not in given
    ]
    if needed:
        flags = " ".join(f"--{n.replace('_', '-')}" for n in needed)
        raise ConfigError(f"{path}: task {cfg['task']['name']!r} needs {flags}")
    result = task.predict_video(inputs, sentences, **given)
    return {"checkpoint": str(path), "task": cfg["task"]["name"], "video": str(video), **result}
