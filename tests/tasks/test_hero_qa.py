"""HERO multiple-choice QA (TVQA) and video-language inference (VIOLIN) on the tiny demo corpus."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from tempovl.data.subtitles import Sentence
from tempovl.errors import InputError
from tempovl.tasks.base import PredictRequest
from tempovl.tasks.hero.qa import HeroQAConfig, HeroQATask, HeroViolinTask, check_qa_record, span_frames


@pytest.fixture(scope="module")
def qa_task(tiny_corpus, tiny_features, tmp_path_factory, hero_tiny_config):
    torch.manual_seed(0)
    return HeroQATask(
        hero_tiny_config("hero-tiny-tvqa", tiny_corpus, tiny_features, tmp_path_factory.mktemp("qa"))
    )


def test_span_frames_follow_the_official_rule():
    # ts [3.2, 7.6] at 1.5 s: start floor(2.13) = 2, end ceil(5.07) - 1 = 5 (max with start + 1 = 3)
    assert span_frames([3.2, 7.6], 100, 1.5) == (2, 5)
    assert span_frames([3.0, 3.1], 100, 1.5) == (2, 3)  # at least one frame after the start
    assert span_frames([30.0, 45.0], 10, 1.5) == (9, 9)  # clamped to the last frame
    assert span_frames(None, 10, 1.5) == (-1, -1)


def test_tvqa_finetune_through_the_engine(tiny_corpus, tiny_features, tmp_path, hero_tiny_config):
    from tempovl.engine.trainer import train

    cfg = hero_tiny_config("hero-tiny-tvqa", tiny_corpus, tiny_features, tmp_path / "run")
    result = train(cfg)
    assert result.step == 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "qa_loss" in r]
    assert steps and all(math.isfinite(r["qa_loss"]) and math.isfinite(r["span_loss"]) for r in steps)
    metrics = result.eval_history[-1]
    assert 0.0 <= metrics["accuracy"] <= 100.0 and metrics["n"] > 0
    # the tiny corpus has meta.jsonl: the order-dependent breakdown adds up
    n_order, n_free = metrics.get("n_order", 0.0), metrics.get("n_no_order", 0.0)
    assert n_order + n_free == metrics["n"]


def test_every_new_parameter_gets_a_gradient(qa_task):
    data = qa_task.dataset("train")
    batch = qa_task.collate()([data[i] for i in range(3)])
    qa_task.train()
    out = qa_task(batch)
    assert out["qa_logits"].shape == (3, 5)
    loss = out["qa_loss"] + out["span_loss"]
    assert torch.isfinite(loss)
    qa_task.zero_grad()
    loss.backward()
    for name, p in qa_task.heads.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    for name in ("model.cross.blocks.0.attn.q.weight", "model.temporal.blocks.0.mlp.fc1.weight"):
        assert qa_task.get_parameter(name).grad.abs().sum() > 0, name
    assert qa_task.lr_multipliers() == {"heads": 1.0}  # the CPU preset's (see hero-tiny-tvqa.yaml)
    assert HeroQAConfig().head_lr_mult == 10.0  # the task default, as the official config


def test_span_loss_weight_scales_the_span_term(qa_task):
    data = qa_task.dataset("train")
    batch = qa_task.collate()([data[i] for i in range(2)])
    qa_task.eval()
    with torch.no_grad():
        out = qa_task(batch)
    assert torch.allclose(out["span_loss"], 0.5 * out["span_ce"])


def test_padding_frames_do_not_change_the_probabilities(qa_task):
    data = qa_task.dataset("train")
    lengths = [len(data[i]["clip"]["frame_feats"]) for i in range(len(data))]
    short, long = int(np.argmin(lengths)), int(np.argmax(lengths))
    assert lengths[long] > lengths[short]
    alone = qa_task.predict_batches([data[short]])[1]
    padded = qa_task.predict_batches([data[short], data[long]])[1]  # short clip padded to the long one
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-5)
    np.testing.assert_allclose(alone.sum(), 1.0, atol=1e-5)


def test_bad_answer_index_names_the_record(qa_task, tiny_corpus, tmp_path):
    src = tiny_corpus / "annotations" / "tvqa_train.jsonl"
    lines = src.read_text().splitlines()
    bad = json.loads(lines[1])
    bad["answer_idx"] = 7
    path = tmp_path / "tvqa_train.jsonl"
    path.write_text("\n".join([lines[0], json.dumps(bad), *lines[2:]]) + "\n")
    qa_task.c.annotations = str(tmp_path / "tvqa_{split}.jsonl")
    try:
        with pytest.raises(InputError, match=r"tvqa_train\.jsonl:2.*answer_idx.*7"):
            _fresh_dataset(qa_task)
        bad.update(answer_idx=0, a5="A sixth answer.")
        path.write_text("\n".join([lines[0], json.dumps(bad)]) + "\n")
        with pytest.raises(
            InputError, match=r"tvqa_train\.jsonl:2.*expected 5 candidate answers a0..a4, got 6"
        ):
            _fresh_dataset(qa_task)
    finally:
        qa_task.c.annotations = "annotations/tvqa_{split}.jsonl"


def _fresh_dataset(task):
    from tempovl.tasks.hero.qa import QADataset

    return QADataset(task, "train")


def test_in_memory_records_are_checked():
    good = {"answers": ["a", "b", "c"], "answer_idx": 2}
    check_qa_record(good, 3, "q1")
    with pytest.raises(InputError, match="q7: answer_idx 3 is not in range 0..2"):
        check_qa_record(dict(good, answer_idx=3), 3, "q7")
    with pytest.raises(InputError, match="q8: expected 5 candidate answers, got 3"):
        check_qa_record(good, 5, "q8")


def test_predict_answers_a_question(qa_task):
    dim = qa_task.model.cfg.frame_dim
    feats = np.random.default_rng(1).standard_normal((12, dim)).astype(np.float32)
    subs = [Sentence("Alice: where is the box?", 0.5, 3.0), Sentence("Bob: in the kitchen.", 4.0, 6.5)]
    out = qa_task.predict(
        PredictRequest(feats, subs, question="Where is the box?", answers=["kitchen", "garden", "bed"])
    )
    assert out["answer_idx"] in (0, 1, 2) and len(out["probs"]) == 3
    assert abs(sum(out["probs"]) - 1.0) < 1e-5
    with pytest.raises(InputError, match=rf"expected shape \(T, {dim}\)"):
        qa_task.predict(PredictRequest(feats[:, :5], subs, question="q", answers=["a", "b"]))


def test_violin_finetune_through_the_engine(tiny_corpus, tiny_features, tmp_path, hero_tiny_config):
    from tempovl.engine.trainer import train

    cfg = hero_tiny_config("hero-tiny-violin", tiny_corpus, tiny_features, tmp_path / "run")
    result = train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["violin_loss"]) for r in rows if "violin_loss" in r)
    metrics = result.eval_history[-1]
    assert 0.0 <= metrics["accuracy"] <= 100.0 and metrics["n"] % 2 == 0  # real + fake per pair


def test_violin_heads_get_gradients(tiny_corpus, tiny_features, tmp_path, hero_tiny_config):
    task = HeroViolinTask(hero_tiny_config("hero-tiny-violin", tiny_corpus, tiny_features, tmp_path))
    data = task.dataset("train")
    batch = task.collate()([data[i] for i in range(4)])
    out = task(batch)
    assert out["violin_logits"].shape == (8,)  # paired training items: a statement and its pair each
    out["violin_loss"].backward()
    for name, p in task.heads.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    feats = np.zeros((5, task.model.cfg.frame_dim), dtype=np.float32)
    pred = task.predict(PredictRequest(feats, [], statement="The red circle jumps."))
    assert pred["label"] in (0, 1) and 0.0 <= pred["prob"] <= 1.0


def test_violin_training_items_hold_both_statements_of_a_pair(
    tiny_corpus, tiny_features, tmp_path, hero_tiny_config
):
    """Official HERO: each training item is a statement and its paired one, opposite labels, one clip;
    evaluation items stay single statements."""
    task = HeroViolinTask(hero_tiny_config("hero-tiny-violin", tiny_corpus, tiny_features, tmp_path))
    data = task.dataset("train")
    assert data.paired and len(data) == len(data.items)
    for i in range(len(data)):
        item, (_, rid, _, text, label) = data[i], data.items[i]
        assert item["texts"][0] == text and item["target"] == [label, 1 - label]
        assert item["texts"][1] == data.pair_text[rid, 1 - label] != text
    batch = task.collate()([data[0], data[1]])
    assert batch["targets"].tolist() == [data[0]["target"], data[1]["target"]]
    val = task.dataset("val")
    assert not val.paired and len(val[0]["texts"]) == 1 and isinstance(val[0]["target"], int)
    unpaired = HeroViolinTask(
        hero_tiny_config("hero-tiny-violin", tiny_corpus, tiny_features, tmp_path, "task.paired=false")
    )
    assert len(unpaired.dataset("train")[0]["texts"]) == 1


def test_order_breakdown_comes_from_meta(tiny_corpus, tmp_path):
    from tempovl.tasks.hero.qa import order_types, read_meta

    assert read_meta(tmp_path, "tvqa_val.jsonl") == {}
    meta = read_meta(tiny_corpus, "tvqa_val.jsonl")
    ids = list(meta)[:3]
    assert order_types(ids, meta) == ["order" if meta[i]["order"] else "no_order" for i in ids]
    assert order_types(["missing"], meta) is None


def test_pretrained_hero_weights_initialise_everything_but_the_heads(qa_task, tmp_path):
    from tempovl.engine.checkpoint import load_into, save_weights

    fresh = HeroQATask(qa_task.cfg)
    export = tmp_path / "export.safetensors"
    save_weights(qa_task.model.state_dict(), export, prefix="model")  # what hero-pretrain exports
    assert load_into(fresh, export, mode="fit") == ([], [])
    key = "cross.blocks.0.attn.q.weight"
    assert torch.equal(fresh.model.state_dict()[key], qa_task.model.state_dict()[key])
    full = tmp_path / "task.safetensors"  # a whole pre-training checkpoint: model.* keys, no heads
    save_weights({f"model.{k}": v for k, v in qa_task.model.state_dict().items()}, full)
    missing, unexpected = load_into(fresh, full, mode="fit")
    assert unexpected == [] and missing and all(k.startswith("heads.") for k in missing)


def test_constant_predictions_are_flagged(caplog):
    from tempovl.tasks.hero.qa import prediction_spread, warn_if_constant

    flat = prediction_spread(np.full(40, 0.516))  # VIOLIN: the same P(entailed) for every statement
    assert flat == {"pred_majority": 100.0, "prob_spread": 0.0}
    with caplog.at_level("WARNING", logger="tempovl.tasks.hero.qa"):
        assert warn_if_constant("hero-violin (val)", 300, flat, 40)
    assert "hero-violin (val), step 300: the predictions are constant" in caplog.text
    qa = prediction_spread(np.full((30, 5), 0.2))  # QA: all candidates scored alike
    assert qa["prob_spread"] == 0.0 and warn_if_constant("hero-tvqa (val)", 7, qa, 30)
    caplog.clear()
    probs = np.random.default_rng(0).uniform(0.0, 1.0, size=40)
    with caplog.at_level("WARNING", logger="tempovl.tasks.hero.qa"):
        assert not warn_if_constant("hero-violin (val)", 1, prediction_spread(probs), 40)
    assert caplog.text == ""


def test_evaluation_reports_spread_and_warns_on_a_constant_model(
    tiny_corpus, tiny_features, tmp_path, hero_tiny_config, caplog
):
    task = HeroViolinTask(hero_tiny_config("hero-tiny-violin", tiny_corpus, tiny_features, tmp_path))
    with torch.no_grad():  # a head that ignores its input: P(entailed) = 0.5 for every statement
        task.heads["violin_head"].fc2.weight.zero_()
        task.heads["violin_head"].fc2.bias.zero_()
    with caplog.at_level("WARNING", logger="tempovl.tasks.hero.qa"):
        metrics = task.evaluate("val")
    assert metrics["prob_spread"] == 0.0 and metrics["pred_majority"] == 100.0
    assert "hero-violin (val), step 0: the predictions are constant" in caplog.text
    assert 0.0 <= metrics["text_only_accuracy"] <= 100.0 and metrics["chance_accuracy"] == 50.0


def test_train_limit_keeps_the_first_items(tiny_corpus, tiny_features, tmp_path, hero_tiny_config):
    full = HeroViolinTask(hero_tiny_config("hero-tiny-violin", tiny_corpus, tiny_features, tmp_path))
    task = HeroViolinTask(
        hero_tiny_config("hero-tiny-violin", tiny_corpus, tiny_features, tmp_path, "task.train_limit=3")
    )
    assert task.dataset("train").items == full.dataset("train").items[:3]
    assert len(task.dataset("val")) == len(full.dataset("val"))  # only the train split is cut


@pytest.mark.parametrize("model", ["hero", "hero-ftrm", "hero-htrm"])
@pytest.mark.parametrize("preset", ["hero-tiny-tvqa", "hero-tiny-violin"])
def test_every_hero_model_reads_the_appended_text(
    model, preset, tiny_corpus, tiny_features, tmp_path, hero_tiny_config
):
    """QA / VIOLIN append their text to the temporal input: the frame outputs depend on it under every
    model (F-TRM used to run per-sentence groups and an empty temporal stack, so the text reached
    nothing), and one training step reaches the heads and the first encoder layer."""
    cfg = hero_tiny_config(preset, tiny_corpus, tiny_features, tmp_path, f"model.name={model}")
    torch.manual_seed(0)
    task = (HeroQATask if preset.endswith("tvqa") else HeroViolinTask)(cfg)
    data = task.dataset("train")
    batch = task.collate()([data[i] for i in range(2)])
    ids, mask = batch["text_ids"], batch["text_mask"]
    other = torch.where(mask, (ids + 7) % 1000 + 1000, ids)  # every real text token replaced
    with torch.no_grad():
        task.eval()
        h, h_other = (
            task.model.encode_with_text(batch, ids, mask),
            task.model.encode_with_text(batch, other, mask),
        )
    assert h.shape[:2] == batch["frame_feats"].shape[:2]
    assert (h - h_other).abs().amax() > 1e-4, f"{model}: the appended text does not reach the frames"
    task.train()
    out = task(batch)
    loss = sum(v for k, v in out.items() if k.endswith("_loss"))
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in task.heads.named_parameters():  # a bias shared by the K answers has zero gradient
        assert p.grad is not None and (p.ndim == 1 or p.grad.abs().sum() > 0), (model, name)
    assert task.get_parameter("model.cross.blocks.0.attn.q.weight").grad.abs().sum() > 0, model


def test_flat_baseline_lets_a_frame_see_every_subtitle_sentence(
    tiny_corpus, tiny_features, tmp_path, hero_tiny_config
):
    """F-TRM (HERO 4.3) is one flat pass over the clip: under QA, a frame's output changes when a subtitle
    token of another sentence changes (the per-sentence groups it used to run left it unchanged)."""
    cfg = hero_tiny_config("hero-tiny-tvqa", tiny_corpus, tiny_features, tmp_path, "model.name=hero-ftrm")
    task = HeroQATask(cfg).eval()
    data = task.dataset("train")
    batch = task.collate()([data[0]])
    group, frame_index = batch["pack_group"], batch["pack_frame_index"]
    is_token = (frame_index < 0) & (group >= 0) & (batch["pack_token_ids"] > 103)
    groups = group[is_token].unique()
    assert len(groups) >= 2, "the first tiny-corpus clip needs two subtitle sentences"
    g0, g1 = int(groups[0]), int(groups[1])
    frames_g0 = frame_index[(group == g0) & (frame_index >= 0)]  # flat frame index b * T + t, b = 0
    assert len(frames_g0) > 0
    changed = dict(batch)
    changed["pack_token_ids"] = torch.where(
        is_token & (group == g1), batch["pack_token_ids"] + 1, batch["pack_token_ids"]
    )
    with torch.no_grad():
        a = task.model.encode_with_text(batch, batch["text_ids"], batch["text_mask"])[0, frames_g0]
        b = task.model.encode_with_text(changed, batch["text_ids"], batch["text_mask"])[0, frames_g0]
    assert (a - b).abs().amax() > 1e-4


@pytest.fixture(scope="module")
def windowed(tiny_corpus, tiny_features, tmp_path_factory, hero_tiny_config):
    """QA and VIOLIN with data.max_frames 8 (12 s): the tiny corpus's 18-27 s videos need windows."""
    out = {}
    for name, cls in (("hero-tiny-tvqa", HeroQATask), ("hero-tiny-violin", HeroViolinTask)):
        torch.manual_seed(0)
        cfg = hero_tiny_config(name, tiny_corpus, tiny_features, tmp_path_factory.mktemp(name))
        cfg["data"]["max_frames"] = 8
        out[name] = cls(cfg).eval()
    return out


