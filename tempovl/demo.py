"""`tempovl demo OUT`: the quick-start pipeline on the demo corpus, end to end, with progress shown.

Steps (each is resumable: re-running skips what is already done):
1. generate the demo corpus (real mp4 + SRT + annotations) into OUT/corpus;
2. validate every annotation file against the videos;
3. extract HERO-style frame features (ImageNet MobileNetV2 2D + a motion descriptor, one per 1.5 s)
   into the sharded feature store OUT/features.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

from tempovl.errors import InputError


def _step(title: str, fn: Callable[[], str]) -> None:
    print(f"\n== {title}", flush=True)
    t0 = time.perf_counter()
    summary = fn()
    print(f"   {summary} ({time.perf_counter() - t0:.1f} s)", flush=True)


def make_corpus_step(out: Path, preset: str, seed: int) -> str:
    from tempovl.data.corpus import make_corpus

    card_path = out / "card.json"
    if card_path.exists():
        card = json.loads(card_path.read_text())
        if card.get("preset") == preset and card.get("seed") == seed:
            return f"corpus already at {out} (preset {preset}, seed {seed})"
        raise InputError(f"{out} holds a corpus of another preset/seed; choose another OUT")
    card = make_corpus(out, preset=preset, seed=seed, progress=True)
    return f"{sum(card['videos'].values())} videos, vocabulary {card['vocab_size']} words -> {out}"


def validate_step(corpus: Path) -> str:
    from tempovl.data.annotations import validate_corpus

    problems = validate_corpus(corpus)
    if problems:
        raise InputError(f"{corpus}: {len(problems)} annotation problems, first: {problems[0]}")
    return "all annotation files valid"


def features_step(corpus: Path, out: Path, extractor: str, size: int) -> str:
    from tempovl.data.features.extract import extract_features, find_videos

    report = extract_features(
        find_videos(corpus / "videos"), out, extractor=extractor, interval=1.5, size=size
    )
    return f"{report.total} videos in the feature store {out} ({extractor})"


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    corpus, features = out / "corpus", out / "features"
    t0 = time.perf_counter()
    _step(
        f"1. demo corpus (preset {args.preset}, seed {args.seed})",
        lambda: make_corpus_step(corpus, args.preset, args.seed),
    )
    _step("2. validate annotations", lambda: validate_step(corpus))
    _step("3. frame features", lambda: features_step(corpus, features, args.extractor, args.size))
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s; outputs in {out}")
    return 0


def register(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("out", nargs="?", default="runs/demo", help="output folder (default: runs/demo)")
    parser.add_argument("--preset", default="demo", help="corpus preset (tiny for a quick look)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extractor", default="mobilenet_v2+motion", help="frame feature extractor spec")
    parser.add_argument(
        "--size", type=int, default=128, help="frame size for the 2D backbone (the demo videos are 128x128)"
    )
    parser.set_defaults(func=run)
