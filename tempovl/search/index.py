"""The on-disk moment-search index: per-frame embeddings in numpy shards, a JSON manifest, faiss on top.

Layout of an index folder:

    manifest.json            format/version, the encoder (spec, name, dim, fingerprint), a revision
                             counter, every indexed video {path, size, mtime_ns, subtitles + their stamp,
                             duration, num_frames, shard, offset}, the bad videos and their errors, and
                             the approximate index's entry (kind, revision, nlist, calibrated nprobe
                             and its recall against exact search, the shards it covers)
    shards/NNNNN.emb.npy     (N, d) float32 frame embeddings of the videos encoded together
    shards/NNNNN.spans.npy   (N, 2) float32 frame spans in seconds
    shards/NNNNN.subs.json   {video_id: [[start, end, text, speaker], ...]} for the result pages
    approx.faiss             the IVF-HNSW-SQ8 index over the live frames (tempovl.search.ann), when the
                             index is past ann.EXACT_MAX_FRAMES frames or built with --approx ivf

Every file is written atomically; the manifest is rewritten after each shard, so an interrupted build
keeps every finished shard and the next build encodes only what is missing. A video is re-encoded
when its file or its subtitle file changes size or mtime; shards that no live video uses any more
are deleted. Readers memory-map the shards (IndexData): the vectors are held once, by the OS.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tempovl.data.subtitles import SUBTITLE_SUFFIXES, Sentence, read_subtitle_file
from tempovl.data.video import video_files
from tempovl.errors import ConfigError, InputError
from tempovl.io import atomic_path, exclusive_lock, write_json
from tempovl.search.encoders import MomentEncoder, VideoEncoding, build_encoder

log = logging.getLogger(__name__)
logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its INFO lines would mix into CLI output

FORMAT = "tempovl-search-index"
VERSION = 1
APPROX_KINDS = ("auto", "none", "ivf")


@dataclass
class BuildReport:
    """What one `build_index` call did (video ids per outcome)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)  # video id -> error message
    frames: int = 0  # frames encoded in this call
    seconds: float = 0.0
    approx: dict | None = None  # the approximate index's manifest entry, when this call updated it

    @property
    def encoded(self) -> int:
        return len(self.added) + len(self.updated)

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.updated)} re-encoded, {len(self.unchanged)} unchanged, "
            f"{len(self.removed)} removed, {len(self.bad)} bad; {self.frames} frames in {self.seconds:.1f} s"
            + (f"; {describe_approx(self.approx)}" if self.approx else "")
        )


def describe_approx(approx: dict | None) -> str:
    """One line on an index's approximate search, e.g. for `index build` and `index info`."""
    if not approx or approx.get("kind") != "ivf":
        return "exact search"
    return (
        f"IVF{approx['nlist']}-HNSW-SQ8 over {approx['frames']} frames ({approx['how']} in {approx['seconds']} s), "
        f"nprobe {approx['nprobe']}: video recall@10 {approx['recall']:.3f} vs exact"
    )


# ------------------------------------------------------------------------------------ finding files


def find_videos(inputs: list[str | os.PathLike]) -> list[tuple[str, Path]]:
    """(video id, absolute path) of every video under `inputs` (folders searched recursively, or files).

    The id is the path relative to its input folder without the suffix ("tv00001", "show/ep1"), or the
    file stem for a file given directly. Duplicate ids are an InputError naming both files.
    """
    found: dict[str, Path] = {}
    for item in inputs:
        root = Path(item)
        if root.is_dir():
            pairs = [(p.relative_to(root).with_suffix("").as_posix(), p) for p in video_files(root)]
        elif root.is_file():
            pairs = [(root.stem, root)]
        else:
            raise InputError(f"{root}: no such file or folder")
        for vid, path in pairs:
            if vid in found and found[vid] != path.resolve():
                raise InputError(f"two videos would get the id {vid!r}: {found[vid]} and {path}")
            found[vid] = path.resolve()
    return sorted(found.items())


