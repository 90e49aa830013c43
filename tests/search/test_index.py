"""Building the index: layout, incremental updates, resume after an interruption, bad videos."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from tempovl.data.subtitles import read_srt
from tempovl.errors import ConfigError, InputError
from tempovl.search.index import IndexData, build_index, find_videos, load_manifest


def _copy_videos(tiny_corpus, dest, names):
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(tiny_corpus / "videos" / f"{name}.mp4", dest / f"{name}.mp4")
        shutil.copy2(tiny_corpus / "subtitles" / f"{name}.srt", dest / f"{name}.srt")


def test_index_of_the_tiny_corpus(search_index, tiny_corpus):
    manifest = load_manifest(search_index)
    videos = sorted(p.stem for p in (tiny_corpus / "videos").glob("*.mp4"))
    assert sorted(manifest["videos"]) == videos
    assert manifest["encoder"]["spec"] == "subtitle-minilm" and manifest["encoder"]["dim"] == 384
    assert (
        manifest["approx"]["kind"] == "none" and not (search_index / "approx.faiss").exists()
    )  # small: exact
    data = IndexData.load(search_index)
    entry = manifest["videos"]["tv00004"]
    assert entry["num_frames"] == int(np.ceil(entry["duration"] / 1.5 - 1e-6))
    assert entry["subtitles"].endswith("tv00004.srt")
    frame_embs = np.concatenate([data.video_embs(v) for v in range(len(data.video_ids))])
    assert frame_embs.shape == (data.num_frames, 384)
    norms = np.linalg.norm(frame_embs, axis=1)
    assert norms.max() <= 1.0 + 1e-5
    # single-channel clips have no subtitles: all-zero frames; dialogue videos have unit-norm frames
    assert not data.video_embs(data.video_ids.index("sc00000")).any()
    assert (norms > 0.999).sum() > 50
    subs = data.subtitles("tv00004")
    srt = read_srt(tiny_corpus / "subtitles" / "tv00004.srt")
    assert subs[2][2:] == [srt[2].text, srt[2].speaker]
    assert not list(search_index.glob("**/*.tmp"))


def test_incremental_add_change_and_remove(tiny_corpus, encoder, tmp_path, counting):
    videos, out = tmp_path / "videos", tmp_path / "index"
    _copy_videos(tiny_corpus, videos, ["tv00000", "tv00001", "tv00002"])
    first = counting(encoder)
    report = build_index([videos], out, first, progress=False, approx="none")
    assert len(first.calls) == 3 and sorted(report.added) == ["tv00000", "tv00001", "tv00002"]

    _copy_videos(tiny_corpus, videos, ["tv00003", "tv00004"])
    second = counting(encoder)
    report = build_index([videos], out, second, progress=False, approx="none")
    assert sorted(os.path.basename(p) for p in second.calls) == ["tv00003.mp4", "tv00004.mp4"]
    assert report.added == ["tv00003", "tv00004"] and len(report.unchanged) == 3

    # a changed subtitle file re-encodes that video only; a deleted video leaves the index
    with open(videos / "tv00001.srt", "a", encoding="utf-8") as f:
        f.write("\n99\n00:00:20,000 --> 00:00:21,000\nA new line.\n")
    (videos / "tv00002.mp4").unlink()
    third = counting(encoder)
    report = build_index([videos], out, third, progress=False, approx="none")
    assert [os.path.basename(p) for p in third.calls] == ["tv00001.mp4"]
    assert report.updated == ["tv00001"] and report.removed == ["tv00002"]
    manifest = load_manifest(out)
    assert sorted(manifest["videos"]) == ["tv00000", "tv00001", "tv00003", "tv00004"]
    assert "A new line." in [s[2] for s in IndexData.load(out).subtitles("tv00001")]
    # shards nobody uses any more are gone
    live = {f"{v['shard']:05d}" for v in manifest["videos"].values()}
    assert {p.name.split(".")[0] for p in (out / "shards").iterdir()} == live

    nothing = counting(encoder)
    assert build_index([videos], out, nothing, progress=False, approx="none").encoded == 0
    assert nothing.calls == []


def test_interrupted_build_resumes(tiny_corpus, encoder, tmp_path, counting):
    videos, out = tmp_path / "videos", tmp_path / "index"
    names = ["tv00000", "tv00001", "tv00002", "tv00003", "tv00004"]
    _copy_videos(tiny_corpus, videos, names)
    dying = counting(encoder, fail_at=4, fail_with=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        build_index([videos], out, dying, progress=False, shard_size=2, approx="none")
    # videos 1-3 were encoded: the full shard of 2 and the partial one are both saved
    assert sorted(load_manifest(out)["videos"]) == names[:3]
    resumed = counting(encoder)
    build_index([videos], out, resumed, progress=False, shard_size=2, approx="none")
    assert [os.path.basename(p) for p in resumed.calls] == ["tv00003.mp4", "tv00004.mp4"]
    assert sorted(load_manifest(out)["videos"]) == names


def test_leftover_shard_of_a_killed_build_is_ignored(tiny_corpus, encoder, tmp_path):
    videos, out = tmp_path / "videos", tmp_path / "index"
    _copy_videos(tiny_corpus, videos, ["tv00000"])
    build_index([videos], out, encoder, progress=False, approx="none")
    orphan = out / "shards" / "00001.emb.npy"  # what a kill between shard and manifest leaves
    np.save(orphan, np.zeros((3, 384), dtype=np.float32))
    _copy_videos(tiny_corpus, videos, ["tv00001"])
    build_index([videos], out, encoder, progress=False, approx="none")
    manifest = load_manifest(out)
    assert manifest["videos"]["tv00001"]["shard"] == 1
    assert np.load(orphan).any()  # overwritten by the real shard


def test_bad_video_stops_or_is_skipped(tiny_corpus, encoder, tmp_path):
    videos, out = tmp_path / "videos", tmp_path / "index"
    _copy_videos(tiny_corpus, videos, ["tv00000", "tv00001"])
    (videos / "broken.mp4").write_bytes(b"this is not a video")
    with pytest.raises(InputError, match="broken.mp4"):
        build_index([videos], out, encoder, progress=False, approx="none")
    assert sorted(load_manifest(out)["videos"]) == []  # broken.mp4 sorts first: nothing done yet
    report = build_index([videos], out, encoder, progress=False, approx="none", skip_bad=True)
    assert list(report.bad) == ["broken"] and "broken.mp4" in report.bad["broken"]
    manifest = load_manifest(out)
    assert sorted(manifest["videos"]) == ["tv00000", "tv00001"] and "broken" in manifest["bad"]


def test_malformed_subtitles_name_the_file(tiny_corpus, encoder, tmp_path):
    videos = tmp_path / "videos"
    _copy_videos(tiny_corpus, videos, ["tv00000"])
    (videos / "tv00000.srt").write_text("1\n00:00:01,000 --> nonsense\nhi\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"tv00000\.srt:2"):
        build_index([videos], tmp_path / "index", encoder, progress=False, approx="none")


def test_other_encoder_is_refused(search_index, encoder, tiny_corpus, counting):
    other = counting(encoder)
    other.fingerprint = "different"
    with pytest.raises(ConfigError, match="built with encoder 'subtitle-minilm'"):
        build_index([tiny_corpus / "videos"], search_index, other, progress=False)
    assert other.calls == []


def test_find_videos_ids_and_errors(tmp_path):
    (tmp_path / "a" / "show").mkdir(parents=True)
    (tmp_path / "a" / "show" / "ep1.mkv").write_bytes(b"")
    (tmp_path / "a" / "x.webm").write_bytes(b"")
    (tmp_path / "a" / "notes.txt").write_text("")
    found = find_videos([tmp_path / "a"])
    assert [vid for vid, _ in found] == ["show/ep1", "x"]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="two videos would get the id 'x'"):
        find_videos([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(InputError, match="no such file or folder"):
        find_videos([tmp_path / "missing"])


def test_not_an_index(tmp_path):
    with pytest.raises(InputError, match="not a search index"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="not a tempovl search index"):
        load_manifest(tmp_path)


def test_a_second_build_of_the_same_index_is_refused_naming_the_first(tiny_corpus, encoder, tmp_path):
    """Two builds into one index used to interleave shards and corrupt it for good (issue 15)."""
    import subprocess
    import sys

    videos, out = tmp_path / "videos", tmp_path / "index"
    _copy_videos(tiny_corpus, videos, ["tv00000"])
    code = (
        "import sys, time\nfrom tempovl.io import exclusive_lock\n"
        f"with exclusive_lock({str(out)!r}, 'search index'):\n    print('held', flush=True)\n    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            InputError, match=rf"index: this search index is being written by pid {holder.pid}"
        ):
            build_index([videos], out, encoder, progress=False, approx="none")
    finally:
        holder.kill()
        holder.wait()
    report = build_index([videos], out, encoder, progress=False, approx="none")  # the lock went with it
    assert report.added == ["tv00000"]


def test_index_info_reads_what_it_reports_and_names_a_broken_shard(tiny_corpus, encoder, tmp_path, capsys):
    from tempovl.cli import main

    videos, out = tmp_path / "videos", tmp_path / "index"
    _copy_videos(tiny_corpus, videos, ["tv00000", "tv00001"])
    build_index([videos], out, encoder, progress=False, approx="none")
    assert main(["index", "info", str(out)]) == 0
    assert "verified (1 shards read)" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["videos"]["tv00001"]["offset"] -= 1  # two videos claiming one row, as interleaved builds left
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert main(["index", "info", str(out)]) == 2
    assert "video 'tv00001' starts at row" in capsys.readouterr().err
