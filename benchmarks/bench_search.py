"""Moment-search benchmark: index build throughput and query latency on a corpus folder, and exact vs
approximate faiss search on a large synthetic index.

    python benchmarks/bench_search.py                              # demo corpus + 100k x 100 synthetic
    python benchmarks/bench_search.py --corpus runs/corpus/demo --videos 2000 --out runs/bench/search.md

Part 1 (real): builds an index of the corpus's videos with the subtitle-only baseline (videos/s,
frames/s), then runs its TVR queries (repeated to --queries) through `Searcher.search`, exact and
approximate: latency p50/p99 (ms, including query encoding) and video R@10.

Part 2 (synthetic): --videos x --frames random unit vectors of dimension --dim (default 64: 100k x
100 frames = 10M vectors is 2.6 GB at d=64, but 15 GB at the baseline's d=384, too big for RAM).
Frames of a video scatter around a random video centre (so a video is a cluster, like real footage);
queries are noisy copies of random frames. For each faiss kind: build time, and per query the top-10
videos by max frame score (`rank_videos`, as the searcher does): latency p50/p99 and recall@10 of
the approximate top-10 videos against the exact ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


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


def synthetic_frames(videos: int, frames: int, dim: int, spread: float, seed: int) -> np.ndarray:
    """(videos * frames, dim) unit vectors clustered per video, made in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    out = np.empty((videos * frames, dim), dtype=np.float32)
    chunk = max(1, 200_000 // frames)
    for v0 in range(0, videos, chunk):
        n = min(chunk, videos - v0)
        centres = rng.standard_normal((n, 1, dim), dtype=np.float32)  # (n, 1, d)
        block = centres + spread * rng.standard_normal((n, frames, dim), dtype=np.float32)  # (n, F, d)
        block /= np.linalg.norm(block, axis=-1, keepdims=True)
        out[v0 * frames : (v0 + n) * frames] = block.reshape(n * frames, dim)  # (n * F, d)
    return out


def bench_synthetic(
    videos: int, frames: int, dim: int, num_queries: int, kinds: list[str], nprobes: list[int], seed: int
) -> list[tuple]:
    from tempovl.search.index import build_faiss
    from tempovl.search.searcher import rank_videos

    t0 = time.perf_counter()
    embs = synthetic_frames(videos, frames, dim, spread=0.8, seed=seed)
    frame_video = np.repeat(np.arange(videos, dtype=np.int32), frames)  # (N,)
    rows = [
        (
            f"synthetic {videos} videos x {frames} frames, d={dim}",
            f"{len(embs):,} vectors",
            f"{embs.nbytes / 2**30:.2f} GiB",
            f"made in {time.perf_counter() - t0:.1f} s",
        )
    ]
    rng = np.random.default_rng(seed + 1)
    picks = rng.integers(0, len(embs), num_queries)
    queries = embs[picks] + 0.5 * rng.standard_normal((num_queries, dim), dtype=np.float32) / np.sqrt(dim)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact_top = None
    for kind in ["exact"] + [k for k in kinds if k != "exact"]:
        t0 = time.perf_counter()
        index = build_faiss(kind, embs, seed=seed)
        build_s = time.perf_counter() - t0
        for nprobe in nprobes if kind == "ivf" else [0]:
            times, tops = [], []
            for q in queries:
                t0 = time.perf_counter()
                top, _ = rank_videos(index, q, frame_video, want=10, nprobe=nprobe)
                times.append(time.perf_counter() - t0)
                tops.append(set(top.tolist()))
            if kind == "exact":
                exact_top = tops
                recall = 100.0
            else:
                recall = 100.0 * float(
                    np.mean([len(a & e) / max(1, len(e)) for a, e in zip(tops, exact_top)])
                )
            label = f"{kind} nprobe {nprobe}/{index.nlist}" if kind == "ivf" else kind
            rows.append(
                (
                    f"search {label} (built in {build_s:.1f} s)",
                    f"p50 {_pct(times, 50):.1f} ms",
                    f"p99 {_pct(times, 99):.1f} ms",
                    f"recall@10 vs exact {recall:.1f} %",
                )
            )
        del index
    return rows


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
        "--approx", default="hnsw", choices=["hnsw", "ivf"], help="approximate kind for the corpus index"
    )
    p.add_argument("--videos", type=int, default=100_000, help="synthetic videos (0 = skip part 2)")
    p.add_argument("--frames", type=int, default=100, help="frames per synthetic video")
    p.add_argument("--dim", type=int, default=64, help="synthetic embedding size")
    p.add_argument("--synthetic-queries", type=int, default=200)
    p.add_argument(
        "--kinds", default="ivf", help="approximate faiss kinds for part 2: ivf and/or hnsw (slow to build)"
    )
    p.add_argument("--nprobe", default="16,64", help="IVF lists probed per query (comma-separated)")
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
    if args.videos > 0:
        rows += bench_synthetic(
            args.videos,
            args.frames,
            args.dim,
            args.synthetic_queries,
            args.kinds.split(","),
            [int(n) for n in args.nprobe.split(",")],
            args.seed,
        )

    lines = ["| what | a | b | c |", "|---|---|---|---|"] + ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines)
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    from tempovl.io import atomic_open

    with atomic_open(args.out, "w", encoding="utf-8") as f:
        f.write(f"# bench_search ({' '.join(argv if argv is not None else sys.argv[1:])})\n\n{table}\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
