"""The library's inference API (``tempovl.load_task``, ``predict``, ``extract_video``, ``encode_video``,
``encode_text``); the ``tempovl predict`` / ``evaluate`` commands, the search index and the demo call it.

:func:`load_task` builds a checkpoint's task (or another compatible one) with its weights, in eval mode.
:func:`predict` runs a checkpoint on one of your own video files: the frame features are extracted on the
fly (:func:`extract_video`) with the extractor recorded in the checkpoint's data config
(``data.extractor``, ``data.interval``, ``data.extract_size``; older configs fall back to the manifest of
the feature store at ``data.features``), subtitles are read from an SRT / WebVTT file (none = a single-channel video), and
the task answers.

:func:`encode_video` / :func:`encode_text` give a HERO retrieval (or pre-training) checkpoint's frame and
query embeddings, the vectors the search index stores: a query's cosine with a frame is HERO's frame
score, and the video's score is the maximum over its frames.

A task answers through its ``predict`` method (``tempovl.tasks.base``): ``predict_input`` says whether it
takes extracted features or the video file, ``predict_needs`` which :class:`~tempovl.tasks.base.PredictRequest`
fields it cannot do without, and the answer is one of the typed predictions there. A task with
``predict_input = None`` is refused with a ConfigError naming it.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import numpy as np
import torch

from tempovl.config import apply_override, deep_merge, load_config
from tempovl.engine.checkpoint import resolve_checkpoint
from tempovl.errors import ConfigError, InputError

log = logging.getLogger(__name__)

ASKS = ("query", "question", "answers", "statement", "start", "end")  # request fields that ask something


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
        ck.load_into(built, path / ck.MODEL_FILE, mode="strict")
    else:
        old = (load_config(path / "config.yaml").get("model") or {}).get("name")
        try:
            missing, _ = ck.load_into(built, path / ck.MODEL_FILE, mode="fit")
        except ConfigError as e:
            raise ConfigError(
                f"{e} [checkpoint model {old!r}, task {cfg['task']['name']!r} with model "
                f"{(cfg.get('model') or {}).get('name')!r}]"
            ) from None
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


def extract_as_trained(
    video: str | Path,
    cfg: dict,
    extractor: str | None = None,
    interval: float | None = None,
    size: int | None = None,
) -> tuple[np.ndarray, float]:
    """Features (T, F) of a video file as checkpoint config `cfg` was trained on (or with the given
    extractor / interval / size instead), and their interval in seconds."""
    if not Path(video).is_file():
        raise InputError(f"{video}: no such video file")
    spec, step, frame_size = extraction_settings(cfg)
    step = interval or step
    return extract_video(video, extractor or spec, step, size or frame_size), step


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
    """Run checkpoint `ckpt` on one video file. `request`: the fields of
    :class:`~tempovl.tasks.base.PredictRequest` (``query=...``, ``question=..., answers=[...]``,
    ``statement=...``, ``start=..., end=...``); None values are left out. Returns the task's prediction
    with ``checkpoint``, ``task`` and ``video`` added."""
    from tempovl.data.subtitles import read_subtitle_file
    from tempovl.tasks.base import PredictRequest

    if not Path(video).is_file():
        raise InputError(f"{video}: no such video file")
    task, cfg, path = load_task(ckpt, None, list(overrides), device)
    name = cfg["task"]["name"]
    if task.predict_input is None:
        raise ConfigError(
            f"{path}: task {name!r} does not predict (it cannot answer queries or questions about a single video)"
        )
    given = {k: v for k, v in request.items() if v is not None}
    unknown = sorted(set(given) - set(PredictRequest.__dataclass_fields__) - {"video", "sentences"})
    if unknown:
        raise ConfigError(f"predict: unknown request field(s) {unknown}")
    needed = [n for n in task.predict_needs if n not in given]
    if needed:
        flags = " ".join(f"--{n.replace('_', '-')}" for n in needed)
        asked = [n for n in given if n in ASKS and n not in task.predict_needs]
        instead = f": give {flags}, not " + " ".join(f"--{n}" for n in asked) if asked else ""
        raise ConfigError(f"{path}: task {name!r} needs {flags}{instead}")
    sentences = read_subtitle_file(subtitles) if subtitles else []
    if task.predict_input == "video":  # models over raw frames (HiTeA) read the file
        inputs = str(video)
    else:  # models over frame features (HERO) get them extracted on the fly, as the checkpoint was trained
        inputs, step = extract_as_trained(video, cfg, extractor, interval, size)
        given.setdefault("interval", step)
    result = task.predict(PredictRequest(video=inputs, sentences=sentences, **given))
    return {"checkpoint": str(path), "task": name, "video": str(video), **result}


PRETRAIN_TASK, PRETRAIN_AS = "hero-pretrain", "hero-vcmr"  # a pre-training checkpoint's VSM heads serve VCMR


@functools.lru_cache(maxsize=4)
def _retrieval_task(path: Path, stamp: float, device: str):
    from tempovl.tasks.hero.retrieval import HeroRetrievalTask

    own = (load_config(path / "config.yaml").get("task") or {}).get("name")
    task, cfg, _ = load_task(path, PRETRAIN_AS if own == PRETRAIN_TASK else None, [], device)
    if not isinstance(task, HeroRetrievalTask) or task.kind != "moment":
        raise ConfigError(
            f"{path}: task {own!r} is not a HERO moment-retrieval checkpoint "
            f"(need hero-vcmr, hero-didemo or {PRETRAIN_TASK})"
        )
    return task, cfg


def load_retrieval_task(ckpt: str | Path, device: str = "auto"):
    """A HERO moment-retrieval task of checkpoint `ckpt` (``hero-pretrain`` is loaded as ``hero-vcmr``),
    and its config; loaded once per checkpoint version and device."""
    from tempovl.engine.checkpoint import MODEL_FILE

    path = resolve_checkpoint(ckpt).resolve()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return _retrieval_task(path, (path / MODEL_FILE).stat().st_mtime, device)


def encode_video(
    ckpt: str | Path, video: str | Path, subtitles: str | Path | None = None, device: str = "auto"
) -> np.ndarray:
    """HERO's contextual frame embeddings V_temp (T, D) float32 of a whole video file, one per
    ``data.interval`` seconds (features extracted as the checkpoint's were; subtitles from SRT / WebVTT)."""
    from tempovl.data.subtitles import read_subtitle_file

    task, cfg = load_retrieval_task(ckpt, device)
    feats, step = extract_as_trained(video, cfg)
    sentences = read_subtitle_file(subtitles) if subtitles else []
    return task.encode_whole_video(feats, sentences, step, where=str(video)).float().cpu().numpy()


def encode_text(ckpt: str | Path, texts: list[str], device: str = "auto") -> np.ndarray:
    """Query embeddings (Q, D) float32 of a HERO retrieval checkpoint (its query encoder)."""
    task, _ = load_retrieval_task(ckpt, device)
    with torch.no_grad():
        return task.encode_queries(list(texts)).float().cpu().numpy()
