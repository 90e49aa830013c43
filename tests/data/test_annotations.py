"""Annotation readers on hand-written records: good records, and every bad-input case named by record."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from tempovl.data.annotations import (
    read_caption_pairs,
    read_didemo,
    read_msrvtt,
    read_ssv2_template,
    read_tvc,
    read_tvqa,
    read_tvr,
    read_violin,
    validate_corpus,
    validate_corpus_report,
)
from tempovl.errors import InputError

DURATIONS = {"v1": 30.0, "v2": 12.0}


def _jsonl(tmp_path, records, name="a.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def _json(tmp_path, data, name="a.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=1))
    return path


def _problem(reader, path, *args, **kwargs) -> str:
    """The single problem a reader reports (checked both in raise mode and in collect mode)."""
    with pytest.raises(InputError) as e:
        reader(path, *args, **kwargs)
    problems: list[str] = []
    reader(path, *args, problems=problems, **kwargs)
    assert len(problems) == 1, problems
    assert problems[0] == str(e.value)
    return problems[0]


# ---- TVR ----

TVR_OK = {"desc_id": 7, "desc": "a jumps", "vid_name": "v1", "duration": 30, "ts": [1, 2.5], "type": "vt"}


def test_tvr_good(tmp_path):
    path = _jsonl(tmp_path, [TVR_OK, {"desc_id": 8, "desc": "test-release style: no video"}])
    records = read_tvr(path, DURATIONS)
    assert records[0] == dict(TVR_OK, ts=[1.0, 2.5], duration=30.0)
    assert records[1] == {"desc_id": 8, "desc": "test-release style: no video"}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"desc": None}, "missing required field 'desc'"),
        ({"vid_name": "nope"}, "video 'nope' does not exist"),
        ({"ts": [3.0, 31.0]}, "ends after the video's duration 30 s"),
        ({"ts": [3.0, 2.0]}, "starts after it ends (3.0 > 2.0)"),
        ({"ts": [-1.0, 2.0]}, "starts before 0"),
        ({"ts": [1.0]}, "'ts' must be [start, end]"),
        ({"duration": 2.0}, "ends after the video's duration 2 s"),
        ({"type": "x"}, "'type' must be one of"),
    ],
)
def test_tvr_bad(tmp_path, change, fragment):
    record = {k: v for k, v in dict(TVR_OK, **change).items() if v is not None}
    path = _jsonl(tmp_path, [dict(TVR_OK, desc_id=1), record])
    problem = _problem(read_tvr, path, DURATIONS)
    assert problem.startswith(f"{path}:2 (desc_id=7): ")
    assert fragment in problem


def test_tvr_duplicate_id_bad_json_and_collect_mode(tmp_path):
    path = _jsonl(tmp_path, [TVR_OK, "{oops", TVR_OK, dict(TVR_OK, desc_id=9)])
    problems: list[str] = []
    records = read_tvr(path, DURATIONS, problems=problems)
    assert [r["desc_id"] for r in records] == [7, 9]
    assert problems == [
        f"{path}:2: not valid JSON (Expecting property name enclosed in double quotes)",
        f"{path}:3 (desc_id=7): duplicate desc_id 7",
    ]
    with pytest.raises(InputError, match="duplicate desc_id 7"):
        read_tvr(path)


# ---- TVQA / How2QA ----

QA = {
    "qid": 3,
    "q": "what next?",
    **{f"a{i}": f"answer {i}" for i in range(5)},
    "answer_idx": 2,
    "ts": "1.5-4.25",
    "vid_name": "v1",
    "show_name": "demo",
}


def test_tvqa_good(tmp_path):
    nan = dict(QA, qid=4, ts="NaN-NaN")
    test_split = {k: v for k, v in QA.items() if k != "answer_idx"} | {"qid": 5}
    records = read_tvqa(_jsonl(tmp_path, [QA, nan, test_split]), DURATIONS)
    assert records[0]["answers"] == [f"answer {i}" for i in range(5)]
    assert records[0]["span"] == [1.5, 4.25] and records[0]["ts"] == "1.5-4.25"
    assert records[1]["span"] is None
    assert "answer_idx" not in records[2]
    how2qa = {k: v for k, v in QA.items() if k != "a4"} | {"answer_idx": 3}
    assert read_tvqa(_jsonl(tmp_path, [how2qa], "h.jsonl"), num_answers=4)[0]["answers"][3] == "answer 3"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"answer_idx": 5}, "'answer_idx' 5 is not in range 0..4"),
        ({"answer_idx": -1}, "'answer_idx' -1 is not in range"),
        ({"answer_idx": "1"}, "'answer_idx' must be an integer"),
        ({"a5": "extra"}, "expected 5 candidate answers a0..a4, got 6"),
        ({"a3": None}, "missing required field 'a3'"),
        ({"a2": ""}, "'a2' must be a non-empty string"),
        ({"ts": "abc"}, "'ts' must be a 'start-end' string"),
        ({"ts": "5-2"}, "starts after it ends"),
        ({"ts": "20-40"}, "ends after the video's duration 30 s"),
        ({"vid_name": "v9"}, "video 'v9' does not exist"),
        ({"q": None}, "missing required field 'q'"),
    ],
)
def test_tvqa_bad(tmp_path, change, fragment):
    record = {k: v for k, v in dict(QA, **change).items() if v is not None}
    path = _jsonl(tmp_path, [record])
    problem = _problem(read_tvqa, path, DURATIONS)
    assert problem.startswith(f"{path}:1 (qid=3): ")
    assert fragment in problem


# ---- VIOLIN ----

VIOLIN = {
    "clipA": {
        "file": "v1",
        "source": "tv",
        "split": "train",
        "span": [600.0, 629.5],  # the clip's place in its source episode (VIOLIN's meaning)
        "statement": [["real one", "fake one"], ["real two", "fake two"]],
        "sub": [["hi", [0, 1000]]],
    },
    "clipB": {"file": "v2", "split": "test", "statement": [["r", "f"]]},
}


def test_violin_good(tmp_path):
    records = read_violin(_json(tmp_path, VIOLIN), DURATIONS)
    assert len(records) == 6
    assert records[0] == {
        "clip_id": "clipA",
        "file": "v1",
        "vid_name": "v1",
        "source": "tv",
        "split": "train",
        "span": [600.0, 629.5],
        "statement": "real one",
        "label": 1,
        "pair_idx": 0,
    }
    assert [(r["statement"], r["label"]) for r in records[2:4]] == [("real two", 1), ("fake two", 0)]
    test = read_violin(_json(tmp_path, VIOLIN), split="test")
    assert [(r["clip_id"], r["label"]) for r in test] == [("clipB", 1), ("clipB", 0)]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"statement": [["only real"]]}, "'statement'[0] must be a [real, fake] pair"),
        ({"statement": []}, "'statement' must be a non-empty list"),
        ({"file": "v9"}, "video 'v9' does not exist"),
        ({"span": [600, 640]}, "'span' [600.0, 640.0] is 40.00 s long, more than the clip's video (30.00 s)"),
        ({"split": None}, "missing required field 'split'"),
    ],
)
def test_violin_bad(tmp_path, change, fragment):
    clip = {k: v for k, v in dict(VIOLIN["clipA"], **change).items() if v is not None}
    path = _json(tmp_path, {"clipA": clip})
    problem = _problem(read_violin, path, DURATIONS)
    assert problem.startswith(f"{path} ['clipA']: ")
    assert fragment in problem


# ---- TVC ----

TVC = {
    "clip_id": 1,
    "vid_name": "v1",
    "ts": [2, 5],
    "duration": 30,
    "descs": [{"desc": "a jumps", "type": "v", "desc_id": 3}],
}


def test_tvc_good_and_bad(tmp_path):
    assert read_tvc(_jsonl(tmp_path, [TVC]), DURATIONS)[0]["ts"] == [2.0, 5.0]
    for change, fragment in [
        ({"ts": [2, 40]}, "ends after the video's duration 30 s"),
        ({"descs": [{"type": "v"}]}, "'descs'[0] needs a non-empty 'desc'"),
        ({"descs": [{"desc": "x", "type": "q"}]}, "'descs'[0].type must be one of"),
        ({"vid_name": "zz"}, "video 'zz' does not exist"),
    ]:
        path = _jsonl(tmp_path, [dict(TVC, **change)], "bad.jsonl")
        problem = _problem(read_tvc, path, DURATIONS)
        assert problem.startswith(f"{path}:1 (clip_id=1): ") and fragment in problem, problem


# ---- DiDeMo ----

DIDEMO = {"annotation_id": 11, "video": "v1.mp4", "description": "a jumps", "times": [[0, 1], [2, 2]]}


def test_didemo_good(tmp_path):
    records = read_didemo(_json(tmp_path, [DIDEMO]), DURATIONS)
    assert records[0]["times_sec"] == [[0.0, 10.0], [10.0, 15.0]]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"times": [[0, 6]]}, "'times'[0] [0, 6] is out of segment range 0..5"),
        ({"times": [[3, 1]]}, "out of segment range"),
        ({"times": [[-1, 0]]}, "out of segment range"),
        ({"times": [[0, 1], [2]]}, "'times'[1] must be [start_segment, end_segment]"),
        ({"times": [[0.5, 1]]}, "'times'[0][0] must be an integer"),
        ({"video": "v2.mp4", "times": [[3, 3]]}, "out of segment range 0..2"),  # v2 is 12 s long
        ({"num_segments": 2, "times": [[2, 2]]}, "out of segment range 0..1"),
        ({"video": "nope.mp4"}, "video 'nope' does not exist"),
    ],
)
def test_didemo_bad(tmp_path, change, fragment):
    path = _json(tmp_path, [dict(DIDEMO, **change)])
    problem = _problem(read_didemo, path, DURATIONS)
    assert problem.startswith(f"{path} [0] (annotation_id=11): ")
    assert fragment in problem


# ---- MSR-VTT ----


def test_msrvtt_official_json_and_jsonl(tmp_path):
    official = {
        "videos": [{"video_id": "v1", "split": "train"}, {"video_id": "v2", "split": "validate"}],
        "sentences": [
            {"caption": "a man", "video_id": "v1", "sen_id": 0},
            {"caption": "a dog", "video_id": "v2", "sen_id": 1},
        ],
    }
    path = _json(tmp_path, official, "train_val_videodatainfo.json")
    assert [r["sen_id"] for r in read_msrvtt(path, DURATIONS)] == [0, 1]
    assert read_msrvtt(path, split="validate") == [{"video_id": "v2", "caption": "a dog", "sen_id": 1}]
    lines = _jsonl(tmp_path, official["sentences"])
    assert read_msrvtt(lines, DURATIONS) == read_msrvtt(path)
    official["sentences"].append({"video_id": "v3", "caption": "x", "sen_id": 2})
    official["sentences"].append({"video_id": "v1", "sen_id": 3})
    problems: list[str] = []
    read_msrvtt(_json(tmp_path, official, "bad.json"), DURATIONS, problems=problems)
    assert problems == [
        f"{tmp_path / 'bad.json'} sentences[2]: video 'v3' does not exist",
        f"{tmp_path / 'bad.json'} sentences[3]: missing required field 'caption'",
    ]
    with pytest.raises(InputError, match="no 'videos' list"):
        read_msrvtt(lines, split="train")


# ---- caption pairs and SSv2 ----


def test_caption_pairs(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v1.mp4").write_bytes(b"")
    path = _jsonl(
        tmp_path, [{"video": "videos/v1.mp4", "caption": "a"}, {"video": "v1", "caption": ["b", "c"]}]
    )
    records = read_caption_pairs(path, root=tmp_path)
    assert [r["video_path"] for r in records] == [str(tmp_path / "videos" / "v1.mp4")] * 2
    assert read_caption_pairs(path)[1]["caption"] == ["b", "c"]
    bad = _jsonl(tmp_path, [{"video": "videos/v2.mp4", "caption": "a"}], "bad.jsonl")
    assert _problem(read_caption_pairs, bad, root=tmp_path) == (
        f"{bad}:1: video 'videos/v2.mp4' does not exist under {tmp_path}"
    )
    bad = _jsonl(tmp_path, [{"video": "videos/v1.mp4", "caption": []}], "bad2.jsonl")
    assert "'caption' list must hold non-empty strings" in _problem(read_caption_pairs, bad)
    bad = _jsonl(tmp_path, [{"caption": "x"}], "bad3.jsonl")
    assert _problem(read_caption_pairs, bad) == f"{bad}:1: missing required field 'video'"


def test_ssv2_template(tmp_path):
    labels = [
        {
            "id": "1",
            "label": "putting cup on table",
            "template": "Putting [something] on [something]",
            "placeholders": ["cup", "table"],
        },
        {"id": "2", "template": "Pushing [something]"},
    ]
    assert [r["id"] for r in read_ssv2_template(_json(tmp_path, labels))] == ["1", "2"]
    bad = _json(tmp_path, [dict(labels[0], placeholders=["cup"])], "bad.json")
    problem = _problem(read_ssv2_template, bad)
    assert problem.startswith(f"{bad} [0] (id='1'): template has 2 [slots]")
    bad = _jsonl(tmp_path, [dict(labels[1], video="v7")], "bad.jsonl")
    assert (
        _problem(read_ssv2_template, bad, video_durations=DURATIONS)
        == f"{bad}:1 (id='2'): video 'v7' does not exist"
    )


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.jsonl: cannot read"):
        read_tvr(tmp_path / "nope.jsonl")


# ---- the demo corpus ----

needs_corpus = pytest.mark.skipif(
    importlib.util.find_spec("tempovl.data.corpus") is None,
    reason="the demo corpus generator tempovl.data.corpus is not importable yet",
)


@needs_corpus
def test_validate_tiny_corpus(tiny_corpus, tmp_path, capsys):
    from tempovl.cli import main

    assert validate_corpus(tiny_corpus) == []
    kinds = {r.kind for r in validate_corpus_report(tiny_corpus)}
    assert {"tvr", "tvqa", "violin", "tvc", "didemo", "msrvtt", "captions", "ssv2_template"} <= kinds
    assert main(["data", "validate", str(tiny_corpus)]) == 0
    assert "no problems" in capsys.readouterr().out

    broken = tmp_path / "broken"
    shutil.copytree(tiny_corpus, broken)
    tvr = broken / "annotations" / "tvr_train.jsonl"
    first = json.loads(tvr.read_text().splitlines()[0])
    with open(tvr, "a") as f:
        f.write(json.dumps(dict(first, desc_id=99999, vid_name="missing_video")) + "\n")
    n_lines = len(tvr.read_text().splitlines())
    qa = broken / "annotations" / "tvqa_val.jsonl"
    record = json.loads(qa.read_text().splitlines()[0])
    qa.write_text(json.dumps(dict(record, answer_idx=7)) + "\n")
    (broken / "videos" / "zz_corrupt.mp4").write_bytes(b"not a video at all")
    problems = validate_corpus(broken)
    assert problems[0].startswith(f"{broken / 'videos' / 'zz_corrupt.mp4'}: not a readable video")
    assert problems[1:] == [
        f"{qa}:1 (qid={record['qid']!r}): 'answer_idx' 7 is not in range 0..4",
        f"{tvr}:{n_lines} (desc_id=99999): video 'missing_video' does not exist",
    ]
    assert main(["data", "validate", str(broken)]) == 2
    out = capsys.readouterr().out
    assert "3 problem(s)" in out and "annotations/tvr_train.jsonl" in out
