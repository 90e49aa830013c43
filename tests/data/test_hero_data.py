"""HERO pre-training data: alignment into units, masking rates, FOM/VSM targets, packing and padding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tempovl.data.hero_data import (
    DataConfig,
    HeroClipDataset,
    HeroCollate,
    TextSpecials,
    Unit,
    clip_units,
    mask_group,
    sample_frame_mask,
    span_target,
)
from tempovl.data.masking import IGNORE
from tempovl.data.subtitles import Sentence
from tempovl.data.tokenizer import load_tokenizer
from tempovl.errors import ConfigError, InputError

SP = TextSpecials(cls=101, sep=102, mask=103, pad=0, random_range=(1000, 2000))
FDIM = 6


def words(text: str) -> list[int]:
    """A fake tokenizer: one id per word, 500 + its length."""
    return [500 + len(w) for w in text.split()]


def item(vid: str, t: int, units: list[Unit]) -> dict:
    rng = np.random.default_rng(len(vid) + t)
    return {"vid": vid, "frame_feats": rng.normal(size=(t, FDIM)).astype(np.float32), "units": units}


ITEMS = [
    item(
        "a",
        6,
        [
            Unit([7, 8, 9], [0, 1], True),
            Unit([10], [2], True),
            Unit([], [3, 4, 5], False),
        ],
    ),
    item("bb", 4, [Unit([11, 12, 13, 14], [0, 1, 2], True), Unit([15, 16], [3], True)]),
]


def test_special_ids_and_random_range_of_the_minilm_vocabulary():
    sp = TextSpecials.from_tokenizer(load_tokenizer())
    assert (sp.cls, sp.sep, sp.mask, sp.pad) == (101, 102, 103, 0)
    assert sp.random_range == (999, 30522)  # "!" .. the end; [unusedN] and specials excluded


def test_clip_units_align_truncate_and_keep_unmatched_frames():
    sents = [
        Sentence("hello big world", 0.2, 1.8),
        Sentence("hi", 2.5, 3.0, speaker="BOB"),
        Sentence("far too late", 10.0, 12.0),  # after the last frame: dropped, not merged
    ]
    units = clip_units(sents, num_frames=6, interval=1.0, tokenize=words, max_tokens=2)
    assert [(u.tokens, u.frame_ids, u.is_sentence) for u in units] == [
        ([505, 503], [0, 1], True),  # truncated to 2 tokens
        ([504, 502], [2], True),  # "BOB: hi"
        ([], [3, 4, 5], False),  # frames no sentence covers: one empty-text unit
    ]


def test_mlm_masking_rates_80_10_10_on_a_large_sample():
    g = torch.Generator().manual_seed(0)
    tokens = list(range(5000, 5000 + 40000))
    ids, labels = mask_group(tokens, SP, 0.15, g)
    assert ids[0] == SP.cls and labels[0] == IGNORE
    ids, labels = np.array(ids[1:]), np.array(labels[1:])
    chosen = labels != IGNORE
    assert chosen.mean() == pytest.approx(0.15, abs=0.01)
    assert (labels[chosen] == np.array(tokens)[chosen]).all()
    assert (ids[~chosen] == np.array(tokens)[~chosen]).all()
    c = ids[chosen]
    as_mask = (c == SP.mask).mean()
    as_random = ((c >= 1000) & (c < 2000)).mean()  # originals are >= 5000
    kept = (c == labels[chosen]).mean()
    assert as_mask == pytest.approx(0.8, abs=0.03)
    assert as_random == pytest.approx(0.1, abs=0.02)
    assert kept == pytest.approx(0.1, abs=0.02)


def test_mlm_masks_at_least_one_token_per_sentence_and_none_in_empty_groups():
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        _, labels = mask_group([42], SP, 0.15, g)
        assert labels == [IGNORE, 42]
    assert mask_group([], SP, 0.15, g) == ([SP.cls], [IGNORE])


def test_frame_mask_rate_only_real_frames_and_at_least_one_per_clip():
    g = torch.Generator().manual_seed(0)
    frame_mask = torch.arange(400)[None] < torch.tensor([400, 300, 1, 2])[:, None]
    masked = torch.stack([sample_frame_mask(frame_mask, 0.15, g) for _ in range(20)])  # (20, B, T)
    assert not (masked & ~frame_mask).any()
    assert masked.any(dim=-1).all()  # every clip of every draw
    assert masked[:, :2].float().sum() / (20 * 700) == pytest.approx(0.15, abs=0.01)


def test_span_target_follows_the_official_rule():
    assert span_target([3, 4, 5], 10) == (3, 5)
    assert span_target([3], 10) == (3, 4)  # one frame: end = start + 1
    assert span_target([9], 10) == (9, 9)  # ... but inside the clip


def test_fom_collate_targets_are_a_permutation_and_padding():
    batch = HeroCollate("fom", SP, pack_max_len=16, fom_prob=0.5, generator=torch.Generator().manual_seed(0))(
        ITEMS
    )
    assert batch["frame_feats"].shape == (2, 6, FDIM)
    assert batch["frame_mask"].tolist() == [[True] * 6, [True] * 4 + [False] * 2]
    assert (batch["frame_feats"][1, 4:] == 0).all()
    torch.testing.assert_close(batch["frame_feats"][1, :4], torch.from_numpy(ITEMS[1]["frame_feats"]))
    order, targets = batch["frame_order"], batch["fom_targets"]
    for b, t in enumerate([6, 4]):
        assert sorted(order[b].tolist()) == list(range(6))  # a permutation ...
        assert order[b, t:].tolist() == list(range(t, 6))  # ... that leaves padding in place
        for p in (targets[b] != -1).nonzero().flatten().tolist():
            assert order[b, targets[b, p]] == p  # the frame now at p came from targets[p]
        moved = (order[b] != torch.arange(6)).nonzero().flatten()
        assert set(moved.tolist()) <= set((targets[b] != -1).nonzero().flatten().tolist())
    # groups: [SEP] + tokens, every frame in one group
    assert batch["frame_group"][0].tolist() == [0, 0, 1, 2, 2, 2]
    tokens = batch["pack_token_ids"][batch["pack_frame_index"] < 0]
    assert (tokens == SP.sep).sum() == 5


def test_mlm_collate_labels_share_the_packed_layout():
    g = torch.Generator().manual_seed(0)
    mlm = HeroCollate("mlm", SP, pack_max_len=16, mask_prob=0.5, generator=g)(ITEMS)
    plain = HeroCollate("fom", SP, pack_max_len=16)(ITEMS)
    assert torch.equal(mlm["pack_group"], plain["pack_group"])
    labels = mlm["mlm_labels"]
    chosen = labels != IGNORE
    assert chosen.any() and (mlm["pack_frame_index"][chosen] < 0).all()
    assert torch.equal(labels[chosen], plain["pack_token_ids"][chosen])  # label = the original token
    heads = (mlm["pack_position_ids"] == 0) & (mlm["pack_frame_index"] < 0) & (mlm["pack_group"] >= 0)
    assert (mlm["pack_token_ids"][heads] == SP.cls).all()  # MLM groups start with [CLS] (official)
    for grp in (0, 1, 3, 4):  # every non-empty sentence (group 2 has no text) has a masked token
        assert chosen[mlm["pack_group"] == grp].any()


def test_vsm_collate_removes_queries_and_targets_lie_inside_their_frames():
    batch = HeroCollate(
        "vsm", SP, pack_max_len=16, query_per_video=3, generator=torch.Generator().manual_seed(0)
    )(ITEMS)
    assert batch["query_ids"].shape[0] == 6  # padded to 3 per clip by repetition
    assert batch["query_video"].tolist() == [0, 0, 0, 1, 1, 1]
    assert batch["query_repeat"].tolist() == [False, False, True, False, False, True]
    assert (batch["query_ids"][:, 0] == SP.cls).all()
    assert batch["query_mask"].sum(1).tolist() == [4, 2, 4, 5, 3, 5]
    assert batch["span_targets"].tolist() == [[0, 1], [2, 3], [0, 1], [0, 2], [3, 3], [0, 2]]
    # the queried sentences are gone from the subtitle input: only [SEP] per group, all frames kept
    tokens = batch["pack_token_ids"][(batch["pack_frame_index"] < 0) & (batch["pack_group"] >= 0)]
    assert tokens.tolist() == [SP.sep] * 5
    assert (batch["frame_group"] >= 0).sum() == 10


def test_unknown_subtask_is_a_config_error():
    with pytest.raises(ConfigError, match="mfx"):
        HeroCollate("mfx", SP)


def test_dataset_on_the_tiny_corpus(tiny_corpus, tiny_features):
    cfg = DataConfig(corpus=str(tiny_corpus), features=str(tiny_features), max_frames=12)
    data = HeroClipDataset(cfg, "train")
    splits = json.loads((tiny_corpus / "splits.json").read_text())
    assert data.vids == splits["pretrain"] + splits["train"]
    for i in range(len(data)):
        it = data[i]
        t = len(it["frame_feats"])
        assert t <= 12 and it["frame_feats"].shape[1] == data.store.dim
        frames = sorted(f for u in it["units"] for f in u.frame_ids)
        assert frames == list(range(t))  # every frame in exactly one unit
    assert data.with_queries()  # the tiny corpus has dialogue


def test_dataset_errors_name_the_split_and_the_store(tiny_corpus, tiny_features, tmp_path):
    cfg = DataConfig(corpus=str(tiny_corpus), features=str(tiny_features), splits={"train": ["nope"]})
    with pytest.raises(ConfigError, match=r"data.splits.train.*'nope'"):
        HeroClipDataset(cfg, "train")
    with pytest.raises(ConfigError, match="no entry for split 'val'"):
        HeroClipDataset(cfg, "val")
    splits = json.loads((tiny_corpus / "splits.json").read_text())
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "splits.json").write_text(json.dumps({"train": splits["train"] + ["tv99999"]}))
    cfg = DataConfig(corpus=str(corpus), features=str(tiny_features), splits={"train": ["train"]})
    with pytest.raises(InputError, match=r"no features for 1 video.*tv99999"):
        HeroClipDataset(cfg, "train")


def test_long_videos_are_said_once_and_a_cut_loudly(caplog):
    """Issue 13: data.max_frames silently dropped everything after 150 s. Every task now reads long videos
    in windows (said once, at INFO); what still reads only the first window (the shuffling test) warns."""
    from tempovl.data.hero_data import DataConfig, note_long_videos

    with caplog.at_level("INFO", logger="tempovl.data.hero_data"):
        assert note_long_videos([50, 100, 400, 120], DataConfig(max_frames=100), 1.5, "train split") == 2
        assert note_long_videos([50, 100], DataConfig(max_frames=100), 1.5, "val split") == 0
    (record,) = caplog.records
    message = record.getMessage()
    assert record.levelname == "INFO" and "train split: 2 of 4 videos" in message and "600 s" in message
    assert "windows of 150 s every 75 s" in message
    caplog.clear()
    with caplog.at_level("INFO", logger="tempovl.data.hero_data"):
        note_long_videos([400], DataConfig(max_frames=100, shuffle_frames=True), 1.5, "val split")
    (record,) = caplog.records
    assert (
        record.levelname == "WARNING" and "shuffling test reads only their first 150 s" in record.getMessage()
    )


def test_windows_tile_the_video_each_frame_from_its_most_central_window():
    from tempovl.data.hero_data import DataConfig, window_keeps, window_starts

    assert window_starts(80, 100, 50) == [0]
    assert window_starts(250, 100, 50) == [0, 50, 100, 150]
    assert window_starts(260, 100, 50) == [0, 50, 100, 150, 160]  # the last one flush with the end
    assert window_starts(260, 100, 100) == [0, 100, 160]
    for n, length, stride in [(250, 100, 50), (260, 100, 50), (261, 100, 100), (17, 8, 3), (9, 8, 1)]:
        starts = window_starts(n, length, stride)
        keeps = window_keeps(starts, length, n)
        assert (
            [a for a, _ in keeps][1:] == [b for _, b in keeps][:-1] and keeps[0][0] == 0 and keeps[-1][1] == n
        )
        for lo, (a, b) in zip(starts, keeps):
            assert lo <= a < b <= lo + length  # a window keeps only its own frames
            for t in range(a, b):  # ... and only those nearest its centre
                centre = abs(t + 0.5 - (lo + length / 2))
                assert all(centre <= abs(t + 0.5 - (o + length / 2)) for o in starts)
    with pytest.raises(ConfigError, match="window_stride: 120 must be between 1 and data.max_frames"):
        DataConfig(max_frames=100, window_stride=120)


def test_vtt_subtitles_work_where_srt_does(tiny_corpus, tiny_features, tmp_path):
    """Issue 13: a corpus whose subtitles are WebVTT gives the clips the same units as its SRT twin."""
    import re
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus / "annotations", corpus / "annotations")
    shutil.copy(tiny_corpus / "splits.json", corpus / "splits.json")
    (corpus / "subtitles").mkdir()
    for srt in (tiny_corpus / "subtitles").glob("*.srt"):
        text = re.sub(r"(\d\d:\d\d:\d\d),(\d\d\d)", r"\1.\2", srt.read_text(encoding="utf-8"))
        (corpus / "subtitles" / f"{srt.stem}.vtt").write_text("WEBVTT\n\n" + text, encoding="utf-8")
    base = DataConfig(corpus=str(tiny_corpus), features=str(tiny_features), max_frames=12)
    vtt = DataConfig(corpus=str(corpus), features=str(tiny_features), max_frames=12)
    srt_clips, vtt_clips = HeroClipDataset(base, "train"), HeroClipDataset(vtt, "train")
    assert sum(len(u) for u in vtt_clips.units) > 0
    assert [[(x.tokens, x.frame_ids) for x in u] for u in srt_clips.units] == [
        [(x.tokens, x.frame_ids) for x in u] for u in vtt_clips.units
    ]
