"""The synthetic demo corpus: real mp4 videos of coloured shapes acting in rooms, SRT dialogue, and
annotations in the public formats (TVR, TVQA, VIOLIN, TVC, caption pairs, SSv2-Template, DiDeMo,
MSR-VTT). Deterministic from a seed. Layout: docs/demo-corpus.md.

    from tempovl.data.corpus import make_corpus
    card = make_corpus("data/demo", preset="demo", seed=0)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tempovl.data.corpus.formats import (
    LABELLED,
    build_annotations,
    card_markdown,
    make_card,
    srt_text,
    write_annotation_files,
)
from tempovl.data.corpus.language import add_dialogue
from tempovl.data.corpus.world import Script, make_multi_script, make_single_script
from tempovl.errors import InputError
from tempovl.io import atomic_open, write_json

__all__ = ["PRESETS", "Preset", "build_scripts", "make_corpus"]


@dataclass(frozen=True)
class Preset:
    size: int  # frame width = height, pixels
    fps: float
    multi: tuple[int, int, int]  # train, val, test multi-channel videos
    pretrain: int
    single: tuple[int, int, int]  # train, val, test single-channel clips
    multi_duration: tuple[float, float]  # seconds, uniform
    single_duration: tuple[float, float]


PRESETS: dict[str, Preset] = {
    "tiny": Preset(64, 3.0, (4, 2, 2), 4, (4, 1, 1), (20.0, 30.0), (10.0, 15.0)),
    "demo": Preset(128, 4.0, (60, 15, 15), 40, (40, 10, 10), (30.0, 90.0), (10.0, 30.0)),
    "large": Preset(128, 4.0, (400, 80, 80), 300, (300, 60, 60), (30.0, 90.0), (10.0, 30.0)),
    # the learning benchmark: demo's video lengths, evaluation splits large enough to tell methods apart
    # (60 test videos, > 400 test TVR queries), a train split small enough to render and extract on a
    # 2-core CPU in a few minutes (312 videos in all)
    "bench": Preset(128, 4.0, (120, 60, 60), 40, (16, 8, 8), (30.0, 90.0), (10.0, 30.0)),
    # single-channel clips only, 6-10 s, one or two actions each: SSv2-Template-style action retrieval
    "actions": Preset(128, 4.0, (0, 0, 0), 0, (400, 60, 60), (30.0, 90.0), (6.0, 10.0)),
}


def _preset(preset: str | Preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise InputError(f"unknown corpus preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def build_scripts(preset: str | Preset = "demo", seed: int = 0) -> dict[str, list[Script]]:
    """Every video's ground-truth script (with dialogue), by split; nothing is rendered or written.

    Each video draws from its own generator seeded by (seed, stream, index), so a video does not
    change when others are added.
    """
    p = _preset(preset)
    splits: dict[str, list[Script]] = {}
    index = 0
    for split, n in zip((*LABELLED, "pretrain"), (*p.multi, p.pretrain)):
        prefix = "pt" if split == "pretrain" else "tv"
        splits[split] = []
        for _ in range(n):
            i = index if prefix == "tv" else len(splits[split])
            rng = np.random.default_rng([seed, 0 if prefix == "tv" else 1, i])
            script = make_multi_script(rng, f"{prefix}{i:05d}", rng.uniform(*p.multi_duration), p.fps, p.size)
            add_dialogue(rng, script)
            splits[split].append(script)
            index += prefix == "tv"
    index = 0
    for split, n in zip(LABELLED, p.single):
        splits[f"single_{split}"] = []
        for _ in range(n):
            rng = np.random.default_rng([seed, 4, index])
            splits[f"single_{split}"].append(
                make_single_script(rng, f"sc{index:05d}", rng.uniform(*p.single_duration), p.fps, p.size)
            )
            index += 1
    return splits


def make_corpus(
    out_dir: str | os.PathLike,
    preset: str = "demo",
    seed: int = 0,
    progress: bool = True,
    force: bool = False,
) -> dict:
    """Generate the corpus into `out_dir` and return its card.

    Everything is written into a temporary folder beside `out_dir` and renamed at the end, so an
    interrupted run leaves nothing half-made. A non-empty `out_dir` is refused unless `force`.
    """
    from tempovl.data.corpus.render import render_video

    out = Path(out_dir)
    p = _preset(preset)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise InputError(f"{out}: exists and is not empty; pass --force (force=True) to replace it")
    splits = build_scripts(p, seed)
    files, meta = build_annotations(splits, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        scripts = [s for v in splits.values() for s in v]
        (tmp / "videos").mkdir()
        (tmp / "subtitles").mkdir()
        (tmp / "script").mkdir()
        bar = _progress(scripts, progress)
        for script in bar:
            render_video(script, tmp / "videos" / f"{script.vid_name}.mp4")
            if script.kind == "multi":
                with atomic_open(tmp / "subtitles" / f"{script.vid_name}.srt", "w", encoding="utf-8") as f:
                    f.write(srt_text(script))
            write_json(tmp / "script" / f"{script.vid_name}.json", script.to_json(), indent=1)
        write_annotation_files(tmp, files, meta)
        write_json(tmp / "splits.json", {k: [s.vid_name for s in v] for k, v in splits.items()})
        name = preset if isinstance(preset, str) else "custom"
        card = make_card(name, seed, splits, files, meta, asdict(p))
        write_json(tmp / "card.json", card)
        with atomic_open(tmp / "CARD.md", "w", encoding="utf-8") as f:
            f.write(card_markdown(card))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return card


def _progress(items: list, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="rendering videos", unit="video")
