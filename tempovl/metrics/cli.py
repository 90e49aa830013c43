"""`tempovl metrics ...`: compute metrics from prediction files written by any model.

tempovl metrics tvr PREDICTIONS.json GROUND_TRUTH.jsonl [--out m.json] [--allow-partial]
    PREDICTIONS: the TVR standalone-evaluation JSON {"video2idx", "VCMR", "SVMR", "VR"};
    GROUND_TRUTH: TVR JSONL records {"desc_id", "vid_name", "ts", "type"}.
tempovl metrics caption PRED GT [--out m.json] [--metrics BLEU-4 ROUGE-L ...]
    PRED: a JSON object {id: caption}, or JSON / JSONL records with an id and "caption" or "desc"
    (or TVC-style "descs": [{"desc": ...}], the first is used).
    GT: a JSON object {id: [captions]}, or JSON / JSONL records with an id and "caption"/"desc"
    (records sharing an id add references), "captions": [...] or TVC-style "descs".
    The id of a record is its first key among: id, clip_id, video_id, video, vid_name.
tempovl metrics qa PRED GT [--out m.json]
    PRED: a JSON object {qid: answer_index}, or JSON / JSONL records {"qid" (or "id"), "pred"
    (or "prediction" / "answer_idx")}.
    GT: JSON / JSONL records {"qid" (or "id"), "answer_idx"}, with candidates "a0".."aN" (TVQA) or
    "num_choices" to check the indices, and an optional question type "type" / "q_type".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tempovl.errors import InputError
from tempovl.io import read_jsonl, write_json
from tempovl.metrics.caption import CAPTION_METRICS, caption_scores
from tempovl.metrics.moment import eval_tvr, tvr_table
from tempovl.metrics.qa import qa_accuracy

ID_KEYS = ("id", "clip_id", "video_id", "video", "vid_name")


def load_json_or_jsonl(path: str | Path):
    """A .jsonl file as a list of records, anything else as one JSON document; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        return read_jsonl(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def _records(data, path, what: str) -> list[dict]:
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InputError(f"{path}: expected {what} as a JSON object or a list of records")
    return data


def _record_id(rec: dict, path, i: int, keys=ID_KEYS):
    for k in keys:
        if k in rec:
            return rec[k]
    raise InputError(f"{path}: record {i + 1} has no id (one of {', '.join(keys)})")


def _descs(value, path, i: int) -> list[str]:
    out = [d.get("desc") if isinstance(d, dict) else d for d in value] if isinstance(value, list) else None
    if not out or not all(isinstance(d, str) for d in out):
        raise InputError(f"{path}: record {i + 1}: 'descs' must be a non-empty list of {{'desc': str}}")
    return out


def load_caption_predictions(path: str | Path) -> dict[str, str]:
    """{id: caption} from a caption prediction file (formats in the module docstring)."""
    data = load_json_or_jsonl(path)
    if isinstance(data, dict):
        return {str(k): v for k, v in data.items()}
    out: dict[str, str] = {}
    for i, rec in enumerate(_records(data, path, "predictions")):
        key = str(_record_id(rec, path, i))
        if "caption" in rec or "desc" in rec:
            text = rec.get("caption", rec.get("desc"))
        elif "descs" in rec:
            text = _descs(rec["descs"], path, i)[0]
        else:
            raise InputError(f"{path}: record {i + 1} (id {key}): no 'caption', 'desc' or 'descs'")
        if key in out:
            raise InputError(f"{path}: record {i + 1}: a second prediction for id {key}")
        out[key] = text
    return out


def load_caption_references(path: str | Path) -> dict[str, list[str]]:
    """{id: [reference captions]} from a caption ground-truth file (formats in the module docstring)."""
    data = load_json_or_jsonl(path)
    if isinstance(data, dict):
        return {str(k): [v] if isinstance(v, str) else v for k, v in data.items()}
    out: dict[str, list[str]] = {}
    for i, rec in enumerate(_records(data, path, "references")):
        key = str(_record_id(rec, path, i))
        if "captions" in rec:
            refs = rec["captions"]
        elif "descs" in rec:
            refs = _descs(rec["descs"], path, i)
        elif "caption" in rec or "desc" in rec:
            refs = [rec.get("caption", rec.get("desc"))]
        else:
            raise InputError(
                f"{path}: record {i + 1} (id {key}): no 'caption', 'desc', 'captions' or 'descs'"
            )
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            raise InputError(f"{path}: record {i + 1} (id {key}): references must be strings")
        out.setdefault(key, []).extend(refs)
    return out


def _qa_pred_index(rec: dict, path, i: int):
    for k in ("pred", "prediction", "answer_idx"):
        if k in rec:
            return rec[k]
    raise InputError(f"{path}: record {i + 1}: no 'pred' (or 'prediction' / 'answer_idx')")


def _num_choices(rec: dict) -> int | None:
    if "num_choices" in rec:
        return rec["num_choices"]
    n = 0
    while f"a{n}" in rec:
        n += 1
    return n or None


def evaluate_qa_files(pred_path: str | Path, gt_path: str | Path) -> dict:
    """QA accuracy of a prediction file against a ground-truth file (formats in the module docstring)."""
    preds_raw = load_json_or_jsonl(pred_path)
    if isinstance(preds_raw, dict):
        preds = {str(k): v for k, v in preds_raw.items()}
    else:
        preds = {}
        for i, rec in enumerate(_records(preds_raw, pred_path, "predictions")):
            preds[str(_record_id(rec, pred_path, i, ("qid", "id")))] = _qa_pred_index(rec, pred_path, i)
    gts = _records(load_json_or_jsonl(gt_path), gt_path, "ground truth")
    ids, answers, choices, types = [], [], [], []
    for i, rec in enumerate(gts):
        qid = str(_record_id(rec, gt_path, i, ("qid", "id")))
        if "answer_idx" not in rec:
            raise InputError(f"{gt_path}: record {i + 1} (qid {qid}): no 'answer_idx'")
        ids.append(qid)
        answers.append(rec["answer_idx"])
        choices.append(_num_choices(rec))
        types.append(rec.get("type", rec.get("q_type")))
    missing = [q for q in ids if q not in preds]
    if missing:
        raise InputError(
            f"{pred_path}: no prediction for {len(missing)} questions (qid {', '.join(missing[:10])})"
        )
    extra = sorted(set(preds) - set(ids))
    if extra:
        raise InputError(f"{pred_path}: predictions for qids not in {gt_path}: {', '.join(extra[:10])}")
    has_types = all(t is not None for t in types)
    return qa_accuracy([preds[q] for q in ids], answers, choices, types if has_types else None, ids)


def _write(out: str | None, metrics: dict) -> None:
    if out:
        write_json(out, metrics)
        print(f"wrote {out}")


def _run_tvr(args: argparse.Namespace) -> int:
    submission = load_json_or_jsonl(args.predictions)
    ground_truth = _records(load_json_or_jsonl(args.ground_truth), args.ground_truth, "TVR records")
    try:
        metrics = eval_tvr(
            submission,
            ground_truth,
            iou_thds=tuple(args.iou_thds),
            topks=tuple(args.topks),
            allow_partial=args.allow_partial,
        )
    except InputError as e:
        raise InputError(f"{args.predictions} vs {args.ground_truth}: {e}") from None
    print(tvr_table(metrics))
    _write(args.out, metrics)
    return 0


def _run_caption(args: argparse.Namespace) -> int:
    res = load_caption_predictions(args.predictions)
    gts = load_caption_references(args.ground_truth)
    scores = caption_scores(gts, res, metrics=args.metrics)
    print("| " + " | ".join(scores) + " |\n" + "|---" * len(scores) + "|")
    print("| " + " | ".join(f"{v:.4f}" for v in scores.values()) + " |")
    _write(args.out, scores)
    return 0


def _run_qa(args: argparse.Namespace) -> int:
    metrics = evaluate_qa_files(args.predictions, args.ground_truth)
    print(f"accuracy {metrics['accuracy']:.2f} % over {metrics['n']} questions")
    for t, row in metrics.get("per_type", {}).items():
        print(f"  {t}: {row['accuracy']:.2f} % ({row['n']})")
    _write(args.out, metrics)
    return 0


def register(parser: argparse.ArgumentParser, name: str) -> None:
    """Add `metrics tvr|caption|qa` to the `tempovl` parser."""
    sub = parser.add_subparsers(dest="metric", required=True, metavar="METRIC")
    specs = [
        ("tvr", _run_tvr, "VR / SVMR / VCMR recall from a TVR standalone-evaluation prediction file"),
        ("caption", _run_caption, "BLEU-4, METEOR, ROUGE-L, CIDEr-D (COCO caption evaluation, needs Java)"),
        ("qa", _run_qa, "multiple-choice QA accuracy, overall and per question type"),
    ]
    for cmd, func, help_text in specs:
        p = sub.add_parser(cmd, help=help_text, description=help_text)
        p.add_argument("predictions", help="prediction file")
        p.add_argument("ground_truth", help="ground-truth file")
        p.add_argument("--out", default=None, help="write the metrics here as JSON")
        p.set_defaults(func=func)
        if cmd == "tvr":
            p.add_argument("--iou-thds", type=float, nargs="+", default=[0.5, 0.7])
            p.add_argument("--topks", type=int, nargs="+", default=[1, 5, 10, 100])
            p.add_argument(
                "--allow-partial",
                action="store_true",
                help="evaluate the queries that have predictions instead of failing on missing ones",
            )
        if cmd == "caption":
            p.add_argument("--metrics", nargs="+", default=list(CAPTION_METRICS), choices=CAPTION_METRICS)
