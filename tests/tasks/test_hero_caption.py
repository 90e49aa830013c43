"""HERO moment captioning (TVC) on the tiny demo corpus."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from tempovl.config import load_config
from tempovl.data.subtitles import Sentence
from tempovl.errors import InputError
from tempovl.tasks.base import PredictRequest
from tempovl.tasks.hero.caption import HeroCaptionTask, moment_frames


@pytest.fixture(scope="module")
def tvc_task(tiny_corpus, tiny_features, tmp_path_factory, hero_tiny_config):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tvc")
    return HeroCaptionTask(
        hero_tiny_config("hero-tiny-tvc", tiny_corpus, tiny_features, out, "task.max_gen_len=8")
    )


def test_moment_frames_follow_the_official_rule():
    # [3.2, 7.6] at 1.5 s: frames [floor(2.13), round(5.07)) = [2, 5)
    assert moment_frames([3.2, 7.6], 100, 1.5) == (2, 5)
    assert moment_frames([3.0, 3.1], 100, 1.5) == (2, 3)  # at least one frame
    assert moment_frames([40.0, 50.0], 10, 1.5) == (9, 10)  # kept inside the clip


def test_every_new_parameter_gets_a_gradient(tvc_task):
    data = tvc_task.dataset("train")
    batch = tvc_task.collate()([data[i] for i in range(3)])
    tvc_task.train()
    out = tvc_task(batch)
    assert torch.isfinite(out["caption_loss"])
    tvc_task.zero_grad()
    out["caption_loss"].backward()
    for name, p in tvc_task.heads.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # trained end to end: the encoder and the shared word embeddings / LM head learn too
    for name in ("model.cross.blocks.0.attn.q.weight", "model.temporal.blocks.0.mlp.fc1.weight"):
        assert tvc_task.get_parameter(name).grad.abs().sum() > 0, name
    assert tvc_task.model.text_embed.word.weight.grad.abs().sum() > 0
    assert tvc_task.lr_multipliers() == {"heads": 10.0}


def test_moment_memory_holds_the_moment_frames(tvc_task):
    data = tvc_task.dataset("val", train=False)
    items = [data[i] for i in range(2)]
    batch = tvc_task.collate()(items)
    tvc_task.eval()
    with torch.no_grad():
        frames = tvc_task.model.encode(batch)["frame_temporal"]
        memory, mask = tvc_task.encode_moments(batch)
    for b, it in enumerate(items):
        st, ed = it["moment"]
        assert int(mask[b].sum()) == ed - st
        torch.testing.assert_close(memory[b, : ed - st], frames[b, st:ed])


def test_beam_one_equals_greedy(tvc_task):
    """The shared decoder at one beam is the argmax loop ([CLS] and padding never generated, no [SEP]
    first), batched over moments; a wider beam still gives one caption per moment."""
    data = tvc_task.dataset("val", train=False)
    batch = tvc_task.collate()([data[i] for i in range(3)])
    greedy = tvc_task.generate(batch, beam_size=1)
    sp, max_len = tvc_task.specials, tvc_task.c.max_gen_len
    tvc_task.eval()
    expected = []
    with torch.no_grad():
        memory, mask = tvc_task.encode_moments(batch)
        for b in range(3):
            ids = [sp.cls]
            for t in range(max_len):
                logits = tvc_task.decode_logits(torch.tensor([ids]), memory[b : b + 1], mask[b : b + 1])[
                    0, -1
                ]
                logits[[sp.pad, sp.cls]] = float("-inf")
                if t == 0:
                    logits[sp.sep] = float("-inf")
                nxt = int(logits.argmax())
                if nxt == sp.sep:
                    break
                ids.append(nxt)
            expected.append(ids[1:])
        assert tvc_task.decode(memory, mask, max_len, 1) == expected
    assert greedy == [tvc_task.tokenizer.decode(s, skip_special_tokens=True).strip() for s in expected]
    wide = tvc_task.generate(batch, beam_size=3)
    assert len(wide) == 3 and all(isinstance(c, str) for c in wide)


def test_predict_captions_a_moment(tvc_task):
    feats = np.random.default_rng(2).standard_normal((20, tvc_task.model.cfg.frame_dim)).astype(np.float32)
    subs = [Sentence("Alice: look at that.", 1.0, 4.0)]
    out = tvc_task.predict(PredictRequest(feats, subs, start=3.0, end=9.0))
    assert isinstance(out["caption"], str) and out["frames"] == [2, 6]
    with pytest.raises(InputError, match="start < end"):
        tvc_task.predict(PredictRequest(feats, subs, start=9.0, end=3.0))


@pytest.mark.slow
def test_tvc_finetune_evaluate_and_known_captions(
    tiny_corpus, tiny_features, tmp_path, monkeypatch, hero_tiny_config
):
    """The one test that runs Java (PTB tokenizer, METEOR): engine fine-tune + evaluate, and a known
    caption scored through caption_scores."""
    if shutil.which("java") is None:
        pytest.skip("no Java runtime")
    from tempovl.engine.trainer import train

    cfg = hero_tiny_config(
        "hero-tiny-tvc", tiny_corpus, tiny_features, tmp_path / "run", "task.max_gen_len=6"
    )
    result = train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["caption_loss"]) for r in rows if "caption_loss" in r)
    metrics = result.eval_history[-1]
    for name in ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"):
        assert math.isfinite(metrics[name]) and metrics[name] >= 0.0
    preds = json.loads((tmp_path / "run" / "predictions" / "tvc_val.json").read_text())
    assert len(preds) == metrics["n"] and all("desc" in p["descs"][0] for p in preds)

    # a model that outputs the first reference of every moment: BLEU-4 and ROUGE-L are exactly 1
    task = HeroCaptionTask(cfg)
    task.c.metrics = ["BLEU-4", "ROUGE-L"]
    data = task.dataset("val", train=False)
    first = {m["clip_id"]: m["refs"][0] for *_, m in data.items}
    monkeypatch.setattr(
        task, "generate", lambda batch, beam_size=None: [first[m["clip_id"]] for m in batch["meta"]]
    )
    perfect = task.evaluate("val")
    assert perfect["BLEU-4"] == pytest.approx(1.0) and perfect["ROUGE-L"] == pytest.approx(1.0)
    monkeypatch.setattr(task, "generate", lambda batch, beam_size=None: ["zebra"] * len(batch["meta"]))
    wrong = task.evaluate("val")
    assert wrong["BLEU-4"] < 1e-6 and wrong["ROUGE-L"] == 0.0


def test_a_late_moment_is_captioned_in_its_own_window(tiny_corpus, tiny_features):
    """Issue 13: with data.max_frames 8 (12 s), a TVC moment after 12 s was clipped to the first window;
    now the item is the window around it and the moment's frames lie inside it."""
    cfg = load_config(
        "hero-tiny-tvc",
        [
            f"data.corpus={tiny_corpus}",
            f"data.features={tiny_features}",
            "data.extract_size=null",
            "data.max_frames=8",
        ],
    )
    task = HeroCaptionTask(cfg)
    data = task.dataset("train", train=True)
    late = [it for it in data.items if it[1] > 0]
    assert late, "the tiny corpus has TVC moments after 12 s"
    ci, lo, (st, ed), _, meta = late[0]
    item = data[data.items.index(late[0])]
    assert len(item["clip"]["frame_feats"]) == 8 and 0 <= st <= ed < 8
    assert lo * task.store.interval <= meta["ts"][0] < (lo + 8) * task.store.interval