def find_subtitles(video_id: str, video_path: Path, subtitles_dir: str | os.PathLike | None) -> Path | None:
    """The subtitle file of a video: SUBS/{id}.srt|.vtt, else next to the video; None when absent."""
    folders = [Path(subtitles_dir) / Path(video_id).parent] if subtitles_dir else [video_path.parent]
    for folder in folders:
        for suffix in SUBTITLE_SUFFIXES:
            cand = folder / (Path(video_id).name + suffix)
            if cand.is_file():
                return cand.resolve()
    return None


def _stamp(path: Path | None) -> list[int] | None:
    if path is None:
        return None
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


# ------------------------------------------------------------------------------------ the manifest


def manifest_path(index_dir: str | os.PathLike) -> Path:
    return Path(index_dir) / "manifest.json"


def load_manifest(index_dir: str | os.PathLike) -> dict:
    """The manifest of an index folder; InputError when the folder is not a tempovl index."""
    import json

    path = manifest_path(index_dir)
    if not path.is_file():
        raise InputError(
            f"{index_dir}: not a search index (no manifest.json); build one with `tempovl index build`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e.msg})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{path}: not a tempovl search index manifest")
    if manifest.get("version") != VERSION:
        raise InputError(f"{path}: index version {manifest.get('version')} (this tempovl reads {VERSION})")
    return manifest


def _new_manifest(encoder: MomentEncoder) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "encoder": {
            "spec": encoder.spec,
            "name": encoder.name,
            "dim": int(encoder.dim),
            "fingerprint": encoder.fingerprint,
        },
        "revision": 0,
        "next_shard": 0,
        "videos": {},
        "bad": {},
        "approx": None,
    }


def check_encoder(manifest: dict, encoder: MomentEncoder, where: str) -> None:
    """ConfigError unless `encoder` is the one the index was built with (same dim and fingerprint)."""
    want = manifest["encoder"]
    if int(encoder.dim) != int(want["dim"]) or encoder.fingerprint != want["fingerprint"]:
        raise ConfigError(
            f"{where}: the index was built with encoder {want['spec']!r} (dim {want['dim']}, fingerprint "
            f"{want['fingerprint']}), not {encoder.spec!r} (dim {encoder.dim}, fingerprint "
            f"{encoder.fingerprint}); use a new index folder"
        )


def _shard_files(index_dir: Path, shard: int) -> dict[str, Path]:
    base = index_dir / "shards" / f"{shard:05d}"
    return {
        "emb": Path(f"{base}.emb.npy"),
        "spans": Path(f"{base}.spans.npy"),
        "subs": Path(f"{base}.subs.json"),
    }


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def _write_shard(index_dir: Path, shard: int, batch: list[tuple[str, VideoEncoding, list[Sentence]]]) -> None:
    files = _shard_files(index_dir, shard)
    _save_npy(files["emb"], np.concatenate([enc.frame_embs for _, enc, _ in batch]).astype(np.float32))
    _save_npy(files["spans"], np.concatenate([enc.frame_spans for _, enc, _ in batch]).astype(np.float32))
    subs = {vid: [[s.start, s.end, s.text, s.speaker] for s in sents] for vid, _, sents in batch}
    write_json(files["subs"], subs, indent=None)


def _collect_garbage(index_dir: Path, manifest: dict) -> None:
    """Delete shard files no live video points to (replaced videos, or leftovers of a killed build)."""
    live = {f"{v['shard']:05d}" for v in manifest["videos"].values()}
    for path in sorted((index_dir / "shards").glob("*")):
        if path.name.split(".")[0] not in live:
            path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ build


