"""Text in, moments out: VCMR-style search over an index (HERO appendix A.3/A.6, TVR's protocol).

1. The queries of a batch are encoded in one pass. A video's global score is the max over its frames
   of the query-frame similarity (tempovl.search.ann): computed exactly over the memory-mapped
   frames, or, where the index built an approximate index (large indexes), through IVF-HNSW-SQ8
   candidates re-scored exactly.
2. The `top_videos` best videos (score, then video id, so ties are deterministic) are kept.
3. Inside each, the encoder gives start/end probabilities over frames and the decoder of
   `tempovl evaluate` (tempovl.metrics.spans.top_spans) ranks every span [i, j] (frames, inclusive)
   allowed by the span-length window min_span_frames <= j - i < max_span_frames by st[i] * ed[j].
   The window is the checkpoint task's (`encoder.span_frames`, as `tempovl evaluate` uses it) or,
   for an encoder without one, any span from a single frame up; either way capped so that a moment
   lasts at most `max_moment_s`. The window bounds a span's length, so this is linear in the video's
   length (an hour-long video costs what 20 short ones do). The video's `per_video` best spans become candidates ranked by
   exp(video_temperature * video_score) * st[i] * ed[j] (TVR/HERO:
   the video score times the moment probability, so a moment in a better video ranks higher). The
   reported score is its log divided by video_temperature: video_score + log(st * ed) / temperature,
   the same order on a readable scale (the video's cosine minus a localisation penalty).
4. Temporal NMS at tIoU 0.5 inside each video (tempovl.metrics.moment.nms_moments); the best k remain.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tempovl.errors import ConfigError, InputError
from tempovl.metrics.moment import nms_moments
from tempovl.metrics.spans import top_spans
from tempovl.search.ann import Ranking, VideoRanker, build_ivf
from tempovl.search.encoders import MomentEncoder, build_encoder
from tempovl.search.index import IndexData, check_encoder


@dataclass
class Hit:
    """One retrieved moment. `video_idx` is the video's number in the index (the HTTP id)."""

    rank: int
    video: str
    video_idx: int
    path: str
    start: float
    end: float
    score: float
    video_score: float
    duration: float
    subtitles: list[dict] = field(default_factory=list)  # {start, end, text, speaker} near the moment

    def to_dict(self) -> dict:
        """A JSON-ready copy (shallow but for the subtitles, which are copied: a fast path for the
        service, as `dataclasses.asdict` deep-copies through every field)."""
        out = dict(self.__dict__)
        out["subtitles"] = [dict(s) for s in self.subtitles]
        return out