def test_a_long_video_is_read_in_windows_by_qa_and_violin(windowed):
    """Issue 13: TVQA and VIOLIN read only the first data.max_frames frames. Now a question with a ``ts``
    reads the window around it (its span shifted into it) and one without (VIOLIN, TVQA "NaN-NaN") reads
    the whole video in overlapping windows, merged back into one sequence of the video's frames."""
    from tempovl.data.hero_data import moment_window

    qa = windowed["hero-tiny-tvqa"]
    data = qa.dataset("val")
    late = 0
    for i, (_, ci, _, _, span) in enumerate(data.items):
        item = data[i]
        full = data.clips.store.num_frames(data.clips.vids[ci])
        if full > 8 and span[0] >= 0:
            lo, moment = moment_window(*span, full, data.clips.cfg)
            assert item["span"] == moment and 0 <= moment[0] <= moment[1] < 8
            whole = np.asarray(data.clips.store[data.clips.vids[ci]])
            np.testing.assert_allclose(item["clip"]["frame_feats"], whole[lo : lo + 8])
            late += lo > 0
    assert late > 0  # some questions live past the first 12 s and are read there
    violin = windowed["hero-tiny-violin"]
    vdata = violin.dataset("val")
    long = next(i for i in range(len(vdata)) if "windows" in vdata.statement(i))
    item = vdata.statement(long)
    batch = violin.collate()([item, vdata.statement(long)])
    full = vdata.clips.store.num_frames(vdata.clips.vids[vdata.items[long][2]])
    assert batch["merge_mask"].sum(1).tolist() == [full, full]  # every frame, once
    assert batch["frame_feats"].shape[0] == 2 * len(item["windows"])  # a row per (item, window)
    with torch.no_grad():
        probs = violin.batch_probs(violin(batch))
    assert probs[0] == pytest.approx(probs[1], abs=1e-6)


