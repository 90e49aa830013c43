"""HiTeA's two-view caption-pair data: view sampling, frame cache, collate, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tempovl.config import from_dict
from tempovl.data.hitea_data import (
    NORMALIZATION,
    CaptionPairs,
    CollateCaptionPairs,
    DataConfig,
    FrameReader,
    view_times,
)
from tempovl.data.video import sample_frames
from tempovl.errors import ConfigError, InputError


def test_eval_views_are_segment_middles():
    long_t, short_t, (start, end) = view_times(16.0, 8, 0.125, train=False, rng=np.random.default_rng(0))
    np.testing.assert_allclose(long_t, [1, 3, 5, 7, 9, 11, 13, 15])
    assert end - start == pytest.approx(2.0)
    np.testing.assert_allclose(short_t, start + (np.arange(8) + 0.5) * 0.25)


@pytest.mark.parametrize("train", [True, False])
def test_short_view_inside_its_segment_in_order(train):
    rng = np.random.default_rng(3)
    for duration in (7.0, 30.0, 91.5):
        for _ in range(20):
            long_t, short_t, (start, end) = view_times(duration, 8, 0.125, train, rng)
            assert end - start == pytest.approx(duration / 8)
            assert 0.0 <= start and end <= duration + 1e-9
            assert np.all((short_t >= start) & (short_t <= end))
            assert np.all((long_t >= 0) & (long_t <= duration))
            assert np.all(np.diff(short_t) > 0) and np.all(np.diff(long_t) > 0)  # order kept
            seg = duration / 8  # one long-view frame per eighth of the video
            np.testing.assert_array_equal(np.floor(long_t / seg), np.arange(8))


def test_jitter_only_in_training_and_deterministic_with_seed():
    middles = (np.arange(8) + 0.5) * 2.0
    ev = [view_times(16.0, 8, 0.125, False, np.random.default_rng(s))[0] for s in range(3)]
    for t in ev:
        np.testing.assert_allclose(t, middles)
    tr = [view_times(16.0, 8, 0.125, True, np.random.default_rng(s)) for s in (1, 1, 2)]
    np.testing.assert_array_equal(tr[0][0], tr[1][0])
    np.testing.assert_array_equal(tr[0][1], tr[1][1])
    assert not np.allclose(tr[0][0], middles)
    assert not np.allclose(tr[0][0], tr[2][0])


def _cfg(corpus, **kw) -> DataConfig:
    return DataConfig(corpus=str(corpus), frame_size=16, max_text_len=24, **kw)


@pytest.fixture(scope="module")
def tokenizer():
    from tempovl.data.tokenizer import load_tokenizer

    return load_tokenizer()


def test_items_shapes_pairs_and_eval_determinism(tiny_corpus, tokenizer):
    ds = CaptionPairs(_cfg(tiny_corpus), "val", train=False, tokenizer=tokenizer)
    lines = (tiny_corpus / "annotations/captions_val.jsonl").read_text().splitlines()
    assert len(ds) == len(lines) and ds.caption(0) == json.loads(lines[0])["caption"]
    item = ds[0]
    assert item["video_long"].shape == (8, 16, 16, 3) and item["video_long"].dtype == torch.uint8
    assert item["video_short"].shape == (8, 16, 16, 3)
    ids = item["text_ids"]
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id and len(ids) <= 24
    assert [ds[i]["pair_id"] for i in range(len(ds))] == list(range(len(ds)))
    again = CaptionPairs(_cfg(tiny_corpus), "val", train=False, tokenizer=tokenizer)[0]
    assert (
        torch.equal(item["video_short"], again["video_short"]) and item["short_span"] == again["short_span"]
    )
    # the long view in evaluation is exactly the middle frames of the whole video
    direct = sample_frames(ds.videos[0], 8, size=16)
    assert torch.equal(item["video_long"], torch.from_numpy(direct))


def test_train_items_follow_torch_seed(tiny_corpus, tokenizer):
    ds = CaptionPairs(_cfg(tiny_corpus), "train", train=True, tokenizer=tokenizer)
    torch.manual_seed(5)
    a = ds[1]
    torch.manual_seed(5)
    b = ds[1]
    c = ds[1]
    assert a["short_span"] == b["short_span"] and torch.equal(a["video_long"], b["video_long"])
    assert c["short_span"] != a["short_span"]
    start, end = a["short_span"]
    assert end - start == pytest.approx(ds.reader.duration(ds.videos[a["pair_id"]]) / 8)


def test_memory_cache_gives_the_decoded_frames(tiny_corpus):
    path = str(sorted((tiny_corpus / "videos").glob("*.mp4"))[0])
    direct, cached = FrameReader(16, cache=False), FrameReader(16, cache=True)
    duration = direct.duration(path)
    times = np.array([0.0, 0.2, duration / 3, duration / 2 + 0.05, duration - 0.01, 1.0])
    np.testing.assert_array_equal(direct.frames(path, times), cached.frames(path, times))


def test_repeat_rule_for_spans_shorter_than_the_frames(tiny_corpus):
    """At 3 fps a 0.3 s span holds one frame: all 8 samples are that frame (order trivially kept)."""
    path = str(sorted((tiny_corpus / "videos").glob("*.mp4"))[0])
    reader = FrameReader(16, cache=True)
    frames = reader.frames(path, np.linspace(1.0, 1.3, 8))
    assert all(np.array_equal(frames[0], f) for f in frames[1:])


def test_collate_pads_masks_and_normalises():
    video = torch.zeros(2, 8, 4, 4, 3, dtype=torch.uint8)
    video[1, 3, 2, 1] = torch.tensor([255, 0, 51], dtype=torch.uint8)
    items = [
        {"video_long": video[i], "video_short": video[i], "text_ids": ids, "pair_id": p, "index": i}
        for i, (ids, p) in enumerate([([101, 7, 102], 4), ([101, 102], 9)])
    ]
    batch = CollateCaptionPairs(pad_id=0, normalize="clip")(items)
    assert batch["video_long"].shape == (2, 8, 3, 4, 4) and batch["video_long"].dtype == torch.float32
    mean, std = NORMALIZATION["clip"]
    want = [(255 / 255 - mean[0]) / std[0], (0 - mean[1]) / std[1], (51 / 255 - mean[2]) / std[2]]
    torch.testing.assert_close(batch["video_long"][1, 3, :, 2, 1], torch.tensor(want))
    torch.testing.assert_close(batch["video_short"][0, 0, 0, 0, 0], torch.tensor(-mean[0] / std[0]))
    assert batch["text_ids"].tolist() == [[101, 7, 102], [101, 102, 0]]
    assert batch["text_mask"].tolist() == [[True, True, True], [True, True, False]]
    assert batch["pair_ids"].tolist() == [4, 9] and batch["index"].tolist() == [0, 1]


def test_corrupt_video_error_names_the_file(tiny_corpus, tmp_path, tokenizer):
    (tmp_path / "videos").mkdir()
    bad = tmp_path / "videos" / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    (tmp_path / "caps.jsonl").write_text(
        json.dumps({"video": "videos/broken.mp4", "caption": "a cat"}) + "\n"
    )
    cfg = DataConfig(corpus=str(tmp_path), annotations={"val": ["caps.jsonl"]}, frame_size=16)
    ds = CaptionPairs(cfg, "val", train=False, tokenizer=tokenizer)
    with pytest.raises(InputError, match="broken.mp4"):
        ds[0]


def test_missing_video_and_bad_config(tmp_path, tokenizer):
    (tmp_path / "caps.jsonl").write_text(json.dumps({"video": "videos/nope.mp4", "caption": "x"}) + "\n")
    cfg = DataConfig(corpus=str(tmp_path), annotations={"val": ["caps.jsonl"]})
    with pytest.raises(InputError, match="nope.mp4"):
        CaptionPairs(cfg, "val", train=False, tokenizer=tokenizer)
    with pytest.raises(ConfigError, match="data.annotations.val"):
        CaptionPairs(
            DataConfig(corpus=str(tmp_path), annotations={"val": ["x.jsonl"]}), "val", False, tokenizer
        )
    with pytest.raises(ConfigError, match="data.frame_sise"):
        from_dict(DataConfig, {"frame_sise": 32}, "data")
    with pytest.raises(ConfigError, match="data.short_frac"):
        DataConfig(short_frac=0.0)


def test_disk_cache_round_trip(tiny_corpus, tmp_path):
    path = str(sorted((tiny_corpus / "videos").glob("*.mp4"))[1])
    times = np.array([0.4, 2.0, 5.5, 9.9])
    first = FrameReader(16, cache_dir=str(tmp_path / "c"))
    frames = first.frames(path, times)
    stored = list((tmp_path / "c").glob("*.npy"))
    assert len(stored) == 1 and stored[0].name.startswith(Path(path).stem)
    assert not list((tmp_path / "c").glob("*.tmp"))  # written atomically
    second = FrameReader(16, cache_dir=str(tmp_path / "c"))
    np.testing.assert_array_equal(second.frames(path, times), frames)
    np.testing.assert_array_equal(FrameReader(16).frames(path, times), frames)
    assert len(second._grids) == 1 and not list((tmp_path / "c").glob("*.tmp"))
    FrameReader(24, cache_dir=str(tmp_path / "c")).frames(path, times)  # another size, another entry
    assert len(list((tmp_path / "c").glob("*.npy"))) == 2