def build_index(
    videos: list[str | os.PathLike],
    out: str | os.PathLike,
    encoder: MomentEncoder | str,
    subtitles_dir: str | os.PathLike | None = None,
    skip_bad: bool = False,
    approx: str = "auto",
    shard_size: int = 32,
    progress: bool = True,
) -> BuildReport:
    """Encode every new or changed video under `videos` into the index at `out` (created if needed).

    Videos already indexed with the same file size and mtime (and subtitles) are kept as they are;
    indexed videos whose file is gone are dropped. A video that cannot be read or whose subtitles are
    malformed raises InputError after the finished work is saved, or with `skip_bad` is listed in
    `report.bad` (and the manifest's "bad") and skipped. Ends by building the `approx` faiss index.
    """
    if approx not in APPROX_KINDS:
        raise ConfigError(f"--approx {approx!r}: expected one of {list(APPROX_KINDS)}")
    if shard_size < 1:
        raise ConfigError(f"shard_size must be >= 1, got {shard_size}")
    started = time.perf_counter()
    out = Path(out)
    if isinstance(encoder, str):
        encoder = build_encoder(encoder)
    with exclusive_lock(out, "search index"):  # one build at a time: two would interleave shards
        if manifest_path(out).exists():
            manifest = load_manifest(out)
            check_encoder(manifest, encoder, str(out))
        else:
            manifest = _new_manifest(encoder)
        (out / "shards").mkdir(parents=True, exist_ok=True)
        report = BuildReport()

        found = find_videos(videos)
        indexed = manifest["videos"]
        for vid in sorted(indexed):
            if not Path(indexed[vid]["path"]).is_file():
                report.removed.append(vid)
                del indexed[vid]
        todo = []
        for vid, path in found:
            subs_path = find_subtitles(vid, path, subtitles_dir)
            entry = indexed.get(vid)
            if (
                entry is not None
                and entry["path"] == str(path)
                and [entry["size"], entry["mtime_ns"]] == _stamp(path)
                and entry["subtitles"] == (str(subs_path) if subs_path else None)
                and entry["subtitles_stamp"] == _stamp(subs_path)
            ):
                report.unchanged.append(vid)
            else:
                todo.append((vid, path, subs_path, entry is not None))

        batch: list[tuple[str, VideoEncoding, list[Sentence]]] = []
        pending: dict[str, dict] = {}

        def flush() -> None:
            if not batch:
                return
            shard = manifest["next_shard"]
            _write_shard(out, shard, batch)
            offset = 0
            for vid, enc, _ in batch:
                pending[vid].update(shard=shard, offset=offset, num_frames=len(enc.frame_embs))
                offset += len(enc.frame_embs)
                indexed[vid] = pending.pop(vid)
                manifest["bad"].pop(vid, None)
            manifest["next_shard"] = shard + 1
            manifest["revision"] += 1
            write_json(manifest_path(out), manifest)
            batch.clear()

        try:
            bar = tqdm(todo, desc=f"index {encoder.name}", unit="video", disable=not progress)
            for vid, path, subs_path, known in bar:
                try:
                    sentences = read_subtitle_file(subs_path) if subs_path else []
                    enc = encoder.encode_video(path, sentences)
                    _check_encoding(enc, encoder.dim, path)
                except InputError as e:
                    if not skip_bad:
                        raise
                    log.warning("index: skipping %s: %s", path, e)
                    report.bad[vid] = str(e)
                    manifest["bad"][vid] = {"path": str(path), "error": str(e)}
                    continue
                (report.updated if known else report.added).append(vid)
                report.frames += len(enc.frame_embs)
                pending[vid] = {
                    "path": str(path),
                    "size": _stamp(path)[0],
                    "mtime_ns": _stamp(path)[1],
                    "subtitles": str(subs_path) if subs_path else None,
                    "subtitles_stamp": _stamp(subs_path),
                    "duration": float(enc.duration),
                }
                batch.append((vid, enc, sentences))
                if len(batch) >= shard_size:
                    flush()
        finally:
            flush()  # keep what is done, also when interrupted or on a bad video
            if report.removed or report.bad:
                manifest["revision"] += 1
            write_json(manifest_path(out), manifest)
            _collect_garbage(out, manifest)
        current = manifest.get("approx") or {}
        if current.get("revision") != manifest["revision"] or approx not in ("auto", current.get("kind")):
            report.approx = write_approx_index(out, approx, manifest, progress=progress)
        if (manifest.get("relevance") or {}).get("revision") != manifest["revision"]:
            manifest["relevance"] = calibrate_relevance(out, encoder, manifest)
            write_json(manifest_path(out), manifest)
        report.seconds = time.perf_counter() - started
        return report


