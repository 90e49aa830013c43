"""The public TV datasets (TVR, TVQA, TVC) as their releases publish them: the release's own file names in
one folder, no splits.json, the shared tvqa_preprocessed_subtitles.jsonl; the experiment presets
hero-tvr / hero-tvqa / hero-tvc train and evaluate on them (issue 13). The samples are written here
from the public schemas, from the tiny corpus's records."""

from __future__ import annotations

import json
import shutil

import pytest

from tempovl.cli import main
from tempovl.config import from_dict, load_config
from tempovl.data.hero_data import DataConfig, HeroClipDataset
from tempovl.data.subtitles import read_tvr_subtitles
from tempovl.engine import checkpoint as ck
from tempovl.io import read_jsonl


@pytest.fixture(scope="module")
def tv_release(tiny_corpus, tmp_path_factory):
    """data/tv as the releases lay it out, made from the tiny corpus's annotations."""
    out = tmp_path_factory.mktemp("tv")
    ann = tiny_corpus / "annotations"
    shutil.copy(ann / "tvr_subtitles.jsonl", out / "tvqa_preprocessed_subtitles.jsonl")
    video2dur: dict[str, dict] = {}
    for split, public in (("train", "train"), ("val", "val"), ("test", "test_public")):
        tvr = read_jsonl(ann / f"tvr_{split}.jsonl")
        if public == "test_public":  # the public test release: queries only
            rows = [{"desc_id": r["desc_id"], "desc": r["desc"]} for r in tvr]
        else:
            rows = tvr
        (out / f"tvr_{public}_release.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        video2dur[public] = {r["vid_name"]: [r["duration"], i] for i, r in enumerate(tvr)}
        tvqa = read_jsonl(ann / f"tvqa_{split}.jsonl")
        if public == "test_public":  # the public test release: no answer
            tvqa = [{k: v for k, v in r.items() if k != "answer_idx"} for r in tvqa]
        (out / f"tvqa_{public}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tvqa))
        tvc = read_jsonl(ann / f"tvc_{split}.jsonl")
        if public == "test_public":  # the public test release: no reference captions
            tvc = [{k: v for k, v in r.items() if k != "descs"} for r in tvc]
        (out / f"tvc_{public}_release.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tvc))
    (out / "tvr_video2dur_idx.json").write_text(json.dumps(video2dur))
    assert not (out / "splits.json").exists()
    return out


@pytest.fixture(scope="module")
def other_releases(tiny_corpus, tmp_path_factory):
    """MSR-VTT, DiDeMo and VIOLIN folders with the releases' own file names and split conventions."""
    ann = tiny_corpus / "annotations"
    root = tmp_path_factory.mktemp("releases")
    msrvtt, didemo, violin = root / "msrvtt", root / "didemo", root / "violin"
    for folder in (msrvtt, didemo, violin):
        folder.mkdir()
    info: dict[str, dict] = {
        "train_val": {"videos": [], "sentences": []},
        "test": {"videos": [], "sentences": []},
    }
    for split, name, file in (
        ("train", "train", "train_val"),
        ("val", "validate", "train_val"),
        ("test", "test", "test"),
    ):
        rows = read_jsonl(ann / f"msrvtt_{split}.jsonl")
        videos = list(dict.fromkeys(r["video_id"] for r in rows))
        info[file]["videos"] += [{"video_id": v, "split": name, "category": 0} for v in videos]
        info[file]["sentences"] += [
            {"video_id": r["video_id"], "caption": r["caption"], "sen_id": r["sen_id"]} for r in rows
        ]
        shutil.copy(ann / f"didemo_{split}.json", didemo / f"{split}_data.json")
    for file, data in info.items():
        (msrvtt / f"{file}_videodatainfo.json").write_text(json.dumps({"info": {}, **data}))
    # the 9k / 1k-A lists as published: a video_id column; key, vid_key, video_id, sentence
    train_ids = [v["video_id"] for v in info["train_val"]["videos"] if v["split"] == "train"]
    (msrvtt / "MSRVTT_train.9k.csv").write_text("video_id\n" + "".join(f"{v}\n" for v in train_ids))
    test = {r["video_id"]: r["caption"] for r in info["test"]["sentences"]}  # one sentence a video
    rows = "".join(f'ret{i},msr{i},{v},"{c}"\n' for i, (v, c) in enumerate(test.items()))
    (msrvtt / "MSRVTT_JSFUSION_test.csv").write_text("key,vid_key,video_id,sentence\n" + rows)
    records = json.loads((ann / "violin_annotation.json").read_text())
    subs = {r["vid_name"]: r["sub"] for r in read_jsonl(ann / "tvr_subtitles.jsonl")}
    for r in records.values():
        r["split"] = {"val": "validate"}.get(r["split"], r["split"])
        # the release's inline subtitles: [text, [start_ms, end_ms]] from the clip's start (here span is
        # [0, duration]: the clip is the whole video)
        r["sub"] = [[s["text"], [round(s["start"] * 1000), round(s["end"] * 1000)]] for s in subs[r["file"]]]
    (violin / "violin_annotation.json").write_text(json.dumps(records))
    return {
        "hero-msrvtt-release": msrvtt,
        "hero-msrvtt-1ka": msrvtt,
        "hero-didemo-release": didemo,
        "hero-violin-release": violin,
    }


@pytest.mark.parametrize(
    "experiment, metric",
    [
        ("hero-msrvtt-release", "t2v_R@1"),
        ("hero-msrvtt-1ka", "t2v_R@1"),
        ("hero-didemo-release", "didemo_R@1"),
        ("hero-violin-release", "accuracy"),
    ],
)
def test_other_releases_train_and_evaluate(
    other_releases, tiny_corpus, tiny_features, tmp_path, experiment, metric
):
    run = tmp_path / "run"
    assert main(["train", experiment, *_tiny(other_releases[experiment], tiny_features, run)]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--split", "val", "--out", str(out)]) == 0
    assert metric in json.loads((out / "metrics.json").read_text())["metrics"]
    if experiment == "hero-violin-release":  # the run read the release's inline "sub" into its clips
        cfg = ck.read_config(ck.resolve_checkpoint(run))
        assert cfg["data"]["subtitles"] == "violin_annotation.json"
        clips = HeroClipDataset(from_dict(DataConfig, cfg["data"], "data"), "val")
        tvr = read_tvr_subtitles(tiny_corpus / "annotations" / "tvr_subtitles.jsonl")
        for vid, sentences in zip(clips.vids, clips.sentences, strict=True):
            assert [s.full_text for s in sentences] == [s.full_text for s in tvr[vid]]
            assert [s.start for s in sentences] == pytest.approx([s.start for s in tvr[vid]], abs=1e-3)
        assert sum(u.is_sentence and bool(u.tokens) for units in clips.units for u in units) > len(clips)


def _tiny(corpus, features, out) -> list[str]:
    """Overrides that shrink a paper-size preset to the tiny model and a 2-step CPU run."""
    return [
        f"data.corpus={corpus}",
        f"data.features={features}",
        "data.max_frames=24",
        *(f"model.{k}={v}" for k, v in load_config("model/hero-tiny")["model"].items()),
        "model.frame_dim=auto",
        f"train.output_dir={out}",
        "train.max_steps=2",
        "train.batch_size=4",
        "train.warmup_steps=0",
        "train.eval_every=0",
        "train.save_every=0",
        "train.precision=fp32",
        "train.device=cpu",
        "train.num_workers=0",
        "train.tensorboard=false",
        "train.progress=false",
        "train.curves=false",
    ]


@pytest.mark.parametrize(
    "experiment, metric",
    [("hero-tvr", "VCMR_0.5-r10"), ("hero-tvqa", "accuracy"), ("hero-tvc", "CIDEr-D")],
)
def test_release_layout_trains_and_evaluates(tv_release, tiny_features, tmp_path, experiment, metric):
    run = tmp_path / "run"
    assert main(["train", experiment, *_tiny(tv_release, tiny_features, run)]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--split", "val", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metric in metrics, sorted(metrics)[:10]
    if experiment == "hero-tvr":  # the public test release has queries only: a leaderboard submission
        sub = tmp_path / "test"
        assert main(["evaluate", str(run), "--split", "test", "--out", str(sub)]) == 0
        submission = json.loads((sub / "submission.json").read_text())
        queries = read_jsonl(tv_release / "tvr_test_public_release.jsonl")
        assert [r["desc_id"] for r in submission["VCMR"]] == [q["desc_id"] for q in queries]
        assert len(submission["VR"]) == len(queries) and "SVMR" not in submission
        videos = json.loads((tv_release / "tvr_video2dur_idx.json").read_text())["test_public"]
        assert set(submission["video2idx"]) == set(videos)
        assert all(
            0 <= m[0] < len(videos) and m[1] < m[2] for r in submission["VCMR"] for m in r["predictions"]
        )


def test_validate_recognises_the_public_names(tv_release, tiny_corpus, capsys):
    shutil.copytree(tiny_corpus / "videos", tv_release / "videos", dirs_exist_ok=True)
    (tv_release / "annotations").mkdir(exist_ok=True)
    for f in tv_release.glob("*.json*"):
        shutil.copy(f, tv_release / "annotations" / f.name)
    main(["data", "validate", str(tv_release)])
    text = capsys.readouterr().out
    assert (
        "tvqa_preprocessed_subtitles.jsonl" in text
        and "not checked" not in text.split("tvqa_preprocessed")[1][:80]
    )
