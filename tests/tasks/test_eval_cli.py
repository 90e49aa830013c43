"""`tempovl evaluate` and `tempovl predict` end to end on the tiny corpus: train a few steps, evaluate
(metrics JSON + markdown + TVR predictions + plot), the shuffling flag, predict on a video file with an SRT,
and clear errors for checkpoints of another task and bad requests."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tempovl.cli import main
from tempovl.config import load_config
from tempovl.engine.trainer import train
from tempovl.io import read_jsonl
from tempovl.metrics import eval_tvr


@pytest.fixture(scope="module")
def vcmr_run(hero_vcmr_run):
    return hero_vcmr_run


@pytest.fixture(scope="module")
def toy_ckpt(tmp_path_factory):
    """A checkpoint of another task (the engine's toy task)."""
    out = tmp_path_factory.mktemp("toy") / "run"
    cfg = load_config("task/toy", [f"train.output_dir={out}", "train.max_steps=1", "train.progress=false"])
    cfg["train"].update(curves=False, batch_size=4)
    return train(cfg).checkpoint


def test_evaluate_writes_metrics_predictions_and_plot(vcmr_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", str(vcmr_run), "--split", "test", "--out", str(out)]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["task"] == "hero-vcmr" and record["split"] == "test" and record["shuffle_frames"] is False
    metrics = record["metrics"]
    assert {"VCMR_0.5-r1", "VCMR_0.7-r10", "SVMR_0.5-r1", "VR_r10", "VCMR_v-0.5-r1"} <= set(metrics)
    md = (out / "metrics.md").read_text()
    assert "| VCMR_0.5-r1 |" in md and "hero-vcmr on test" in md
    assert (out / "moments.png").stat().st_size > 1000
    # the prediction file is a valid TVR submission and gives the same numbers
    submission = json.loads((out / "predictions.json").read_text())
    res = eval_tvr(submission, read_jsonl(out / "ground_truth.jsonl"))
    assert res["VCMR"]["0.5-r1"] == metrics["VCMR_0.5-r1"] and res["VR"]["r10"] == metrics["VR_r10"]
    assert "VCMR_0.5-r1" in capsys.readouterr().out
    # and `tempovl metrics tvr` reads the same files
    assert main(["metrics", "tvr", str(out / "predictions.json"), str(out / "ground_truth.jsonl")]) == 0


def test_evaluate_shuffle_frames_flag(vcmr_run):
    assert (
        main(["evaluate", str(vcmr_run), "--shuffle-frames"]) == 0
    )  # a run directory: results beside its checkpoints
    record = json.loads((vcmr_run / "eval-val-shuffled" / "metrics.json").read_text())
    assert record["shuffle_frames"] is True and "VCMR_0.5-r1" in record["metrics"]


def test_predict_on_a_video_file_with_subtitles(vcmr_run, tiny_corpus, tiny_features, tmp_path, capsys):
    from tempovl.data.features import FeatureStore
    from tempovl.inference import extract_video

    vid = "tv00006"
    out = tmp_path / "pred.json"
    rc = main(
        [
            "predict",
            str(vcmr_run),
            str(tiny_corpus / "videos" / f"{vid}.mp4"),
            "--subtitles",
            str(tiny_corpus / "subtitles" / f"{vid}.srt"),
            "--query",
            "the red circle jumps",
            "--top-k",
            "3",
            "--json",
            str(out),
        ]
    )
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["task"] == "hero-vcmr" and 1 <= len(result["moments"]) <= 3
    assert all(m["start"] < m["end"] for m in result["moments"])
    assert "rank  start (s)" in capsys.readouterr().out
    # on-the-fly features are the feature store's features of the same video
    store = FeatureStore(tiny_features)
    feats = extract_video(tiny_corpus / "videos" / f"{vid}.mp4", store.extractor, store.interval, None)
    assert np.allclose(feats, store[vid], atol=2e-2, rtol=1e-2)


def test_checkpoint_of_another_task_is_refused(toy_ckpt, vcmr_run, tiny_corpus, tiny_features, capsys):
    overrides = [
        f"data.corpus={tiny_corpus}",
        f"data.features={tiny_features}",
        "data.max_frames=24",
        *(f"model.{k}={v}" for k, v in load_config("model/hero-tiny")["model"].items()),
        "model.frame_dim=auto",
    ]
    assert main(["evaluate", str(toy_ckpt), *overrides, "--task", "hero-vcmr"]) == 2
    err = capsys.readouterr().err
    assert "do not fit this model" in err and "task 'hero-vcmr'" in err and "Traceback" not in err
    video = str(tiny_corpus / "videos" / "tv00006.mp4")
    assert main(["predict", str(toy_ckpt), video, "--query", "x"]) == 2
    assert "does not predict" in capsys.readouterr().err
    assert main(["predict", str(vcmr_run), video, "--question", "who?", "--answers", "a", "b"]) == 2
    assert "give --query, not --question" in capsys.readouterr().err


def test_bad_paths_get_clear_errors(vcmr_run, tiny_corpus, tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a tempovl checkpoint" in capsys.readouterr().err
    assert main(["predict", str(vcmr_run), str(tmp_path / "missing.mp4"), "--query", "x"]) == 2
    assert "no such video file" in capsys.readouterr().err
    assert main(["predict", str(vcmr_run), str(tiny_corpus / "videos" / "tv00006.mp4")]) == 2
    assert "--query" in capsys.readouterr().err
