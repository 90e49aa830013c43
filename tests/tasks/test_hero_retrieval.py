"""HERO retrieval tasks: span inference on hand-computed cases, the hard-negative hinge, a fine-tune step of
every task, evaluation files that the TVR evaluation scores identically, and bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tempovl.config import load_config
from tempovl.errors import InputError
from tempovl.io import read_jsonl
from tempovl.metrics import eval_tvr
from tempovl.objectives.matching import hinge_both_ways
from tempovl.registry import build_task
from tempovl.tasks.base import PredictRequest
from tempovl.tasks.hero import moments as hm
from tempovl.tasks.hero.retrieval import flatten_tvr, hard_hinge

TASKS = {"hero-vcmr": "hero-tiny-vcmr", "hero-didemo": "hero-tiny-didemo", "hero-msrvtt": "hero-tiny-msrvtt"}


def make_cfg(corpus, features, experiment: str, *overrides: str) -> dict:
    return load_config(
        experiment,
        [
            f"data.corpus={corpus}",
            f"data.features={features}",
            "data.extract_size=null",
            "data.max_frames=24",
            "task.eval_batch_size=4",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def tasks(tiny_corpus, tiny_features):
    torch.manual_seed(0)
    return {name: build_task(make_cfg(tiny_corpus, tiny_features, exp)) for name, exp in TASKS.items()}


# ------------------------------------------------------------------------------ inference pieces
# the span-target labels (formerly hm.span_target) are tested in tests/data/test_align.py
def test_top_spans_is_the_dense_rule_on_the_official_length_mask():
    """The band decoder returns exactly the spans, scores and order of scoring every (i, j) in the
    official mask min_len <= j - i < max_len, on random probabilities over several videos."""
    gen = torch.Generator().manual_seed(0)
    q, k, t = 2, 3, 23
    st = torch.rand(q, k, t, generator=gen, dtype=torch.float64).softmax(-1)
    ed = torch.rand(q, k, t, generator=gen, dtype=torch.float64).softmax(-1)
    vs = torch.rand(q, k, generator=gen, dtype=torch.float64)
    for lo, hi in [(2, 16), (0, 1), (1, 3), (0, 100)]:
        idx = torch.arange(t)
        length = idx[None, :] - idx[:, None]  # (T, T): j - i
        mask = (length >= lo) & (length < hi)
        dense = (st[..., :, None] * ed[..., None, :] * vs[..., None, None]).masked_fill(~mask, -1.0)
        want = dense.reshape(q, -1).topk(min(50, k * int(mask.sum())), dim=1)
        scores, vk, si, ei = hm.top_spans(st, ed, lo, hi, 50, vs)
        torch.testing.assert_close(scores, want.values)
        flat = vk * t * t + si * t + ei  # the dense index of each returned span
        torch.testing.assert_close(flat, want.indices)
        assert ((ei - si >= lo) & (ei - si < hi)).all()


def test_top_spans_multiplies_start_end_and_video_scores():
    st = torch.tensor([[[0.5, 0.3, 0.2]], [[0.1, 0.1, 0.8]]]).reshape(1, 2, 3)  # (Q=1, K=2, T=3)
    ed = torch.tensor([[[0.1, 0.2, 0.7]], [[0.3, 0.3, 0.4]]]).reshape(1, 2, 3)
    # every span with ed >= st
    scores, vk, si, ei = hm.top_spans(st, ed, 0, 3, top_n=3, video_scores=torch.tensor([[1.0, 2.0]]))
    # video 1: 2 * 0.8 * 0.4 = 0.64 at (2, 2); video 0: 0.5 * 0.7 = 0.35 at (0, 2); video 1: 2 * .1 * .4
    assert scores[0].tolist() == pytest.approx([0.64, 0.35, 0.21])
    assert vk[0].tolist() == [1, 0, 0] and si[0].tolist() == [2, 0, 1] and ei[0].tolist() == [2, 2, 2]
    scores, _, si, ei = hm.top_spans(st, ed, 1, 2, top_n=100)  # spans of exactly 2 frames: 2 per video
    assert scores.shape == (1, 4) and ((ei - si) == 1).all()  # never a span outside the window
    assert hm.to_seconds(2, 4, 1.5) == (3.0, 7.5)


def test_hard_hinge_by_hand_and_equal_to_the_plain_hinge_with_uniform_weights():
    scores = torch.tensor([[0.9, 0.5, 0.8], [0.2, 0.6, 0.1], [0.3, 0.7, 0.4]])  # (Nq=3, Nv=3)
    qv = torch.tensor([0, 1, 2])
    neg_ctx, neg_q = hard_hinge(scores, qv, margin=0.1, pool=1, weight=10.0)
    # query 0: negatives sorted 0.8, 0.5 -> hinges 0.0, 0.0; query 1: 0.2, 0.1 -> 0, 0;
    # query 2: 0.7, 0.3 -> 0.4, 0.0 -> weighted (10 * 0.4 + 0.1 * 0) / 2 = 2.0
    assert float(neg_ctx) == pytest.approx((0 + 0 + 2.0) / 3)
    # neg_q for query 2 (video 2): other queries on video 2: q0 0.8, q1 0.1 -> hinge 0.5, 0 -> 10*0.5/2
    # query 0 (video 0): q2 0.3, q1 0.2 -> 0, 0; query 1 (video 1): q2 0.7, q0 0.5 -> 0.2, 0.0 -> 10*0.2/2
    assert float(neg_q) == pytest.approx((0 + 1.0 + 2.5) / 3)
    plain = hinge_both_ways(scores, qv, 0.1)
    uniform = hard_hinge(scores, qv, 0.1, pool=10, weight=1.0)
    assert [float(x) for x in uniform] == pytest.approx([float(x) for x in plain])


def test_didemo_moment_scores_use_the_frames_of_each_segment_moment():
    st = np.zeros((1, 20))
    ed = np.zeros((1, 20))
    st[0, 3], ed[0, 6] = 0.5, 0.4  # segment 1 = 5-10 s -> frames 3..6 at 1.5 s
    scores = hm.didemo_moment_scores(st, ed, 1.5, [(0, 0), (1, 1), (0, 1)])
    assert scores[0].tolist() == pytest.approx([0.0, 0.2, 0.0])


# -------------------------------------------------------------------------------- fine-tuning step
@pytest.mark.parametrize("name", list(TASKS))
def test_one_finetune_step_gives_finite_losses_and_gradients_everywhere(tasks, name):
    task = tasks[name]
    task.train()
    data = task.dataset("train")
    batch = task.collate()([data[i] for i in range(min(3, len(data)))])
    assert batch["query_ids"].shape[0] == len(batch["vids"]) * task.c.queries_per_video
    out = task(batch)
    assert torch.isfinite(out["vsm_loss"]) and float(out["vsm_loss"].detach()) > 0
    assert ("vsm_local" in out) == (name != "hero-msrvtt")
    task.zero_grad()
    out["vsm_loss"].backward()
    trainable = [(n, p) for n, p in task.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for _, p in trainable)
    assert not task.model.mlm_head.dense.weight.requires_grad  # unused pre-training heads are frozen


def test_hard_negatives_start_after_the_configured_number_of_forwards(tiny_corpus, tiny_features):
    cfg = make_cfg(
        tiny_corpus,
        tiny_features,
        "hero-tiny-vcmr",
        "task.hard_negative=true",
        "task.hard_negative_start=1",
        "model.dropout=0.0",
        "model.attn_dropout=0.0",
    )
    task = build_task(cfg)
    task.train()
    data = task.dataset("train")
    torch.manual_seed(1)
    batch = task.collate()([data[i] for i in range(3)])
    first = task(batch)  # forward 1: the plain hinge
    second = task(batch)  # forward 2: hard negatives; pool 20 > 2 negatives, so every hinge weighs 10
    assert int(task.train_forwards) == 2
    for key in ("vsm_neg_ctx", "vsm_neg_q"):
        assert float(second[key]) == pytest.approx(10 * float(first[key]), rel=1e-5)


# ------------------------------------------------------------------------------------- evaluation
@pytest.mark.parametrize("name", ["hero-vcmr", "hero-didemo"])
def test_evaluate_writes_a_tvr_prediction_file_that_eval_tvr_scores_the_same(tasks, name, tmp_path):
    task = tasks[name]
    metrics = task.evaluate("val", out_dir=tmp_path)
    submission = json.loads((tmp_path / "predictions.json").read_text())
    gt = read_jsonl(tmp_path / "ground_truth.jsonl")
    assert set(submission) == {"video2idx", "VCMR", "SVMR", "VR"}
    queries = task.queries("val")
    assert [e["desc_id"] for e in submission["VCMR"]] == [q.qid for q in queries]
    c = task.c
    for entry in submission["VCMR"] + submission["SVMR"]:
        rows = entry["predictions"]
        assert 0 < len(rows) <= c.max_after_nms
        assert [r[3] for r in rows] == sorted((r[3] for r in rows), reverse=True)
        for _, st, ed, _ in rows:
            frames = round((ed - st) / task.interval)
            assert c.min_span_frames + 1 <= frames <= c.max_span_frames
    again = flatten_tvr(eval_tvr(submission, gt))
    for k, v in again.items():
        assert math.isnan(v) and math.isnan(metrics[k]) or v == metrics[k], k
    for k in ("VCMR_0.5-r1", "VCMR_0.7-r100", "SVMR_0.5-r10", "VR_r1"):
        assert 0.0 <= metrics[k] <= 100.0
    assert (tmp_path / "moments.png").stat().st_size > 1000
    assert "| VCMR |" in (tmp_path / "tvr_metrics.md").read_text()
    if name == "hero-didemo":
        assert {"didemo_R@1", "didemo_R@5", "didemo_mIoU"} <= set(metrics)
        assert any(isinstance(g["ts"][0], list) and len(g["ts"]) >= 4 for g in gt)  # annotator spans kept
    else:
        assert "VCMR_v-0.5-r1" in metrics and "VR_vt-r10" in metrics


def test_bad_prediction_files_get_clear_errors(tasks, tmp_path):
    tasks["hero-vcmr"].evaluate("val", out_dir=tmp_path)
    submission = json.loads((tmp_path / "predictions.json").read_text())
    gt = read_jsonl(tmp_path / "ground_truth.jsonl")
    missing = {**submission, "VCMR": submission["VCMR"][1:]}
    with pytest.raises(InputError, match="have no predictions"):
        eval_tvr(missing, gt)
    unknown = json.loads(json.dumps(submission))
    unknown["VCMR"][0]["predictions"][0][0] = 999
    with pytest.raises(InputError, match="video indices not in video2idx"):
        eval_tvr(unknown, gt)


def test_msrvtt_evaluates_clip_retrieval(tasks, tmp_path):
    metrics = tasks["hero-msrvtt"].evaluate("val", out_dir=tmp_path)
    assert {"t2v_R@1", "t2v_median_rank", "v2t_R@1"} <= set(metrics)
    ranking = json.loads((tmp_path / "rankings.json").read_text())
    assert len(ranking) == len(tasks["hero-msrvtt"].queries("val"))


def test_shuffle_frames_is_deterministic_and_changes_the_encoding(tiny_corpus, tiny_features):
    torch.manual_seed(0)
    plain = build_task(make_cfg(tiny_corpus, tiny_features, "hero-tiny-vcmr"))
    shuffled = build_task(make_cfg(tiny_corpus, tiny_features, "hero-tiny-vcmr", "data.shuffle_frames=true"))
    shuffled.load_state_dict(plain.state_dict())
    clips = plain.clips("val")
    item = clips[0]
    a, b = shuffled.clips("val")[0], shuffled.clips("val")[0]  # the evaluation splits are shuffled
    assert np.array_equal(a["frame_feats"], b["frame_feats"])
    assert np.array_equal(shuffled.clips("train")[0]["frame_feats"], plain.clips("train")[0]["frame_feats"])
    assert not np.array_equal(a["frame_feats"], item["frame_feats"])
    assert np.array_equal(np.sort(a["frame_feats"], axis=0), np.sort(np.asarray(item["frame_feats"]), axis=0))
    plain.eval()
    shuffled.eval()
    frames_plain, _ = plain.encode_videos([item])
    frames_shuffled, _ = shuffled.encode_videos([a])
    assert not torch.allclose(frames_plain, frames_shuffled)
    assert set(shuffled.evaluate("val")) == set(plain.evaluate("val"))


def test_queries_naming_videos_outside_the_split_are_an_input_error(tiny_corpus, tiny_features):
    cfg = make_cfg(
        tiny_corpus, tiny_features, "hero-tiny-vcmr", "task.annotations.val=annotations/tvr_train.jsonl"
    )
    task = build_task(cfg)
    with pytest.raises(InputError, match=r"tvr_train.jsonl: .* not in split 'val'"):
        task.queries("val")


def test_predict_ranks_moments_inside_the_video(tasks):
    task = tasks["hero-vcmr"]
    vid = task.clips("val").vids[0]
    feats = task.store[vid]
    out = task.predict(PredictRequest(feats, [], query="the red circle jumps", top_k=4))
    assert 1 <= len(out["moments"]) <= 4 and -1.0 <= out["video_score"] <= 1.0
    scores = [m["score"] for m in out["moments"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= m["start"] < m["end"] <= len(feats) * task.interval for m in out["moments"])
    with pytest.raises(InputError, match="expects"):
        task.predict(PredictRequest(feats[:, :5], [], query="x"))


def test_predict_sees_a_video_longer_than_one_clip(tasks):
    """A video of 3 clips' length is encoded whole (in overlapping windows, as the search index does) and
    its moments can lie anywhere, not only in the first ``data.max_frames`` frames."""
    from tempovl.data.hero_data import window_keeps, window_starts, window_stride

    task = tasks["hero-vcmr"]
    clip = task.data_cfg.max_frames
    feats = np.random.default_rng(0).standard_normal((3 * clip, task.model.cfg.frame_dim)).astype(np.float32)
    frames = task.encode_whole_video(feats, [], task.interval)
    assert frames.shape == (3 * clip, task.model.cfg.hidden)
    starts = window_starts(3 * clip, clip, window_stride(task.data_cfg))
    assert len(starts) == 5  # every half window
    for lo, (a, b) in zip(starts, window_keeps(starts, clip, 3 * clip)):  # each frame from its own window
        alone = task.encode_whole_video(feats[lo : lo + clip], [], task.interval)
        torch.testing.assert_close(frames[a:b], alone[a - lo : b - lo], atol=1e-5, rtol=1e-4)
    out = task.predict(PredictRequest(feats, [], query="the red circle jumps", top_k=100))
    assert max(m["end"] for m in out["moments"]) > clip * task.interval
    assert all(0 <= m["start"] < m["end"] <= 3 * clip * task.interval for m in out["moments"])


def test_a_clip_twice_in_one_batch_is_not_its_own_negative(tasks):
    """Batches may straddle two epochs; the collate keeps the first copy of a clip, so the VSM hinge never
    ranks a query's own video against itself."""
    task = tasks["hero-vcmr"]
    data = task.dataset("train")
    a, b = data[0], data[1]
    batch = task.collate()([a, b, a])
    assert batch["frame_feats"].shape[0] == 2
    assert sorted(set(batch["query_video"].tolist())) == [0, 1]


