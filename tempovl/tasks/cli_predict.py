"""`tempovl predict CKPT VIDEO [--subtitles SRT] (--query "..." | --question "..." --answers A B ...)`.

Runs a checkpoint on one of your own video files: the frame features are extracted on the fly with the
extractor recorded in the checkpoint's data config (``data.extractor``, ``data.interval``,
``data.extract_size``; older configs fall back to the manifest of the feature store at
``data.features``), subtitles are read from an SRT / WebVTT file (none = a single-channel video), and
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

import argparse
import inspect
import json
from pathlib import Path

import numpy as np
import torch

from tempovl.errors import ConfigError, InputError


def register(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("checkpoint", help="checkpoint or export directory (or a run dir with `latest`)")
    parser.add_argument("video", help="a video file (mp4, mkv, webm, ...)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument("--subtitles", metavar="FILE", help="SRT or WebVTT subtitles of the video")
    parser.add_argument("--query", help="text query: rank the moments of the video")
    parser.add_argument("--question", help="a question about the video (QA checkpoints)")
    parser.add_argument("--answers", nargs="+", metavar="ANSWER", help="the candidate answers")
    parser.add_argument("--top-k", type=int, default=5, help="moments to print")
    parser.add_argument("--extractor", help="override the feature extractor spec")
    parser.add_argument("--interval", type=float, help="override seconds per feature-frame")
    parser.add_argument("--size", type=int, help="override the frame size fed to the extractor")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.set_defaults(func=run)


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
    from tempovl.tasks.cli import load_task

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


def run(args: argparse.Namespace) -> int:
    if args.query and args.question:
        raise ConfigError(
            "predict: give --query (moment retrieval) or --question [--answers ...] (QA), not both"
        )
    # no query and no question: tasks that need none (captioning) answer; the others say what they need
    request = (
        {"query": args.query, "top_k": args.top_k}
        if args.query
        else {"question": args.question, "answers": list(args.answers) if args.answers else None}
    )
    result = predict(
        args.checkpoint,
        args.video,
        args.subtitles,
        args.overrides,
        args.extractor,
        args.interval,
        args.size,
        args.device,
        **request,
    )
    if "moments" in result:
        print(f"{result['video']}: video score {result.get('video_score', float('nan')):.4f}")
        print("rank  start (s)  end (s)  score")
        for i, m in enumerate(result["moments"], 1):
            print(f"{i:>4}  {m['start']:>9.1f}  {m['end']:>7.1f}  {m['score']:.4g}")
    else:
        print(
            json.dumps({k: v for k, v in result.items() if k not in ("checkpoint",)}, indent=2, default=float)
        )
    if args.json:
        from tempovl.io import write_json

        write_json(args.json, json.loads(json.dumps(result, default=float)))
    return 0
