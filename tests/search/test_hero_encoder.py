"""`HeroEncoder`: a 2-step HERO checkpoint of the tiny corpus -> `tempovl index build --model CKPT` ->
`tempovl search` and HTTP; the index's rows, scores and localisation are the HERO task's own."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi.testclient import TestClient

from tempovl.cli import main
from tempovl.data.subtitles import Sentence, read_subtitle_file
from tempovl.errors import ConfigError, InputError
from tempovl.inference import extract_video
from tempovl.search.encoders import build_encoder, encoder_names
from tempovl.search.hero_encoder import NORM_SCALE, HeroEncoder
from tempovl.search.index import IndexData
from tempovl.search.searcher import Searcher
from tempovl.search.service import create_app

pytestmark = pytest.mark.slow  # trains a checkpoint and indexes the tiny corpus (~20 s)

VID = "tv00006"  # a test-split video of the tiny corpus, with subtitles


@pytest.fixture(scope="module")
def hero_ckpt(hero_vcmr_run):
    return hero_vcmr_run / "best"


@pytest.fixture(scope="module")
def hero(hero_ckpt) -> HeroEncoder:
    enc = build_encoder(str(hero_ckpt))  # a bare checkpoint path goes to the "ckpt" factory
    assert isinstance(enc, HeroEncoder)
    return enc


@pytest.fixture(scope="module")
def hero_index(hero_ckpt, hero, tiny_corpus, tmp_path_factory):
    """Every tiny-corpus video indexed through the CLI with `--model CKPT`."""
    out = tmp_path_factory.mktemp("hero-index") / "index"
    argv = ["index", "build", str(tiny_corpus / "videos"), str(out), "--model", str(hero_ckpt)]
    rc = main([*argv, "--subtitles", str(tiny_corpus / "subtitles"), "--no-progress"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def video(hero, tiny_corpus):
    """(on-the-fly features (T, F), subtitles, the task's own clip item with those features) of VID."""
    feats = extract_video(
        tiny_corpus / "videos" / f"{VID}.mp4", hero.extractor, hero.frame_interval, hero.size
    )
    clips = hero.task.clips("test")
    item = {**clips[clips.vids.index(VID)], "frame_feats": feats}
    return feats, read_subtitle_file(tiny_corpus / "subtitles" / f"{VID}.srt"), item


def test_registered_and_spec(hero, hero_ckpt, hero_index):
    assert {"hero", "ckpt", "subtitle-minilm"} <= set(encoder_names())
    manifest = json.loads((hero_index / "manifest.json").read_text())
    assert manifest["encoder"]["spec"] == hero.spec == f"hero:{hero_ckpt.resolve()}"
    assert manifest["encoder"]["dim"] == hero.task.model.cfg.hidden + 2
    assert build_encoder(hero.spec).fingerprint == hero.fingerprint  # the spec rebuilds the same encoder
    assert len(manifest["videos"]) == 18 and not manifest["bad"]


def test_index_rows_are_the_tasks_temporal_outputs(hero, hero_index, video):
    """Index rows of a video = the task's encode_videos (L2-normalised), plus the norm column."""
    feats, _, item = video
    frames, mask = hero.task.encode_videos([item])  # (1, T, D), (1, T)
    v_temp = frames[0][mask[0]].double()  # (T, D)
    data = IndexData.load(hero_index)
    v = data.video_ids.index(VID)
    rows = data.video_embs(v)  # (T, D + 2)
    d = hero.task.model.cfg.hidden
    assert rows.shape == (len(feats), d + 2) == (len(v_temp), d + 2)
    norms = v_temp.norm(dim=-1)
    np.testing.assert_allclose(rows[:, :d], F.normalize(v_temp, dim=-1).numpy(), atol=1e-5)
    np.testing.assert_allclose(rows[:, d], NORM_SCALE * norms.numpy(), rtol=1e-5)
    assert (rows[:, d + 1] == 0).all()
    spans = data.video_spans(v)
    assert spans[0].tolist() == [0.0, 1.5] and spans[-1, 1] == pytest.approx(27.0)  # tv00006 lasts 27 s


def test_global_scores_and_localize_are_the_tasks(hero, hero_index, video):
    feats, subs, item = video
    task = hero.task
    texts = ["the red circle jumps", "BOB: Honestly, I am happy."]
    frames, mask = task.encode_videos([item])  # (1, T, D), (1, T)
    query = task.encode_queries(texts)  # (2, D)
    rows = hero.encode_features(feats, subs)  # (T, D + 2)
    qrows = hero.encode_query(texts)  # (2, D + 2)
    d = task.model.cfg.hidden
    np.testing.assert_allclose(np.linalg.norm(qrows[:, :d], axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(qrows, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(qrows[:, d + 1], NORM_SCALE * query.norm(dim=-1).numpy(), rtol=1e-5)
    # the index's inner product, max over frames, is HERO's max-pooled cosine
    own = task.global_scores(query, frames, mask)[:, 0].numpy()  # (2,)
    np.testing.assert_allclose((qrows @ rows.T).max(axis=1), own, atol=1e-5)
    searcher = Searcher(hero_index, encoder=hero)
    videos, scores = searcher.video_scores(qrows[0])
    assert scores[videos.tolist().index(searcher.data.video_ids.index(VID))] == pytest.approx(
        own[0], abs=1e-5
    )
    # localisation: VSM's start/end heads on the raw V_temp and q
    for n in range(len(texts)):
        with torch.no_grad():
            st_own, ed_own = task.span_probs_on(query[n : n + 1], frames, mask)  # (1, T) each
        st, ed = hero.localize(qrows[n], rows)
        np.testing.assert_allclose(st, st_own[0].numpy(), atol=1e-6)
        np.testing.assert_allclose(ed, ed_own[0].numpy(), atol=1e-6)
        assert st.sum() == pytest.approx(1.0) and ed.sum() == pytest.approx(1.0)
    # the cosine alone would not do: the same direction at another norm localises differently
    scaled = rows.copy()
    scaled[:, d] *= 3
    assert not np.allclose(hero.localize(qrows[0], scaled)[0], hero.localize(qrows[0], rows)[0], atol=1e-4)


def test_search_ranks_moments_as_the_tasks_evaluation(hero, hero_index):
    """`tempovl search` decodes with the checkpoint task's span window and decoder (issue 14)."""
    from tempovl.tasks.hero import moments as hm

    task = hero.task
    searcher = Searcher(hero_index, encoder=hero, per_video=20)
    assert (searcher.min_span_frames, searcher.max_span_frames) == (
        task.c.min_span_frames,
        task.c.max_span_frames,
    )
    query = hero.encode_query(["the red circle jumps"])[0]
    v = searcher.data.video_ids.index(VID)
    st, ed = hero.localize(query, searcher.data.video_embs(v))
    st, ed = torch.as_tensor(st)[None, None], torch.as_tensor(ed)[None, None]  # (T,) -> (1, 1, T)
    _, _, si, ei = hm.top_spans(st, ed, task.c.min_span_frames, task.c.max_span_frames, 20)
    spans = searcher.data.video_spans(v)
    expected = [(float(spans[i, 0]), float(spans[j, 1])) for i, j in zip(si[0].tolist(), ei[0].tolist())]
    assert [(r[1], r[2]) for r in searcher._moments([(query, v, 0.0)])[0]] == expected


def test_long_video_is_encoded_in_windows(hero, video):
    """Past data.max_frames, overlapping windows with their own (shifted) subtitles, each frame from the
    window whose centre is nearest; nothing is cut."""
    feats, subs, _ = video
    task = hero.task
    full = task.data_cfg.max_frames
    task.data_cfg.max_frames = 8  # windows at 0, 4, 8, 10 keep frames [0, 6), [6, 10), [10, 13), [13, 18)
    try:
        rows = hero.encode_features(feats, subs)
    finally:
        task.data_cfg.max_frames = full
    assert len(rows) == len(feats) == 18
    d = task.model.cfg.hidden
    second = [Sentence(s.text, s.start - 6.0, s.end - 6.0, s.speaker) for s in subs if s.end > 6.0]
    second = [s for s in second if s.start < 12.0]
    expect = hero.encode_features(feats[4:12], second)  # the 2nd window on its own: frames 4..11 = 6..18 s
    np.testing.assert_allclose(rows[6:10], expect[2:6], atol=1e-5)
    assert not np.allclose(rows[:6, :d], hero.encode_features(feats, subs)[:6, :d], atol=1e-4)


def test_cli_search_and_http(hero_index, tiny_corpus, capsys):
    assert main(["search", str(hero_index), "the red circle jumps", "-k", "5", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1)) and 1 <= len(hits) <= 5
    for h in hits:
        assert 0 <= h["start"] < h["end"] <= h["duration"] + 1e-6 and h["path"].endswith(f"{h['video']}.mp4")
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    queries = tiny_corpus / "annotations" / "tvr_test.jsonl"
    assert main(["search", str(hero_index), "--queries", str(queries), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert set(cli["video_recall"]) == {"r1", "r5", "r10", "r100"} and cli["queries"] > 0
    assert cli["video_recall"]["r100"] == 100.0  # every video is ranked
    # the HTTP service answers with the same ranking (the index rebuilds its HERO encoder from the spec)
    client = TestClient(create_app(hero_index))
    for q in (json.loads(line) for line in queries.read_text().splitlines()[:3]):
        got = client.post("/api/search", json={"query": q["desc"], "k": 100}).json()["hits"]
        assert (
            list(dict.fromkeys(h["video"] for h in got))[:10] == cli["ranked_videos"][str(q["desc_id"])][:10]
        )


def test_pretrain_checkpoint_is_accepted(tiny_corpus, tiny_features, tmp_path, hero, video):
    """A hero-pretrain export loads as hero-vcmr (same VSM heads) and encodes."""
    from tempovl.config import load_config
    from tempovl.engine.checkpoint import export
    from tempovl.registry import build_task

    cfg = load_config(
        "hero-tiny-pretrain",
        [f"data.corpus={tiny_corpus}", f"data.features={tiny_features}", "data.max_frames=24"],
    )
    torch.manual_seed(0)
    task = build_task(cfg)
    out = export(task, cfg, tmp_path / "pretrain")
    enc = build_encoder(f"hero:{out}")
    assert isinstance(enc, HeroEncoder) and enc.fingerprint != hero.fingerprint
    assert torch.equal(enc.task.model.vsm_start.weight, task.model.vsm_start.weight)
    feats, subs, _ = video
    rows = enc.encode_features(feats, subs)
    st, ed = enc.localize(enc.encode_query(["hello"])[0], rows)
    assert rows.shape == (18, enc.dim) and st.shape == ed.shape == (18,)


def test_bad_inputs(hero, tmp_path):
    from tempovl.config import load_config
    from tempovl.engine.trainer import train

    with pytest.raises(ConfigError, match="hero:PATH"):
        build_encoder("hero")
    cfg = load_config("task/toy", [f"train.output_dir={tmp_path / 'toy'}", "train.max_steps=1"])
    cfg["train"].update(curves=False, batch_size=4, progress=False)
    toy = train(cfg).checkpoint
    with pytest.raises(ConfigError, match="not a HERO moment-retrieval checkpoint"):
        build_encoder(str(toy))
    with pytest.raises(InputError, match="expected a query"):
        hero.localize(np.zeros(3), np.zeros((4, hero.dim)))
    with pytest.raises(InputError, match=r"features of shape \(5, 7\)"):
        hero.encode_features(np.zeros((5, 7)), [])
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(InputError, match="bad.mp4"):
        hero.encode_video(bad, [])