def test_training_refuses_a_moment_past_the_videos_end(tiny_corpus, tiny_features, tmp_path):
    """Issue 13: train reads annotations with the checks of `data validate`: the stored videos'
    durations bound every span, and a bad record is named by file and line."""
    rows = read_jsonl(tiny_corpus / "annotations" / "tvr_train.jsonl")
    rows[1] = {**rows[1], "ts": [rows[1]["ts"][0], 999.0], "duration": 1000.0}  # the file agrees with itself
    bad = tmp_path / "tvr_train.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = build_task(make_cfg(tiny_corpus, tiny_features, "hero-tiny-vcmr", f"task.annotations.train={bad}"))
    with pytest.raises(InputError, match=r"tvr_train.jsonl:2 .*999.0\] ends after the video's duration 2\d"):
        task.queries("train")
    assert task.video_durations()[rows[0]["vid_name"]] == pytest.approx(rows[0]["duration"], abs=0.5)


def test_evaluation_sees_whole_videos_past_max_frames(tiny_corpus, tiny_features, tmp_path):
    """Issue 13: with data.max_frames 8 (12 s) the tiny corpus's 18-27 s videos were cut at 12 s; evaluation
    now encodes them whole in overlapping windows (as predict and search do), so moments after 12 s exist."""
    task = build_task(make_cfg(tiny_corpus, tiny_features, "hero-tiny-vcmr", "data.max_frames=8")).eval()
    clips = task.clips("val")
    frames, masks = task.encode_split(clips)
    full = [clips.store.num_frames(v) for v in clips.vids]
    assert max(full) > 8 and masks.sum(1).tolist() == full
    i = full.index(max(full))
    feats, sentences = clips.whole_video(i)
    whole = task.encode_whole_video(feats, sentences, clips.store.interval, where=clips.vids[i])
    torch.testing.assert_close(frames[i, : len(whole)], whole)
    task.evaluate("val", out_dir=tmp_path)
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    ends = [m[2] for q in predictions["VCMR"] for m in q["predictions"]]
    assert max(ends) > 8 * 1.5