def _check_encoding(enc: VideoEncoding, dim: int, path: Path) -> None:
    """A bug in an encoder must not end up in the index: shapes and finiteness are checked."""
    num = len(enc.frame_embs)
    if enc.frame_embs.shape != (num, dim) or enc.frame_spans.shape != (num, 2) or num == 0:
        raise InputError(
            f"{path}: encoder returned frame_embs {enc.frame_embs.shape} and frame_spans "
            f"{enc.frame_spans.shape}; expected (T, {dim}) and (T, 2) with T >= 1"
        )
    if not np.isfinite(enc.frame_embs).all():
        raise InputError(f"{path}: encoder returned non-finite frame embeddings")


# ------------------------------------------------------------------------------- reading + faiss


@dataclass
class Run:
    """Consecutive videos (in index order) whose frames are consecutive rows of one shard."""

    shard: int
    rows: np.ndarray  # (n,) row numbers in the shard
    embs: np.ndarray  # (n, d) memory-mapped
    first_video: int
    last_video: int  # exclusive


class IndexData:
    """The live frames of an index, memory-mapped from the shards (one copy of the vectors: the OS's).

    Frames are numbered in a fixed order (videos sorted by id, frames in time order): the frames of
    video v are numbers video_offsets[v]:video_offsets[v + 1]. frame_spans (N, 2) float32 seconds and
    frame_video (N,) int32 are held in memory; the embeddings are read through `video_embs`, `runs`
    and `gather`.
    """

    def __init__(self, index_dir: str | os.PathLike, manifest: dict | None = None):
        self.index_dir = Path(index_dir)
        self.manifest = manifest if manifest is not None else load_manifest(self.index_dir)
        videos = self.manifest["videos"]
        self.video_ids = sorted(videos)
        self.dim = int(self.manifest["encoder"]["dim"])
        self._embs: dict[int, np.ndarray] = {}  # shard -> (rows, d) memory-mapped
        self._spans: dict[int, np.ndarray] = {}  # shard -> (rows, 2) memory-mapped
        spans, counts, where = [], [], []
        for vid in self.video_ids:
            entry = videos[vid]
            shard, lo = int(entry["shard"]), int(entry["offset"])
            hi = lo + int(entry["num_frames"])
            emb, span = self._open(shard)
            if emb.ndim != 2 or emb.shape[1] != self.dim or hi > len(emb) or hi > len(span):
                raise InputError(
                    f"{_shard_files(self.index_dir, shard)['emb']}: shard of shape {emb.shape} does not "
                    f"hold rows {lo}:{hi} of dim {self.dim} for video {vid!r}; rebuild the index"
                )
            spans.append(span[lo:hi])
            counts.append(hi - lo)
            where.append((shard, lo))
        self.frame_spans = np.concatenate(spans).astype(np.float32) if spans else np.zeros((0, 2), np.float32)
        counts_arr = np.asarray(counts, dtype=np.int64)
        self.video_offsets = np.concatenate([[0], np.cumsum(counts_arr)]).astype(np.int64)  # (V + 1,)
        self.frame_video = np.repeat(np.arange(len(self.video_ids), dtype=np.int32), counts_arr)  # (N,)
        self.video_rows = np.asarray(where, dtype=np.int64).reshape(-1, 2)  # (V, 2): shard, first row
        self._lut: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def load(cls, index_dir: str | os.PathLike) -> IndexData:
        return cls(index_dir)

    def _open(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        if shard not in self._embs:
            files = _shard_files(self.index_dir, shard)
            try:
                self._embs[shard] = np.load(files["emb"], mmap_mode="r")
                self._spans[shard] = np.load(files["spans"], mmap_mode="r")
            except (OSError, ValueError) as e:
                raise InputError(f"{files['emb']}: cannot read index shard ({e})") from None
        return self._embs[shard], self._spans[shard]

    @property
    def num_frames(self) -> int:
        return int(self.video_offsets[-1])

    @property
    def shards(self) -> list[int]:
        """The shards that hold live frames."""
        return sorted(self._embs)

    def shard_rows(self, shard: int) -> int | None:
        """Rows in `shard` (live or not); None when no live video is in it."""
        return len(self._embs[shard]) if shard in self._embs else None

    def live_rows(self, shard: int) -> np.ndarray:
        """Sorted rows of `shard` that belong to live videos."""
        lens = np.diff(self.video_offsets)
        rows = [
            np.arange(lo, lo + lens[v]) for v, (s, lo) in enumerate(self.video_rows.tolist()) if s == shard
        ]
        return np.sort(np.concatenate(rows)) if rows else np.zeros(0, np.int64)

    def video_embs(self, video: int) -> np.ndarray:
        """(T, d) frame embeddings of video number `video` (a memory-mapped view)."""
        shard, lo = self.video_rows[video]
        n = self.video_offsets[video + 1] - self.video_offsets[video]
        return self._embs[int(shard)][lo : lo + n]

    def video_spans(self, video: int) -> np.ndarray:
        """(T, 2) frame spans in seconds of video number `video`."""
        return self.frame_spans[self.video_offsets[video] : self.video_offsets[video + 1]]

    def runs(self, max_rows: int = 1 << 17) -> list[Run]:
        """The live frames as runs of whole videos, in index order, each at most `max_rows` rows
        (unless one video is longer)."""
        out: list[Run] = []
        lens = np.diff(self.video_offsets)
        v, num = 0, len(self.video_ids)
        while v < num:
            shard, lo = (int(x) for x in self.video_rows[v])
            hi, w = lo + int(lens[v]), v + 1
            while (
                w < num
                and int(self.video_rows[w, 0]) == shard
                and int(self.video_rows[w, 1]) == hi
                and hi - lo + int(lens[w]) <= max_rows
            ):
                hi += int(lens[w])
                w += 1
            out.append(Run(shard, np.arange(lo, hi), self._embs[shard][lo:hi], v, w))
            v = w
        return out

    def gather(self, frames: np.ndarray) -> np.ndarray:
        """(n, d) float32 embeddings of global frame numbers `frames` (sorted reads are fastest)."""
        frames = np.asarray(frames, dtype=np.int64)
        videos = self.frame_video[frames]
        shards = self.video_rows[videos, 0]
        rows = self.video_rows[videos, 1] + frames - self.video_offsets[videos]
        out = np.empty((len(frames), self.dim), np.float32)
        for shard in np.unique(shards):
            sel = shards == shard
            out[sel] = self._embs[int(shard)][rows[sel]]
        return out

    def frames_of_ids(self, ids: np.ndarray) -> np.ndarray:
        """Global frame numbers of stable faiss ids (shard << 32 | row; ann.frame_ids); -1 for ids that
        are not live frames (or faiss's -1 padding)."""
        if self._lut is None:  # (first lut entry of each shard or -1, rows of each shard, lut)
            first = np.full(max(self.shards, default=-1) + 1, -1, dtype=np.int64)
            size = np.zeros_like(first)
            for shard in self.shards:
                first[shard], size[shard] = size.sum(), len(self._embs[shard])
            lut = np.full(int(size.sum()), -1, dtype=np.int64)
            for v, (shard, lo) in enumerate(self.video_rows.tolist()):
                a, b = self.video_offsets[v], self.video_offsets[v + 1]
                lut[first[shard] + lo : first[shard] + lo + (b - a)] = np.arange(a, b)
            self._lut = (first, size, lut)
        first, size, lut = self._lut
        ids = np.asarray(ids, dtype=np.int64)
        shard, row = ids >> 32, ids & 0xFFFFFFFF
        ok = (ids >= 0) & (shard < len(first))
        shard = np.where(ok, shard, 0)
        ok &= (first[shard] >= 0) & (row < size[shard])
        out = np.full(ids.shape, -1, dtype=np.int64)
        out[ok] = lut[first[shard][ok] + row[ok]]
        return out

    def video_max_scores(self, queries: np.ndarray) -> np.ndarray:
        """(V, Q) float32: each video's max over its frames of frame · query, for queries (Q, d)."""
        queries = np.ascontiguousarray(np.asarray(queries, dtype=np.float32).reshape(-1, self.dim))
        out = np.empty((len(self.video_ids), len(queries)), dtype=np.float32)
        for run in self.runs():
            sims = np.asarray(run.embs, dtype=np.float32) @ queries.T  # (n, Q)
            starts = (
                self.video_offsets[run.first_video : run.last_video] - self.video_offsets[run.first_video]
            )
            out[run.first_video : run.last_video] = np.maximum.reduceat(sims, starts, axis=0)
        return out

    def subtitles(self, video_id: str) -> list[list]:
        """[[start, end, text, speaker], ...] of an indexed video."""
        entry = self.manifest["videos"][video_id]
        path = _shard_files(self.index_dir, int(entry["shard"]))["subs"]
        return json.loads(path.read_text(encoding="utf-8")).get(video_id, [])


def verify_index(index_dir: str | os.PathLike) -> int:
    """Read every shard and check what the manifest says of it; returns the number of shards read.

    Each shard's rows must be covered exactly once by the videos that point into it (what two builds
    writing one index at once used to break), embeddings finite, subtitles readable. Raises InputError
    naming the shard and video."""
    index_dir = Path(index_dir)
    data = IndexData.load(index_dir)  # shapes and row ranges
    by_shard: dict[int, list[tuple[int, int, str]]] = {}
    for vid, entry in data.manifest["videos"].items():
        lo = int(entry["offset"])
        by_shard.setdefault(int(entry["shard"]), []).append((lo, lo + int(entry["num_frames"]), vid))
    for shard, ranges in sorted(by_shard.items()):
        files = _shard_files(index_dir, shard)
        rows = len(np.load(files["emb"], mmap_mode="r"))
        expect = 0
        for lo, hi, vid in sorted(ranges):
            if lo != expect:
                raise InputError(
                    f"{files['emb']}: video {vid!r} starts at row {lo}, expected {expect} (overlapping or "
                    "missing rows); rebuild the index into a new folder"
                )
            expect = hi
        if expect != rows:
            raise InputError(f"{files['emb']}: {rows} rows, but its videos cover {expect}; rebuild the index")
        try:
            json.loads(files["subs"].read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"{files['subs']}: unreadable subtitles ({e})") from None
    for run in data.runs():
        if not np.isfinite(run.embs).all():
            raise InputError(
                f"shard {run.shard:05d} of {index_dir}: non-finite frame embeddings; rebuild the index"
            )
    return len(by_shard)


def null_queries(num: int = 128, seed: int = 0) -> list[str]:
    """`num` nonsense queries of 2-5 made-up words: what nothing in an index should match. Half are
    pronounceable ("tazu bokimer fe"), half random letters ("xqvt blorf"). Deterministic."""
    rng = np.random.default_rng(seed)
    consonants, vowels, letters = "bdfgklmnprstvz", "aeiou", "abcdefghijklmnopqrstuvwxyz"

    def word(pronounceable: bool) -> str:
        if pronounceable:
            return "".join(
                rng.choice(list(consonants)) + rng.choice(list(vowels)) for _ in range(rng.integers(1, 4))
            )
        return "".join(rng.choice(list(letters), size=rng.integers(3, 8)))

    return [" ".join(word(i % 2 == 0) for _ in range(rng.integers(2, 6))) for i in range(num)]


def calibrate_relevance(index_dir: str | os.PathLike, encoder: MomentEncoder, manifest: dict) -> dict:
    """The relevance threshold of an index: the 95th percentile, over `null_queries`, of the best video
    score a nonsense query gets. A search whose best video scores below it found nothing relevant (the
    page says so instead of showing confident cards). Recorded in the manifest's "relevance"."""
    from tempovl.search import ann

    data = IndexData(index_dir, manifest)
    if data.num_frames == 0:
        return {"threshold": None, "revision": manifest["revision"]}
    queries = null_queries()
    best = ann.VideoRanker(data).exact(encoder.encode_query(queries), 1).scores[:, 0]  # (n,)
    return {
        "threshold": round(float(np.quantile(best, 0.95)), 6),
        "null_queries": len(queries),
        "null_best_median": round(float(np.median(best)), 6),
        "revision": manifest["revision"],
    }


def write_approx_index(
    index_dir: str | os.PathLike, kind: str = "auto", manifest: dict | None = None, progress: bool = False
) -> dict:
    """Bring the approximate index of `index_dir` up to date and record it in the manifest.

    kind "auto": IVF above ann.EXACT_MAX_FRAMES live frames, none below; "ivf"; "none". An IVF index
    whose training still fits the index's size is updated in place (rows of gone videos removed, new
    shards added); otherwise one is trained. Either way nprobe is calibrated against exact search on
    a sample of queries and the recall is recorded. Returns the manifest's "approx" entry.
    """
    import faiss

    from tempovl.search import ann

    if kind not in APPROX_KINDS:
        raise ConfigError(f"--approx {kind!r}: expected one of {list(APPROX_KINDS)}")
    started = time.perf_counter()
    index_dir = Path(index_dir)
    data = IndexData(index_dir, manifest)
    manifest = data.manifest
    if kind == "auto":
        kind = "ivf" if data.num_frames > ann.EXACT_MAX_FRAMES else "none"
    path = index_dir / "approx.faiss"
    if kind == "none" or data.num_frames == 0:
        manifest["approx"] = {"kind": "none", "revision": manifest["revision"]}
        write_json(manifest_path(index_dir), manifest)
        path.unlink(missing_ok=True)
        return manifest["approx"]
    current = manifest.get("approx") or {}
    trained_on = int(current.get("trained_on") or 0)
    if (
        current.get("kind") == "ivf"
        and path.is_file()
        and trained_on / ann.RETRAIN_GROWTH <= data.num_frames <= trained_on * ann.RETRAIN_GROWTH
    ):
        index = faiss.read_index(str(path))
        ann.update_ivf(index, data, {int(s) for s in current.get("shards", [])})
        how = "updated"
    else:
        index = ann.build_ivf(data, progress=progress)
        trained_on, how = data.num_frames, "trained"
    calibration = ann.calibrate(ann.VideoRanker(data, index), ann.probe_queries(data))
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))
    manifest["approx"] = {
        "kind": "ivf",
        "file": path.name,
        "revision": manifest["revision"],
        "nlist": int(index.nlist),
        "frames": int(index.ntotal),
        "trained_on": trained_on,
        "shards": data.shards,
        "nprobe": calibration["nprobe"],
        "recall": calibration["recall"],
        "calibration": {str(k): v for k, v in calibration["table"].items()},
        "seconds": round(time.perf_counter() - started, 1),
        "how": how,
    }
    write_json(manifest_path(index_dir), manifest)
    return manifest["approx"]
