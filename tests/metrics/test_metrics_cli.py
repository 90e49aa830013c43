"""`tempovl metrics tvr|qa|caption` end to end on small files, including bad-input exits."""

import copy
import json

import pytest
import test_tvr_eval as tvr_case

from tempovl.cli import main
from tempovl.io import write_json, write_jsonl
from tempovl.metrics import eval_tvr


def test_tvr_command_prints_table_and_writes_json(tmp_path, capsys):
    pred, gt, out = tmp_path / "pred.json", tmp_path / "gt.jsonl", tmp_path / "m" / "metrics.json"
    write_json(pred, tvr_case.SUBMISSION)
    write_jsonl(gt, tvr_case.GT)
    assert main(["metrics", "tvr", str(pred), str(gt), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| VCMR |" in printed and "| vt |" in printed
    assert json.loads(out.read_text()) == eval_tvr(copy.deepcopy(tvr_case.SUBMISSION), tvr_case.GT)


def test_tvr_command_missing_query_exits_2(tmp_path, capsys):
    sub = copy.deepcopy(tvr_case.SUBMISSION)
    sub["VR"] = sub["VR"][:3]
    pred, gt = tmp_path / "pred.json", tmp_path / "gt.jsonl"
    write_json(pred, sub)
    write_jsonl(gt, tvr_case.GT)
    assert main(["metrics", "tvr", str(pred), str(gt)]) == 2
    err = capsys.readouterr().err
    assert "pred.json" in err and "desc_id 4" in err and "Traceback" not in err
    assert main(["metrics", "tvr", str(pred), str(gt), "--allow-partial"]) == 0


def test_tvr_command_bad_json_names_file_and_line(tmp_path, capsys):
    pred, gt = tmp_path / "pred.json", tmp_path / "gt.jsonl"
    pred.write_text('{"video2idx": {}\n,,}')
    gt.write_text(json.dumps(tvr_case.GT[0]) + "\n{oops\n")
    assert main(["metrics", "tvr", str(pred), str(gt)]) == 2
    assert "pred.json:2: not valid JSON" in capsys.readouterr().err
    write_json(pred, tvr_case.SUBMISSION)
    assert main(["metrics", "tvr", str(pred), str(gt)]) == 2
    assert "gt.jsonl:2: not valid JSON" in capsys.readouterr().err


def test_qa_command(tmp_path, capsys):
    gt = tmp_path / "tvqa_val.jsonl"
    write_jsonl(
        gt,
        [
            {"qid": 1, "q": "?", "a0": "x", "a1": "y", "a2": "z", "answer_idx": 2, "type": "before"},
            {"qid": 2, "q": "?", "a0": "x", "a1": "y", "a2": "z", "answer_idx": 0, "type": "after"},
        ],
    )
    pred = tmp_path / "pred.json"
    write_json(pred, {"1": 2, "2": 1})
    out = tmp_path / "qa.json"
    assert main(["metrics", "qa", str(pred), str(gt), "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["accuracy"] == 50.0 and m["per_type"]["before"]["accuracy"] == 100.0
    assert "accuracy 50.00 %" in capsys.readouterr().out
    write_jsonl(tmp_path / "pred.jsonl", [{"qid": 1, "pred": 3}, {"qid": 2, "pred": 0}])
    assert main(["metrics", "qa", str(tmp_path / "pred.jsonl"), str(gt)]) == 2
    assert "question '1' (prediction): answer index 3 is out of range [0, 3)" in capsys.readouterr().err
    write_json(pred, {"1": 2})
    assert main(["metrics", "qa", str(pred), str(gt)]) == 2
    assert "no prediction for 1 questions (qid 2)" in capsys.readouterr().err


def test_caption_command_tvc_format(tmp_path, capsys):
    gt = tmp_path / "tvc_val.jsonl"
    write_jsonl(
        gt,
        [
            {"clip_id": 1, "vid_name": "v1", "ts": [0, 5], "descs": [{"desc": "red blue green pink gold"}]},
            {"clip_id": 2, "vid_name": "v2", "ts": [0, 5], "descs": [{"desc": "one two three four"}]},
        ],
    )
    pred = tmp_path / "pred.jsonl"
    write_jsonl(
        pred,
        [
            {"clip_id": 1, "descs": [{"desc": "red blue green pink gold"}]},
            {"clip_id": 2, "caption": "one two"},
        ],
    )
    out = tmp_path / "cap.json"
    assert main(["metrics", "caption", str(pred), str(gt), "--metrics", "ROUGE-L", "--out", str(out)]) == 0
    # ROUGE-L: 1.0 for clip 1; clip 2: LCS 2, P = 1, R = 0.5, F(beta 1.2) = 2.44 * 0.5 / (0.5 + 1.44)
    assert json.loads(out.read_text())["ROUGE-L"] == pytest.approx((1 + 2.44 * 0.5 / 1.94) / 2)
    write_jsonl(pred, [{"clip_id": 1}])
    assert main(["metrics", "caption", str(pred), str(gt)]) == 2
    assert "record 1 (id 1): no 'caption', 'desc' or 'descs'" in capsys.readouterr().err
