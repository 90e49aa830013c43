"""Feature extraction over a collection of videos: sharded, resumable, with a bad-video report.

`extract_features` reads each video with HERO's fixed-rate windows (`tempovl.data.video`), runs the
extractor in batches of windows, and writes one (T, dim) array per video into a `FeatureWriter`.
A rerun on the same output skips the videos already committed; a shard that a dead run was writing is
discarded and its videos redone. Bad videos are listed in `OUT/bad_videos.json`; without `skip_bad`
the first one stops the run with an InputError naming it (finished shards are kept).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from tempovl.data.features import oracle
from tempovl.data.features.extractors import ConcatExtractor, FrameExtractor, build_extractor
from tempovl.data.features.store import FeatureWriter
from tempovl.data.video import VIDEO_EXTENSIONS, iter_windows, probe, video_files
from tempovl.errors import InputError
from tempovl.io import write_json

log = logging.getLogger(__name__)

BAD_VIDEOS_FILE = "bad_videos.json"
_WEIGHTED = ("mobilenet_v2", "clip")


@dataclass
class ExtractReport:
    """What one run did. `video_seconds` counts only videos extracted in this run."""

    out: Path
    total: int
    extracted: int = 0
    skipped: int = 0  # already in the store from an earlier run
    bad: list[dict] = field(default_factory=list)
    video_seconds: float = 0.0
    wall_seconds: float = 0.0


def find_videos(source: str | Path) -> list[Path]:
    """Videos under a folder (recursive, by extension, sorted) or listed in a text file (one path per
    line, relative paths resolved against the file's folder, `#` comments and blank lines ignored)."""
    source = Path(source)
    if source.is_dir():
        return video_files(source)
    if not source.is_file():
        raise InputError(f"{source}: no such folder or list file")
    videos = []
    for lineno, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line)
        path = path if path.is_absolute() else source.parent / path
        if path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise InputError(
                f"{source}:{lineno}: {line!r} is not a video file ({', '.join(VIDEO_EXTENSIONS)})"
            )
        videos.append(path)
    return videos


def _video_ids(videos: list[Path]) -> list[str]:
    seen: dict[str, Path] = {}
    for path in videos:
        if path.stem in seen:
            raise InputError(f"two videos share the id {path.stem!r}: {seen[path.stem]} and {path}")
        seen[path.stem] = path
    return list(seen)


def _parts(extractor: FrameExtractor) -> list[FrameExtractor]:
    return list(extractor.parts) if isinstance(extractor, ConcatExtractor) else [extractor]


def set_input_size(extractor: FrameExtractor, size: int) -> None:
    """Make every part that accepts any input size (all but CLIP) expect `size x size` frames."""
    for part in _parts(extractor):
        if part.name != "clip":
            part.size = size
    if isinstance(extractor, ConcatExtractor):
        extractor.size = max(p.size for p in extractor.parts)


def _build(spec: str, weights: str | dict | None) -> FrameExtractor:
    if isinstance(weights, str):
        names = [item.partition(":")[0] for item in spec.split("+")]
        weighted = [n for n in names if n in _WEIGHTED]
        if len(weighted) != 1:
            raise InputError(f"--weights PATH needs exactly one of {_WEIGHTED} in the spec {spec!r}")
        weights = {weighted[0]: weights}
    return build_extractor(spec, **(weights or {}))


@torch.inference_mode()
def _extract_one(path: Path, extractor: FrameExtractor, interval: float, batch_size: int) -> np.ndarray:
    feats = []
    for clips, _ in iter_windows(path, interval, extractor.frames_per_window, extractor.size, batch_size):
        feats.append(extractor(torch.from_numpy(clips)).float().numpy())  # (B, dim)
    return np.concatenate(feats, axis=0)  # (N, dim)


def extract_features(
    videos: Iterable[str | Path],
    out: str | Path,
    extractor: str | FrameExtractor = "mobilenet_v2+motion",
    interval: float = 1.5,
    size: int | None = None,
    shard_size: int = 64,
    skip_bad: bool = False,
    batch_size: int = 32,
    weights: str | dict[str, str] | None = None,
    dtype: str = "float16",
    progress: bool = True,
) -> ExtractReport:
    """Extract features of `videos` into the feature store at `out` (created or resumed).

    `extractor` is a spec for `build_extractor` or a ready FrameExtractor; `weights` is a path for the
    spec's one weighted part (mobilenet_v2 weights, CLIP directory) or a {name: path} dict; `size`
    overrides the frame size of the parts that accept any size.
    """
    start = time.perf_counter()
    videos = [Path(v) for v in videos]
    out = Path(out)
    ids = _video_ids(videos)
    if extractor == oracle.NAME:  # ground truth read from the demo corpus's scripts, not from pixels
        model = None
        name, dim = oracle.NAME, oracle.DIM
        details = {"source": "corpus scripts"}
    else:
        model = _build(extractor, weights) if isinstance(extractor, str) else extractor
        if size is not None:
            set_input_size(model, size)
        name, dim = model.name, model.dim
        details = {
            "size": int(model.size),
            "part_sizes": [int(p.size) for p in getattr(model, "parts", [model])],
            "frames_per_window": int(model.frames_per_window),
            "sampling": "fixed-rate windows; frames at the centres of equal sub-windows",
        }
    report = ExtractReport(out=out, total=len(videos))
    with FeatureWriter(out, dim, dtype, interval, name, shard_size, details) as writer:
        todo = [(vid, path) for vid, path in zip(ids, videos) if vid not in writer]
        report.skipped = len(videos) - len(todo)
        if report.skipped:
            log.info("resuming %s: %d of %d videos already extracted", out, report.skipped, len(videos))
        bar = tqdm(todo, desc=f"features {name}", unit="video", disable=not progress)
        for vid, path in bar:
            try:
                info = probe(path)
                if model is None:
                    script = oracle.load_script(oracle.script_path(path))
                    feats = oracle.oracle_features(script, interval, info.duration)
                else:
                    feats = _extract_one(path, model, interval, batch_size)
            except InputError as e:
                report.bad.append({"video": str(path), "id": vid, "error": str(e)})
                write_json(out / BAD_VIDEOS_FILE, report.bad)
                if not skip_bad:
                    raise
                log.warning("skipping bad video: %s", e)
                bar.set_postfix(bad=len(report.bad))
                continue
            writer.add(
                vid, feats, meta={"path": str(path), "duration": info.duration, "num_windows": len(feats)}
            )
            report.extracted += 1
            report.video_seconds += info.duration
    write_json(out / BAD_VIDEOS_FILE, report.bad)
    report.wall_seconds = time.perf_counter() - start
    return report
