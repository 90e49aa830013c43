"""The approximate index (tempovl.search.ann): chosen by size, calibrated, used by default, re-scored
exactly, updated in place when videos come and go (issue 15)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tempovl.search import ann
from tempovl.search.index import IndexData, build_index, load_manifest
from tempovl.search.searcher import Searcher

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from bench_search import RealisticEncoder  # noqa: E402  (clustered frames, queries near one scene)


def _files(folder: Path, numbers) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        (folder / f"v{n:07d}.mp4").touch()  # the encoder makes a video's frames from its name


def _top_sets(searcher, queries, approx):
    vecs = searcher.encoder.encode_query(queries)
    return [set(searcher.video_scores(v, approx=approx)[0][:10].tolist()) for v in vecs]


@pytest.fixture()
def encoder():
    return RealisticEncoder(dim=32, frames=30, topics=10)


def test_auto_picks_exact_below_the_threshold_and_ivf_above(tmp_path, encoder, monkeypatch):
    _files(tmp_path / "videos", range(40))
    report = build_index([tmp_path / "videos"], tmp_path / "small", encoder, progress=False)
    assert load_manifest(tmp_path / "small")["approx"]["kind"] == "none"
    assert not Searcher(tmp_path / "small", encoder=encoder).approximate
    monkeypatch.setattr(ann, "EXACT_MAX_FRAMES", 100)
    report = build_index([tmp_path / "videos"], tmp_path / "big", encoder, progress=False)
    assert report.approx["kind"] == "ivf" and "IVF" in report.summary()
    assert Searcher(tmp_path / "big", encoder=encoder).approximate


def test_ivf_is_calibrated_rescored_and_updated_in_place(tmp_path, encoder):
    videos, out = tmp_path / "videos", tmp_path / "index"
    _files(videos, range(400))
    report = build_index([videos], out, encoder, approx="ivf", progress=False, shard_size=100)
    approx = report.approx
    data = IndexData(out)
    assert approx["how"] == "trained" and approx["frames"] == data.num_frames
    assert approx["recall"] >= ann.TARGET_RECALL or approx["nprobe"] == ann.NPROBES[-1]
    assert str(approx["nprobe"]) in approx["calibration"]

    searcher = Searcher(out, encoder=encoder)
    assert searcher.approximate and searcher.nprobe == approx["nprobe"]
    queries = [f"v{n} s0" for n in range(0, 400, 10)]
    fast, exact = _top_sets(searcher, queries, None), _top_sets(searcher, queries, False)
    recall = np.mean([len(a & e) / len(e) for a, e in zip(fast, exact)])
    assert recall >= 0.9
    # scores of the approximate path are exact maxima over the video's frames (the re-score)
    vec = searcher.encoder.encode_query(["v7 s1"])[0]
    videos_, scores = searcher.video_scores(vec)
    for v, s in zip(videos_[:5].tolist(), scores[:5].tolist()):
        assert s == pytest.approx(float((searcher.data.video_embs(v) @ vec).max()), abs=1e-5)

    # 50 videos go, 60 arrive: the IVF is updated in place, not re-trained, and holds exactly the live rows
    for n in range(50):
        (videos / f"v{n:07d}.mp4").unlink()
    _files(videos, range(400, 460))
    report = build_index([videos], out, encoder, approx="ivf", progress=False, shard_size=100)
    assert report.approx["how"] == "updated"
    data = IndexData(out)
    assert report.approx["frames"] == data.num_frames
    searcher = Searcher(out, encoder=encoder)
    ivf = searcher._ivf()
    assert ivf.ntotal == data.num_frames
    gone = {f"v{n:07d}" for n in range(50)}
    for query in ["v3 s0", "v420 s1", "v451 s0"]:
        hits = searcher.search(query, k=10)
        assert not gone & {h.video for h in hits}
    assert searcher.search("v420 s1", k=1)[0].video == "v0000420"


def test_frames_of_ids_maps_stable_ids_to_live_frames(tmp_path, encoder):
    _files(tmp_path / "videos", range(30))
    build_index([tmp_path / "videos"], tmp_path / "index", encoder, progress=False, shard_size=7)
    data = IndexData(tmp_path / "index")
    ids = np.concatenate([ann.frame_ids(run.shard, run.rows) for run in data.runs()])
    np.testing.assert_array_equal(data.frames_of_ids(ids), np.arange(data.num_frames))
    assert data.frames_of_ids(np.array([-1, 999 << 32, (ids[0] >> 32 << 32) + 10**6])).tolist() == [
        -1,
        -1,
        -1,
    ]
    rows = np.array([0, 5, data.num_frames - 1])
    np.testing.assert_array_equal(data.gather(rows), np.concatenate([r.embs for r in data.runs()])[rows])