def test_training_targets_past_the_first_window_are_trained_in_their_own_window(tiny_corpus, tiny_features):
    """Issue 13: with data.max_frames 8 a moment at 15 s was trained as a span clipped to 12 s; now the
    item is the window around it (frames and subtitles of the window) and the target sits inside it."""
    from tempovl.data.hero_data import training_window

    assert training_window(2, 5, 6, 8, 4) == 0  # fits one window
    assert training_window(10, 12, 30, 8, 4) == 8  # the grid evaluate reads: 0, 4, 8, ...
    assert training_window(13, 14, 17, 8, 4) == 8
    assert training_window(15, 16, 17, 8, 4) == 9  # only the last window (flush with the end) holds it
    assert training_window(0, 20, 30, 8, 4) == 6  # longer than a window: centred
    assert (
        training_window(10, 12, 30, 8, 8) == 8 and training_window(7, 9, 30, 8, 8) == 4
    )  # stride 8: none holds 7..9
    task = build_task(make_cfg(tiny_corpus, tiny_features, "hero-tiny-vcmr", "data.max_frames=8"))
    data = task.dataset("train")
    late = 0
    for i in range(len(data)):
        item = data[i]
        index, lo = data.keys[i]
        full = np.asarray(data.clips.store[data.clips.vids[index]])
        np.testing.assert_allclose(item["frame_feats"], full[lo : lo + 8])
        for _, (st, ed) in item["queries"]:
            assert 0 <= st <= ed < len(item["frame_feats"])
        late += lo > 0
    assert late > 0  # some moments live past the first 12 s and train there


def test_the_recorded_extract_size_is_the_stores(tiny_corpus, tiny_features, caplog):
    """Issue 13: a checkpoint records the frame size its features were extracted at, as the store says,
    so predict and index build extract a user's video the same way; a preset that says otherwise is told."""
    from tempovl.data.features.store import FeatureStore

    size = FeatureStore(tiny_features).details["size"]
    with caplog.at_level("WARNING"):
        task = build_task(
            make_cfg(tiny_corpus, tiny_features, "hero-tiny-vcmr", f"data.extract_size={size + 96}")
        )
    assert task.data_cfg.extract_size == size
    assert f"extracted at {size} px" in caplog.text
