"""`tempovl features extract VIDEOS OUT ...` and `tempovl features info OUT`."""

from __future__ import annotations

import argparse
import logging

from tempovl.errors import InputError

log = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser, name: str) -> None:
    sub = parser.add_subparsers(dest="features_command", required=True, metavar="ACTION")
    ex = sub.add_parser("extract", help="extract per-window features of videos into a sharded store")
    ex.add_argument(
        "videos",
        help="a folder (searched recursively for video files, tempovl.data.video.VIDEO_EXTENSIONS) or a text file of paths",
    )
    ex.add_argument("out", help="output feature store folder (resumed if it exists)")
    ex.add_argument(
        "--preset",
        default=None,
        metavar="CONFIG",
        help="take --extractor, --interval and --size from a config preset's data section (e.g. "
        "hero-tiny-vcmr), so the features are what its checkpoints expect; explicit flags still win",
    )
    ex.add_argument(
        "--extractor",
        default=None,
        help="extractor spec, parts joined by '+': mobilenet_v2, motion, colour, random2d, clip:/path "
        "(default mobilenet_v2+motion); 'oracle' writes the demo corpus's ground truth instead (an upper bound)",
    )
    ex.add_argument(
        "--interval", type=float, default=None, help="seconds per feature-frame (default 1.5, HERO's TV)"
    )
    ex.add_argument(
        "--size", type=int, default=None, help="frame side in pixels (default: the extractor's, 224)"
    )
    ex.add_argument("--shard-size", type=int, default=64, help="videos per shard")
    ex.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    ex.add_argument("--dtype", choices=("float16", "float32"), default="float16", help="stored dtype")
    ex.add_argument("--skip-bad", action="store_true", help="list bad videos in bad_videos.json and go on")
    ex.add_argument(
        "--weights",
        action="append",
        default=None,
        metavar="[NAME=]PATH",
        help="weights for mobilenet_v2 (.pth) or clip (model folder); NAME=PATH when the spec has both",
    )
    ex.add_argument("--no-progress", action="store_true", help="no progress bar")
    ex.set_defaults(func=_extract)
    info = sub.add_parser("info", help="summarise a feature store")
    info.add_argument("store", help="feature store folder")
    info.set_defaults(func=_info)


def _weights(values: list[str] | None) -> str | dict[str, str] | None:
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    out = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            raise InputError(f"--weights {value!r}: use NAME=PATH when giving several")
        out[name] = path
    return out


def preset_extraction(preset: str) -> tuple[str | None, float | None, int | None]:
    """(extractor, interval, frame size) a config preset's data section names (None where it is silent)."""
    from tempovl.config import load_config

    data = load_config(preset).get("data") or {}
    size = data.get("extract_size")
    return data.get("extractor"), data.get("interval"), int(size) if size else None


def _extract(args: argparse.Namespace) -> int:
    from tempovl.data.features.extract import extract_features, find_videos

    videos = find_videos(args.videos)
    if not videos:
        raise InputError(f"{args.videos}: no videos found")
    extractor, interval, size = preset_extraction(args.preset) if args.preset else (None, None, None)
    report = extract_features(
        videos,
        args.out,
        extractor=args.extractor or extractor or "mobilenet_v2+motion",
        interval=args.interval or interval or 1.5,
        size=args.size or size,
        shard_size=args.shard_size,
        skip_bad=args.skip_bad,
        batch_size=args.batch_size,
        weights=_weights(args.weights),
        dtype=args.dtype,
        progress=not args.no_progress,
    )
    speed = report.video_seconds / max(report.wall_seconds, 1e-9)
    print(
        f"{args.out}: {report.extracted} extracted, {report.skipped} already there, {len(report.bad)} bad "
        f"of {report.total}; {report.video_seconds:.0f} video-s in {report.wall_seconds:.1f} s ({speed:.1f}x)"
    )
    if report.bad:
        print(f"bad videos listed in {args.out}/bad_videos.json")
    return 0


def _info(args: argparse.Namespace) -> int:
    from tempovl.data.features.store import FeatureStore

    store = FeatureStore(args.store)
    lengths = [store.num_frames(k) for k in store.keys()]
    print(f"{args.store}: {len(store)} videos, dim {store.dim}, {store.dtype}, interval {store.interval}s")
    print(
        f"extractor {store.extractor}; feature-frames per video: {min(lengths, default=0)}-{max(lengths, default=0)}"
    )
    return 0
