"""Feature-extraction throughput (video-seconds per wall-second) per extractor.

    python benchmarks/bench_extract.py [VIDEOS_DIR] [--extractors random2d+motion mobilenet_v2+motion]
        [--limit N] [--out runs/bench/extract.md]

VIDEOS_DIR defaults to a few synthetic mp4s written here with PyAV (moving squares, 128x128, 8 fps).
Each extractor writes a fresh store in a temporary folder; decode + extract + write are all timed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
from machine import machine_line, publish, target_line

from tempovl.data.features.extract import extract_features, find_videos

TARGET_EXTRACTOR, TARGET_SPEED = "mobilenet_v2+motion", 100.0  # issue 16, the README's settings


def make_videos(folder: Path, count: int = 4, seconds: int = 30, fps: int = 8, size: int = 128) -> list[Path]:
    """Demo-like videos: a few coloured squares moving over a background."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for v in range(count):
        path = folder / f"bench{v}.mp4"
        container = av.open(str(path), "w")
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        colours = rng.integers(0, 256, (3, 3), dtype=np.uint8)
        for t in range(seconds * fps):
            img = np.full((size, size, 3), 30 + 20 * v, np.uint8)
            for k, colour in enumerate(colours):
                x = int((size - 24) * (0.5 + 0.5 * np.sin(t / (10 + 5 * k) + k)))
                img[20 + 30 * k : 44 + 30 * k, x : x + 24] = colour
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        container.close()
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("videos", nargs="?", help="folder of videos (default: synthetic ones)")
    parser.add_argument(
        "--extractors", nargs="+", default=["random2d+motion", "mobilenet_v2", "mobilenet_v2+motion"]
    )
    parser.add_argument("--limit", type=int, default=None, help="use at most N videos")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224, help="frame size fed to the 2D backbone")
    parser.add_argument("--out", default="runs/bench/extract.md")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        videos = find_videos(args.videos) if args.videos else make_videos(Path(tmp) / "videos")
        videos = videos[: args.limit] if args.limit else videos
        rows = []
        for spec in args.extractors:
            report = extract_features(
                videos, Path(tmp) / spec.replace(":", "_").replace("/", "_"), spec,
                size=args.size, batch_size=args.batch_size, progress=False,
            )  # fmt: skip
            speed = report.video_seconds / report.wall_seconds
            rows.append((spec, report.extracted, report.video_seconds, report.wall_seconds, speed))
    header = f"extraction throughput at {args.size} px, {len(videos)} videos, {os.cpu_count()} CPUs"
    lines = [
        header,
        "",
        "| extractor | videos | video s | wall s | video-s / wall-s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {s} | {n} | {vs:.1f} | {ws:.2f} | {sp:.1f} |" for s, n, vs, ws, sp in rows]
    for s, _, _, _, sp in rows:
        if s == TARGET_EXTRACTOR:
            target = f"{s} at 224 px on 2 cores >= {TARGET_SPEED:g} video-s / wall-s"
            lines += ["", target_line(target, f"{sp:.1f} at {args.size} px", sp >= TARGET_SPEED)]
    lines += ["", machine_line()]
    publish("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
