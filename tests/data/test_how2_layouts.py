"""How2R and How2QA as published (docs/datasets/how2.md): the first release's header-less CSV files
(how2R/, how2QA/; whole YouTube videos, seconds in them) and VALUE's JSON-lines re-release. The readers'
records and errors, the How2QA candidate order, `data validate`, and train + evaluate of the four
presets. Every row here is invented; the videos are feature-store entries of invented YouTube ids."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from test_public_layouts import _tiny as tiny_overrides
from video_files import encode_frames

from tempovl.cli import main
from tempovl.data.annotations import (
    how2qa_candidate_order,
    read_tvqa,
    read_tvr,
    validate_corpus_report,
)
from tempovl.data.features.store import FeatureWriter
from tempovl.data.hero_data import annotation_videos
from tempovl.errors import InputError

# invented YouTube ids (11 characters of [A-Za-z0-9_-], some starting with "-") and durations (s)
VIDEOS = {
    "-q3Zt0ab_Xw": 96.0,
    "Ab9_kLm2-Q0": 75.0,
    "zz8Kp1R-_aa": 110.0,
    "_0oPq7TyLmN": 64.0,
    "Q-2wErTy7Ui": 88.0,
    "mN4b_-Vc3Xz": 70.0,
    "-Hh5Jj6Kk7L": 80.0,
    "p9O8i7U6y5T": 66.0,
}
SPLITS = {"train": list(VIDEOS)[:4], "val": list(VIDEOS)[4:6], "test_public": list(VIDEOS)[6:]}
ACTIONS = ["folds the cloth", "cuts the board", "pours the paint", "ties the knot", "sands the edge"]
COLOURS = ["red", "blue", "green", "white", "black"]


def _csv_field(text: str) -> str:
    """A CSV field as the release writes one: quoted when it holds a comma or a quote."""
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if ("," in text or '"' in text) else text


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _how2r_rows(vids: list[str]) -> list[str]:
    """Three moments a video, one past the first 36 s (the tiny preset's window); commas in some."""
    rows = []
    for i, vid in enumerate(vids):
        for k, st in enumerate((6.0 + i, 30.5 + i, 44.0 + 2 * i)):
            desc = f"the man {ACTIONS[(i + k) % 5]}, then the {COLOURS[k]} one"
            clip = int(st // 60) * 60
            rows.append(f"{vid},[{clip}:{clip + 60}],[{st}:{st + 5.5 + k}],{_csv_field(desc)}")
    return rows


def _how2qa_rows(vids: list[str]) -> list[str]:
    """Two questions a video (one a point span), the correct answer last as in the release."""
    rows = []
    for i, vid in enumerate(vids):
        for k, (st, ed) in enumerate(((4.0 + i, 20.0 + i), (41.5, 41.5))):
            wrong = [c for c in COLOURS if c != COLOURS[(i + k) % 5]][:3]
            q = f"What colour, in the end, is the {ACTIONS[(i + k) % 5].split()[-1]}?"
            rows.append(f"{vid},[{st}:{ed}],{','.join(wrong)},{_csv_field(q)},{COLOURS[(i + k) % 5]}")
    return rows


@pytest.fixture(scope="module")
def how2_features(tmp_path_factory):
    """A feature store of the invented videos: 1.5 s a frame, random 16-d features, probed durations."""
    root = tmp_path_factory.mktemp("how2-features")
    rng = np.random.default_rng(0)
    with FeatureWriter(root, dim=16, dtype="float32", interval=1.5, extractor="test") as w:
        for vid, duration in VIDEOS.items():
            w.add(vid, rng.standard_normal((int(duration / 1.5), 16)), {"duration": duration})
    return root


@pytest.fixture(scope="module")
def how2_release(tmp_path_factory):
    """data/how2 with both releases' files, by their public names; no videos, no subtitles/ (the
    first release has none)."""
    root = tmp_path_factory.mktemp("how2")
    names = {"train": "train", "val": "val_1k", "test_public": "test_public_1k"}  # VALUE's How2R names
    subtitles = []
    for split, vids in SPLITS.items():
        _write(root / "how2R" / f"how2R_{split}_release.csv", _how2r_rows(vids))
        _write(root / "how2QA" / f"how2QA_{split}_release.csv", _how2qa_rows(vids))
        how2r = [
            {
                "desc_id": 10 * i + k,
                "desc": f"someone {a}",
                "vid_name": v,
                "duration": VIDEOS[v],
                "ts": [8.0 * k + i, 8.0 * k + i + 6.5],
            }
            for i, v in enumerate(vids)
            for k, a in enumerate(ACTIONS[:3])
        ]
        _write(root / f"how2r_{names[split]}_release.jsonl", [json.dumps(r) for r in how2r])
        how2qa = [
            {
                "qid": f"{v}-{k}",
                "q": f"What does the man do {when}?",
                "vid_name": v,
                "ts": f"{3 + k}-{15.5 + k}",
            }
            | {f"a{j}": f"He {a}." for j, a in enumerate(ACTIONS[:4])}
            | {"answer_idx": (i + k) % 4}
            for i, v in enumerate(vids)
            for k, when in enumerate(("first", "last"))
        ]
        _write(root / f"how2qa_{split}_release.jsonl", [json.dumps(r) for r in how2qa])
        subtitles += [
            {
                "vid_name": v,
                "sub": [
                    {"text": f"now I {a}", "start": 4.0 * j, "end": 4.0 * j + 3}
                    for j, a in enumerate(ACTIONS)
                ],
            }
            for v in vids
        ]
    _write(root / "how2_subtitles.jsonl", [json.dumps(s) for s in subtitles])
    return root


# ---------------------------------------------------------------------------------------- readers


def test_how2r_csv_reads_as_tvr_records(tmp_path):
    path = _write(
        tmp_path / "how2R_val_release.csv",
        [
            "z0aaaaaaaaa,[180:240],[180.0:187.07],The woman placed the design on the fabric",
            'z0aaaaaaaaa,[180:240],[190:201.5],"She says ""done"", then irons it"',
            "-bbbbbbbbbb,[0:60],[50.5:60],the boy waters the plant",
            "-bbbbbbbbbb,[60:120],[60:64.25],the boy waters the plant",  # a moment in two rows: two queries
            "-bbbbbbbbbb,[60:120],[90:95],the boy waters the plant",  # the same words, another moment
            "",
            '-bbbbbbbbbb,[60:120],[100:100],"a point,\nover two lines"',
        ],
    )
    records = read_tvr(path)
    assert records == [
        {"desc_id": 1, "desc": "The woman placed the design on the fabric", "vid_name": "z0aaaaaaaaa",
         "ts": [180.0, 187.07], "clip": [180.0, 240.0]},
        {"desc_id": 2, "desc": 'She says "done", then irons it', "vid_name": "z0aaaaaaaaa",
         "ts": [190.0, 201.5], "clip": [180.0, 240.0]},
        {"desc_id": 3, "desc": "the boy waters the plant", "vid_name": "-bbbbbbbbbb", "ts": [50.5, 60.0],
         "clip": [0.0, 60.0]},
        {"desc_id": 4, "desc": "the boy waters the plant", "vid_name": "-bbbbbbbbbb", "ts": [60.0, 64.25],
         "clip": [60.0, 120.0]},
        {"desc_id": 5, "desc": "the boy waters the plant", "vid_name": "-bbbbbbbbbb", "ts": [90.0, 95.0],
         "clip": [60.0, 120.0]},
        {"desc_id": 7, "desc": "a point,\nover two lines", "vid_name": "-bbbbbbbbbb", "ts": [100.0, 100.0],
         "clip": [60.0, 120.0]},
    ]  # fmt: skip
    assert annotation_videos(path) == ["z0aaaaaaaaa", "-bbbbbbbbbb"]  # the first row is a row, not a header


def test_how2qa_csv_reads_as_tvqa_records_in_a_fixed_shuffled_order(tmp_path):
    lines = _how2qa_rows(list(VIDEOS))
    lines[0] = 'piYcgGdO8_w,[134.15:181.52],White,Grey,Red,"What colour, first, is the sheet?",Brown'
    path = _write(tmp_path / "how2QA_train_release.csv", lines)
    records = read_tvqa(path, num_answers=4)
    assert len(records) == len(lines) and [r["qid"] for r in records] == list(range(1, len(lines) + 1))
    first = records[0]
    assert first["q"] == "What colour, first, is the sheet?" and first["vid_name"] == "piYcgGdO8_w"
    assert first["span"] == [134.15, 181.52] and sorted(first["answers"]) == ["Brown", "Grey", "Red", "White"]
    assert first["answers"][first["answer_idx"]] == "Brown"
    assert set(first) == {"qid", "q", "answers", "answer_idx", "span", "vid_name"}
    assert records[1]["span"] == [41.5, 41.5]  # a point is kept
    for r, line in zip(records, lines, strict=True):
        assert r["answers"][r["answer_idx"]] == line.rsplit(",", 1)[1]  # the last column is the answer
    positions = [r["answer_idx"] for r in records]
    assert len(set(positions)) > 1, positions  # no positional shortcut
    # the order is the row's own: the same on a second read and with the rows in another order
    assert read_tvqa(path, num_answers=4) == records
    reversed_path = _write(tmp_path / "how2QA_val_release.csv", lines[::-1])
    again = {(r["vid_name"], r["q"]): r["answers"] for r in read_tvqa(reversed_path, num_answers=4)}
    assert all(again[(r["vid_name"], r["q"])] == r["answers"] for r in records)
    # pinned: the same on every machine and Python version (SHA-256 of the content, not hash())
    assert how2qa_candidate_order("piYcgGdO8_w", "What colour, first, is the sheet?") == (1, 0, 2, 3)
    assert first["answers"] == ["Grey", "White", "Red", "Brown"]
    assert how2qa_candidate_order("Ab9_kLm2-Q0", "why?") == (3, 2, 1, 0)  # the answer first
    with pytest.raises(InputError, match="How2QA rows have 4 candidate answers, not 5"):
        read_tvqa(path)  # TVQA's default of 5


def test_how2_csv_errors_name_file_line_and_what(tmp_path):
    path = _write(
        tmp_path / "how2R_train_release.csv",
        [
            "aaaaaaaaaaa,[0:60],[1:5],fine",
            "aaaaaaaaaaa,[0:60],[1:5]",
            "aaaaaaaaaaa,[0:60],[1-5],dash instead of colon",
            "aaaaaaaaaaa,[0:60],[1:abc],not a number",
            "aaaaaaaaaaa,[0:60],[9:5],backwards",
            "aaaaaaaaaaa,[0:60],[-2:5],negative",
            "aaaaaaaaaaa,[0:60],[50:70.5],past the end",
            'aaaaaaaaaaa,[0:60],[1:5],"two\nlines, fine"',
            "nosuchvideo,[0:60],[1:5],missing",
            "aaaaaaaaaaa,[0:60],[1:5],",
        ],
    )
    problems: list[str] = []
    assert len(read_tvr(path, {"aaaaaaaaaaa": 60.0}, problems=problems)) == 2
    assert problems == [
        f"{path}:2: expected 4 columns (youtube_id, clip, moment, description), got 3",
        f"{path}:3: moment must be [start:end] in seconds, got '[1-5]'",
        f"{path}:4: moment must be [start:end] in seconds, got '[1:abc]'",
        f"{path}:5: moment starts after it ends (9.0 > 5.0)",
        f"{path}:6: moment [-2.0, 5.0] starts before 0",
        f"{path}:7: moment [50.0, 70.5] ends after the video's duration 60 s",
        f"{path}:10: video 'nosuchvideo' does not exist",
        f"{path}:11: 'description' must be a non-empty string, got ''",
    ]
    with pytest.raises(InputError, match=re.escape(f"{path}:2: expected 4 columns")):
        read_tvr(path)

    qa = _write(
        tmp_path / "how2QA_val_release.csv",
        ["aaaaaaaaaaa,[3:4],a,b,c,q?,d", "aaaaaaaaaaa,[3:4],a,b,c,q?", "aaaaaaaaaaa,3:4,a,b,c,q?,d"],
    )
    problems = []
    assert len(read_tvqa(qa, {"aaaaaaaaaaa": 60.0}, num_answers=4, problems=problems)) == 1
    assert problems == [
        f"{qa}:2: expected 7 columns (youtube_id, span, wrong1, wrong2, wrong3, question, answer), got 6",
        f"{qa}:3: span must be [start:end] in seconds, got '3:4'",
    ]


def test_value_jsonl_reads_with_the_existing_readers(how2_release):
    r = read_tvr(how2_release / "how2r_val_1k_release.jsonl", VIDEOS)
    assert r[0]["vid_name"] in VIDEOS and isinstance(r[0]["ts"][0], float)
    qa = read_tvqa(how2_release / "how2qa_val_release.jsonl", VIDEOS, num_answers=4)
    assert len(qa[0]["answers"]) == 4 and qa[0]["span"] == [3.0, 15.5]


def test_msrvtt_lists_still_name_their_videos(tmp_path):
    path = _write(tmp_path / "MSRVTT_train.9k.csv", ["video_id", "video7", "video9"])
    assert annotation_videos(path) == ["video7", "video9"]


# --------------------------------------------------------------------------------------- validate


def test_validate_recognises_the_how2_names(tmp_path, capsys):
    root = tmp_path / "how2"
    (root / "videos").mkdir(parents=True)
    for vid in ("aaaaaaaaaaa", "-bbbbbbbbbb"):  # 8 s each
        frames = (np.full((16, 16, 3), 15 * i, dtype=np.uint8) for i in range(16))
        encode_frames(root / "videos" / f"{vid}.mp4", frames, rate=2)
    _write(
        root / "how2R" / "how2R_val_release.csv",
        ["aaaaaaaaaaa,[0:60],[1:5],fine", "-bbbbbbbbbb,[0:60],[2:9],late"],
    )
    _write(root / "how2QA" / "how2QA_val_release.csv", ["-bbbbbbbbbb,[3:3],a,b,c,q?,d"])
    qa = {"qid": 1, "q": "q?", "a0": "a", "a1": "b", "a2": "c", "a3": "d", "answer_idx": 3, "ts": "1-2"}
    _write(root / "how2qa_val_release.jsonl", [json.dumps(qa | {"vid_name": "aaaaaaaaaaa"})])
    _write(root / "how2_subtitles.jsonl", [json.dumps({"vid_name": "aaaaaaaaaaa", "sub": []})])
    _write(root / "how2R" / "README.md", ["not an annotation file"])
    kinds = {Path(r.path).name: (r.kind, r.records, r.problems) for r in validate_corpus_report(root)}
    assert kinds["how2R_val_release.csv"][:2] == ("how2r", 1)  # the good row
    assert kinds["how2R_val_release.csv"][2] == [
        f"{root / 'how2R' / 'how2R_val_release.csv'}:2: moment [2.0, 9.0] ends after the video's duration 8 s"
    ]
    assert kinds["how2QA_val_release.csv"] == ("how2qa", 1, [])
    assert kinds["how2qa_val_release.jsonl"] == ("how2qa", 1, [])
    assert kinds["how2_subtitles.jsonl"] == ("tvr_subtitles", 1, [])
    assert "README.md" not in kinds
    assert main(["data", "validate", str(root)]) == 2
    assert "how2R/how2R_val_release.csv" in capsys.readouterr().out


# ------------------------------------------------------------------------------- train + evaluate


@pytest.mark.parametrize(
    "experiment, split, metric",
    [  # the first release's test_public files have their labels: evaluated as the docs show
        ("hero-how2r", "test", "VCMR_0.5-r10"),
        ("hero-how2qa", "test", "accuracy"),
        ("hero-how2r-value", "val", "VCMR_0.5-r10"),
        ("hero-how2qa-value", "val", "accuracy"),
    ],
)
def test_how2_presets_train_and_evaluate(how2_release, how2_features, tmp_path, experiment, split, metric):
    run = tmp_path / "run"
    assert main(["train", experiment, *tiny_overrides(how2_release, how2_features, run)]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--split", split, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metric in metrics, sorted(metrics)[:10]