class Searcher:
    """Search an index folder: `Searcher(index_dir).search("where does Dana say hello", k=10)`.

    `encoder` defaults to the one recorded in the index manifest; one given explicitly must match it.
    `min_span_frames` / `max_span_frames` override the span-length window (module docstring, step 3).
    `nprobe` defaults to the one calibrated when the index was built. Thread-safe for concurrent
    `search` calls; results are deterministic.
    """

    def __init__(
        self,
        index_dir: str | os.PathLike,
        encoder: MomentEncoder | None = None,
        top_videos: int = 20,
        per_video: int = 10,
        max_moment_s: float = 30.0,
        video_temperature: float = 20.0,
        nprobe: int | None = None,
        context_s: float = 5.0,
        min_span_frames: int | None = None,
        max_span_frames: int | None = None,
    ):
        self.index_dir = Path(index_dir)
        self.data = IndexData.load(self.index_dir)
        self.manifest = self.data.manifest
        self.encoder = encoder if encoder is not None else build_encoder(self.manifest["encoder"]["spec"])
        check_encoder(self.manifest, self.encoder, str(self.index_dir))
        self.top_videos = top_videos
        self.per_video = per_video
        self.max_moment_s = max_moment_s
        self.video_temperature = video_temperature
        approx_info = self.manifest.get("approx") or {}
        self.nprobe = int(nprobe or approx_info.get("nprobe") or 64)
        self.context_s = context_s
        self.min_span_frames, self.max_span_frames = self._span_frames(min_span_frames, max_span_frames)
        self.ranker = VideoRanker(self.data, nprobe=self.nprobe)
        self._approx_current = (
            approx_info.get("kind") == "ivf" and approx_info.get("revision") == self.manifest["revision"]
        )
        relevance = self.manifest.get("relevance") or {}
        # the best video score of a nonsense query rarely exceeds this (index.calibrate_relevance)
        self.threshold: float | None = relevance.get("threshold")
        self._lock = threading.Lock()
        self._subtitles: dict[str, list[dict]] = {}

    @property
    def num_videos(self) -> int:
        return len(self.data.video_ids)

    @property
    def num_frames(self) -> int:
        return self.data.num_frames

    @property
    def approximate(self) -> bool:
        """Whether searches use the approximate index by default (the index built one)."""
        return self._approx_current

    def video_path(self, video_idx: int) -> Path:
        """The indexed file of video number `video_idx` (IndexError when out of range)."""
        if not 0 <= video_idx < self.num_videos:
            raise IndexError(video_idx)
        return Path(self.manifest["videos"][self.data.video_ids[video_idx]]["path"])

    def _ivf(self):
        """The IVF index on disk if it is current, else one trained now (and kept)."""
        with self._lock:
            if self.ranker.ivf is None:
                import faiss

                path = self.index_dir / str((self.manifest.get("approx") or {}).get("file", "approx.faiss"))
                if self._approx_current and path.is_file():
                    self.ranker.ivf = faiss.read_index(
                        str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
                    )
                else:
                    self.ranker.ivf = build_ivf(self.data)
            return self.ranker.ivf

    def rank(self, query_vecs: np.ndarray, approx: bool | None = None) -> Ranking:
        """The best `top_videos` videos of each query (Q, d): approximately when `approx` (None: when
        the index has a current approximate index), else exactly."""
        want = min(self.top_videos, self.num_videos)
        if approx is None:
            approx = self._approx_current
        if approx:
            self._ivf()
            return self.ranker.approx(query_vecs, want)
        return self.ranker.exact(query_vecs, want)

    def video_scores(
        self, query_vec: np.ndarray, approx: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(video numbers, global scores) of the best `top_videos` videos for one query, best first."""
        ranking = self.rank(np.asarray(query_vec)[None], approx)
        keep = ranking.videos[0] >= 0
        return ranking.videos[0][keep], ranking.scores[0][keep]

    def _span_frames(self, min_frames: int | None, max_frames: int | None) -> tuple[int, int]:
        """The span-length window (min, max): min <= j - i < max (module docstring, step 3)."""
        spans = self.data.frame_spans
        interval = float((spans[:, 1] - spans[:, 0]).max()) if len(spans) else 1.0  # fixed-rate frames
        fit = max(1, math.floor(round(self.max_moment_s / interval, 6)))  # frames in max_moment_s
        own = getattr(self.encoder, "span_frames", None) or (0, fit)
        lo = int(own[0] if min_frames is None else min_frames)
        hi = min(int(own[1] if max_frames is None else max_frames), fit)
        if not 0 <= lo < hi:
            raise ConfigError(
                f"search: no moment fits the span-length window {lo} <= last - first frame < {hi} "
                f"(max_moment_s {self.max_moment_s} s = {fit} frames of {interval} s)"
            )
        return lo, hi

    def _moments(self, pairs: list[tuple[np.ndarray, int, float]]) -> list[list[list[float]]]:
        """For each (query vector, video, video score): its `per_video` best [video, start, end, score]
        rows. All pairs of a batch go through the decoder together, padded to the longest video of a
        chunk (chunks of similar length, at most ~256k frame slots each), linear in their length."""
        probs = [self.encoder.localize(q, self.data.video_embs(v)) for q, v, _ in pairs]
        lengths = np.array([len(st) for st, _ in probs], dtype=np.int64)
        out: list[list[list[float]]] = [[] for _ in pairs]
        order = np.argsort(lengths, kind="stable")
        budget = 1 << 18  # frame slots per decoder call
        start = 0
        while start < len(order):  # ascending lengths: a chunk is as wide as its last pair
            stop = start + 1
            while stop < len(order) and (stop - start + 1) * int(lengths[order[stop]]) <= budget:
                stop += 1
            chunk = order[start:stop].tolist()
            width = int(lengths[chunk].max())
            st = torch.zeros(len(chunk), 1, width, dtype=torch.float64)  # (P, 1, T): a pair a row
            ed = torch.zeros_like(st)
            for row, pair in enumerate(chunk):
                st[row, 0, : lengths[pair]] = torch.as_tensor(np.asarray(probs[pair][0], dtype=np.float64))
                ed[row, 0, : lengths[pair]] = torch.as_tensor(np.asarray(probs[pair][1], dtype=np.float64))
            lens = torch.as_tensor(lengths[chunk])[:, None]  # (P, 1)
            # each pair as its own "query" (P, 1, T): its own per_video best spans, rows padded with -1
            scores, _, st_idx, ed_idx = top_spans(
                st, ed, self.min_span_frames, self.max_span_frames, self.per_video, None, lens
            )
            for row, pair in enumerate(chunk):
                _, video, video_score = pairs[pair]
                spans = self.data.video_spans(video)
                for p, i, j in zip(scores[row].tolist(), st_idx[row].tolist(), ed_idx[row].tolist()):
                    if p < 0:  # fewer allowed spans than per_video in this video
                        break
                    out[pair].append(
                        [
                            float(video),
                            float(spans[i, 0]),
                            float(spans[j, 1]),
                            video_score + math.log(max(p, 1e-300)) / self.video_temperature,
                        ]
                    )
            start = stop
        return out

    def search(self, query: str, k: int = 10, approx: bool | None = None) -> list[Hit]:
        """The k best moments for `query`, best first (rank 1 = best)."""
        return self.search_many([query], [k], approx)[0]

    def search_many(
        self, queries: list[str], ks: list[int], approx: bool | None | list[bool | None] = None
    ) -> list[list[Hit]]:
        """`search` for several queries at once: one encoder pass and one ranking pass for all of them
        (the HTTP service micro-batches concurrent requests through here), then each query's moments."""
        for query, k in zip(queries, ks, strict=True):
            if not isinstance(query, str) or not query.strip():
                raise InputError("search: the query is empty")
            if k < 1:
                raise InputError(f"search: k must be >= 1, got {k}")
        if self.num_frames == 0:
            return [[] for _ in queries]
        modes = [approx] * len(queries) if not isinstance(approx, list) else list(approx)
        modes = [self._approx_current if m is None else bool(m) for m in modes]
        vectors = self.encoder.encode_query([q.strip() for q in queries])  # (Q, d)
        ranked: list[tuple[np.ndarray, np.ndarray]] = [None] * len(queries)  # type: ignore[list-item]
        for mode in set(modes):
            rows = [i for i, m in enumerate(modes) if m == mode]
            ranking = self.rank(vectors[rows], approx=mode)
            for r, i in enumerate(rows):
                keep = ranking.videos[r] >= 0
                ranked[i] = (ranking.videos[r][keep], ranking.scores[r][keep])
        return self._hits(vectors, ranked, ks)

    def search_vector(self, query_vec: np.ndarray, k: int = 10, approx: bool | None = None) -> list[Hit]:
        """`search` for an already encoded query (d,)."""
        return self._hits(np.asarray(query_vec)[None], [self.video_scores(query_vec, approx=approx)], [k])[0]

    def _hits(
        self, vectors: np.ndarray, ranked: list[tuple[np.ndarray, np.ndarray]], ks: list[int]
    ) -> list[list[Hit]]:
        """Each query's k best moments inside its ranked (videos, global scores), after NMS."""
        pairs = [
            (vectors[qi], video, score)
            for qi, (videos, scores) in enumerate(ranked)
            for video, score in zip(videos.tolist(), scores.tolist())
        ]
        moments = iter(self._moments(pairs))
        out = []
        for (videos, scores), k in zip(ranked, ks):
            rows = [row for _ in range(len(videos)) for row in next(moments)]
            rows.sort(key=lambda r: -r[3])  # stable: ties keep video order
            kept = nms_moments(rows, threshold=0.5, max_before=len(rows), max_after=k)
            score_of = dict(zip(videos.tolist(), scores.tolist()))
            out.append([self._hit(rank, row, score_of[int(row[0])]) for rank, row in enumerate(kept, 1)])
        return out

    def _hit(self, rank: int, row: list[float], video_score: float) -> Hit:
        video = int(row[0])
        vid = self.data.video_ids[video]
        entry = self.manifest["videos"][vid]
        start, end = round(row[1], 3), round(row[2], 3)
        near = [
            s
            for s in self.subtitles(vid)
            if s["end"] >= start - self.context_s and s["start"] <= end + self.context_s
        ]
        return Hit(
            rank=rank,
            video=vid,
            video_idx=video,
            path=entry["path"],
            start=start,
            end=end,
            score=float(row[3]),
            video_score=float(video_score),
            duration=float(entry["duration"]),
            subtitles=near,
        )

    def subtitles(self, video_id: str) -> list[dict]:
        """Every subtitle sentence of an indexed video as {start, end, text, speaker} (cached)."""
        with self._lock:
            if video_id not in self._subtitles:
                self._subtitles[video_id] = [
                    {"start": s, "end": e, "text": t, "speaker": sp}
                    for s, e, t, sp in self.data.subtitles(video_id)
                ]
            return self._subtitles[video_id]


def video_recall(hits_per_query: dict, ground_truth: list[dict], ks: tuple[int, ...] = (1, 5, 10)) -> dict:
    """Video-level R@K (%) : share of queries whose video ("vid_name") is among the first K hits.

    hits_per_query: {desc_id: [video id, ...] best first} (Hit objects or dicts with "video" work too).
    """
    if not ground_truth:
        raise InputError("video_recall: no queries")
    out = {}
    for k in ks:
        found = 0
        for gt in ground_truth:
            ranked = [
                h if isinstance(h, str) else (h["video"] if isinstance(h, dict) else h.video)
                for h in hits_per_query.get(gt["desc_id"], [])
            ]
            found += gt["vid_name"] in ranked[:k]
        out[f"r{k}"] = round(100.0 * found / len(ground_truth), 2)
    return out


def tvr_submission(searcher: Searcher, queries: list[dict], k: int = 100, approx: bool | None = None) -> dict:
    """Run TVR-format queries ({"desc_id", "desc", ...}) and return a TVR submission (VCMR + VR lists),
    ready for `tempovl.metrics.moment.eval_tvr`."""
    video2idx = {vid: i for i, vid in enumerate(searcher.data.video_ids)}
    vcmr, vr = [], []
    for q in queries:
        hits = searcher.search(q["desc"], k=k, approx=approx)
        vcmr.append(
            {"desc_id": q["desc_id"], "predictions": [[h.video_idx, h.start, h.end, h.score] for h in hits]}
        )
        seen: list[Hit] = []
        for h in hits:
            if all(h.video_idx != s.video_idx for s in seen):
                seen.append(h)
        vr.append(
            {"desc_id": q["desc_id"], "predictions": [[h.video_idx, 0.0, 0.0, h.video_score] for h in seen]}
        )
    return {"video2idx": video2idx, "VCMR": vcmr, "VR": vr}