def test_merging_windows_keeps_each_frame_from_its_own_window(windowed):
    """The merged sequence is each window's kept rows, in order; a video of one window is unchanged."""
    from tempovl.tasks.hero.qa import merged_frames

    violin = windowed["hero-tiny-violin"]
    vdata = violin.dataset("val")
    long = next(i for i in range(len(vdata)) if "windows" in vdata.statement(i))
    item = vdata.statement(long)
    batch = violin.collate()([item])
    with torch.no_grad():
        rows = violin.model.encode_with_text(batch, batch["text_ids"], batch["text_mask"])  # (R, Tw, D)
        merged, mask = merged_frames(rows, batch)
    expect = torch.cat([rows[w, a:b] for w, (_, (a, b)) in enumerate(item["windows"])])
    torch.testing.assert_close(merged[0, mask[0]], expect)
    clip = item["windows"][0][0]
    one = {**{k: v for k, v in item.items() if k != "windows"}, "clip": clip}
    as_windows = {**item, "windows": [(clip, (0, len(clip["frame_feats"])))]}
    a, b = violin.predict_batches([one])[1], violin.predict_batches([as_windows])[1]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_predict_reads_a_long_video_whole(windowed):
    qa = windowed["hero-tiny-tvqa"]
    feats = np.random.default_rng(2).standard_normal((30, qa.model.cfg.frame_dim)).astype(np.float32)
    request = PredictRequest(feats, [], question="Where is the box?", answers=["kitchen", "garden"])
    out = qa.predict(request)
    changed = feats.copy()
    changed[25:] = np.random.default_rng(3).standard_normal(changed[25:].shape)  # only the last 7.5 s differ
    assert qa.predict(
        PredictRequest(changed, [], question="Where is the box?", answers=["kitchen", "garden"])
    )["probs"] != pytest.approx(out["probs"], abs=1e-7)
