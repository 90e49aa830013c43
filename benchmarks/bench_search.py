"""Moment-search benchmark: index build and query latency on a corpus folder, on realistic synthetic
indexes of 1M and 10M frame vectors, and on hour-long videos, all through `build_index` and `Searcher`.

    python benchmarks/bench_search.py                                  # demo corpus, 1M, 10M, long videos
    python benchmarks/bench_search.py --corpus none --realistic 10000 --long-videos 0   # 1M only

Part 1 (real): an index of the corpus's videos with the subtitle-only baseline (videos/s, frames/s),
its TVR queries (repeated to --queries) through `Searcher.search`, exact and approximate: latency
p50/p99 (ms, including query encoding) and video R@10.

Part 2 (realistic synthetic, --realistic): N videos of ~--frames frames (d = --dim, 256 by default)
from `RealisticEncoder` (topics, scenes, near-duplicate consecutive frames; uniform random vectors
would be IVF's worst case), built by `build_index` (so the automatic choice, the IVF training and the
nprobe calibration are the product's), queried through `Searcher.search`: p50/p99, video recall@10
against exact search, raw frame recall@10 of the IVF-SQ8 index, the process's memory, build time.
The synthetic indexes are kept under --workdir (10M x 256 float32 is 10 GB of shards on disk).

Part 3 (--long-videos): one-hour videos: query latency (moment decoding is linear in length).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import machine_line, publish, target_line


def _pct(times_s: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(times_s) * 1000.0, q))


def bench_corpus(corpus: Path, num_queries: int, approx: str) -> list[tuple]:
    from tempovl.io import read_jsonl
    from tempovl.search.encoders import SubtitleEncoder
    from tempovl.search.index import build_index
    from tempovl.search.searcher import Searcher, video_recall

    encoder = SubtitleEncoder()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        report = build_index(
            [corpus / "videos"],
            Path(tmp) / "index",
            encoder,
            subtitles_dir=corpus / "subtitles",
            approx=approx,
        )
        rows.append(
            (
                f"build {corpus.name} ({report.encoded} videos, {report.frames} frames)",
                f"{report.encoded / report.seconds:.1f} videos/s",
                f"{report.frames / report.seconds:.0f} frames/s",
                f"{report.seconds:.1f} s",
            )
        )
        searcher = Searcher(Path(tmp) / "index", encoder=encoder)
        queries = [
            q
            for split in ("train", "val", "test")
            if (corpus / "annotations" / f"tvr_{split}.jsonl").is_file()
            for q in read_jsonl(corpus / "annotations" / f"tvr_{split}.jsonl")
        ]
        for use_approx in (False, True):
            times, ranked = [], {}
            searcher.search(queries[0]["desc"], k=10, approx=use_approx)  # warm-up (loads the index)
            for i in range(num_queries):
                q = queries[i % len(queries)]
                t0 = time.perf_counter()
                hits = searcher.search(q["desc"], k=10, approx=use_approx)
                times.append(time.perf_counter() - t0)
                ranked[q["desc_id"]] = [h.video for h in hits]
            recall = video_recall(ranked, queries, ks=(10,))["r10"]
            kind = approx if use_approx else "exact"
            rows.append(
                (
                    f"query {corpus.name} ({kind}, {num_queries} queries)",
                    f"p50 {_pct(times, 50):.1f} ms",
                    f"p99 {_pct(times, 99):.1f} ms",
                    f"R@10 {recall:.1f} % (video in top-10 moments)",
                )
            )
    return rows


class RealisticEncoder:
    """A stand-in moment encoder whose videos and queries are realistic frame embeddings, made from
    the file name, so that a synthetic index goes through `build_index` and `Searcher` like a real one.

    Video "v{n}" belongs to one of `topics` topics; its frames come in scenes (mean 8 frames): a scene
    vector near the video's centre, its frames near-duplicates of it (clustered, consecutive frames
    alike, as real footage). The query "v{n} s{k}" is a noisy copy of scene k of video n (a text
    query near one moment); any other text is a random direction (a query about nothing indexed).
    Uniform random vectors would be IVF's worst case and mislead.
    """

    name = spec = "realistic-synthetic"
    fingerprint = "realistic-synthetic-v1"

    def __init__(self, dim: int = 256, frames: int = 100, topics: int = 1000, interval: float = 1.5):
        self.dim, self.frames, self.interval = dim, frames, interval
        rng = np.random.default_rng(12345)
        self.topics = _unit(rng.standard_normal((topics, dim)).astype(np.float32))

    def _video(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frame_embs (T, d), scene vectors (S, d), scene of each frame (T,)) of video n."""
        rng = np.random.default_rng(n)
        num = int(rng.integers(max(1, self.frames // 5), self.frames * 9 // 5 + 1))
        scene_of = np.cumsum(rng.random(num) < 1 / 8)  # (T,) a new scene every ~8 frames
        centre = _unit(self.topics[n % len(self.topics)] + 0.9 * _noise(rng, 1, self.dim))
        scenes = _unit(centre + 0.8 * _noise(rng, int(scene_of[-1]) + 1, self.dim))  # (S, d)
        frames = _unit(scenes[scene_of] + 0.2 * _noise(rng, num, self.dim))  # (T, d)
        return frames, scenes, scene_of

    def num_scenes(self, n: int) -> int:
        return len(self._video(n)[1])

    def encode_video(self, video_path, subtitles):
        from tempovl.search.encoders import VideoEncoding

        frames, _, _ = self._video(int(Path(video_path).stem[1:]))
        starts = np.arange(len(frames)) * self.interval
        spans = np.stack([starts, starts + self.interval], axis=1).astype(np.float32)  # (T, 2)
        return VideoEncoding(frames, spans, float(spans[-1, 1]))

    def encode_query(self, texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:
            parts = text.split()
            if len(parts) != 2 or not all(p[0] in "vs" and p[1:].isdigit() for p in parts):
                rng = np.random.default_rng(list(text.encode()))  # not a query of a scene: a random direction
                out.append(_unit(_noise(rng, 1, self.dim))[0])
                continue
            video, scene = (int(part[1:]) for part in parts)
            _, scenes, _ = self._video(video)
            rng = np.random.default_rng([video, scene])
            out.append(_unit(scenes[scene % len(scenes)] + 0.6 * _noise(rng, 1, self.dim))[0])
        return np.stack(out).astype(np.float32)  # (Q, d)

    def localize(self, query_vec, frame_embs):
        sim = np.asarray(frame_embs, dtype=np.float64) @ np.asarray(query_vec, dtype=np.float64)  # (T,)
        probs = np.exp(10 * (sim - sim.max()))
        return probs / probs.sum(), probs / probs.sum()


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def _noise(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    return rng.standard_normal((n, dim), dtype=np.float32) / np.sqrt(dim)


def _memory_gib() -> dict[str, float]:
    """This process's resident memory in GiB: "anon" (its own heap: what must fit in RAM), "file"
    (pages of memory-mapped files, the shards and the index: the OS's page cache, dropped under
    pressure) and "peak" (VmHWM, high-water mark of both)."""
    status = Path("/proc/self/status").read_text()
    kb = {
        line.split(":")[0]: int(line.split()[1])
        for line in status.splitlines()
        if line.startswith(("Rss", "VmHWM"))
    }
    return {
        "anon": kb.get("RssAnon", 0) / 2**20,
        "file": kb.get("RssFile", 0) / 2**20,
        "peak": kb.get("VmHWM", 0) / 2**20,
    }


def bench_realistic(
    videos: int, frames: int, dim: int, num_queries: int, workdir: Path, seed: int
) -> list[tuple]:
    """Build an index of `videos` realistic synthetic videos with `build_index` (auto approximate
    index) and query it through `Searcher`: approximate (the default above the size threshold) and
    exact; recall@10 of videos and of raw frames against exact."""
    from tempovl.search.index import build_index, load_manifest
    from tempovl.search.searcher import Searcher

    encoder = RealisticEncoder(dim=dim, frames=frames)
    root = workdir / f"realistic-{videos}x{frames}-d{dim}"
    files = root / "videos"
    index = root / "index"
    files.mkdir(parents=True, exist_ok=True)
    for n in range(videos):  # empty stand-in files: the encoder makes the frames from the name
        path = files / f"{n // 1000:04d}" / f"v{n:07d}.mp4"
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            path.touch()
    t0 = time.perf_counter()
    report = build_index([files], index, encoder, shard_size=2000, progress=True)
    build_s = time.perf_counter() - t0
    manifest = load_manifest(index)
    approx = manifest["approx"]
    frames_total = sum(int(v["num_frames"]) for v in manifest["videos"].values())
    rows = [
        (
            f"build {videos:,} videos, {frames_total:,} frames, d={dim} ({report.frames:,} encoded now)",
            f"{build_s:.0f} s in all (this call)",
            f"approx index: {approx.get('how', '-')} in {approx.get('seconds', '-')} s",
            f"calibrated nprobe {approx.get('nprobe', '-')}, recall@10 {approx.get('recall', '-')}",
        )
    ]
    mem0 = _memory_gib()
    summary: dict = {}
    t0 = time.perf_counter()
    searcher = Searcher(index, encoder=encoder)
    searcher.search("v0 s0", k=10)  # opens the approximate index
    open_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, videos, num_queries)
    queries = [f"v{n} s{int(rng.integers(0, encoder.num_scenes(int(n))))}" for n in picks]
    vecs = searcher.encoder.encode_query(queries)  # (Q, d)
    exact_tops = searcher.ranker.exact(vecs, searcher.top_videos).videos[:, :10]  # one batched pass
    for mode in [None, False] if searcher.approximate else [False]:
        times, tops = [], []
        limit = num_queries if mode is not False or searcher.num_frames < 2_000_000 else min(num_queries, 20)
        for query, vec in zip(queries[:limit], vecs):
            t0 = time.perf_counter()
            searcher.search(query, k=10, approx=mode)
            times.append(time.perf_counter() - t0)
            tops.append(searcher.video_scores(vec, approx=mode)[0][:10])
        mem = _memory_gib()
        recall = np.mean([len(set(a.tolist()) & set(e.tolist())) / len(e) for a, e in zip(tops, exact_tops)])
        name = (
            "approximate (default)"
            if mode is None
            else "exact (--exact)"
            if searcher.approximate
            else "exact (default at this size)"
        )
        if mode is None or not searcher.approximate:
            summary.update(frames=searcher.num_frames, p50=_pct(times, 50), recall=recall, anon=mem["anon"])
        rows.append(
            (
                f"Searcher.search {name}, {len(times)} queries",
                f"p50 {_pct(times, 50):.1f} ms, p99 {_pct(times, 99):.1f} ms",
                f"video recall@10 vs exact {recall:.3f}",
                f"own memory {mem['anon']:.2f} GiB (+{mem['anon'] - mem0['anon']:.2f} for the Searcher); "
                f"mapped shards/index in page cache {mem['file']:.2f} GiB; peak of the run {mem['peak']:.2f} GiB",
            )
        )
    if searcher.approximate:  # raw frame recall of the IVF-SQ8 index itself, before the exact re-score
        ivf = searcher.ranker.ivf
        vecs = searcher.encoder.encode_query(queries[:50])  # (50, d)
        _, got = ivf.search(vecs, 10)
        got = searcher.data.frames_of_ids(got)
        best = np.full((len(vecs), 10), -1.0), np.zeros((len(vecs), 10), np.int64)
        offset = 0
        scores, frames_ = best
        for run in searcher.data.runs():
            sims = np.asarray(run.embs) @ vecs.T  # (n, Q)
            allv = np.concatenate([scores, sims.T], axis=1)
            allf = np.concatenate(
                [frames_, np.tile(np.arange(offset, offset + len(sims)), (len(vecs), 1))], axis=1
            )
            top = np.argpartition(-allv, 9, axis=1)[:, :10]  # the 10 best, any order
            scores, frames_ = np.take_along_axis(allv, top, 1), np.take_along_axis(allf, top, 1)
            offset += len(sims)
        recall = np.mean([len(set(g.tolist()) & set(e.tolist())) / 10 for g, e in zip(got, frames_)])
        rows.append(
            (
                "IVF-SQ8 raw frames (before re-score), 50 queries",
                f"nprobe {searcher.nprobe}",
                f"frame recall@10 vs exact {recall:.3f}",
                f"Searcher opened in {open_s:.1f} s",
            )
        )
    return rows, summary


def bench_long_videos(hours: float, videos: int, num_queries: int, workdir: Path) -> list[tuple]:
    """Query latency on an index of long videos: localising a moment inside a found video is linear in
    its length (the span-length band), so an hour costs what a minute's worth of short videos does."""
    from tempovl.search.index import build_index
    from tempovl.search.searcher import Searcher

    frames = int(hours * 3600 / 1.5)
    encoder = RealisticEncoder(dim=256, frames=frames * 5 // 9)  # lengths up to 1.8 x: about `hours`
    root = workdir / f"long-{videos}x{frames}"
    (root / "videos").mkdir(parents=True, exist_ok=True)
    for n in range(videos):
        (root / "videos" / f"v{n:07d}.mp4").touch()
    build_index([root / "videos"], root / "index", encoder, progress=False)
    searcher = Searcher(root / "index", encoder=encoder)
    longest = max(np.diff(searcher.data.video_offsets)) * 1.5 / 3600
    times = []
    for n in range(num_queries):
        t0 = time.perf_counter()
        searcher.search(f"v{n % videos} s{n}", k=10)
        times.append(time.perf_counter() - t0)
    return [
        (
            f"{videos} long videos (up to {longest:.2f} h, {searcher.num_frames:,} frames), {num_queries} queries",
            f"p50 {_pct(times, 50):.1f} ms",
            f"p99 {_pct(times, 99):.1f} ms",
            "moment decoding linear in length",
        )
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--corpus",
        default=None,
        help="a demo corpus folder (default: make one with --preset; 'none' skips part 1)",
    )
    p.add_argument("--preset", default="demo", help="corpus preset to make when --corpus is not given")
    p.add_argument("--queries", type=int, default=200, help="queries timed on the corpus index")
    p.add_argument(
        "--approx", default="ivf", choices=["ivf", "auto"], help="approximate index of the corpus index"
    )
    p.add_argument(
        "--realistic",
        default="10000,100000",
        help="synthetic realistic indexes: comma-separated video counts (x --frames mean frames; '' = skip)",
    )
    p.add_argument("--frames", type=int, default=100, help="mean frames per synthetic video")
    p.add_argument("--dim", type=int, default=256, help="synthetic embedding size")
    p.add_argument("--synthetic-queries", type=int, default=200)
    p.add_argument(
        "--long-videos", type=int, default=20, help="one-hour videos for the long-video row (0 = skip)"
    )
    p.add_argument("--workdir", default="runs/bench/search-data", help="where synthetic indexes are kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench/search.md")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    rows: list[tuple] = []
    if args.corpus != "none":
        corpus = Path(args.corpus) if args.corpus else Path("runs/bench") / f"corpus-{args.preset}"
        if not (corpus / "card.json").is_file():
            from tempovl.data.corpus import make_corpus

            make_corpus(corpus, preset=args.preset, seed=args.seed)
        rows += bench_corpus(corpus, args.queries, args.approx)
    workdir = Path(args.workdir)
    largest: dict = {}
    for videos in [int(v) for v in args.realistic.split(",") if v.strip()]:
        more, largest = bench_realistic(
            videos, args.frames, args.dim, args.synthetic_queries, workdir, args.seed
        )
        rows += more
        for row in rows[-4:]:
            print("| " + " | ".join(row) + " |", flush=True)
    if args.long_videos > 0:
        rows += bench_long_videos(1.0, args.long_videos, 50, workdir)

    lines = ["| what | a | b | c |", "|---|---|---|---|"] + ["| " + " | ".join(r) + " |" for r in rows]
    command = " ".join(argv if argv is not None else sys.argv[1:])
    if largest.get("frames", 0) >= 10_000_000:
        target = target_line(
            "at 10M frames through Searcher: p50 < 50 ms, video recall@10 >= 0.95, fits in memory",
            f"p50 {largest['p50']:.1f} ms, recall {largest['recall']:.3f}, own memory {largest['anon']:.2f} GiB "
            f"at {largest['frames']:,} frames",
            largest["p50"] < 50 and largest["recall"] >= 0.95 and largest["anon"] < 16,
        )
    else:
        target = "target: p50 < 50 ms and recall@10 >= 0.95 at 10M frames; not measured in this run"
    publish(
        f"# bench_search ({command})\n\n{machine_line()}\n\n" + "\n".join(lines) + f"\n\n{target}\n", args.out
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
