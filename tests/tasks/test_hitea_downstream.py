"""HiTeA downstream tasks: retrieval (VTM re-ranking), MC / open-ended QA, captioning, zero-shot
evaluation of a pre-training checkpoint, the temporal shuffling test, bad input, predict."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tempovl.config import load_config
from tempovl.engine import checkpoint as ck
from tempovl.engine.trainer import Trainer
from tempovl.errors import InputError
from tempovl.registry import build_task
from tempovl.tasks.base import PredictRequest
from tempovl.tasks.hitea.retrieval import rerank_topk

LOSSES = {
    "retrieval": {"vtc_loss", "vtm_loss"},
    "ssv2": {"vtc_loss", "vtm_loss"},
    "mcqa": {"mcqa_loss"},
    "oeqa": {"answer_loss"},
    "caption": {"caption_loss"},
}


def _cfg(name: str, corpus: Path, out: Path | None = None, overrides=()) -> dict:
    base = [
        f"data.corpus={corpus}",
        "data.num_frames=4",
        "data.max_text_len=32",
        "data.cache=memory",
        "model.max_positions=64",
        "model.queue_size=16",
        "train.batch_size=2",
        "train.progress=false",
        "train.curves=false",
        "train.warmup_steps=0",
        "train.device=cpu",
        f"train.output_dir={out}",
        "task.eval_batch_size=4",
    ]
    if name == "caption":
        base += ["task.max_len=4", "task.num_beams=2", "task.metrics=[BLEU-4,ROUGE-L,CIDEr-D]"]
    if name == "oeqa":
        base += ["task.answer_max_len=4", "task.num_beams=1"]
    return load_config(f"hitea-tiny-{name}", [*base, *overrides])


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LOSSES))
def test_finetune_step_and_evaluate(name, tiny_corpus, tmp_path):
    trainer = Trainer(_cfg(name, tiny_corpus, tmp_path / "run"))
    r = trainer.train_step()
    assert not r["bad"]
    assert LOSSES[name] <= set(r["values"])
    assert all(math.isfinite(r["values"][k]) for k in LOSSES[name])
    metrics = (
        trainer.task.evaluate("val", out_dir=tmp_path) if name == "oeqa" else trainer.task.evaluate("val")
    )
    if name == "oeqa":  # the generated answers are kept beside the metrics
        answers = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
        assert len(answers) == metrics["num_questions"] and {"qid", "answer", "reference"} <= set(answers[0])
    key = {"caption": "CIDEr-D", "mcqa": "accuracy", "oeqa": "accuracy"}.get(name, "t2v_R@1")
    assert key in metrics and math.isfinite(metrics[key])
    if name in ("retrieval", "ssv2"):
        assert 0.0 <= metrics["t2v_mean_recall"] <= 100.0 and metrics["t2v_median_rank"] >= 1
        assert metrics["t2v_chance_R@1"] == pytest.approx(100.0 / metrics["num_videos"], rel=0.5)
        assert 0.0 <= metrics["video_embed_spread"] < 1.0 and 0.0 <= metrics["text_embed_spread"] < 1.0


def test_rerank_is_a_permutation_of_the_top_k_and_k1_is_the_dot_product_order():
    g = torch.Generator().manual_seed(0)
    sim = torch.randn(5, 9, generator=g)
    vtm = torch.randn(5, 9, generator=g)
    dot_order = torch.sort(sim, dim=1, descending=True, stable=True).indices
    for k in (3, 9):
        order = rerank_topk(sim, k, lambda q, cand: vtm[q, cand])
        for q in range(5):
            assert sorted(order[q, :k].tolist()) == sorted(dot_order[q, :k].tolist())
            assert order[q, k:].tolist() == dot_order[q, k:].tolist()  # the tail keeps the dot order
            scores = vtm[q, order[q, :k]]
            assert torch.all(scores[:-1] >= scores[1:])  # the top k sorted by the VTM score
    assert torch.equal(rerank_topk(sim, 1, lambda q, cand: vtm[q, cand]), dot_order)
    # a hand-checked row: dot order [2, 0, 1, 3]; VTM reorders the top 3 as [1, 2, 0]
    sim1 = torch.tensor([[0.5, 0.1, 0.9, -1.0]])
    vtm1 = torch.tensor([[0.0, 3.0, 1.0, 9.0]])
    assert rerank_topk(sim1, 3, lambda q, c: vtm1[q, c]).tolist() == [[1, 2, 0, 3]]


@pytest.mark.slow
def test_task_rerank_k1_equals_dot_product_ranking(tiny_corpus, tmp_path):
    task = build_task(_cfg("retrieval", tiny_corpus, tmp_path)).eval()
    data = task.data("train")
    r1 = task.rank(data, k=1)
    dot = torch.sort(r1["sim"], dim=1, descending=True, stable=True).indices
    assert torch.equal(r1["t2v_order"], dot)
    rk = task.rank(data, k=3)
    assert torch.equal(rk["sim"], r1["sim"])  # the same encodings
    for q in range(len(data.texts)):
        assert set(rk["t2v_order"][q, :3].tolist()) == set(dot[q, :3].tolist())


def test_ssv2_templates_are_queries_with_all_their_videos(tiny_corpus, tmp_path):
    task = build_task(_cfg("ssv2", tiny_corpus, tmp_path))
    data = task.data("train")
    rows = [json.loads(x) for x in (tiny_corpus / "annotations/ssv2_template_train.jsonl").open()]
    assert data.texts == list(dict.fromkeys(r["template"] for r in rows))
    for t, vids in zip(data.texts, data.text_videos):
        assert sorted(Path(data.videos[v]).stem for v in vids) == sorted(
            r["id"] for r in rows if r["template"] == t
        )


def test_shuffled_evaluation_changes_only_the_frame_order(tiny_corpus, tmp_path):
    plain = build_task(_cfg("retrieval", tiny_corpus, tmp_path, ["data.num_frames=8"]))
    shuffled = build_task(
        _cfg("retrieval", tiny_corpus, tmp_path, ["data.num_frames=8", "data.shuffle_frames=true"])
    )
    path = plain.data("train").videos[0]
    a, b = plain.sampler.sample(path, 3, False), shuffled.sampler.sample(path, 3, False)
    perm = np.random.default_rng([0, 3]).permutation(8)
    assert not np.array_equal(perm, np.arange(8))
    assert torch.equal(b, a[torch.from_numpy(perm)])  # same frames, permuted with the fixed seed
    assert torch.equal(shuffled.sampler.sample(path, 3, False), b)  # and reproducibly so
    assert torch.equal(plain.sampler.sample(path, 3, False), a)  # evaluation sampling is fixed


def test_training_sampling_is_augmented_but_keeps_shape(tiny_corpus, tmp_path):
    """Training frames are flipped when ``data.flip_prob`` says so, from the same draw as unflipped ones."""
    samples = {}
    for flip in (0.0, 1.0):
        task = build_task(
            _cfg("retrieval", tiny_corpus, tmp_path, [f"data.flip_prob={flip}", "data.crop_scale=[1.0,1.0]"])
        )
        path = task.data("train").videos[0]
        torch.manual_seed(0)  # the same frame times for both: the flip is the only difference
        samples[flip] = task.sampler.sample(path, 0, True)
    plain, flipped = samples[0.0], samples[1.0]
    assert flipped.shape == (4, 32, 32, 3) and flipped.dtype == torch.uint8
    assert not torch.equal(flipped, plain)
    assert torch.equal(flipped, plain.flip(2))


def _bad_tvqa(tmp_path: Path, **change) -> Path:
    rec = {
        "qid": 7,
        "q": "What happens first?",
        **{f"a{i}": f"answer {i}" for i in range(5)},
        "answer_idx": 1,
        "ts": "1.00-4.00",
        "vid_name": "tv00000",
        "show_name": "x",
    }
    rec.update(change)
    rec = {k: v for k, v in rec.items() if v is not None}
    path = tmp_path / "bad_tvqa.jsonl"
    path.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        ({"a5": "a sixth"}, "expected 5 candidate answers a0..a4, got 6"),
        ({"answer_idx": 5}, "'answer_idx' 5 is not in range 0..4"),
    ],
)
def test_bad_qa_records_name_the_file_and_record(change, message, tiny_corpus, tmp_path):
    bad = _bad_tvqa(tmp_path, **change)
    task = build_task(_cfg("mcqa", tiny_corpus, tmp_path, [f"data.annotations.train=[{bad}]"]))
    with pytest.raises(InputError) as e:
        task.dataset("train")
    assert f"{bad}:1" in str(e.value) and "qid=7" in str(e.value) and message in str(e.value)


def test_video_too_short_for_the_frames_is_an_error_or_repeats(tiny_corpus, tmp_path):
    task = build_task(_cfg("retrieval", tiny_corpus, tmp_path, ["data.num_frames=200"]))
    path = task.data("train").videos[0]
    with pytest.raises(InputError, match=r"fewer than the 200 requested \(data.num_frames\)") as e:
        task.sampler.sample(path, 0, False)
    assert path in str(e.value)
    task = build_task(
        _cfg("retrieval", tiny_corpus, tmp_path, ["data.num_frames=200", "data.short_video=repeat"])
    )
    assert task.sampler.sample(path, 0, False).shape[0] == 200


def test_qa_span_is_widened_to_hold_the_frames(tiny_corpus, tmp_path):
    task = build_task(_cfg("mcqa", tiny_corpus, tmp_path))
    path = str(next((tiny_corpus / "videos").glob("tv*.mp4")))
    fps = 3.0  # the tiny corpus
    times = task.sampler.times(path, False, [5.0, 5.2], np.random.default_rng(0))
    assert len(times) == 4 and times[-1] - times[0] >= (4 - 1) / fps - 1e-6
    assert abs(float(np.mean(times)) - 5.1) < 1e-6  # centred on the span


@pytest.mark.slow
def test_image_is_a_single_frame_video(tiny_corpus, tmp_path):
    import av

    image = tmp_path / "still.png"
    with av.open(str(image), "w", format="image2") as out:
        stream = out.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = 40, 48, "rgb24"
        arr = np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
            out.mux(packet)
    task = build_task(_cfg("caption", tiny_corpus, tmp_path))
    video = task.sampler.sample(str(image), 0, False)
    assert video.shape == (4, 32, 32, 3) and all(torch.equal(video[0], f) for f in video)
    assert isinstance(task.predict(PredictRequest(str(image)))["caption"], str)


@pytest.mark.slow
def test_predict_captions_and_answers(tiny_corpus, tmp_path):
    video = str(next((tiny_corpus / "videos").glob("sc*.mp4")))
    cap = build_task(_cfg("caption", tiny_corpus, tmp_path))
    out = cap.predict(PredictRequest(video))
    assert isinstance(out["caption"], str) and out["prompt"] == "A video of"
    mc = build_task(_cfg("mcqa", tiny_corpus, tmp_path))
    answers = ["it jumps", "it spins", "it shrinks"]
    out = mc.predict(PredictRequest(video, question="What does the shape do?", answers=answers))
    assert out["answer"] == answers[out["answer_idx"]] and abs(sum(out["probs"]) - 1.0) < 1e-5
    oe = build_task(_cfg("oeqa", tiny_corpus, tmp_path))
    assert isinstance(oe.predict(PredictRequest(video, question="What does the shape do?"))["answer"], str)
    with pytest.raises(InputError, match="no such video file"):
        cap.predict(PredictRequest(str(tmp_path / "missing.mp4")))
    ret = build_task(_cfg("retrieval", tiny_corpus, tmp_path))
    out = ret.predict(PredictRequest(video, query="a shape jumps"))
    assert out["moments"] == [] and math.isfinite(out["video_score"])


@pytest.mark.parametrize("name", ["caption", "mcqa", "oeqa", "retrieval"])
def test_an_export_predicts_without_its_training_corpus(name, tiny_corpus, tmp_path):
    """Export, move the training corpus out of reach (config pointing elsewhere), load and predict."""
    import yaml

    from tempovl.engine.checkpoint import CONFIG_FILE, export
    from tempovl.inference import load_task

    cfg = _cfg(name, tiny_corpus, tmp_path)
    out = export(build_task(cfg), cfg, tmp_path / "export")
    moved = yaml.safe_load((out / CONFIG_FILE).read_text())
    moved["data"]["corpus"] = str(tmp_path / "gone")
    (out / CONFIG_FILE).write_text(yaml.safe_dump(moved))
    task, _, _ = load_task(out, device="cpu")
    video = str(next((tiny_corpus / "videos").glob("sc*.mp4")))
    request = {"query": "a shape jumps", "question": "What does the shape do?", "answers": ["a", "b"]}
    result = task.predict(PredictRequest(video, **request))
    assert result and all(v is not None for v in result.values())


@pytest.mark.slow
def test_zero_shot_evaluate_of_a_pretraining_checkpoint(tiny_corpus, tmp_path):
    from tempovl.tasks.cli import evaluate_checkpoint

    pre_cfg = load_config(
        "hitea-tiny-pretrain",
        [
            f"data.corpus={tiny_corpus}",
            "model.queue_size=16",
            "model.max_positions=64",
            "data.max_text_len=32",
        ],
    )
    torch.manual_seed(0)
    pre = build_task(pre_cfg)
    ckpt = ck.export(pre, pre_cfg, tmp_path / "pretrain")
    over = ["data.num_frames=4", "data.cache=memory", "task.eval_batch_size=4"]
    rec = evaluate_checkpoint(ckpt, "hitea-retrieval", "val", tmp_path / "zs", over)
    assert rec["task"] == "hitea-retrieval" and "t2v_mean_recall" in rec["metrics"]
    task = build_task(
        {**pre_cfg, "task": {"name": "hitea-retrieval"}, "data": {**pre_cfg["data"], "num_frames": 4}}
    )
    ck.load_into(task, Path(ckpt) / ck.MODEL_FILE, mode="strict")  # every weight of the task is pre-trained
    for name in ("hitea-mcqa",):
        rec = evaluate_checkpoint(ckpt, name, "val", tmp_path / name, [*over, "task.eval_batch_size=8"])
        assert 0.0 <= rec["metrics"]["accuracy"] <= 100.0
    shuffled = evaluate_checkpoint(
        ckpt, "hitea-retrieval", "val", tmp_path / "zs-sh", over, shuffle_frames=True
    )
    assert shuffled["shuffle_frames"] and "t2v_mean_recall" in shuffled["metrics"]


def test_spread_is_zero_for_a_collapsed_encoder():
    from tempovl.tasks.hitea.retrieval import spread

    same = torch.nn.functional.normalize(torch.ones(5, 8), dim=-1)
    assert spread(same) == 0.0
    assert spread(torch.nn.functional.normalize(torch.randn(50, 8), dim=-1)) > 0.2
