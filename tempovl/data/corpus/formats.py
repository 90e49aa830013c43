"""Write the corpus in the public datasets' own formats (see docs/demo-corpus.md) and its card.

`build_annotations` turns scripts into {relative path: content} without touching disk, so tests can
measure the language side on many videos without rendering any.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from tempovl.data.corpus.language import grounded
from tempovl.data.corpus.queries import (
    clip_caption,
    single_annotations,
    tvc_descs,
    tvqa_questions,
    tvr_queries,
    violin_statements,
)
from tempovl.data.corpus.world import Script
from tempovl.io import atomic_open, write_json

LABELLED = ("train", "val", "test")
SHOW_NAME = "tempovl demo"
SOURCE = "tempovl-demo"


def _srt_time(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def srt_text(script: Script) -> str:
    """The video's dialogue as SRT: numbered blocks, 'HH:MM:SS,mmm --> HH:MM:SS,mmm', text, blank line."""
    blocks = [
        f"{i}\n{_srt_time(ln.start)} --> {_srt_time(ln.end)}\n{ln.shown}\n"
        for i, ln in enumerate(script.lines, 1)
    ]
    return "\n".join(blocks)


# Seconds of video per TVR query, by split (TVR itself has ~5 queries per 90-s clip). Labelled queries are
# what the demo's models lack most: with one per 4 s (941 train queries) they memorised their 60 train
# videos; one per 1.5 s (2514) lifts HERO-tiny's test VR R@1 from scratch from 25.5 ± 7.1 to 37.6 ± 1.1 %
# (3 seeds, benchmarks/learning.py; README, issue 12); one per 0.75 s gained nothing more. val and test keep
# one per 4 s, so their queries stay those of earlier corpora.
TVR_SECONDS_PER_QUERY = {"train": 1.5, "val": 4.0, "test": 4.0}


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


def _n(duration: float, per: float, least: int) -> int:
    return max(least, int(round(duration / per)))


def build_annotations(splits: dict[str, list[Script]], seed: int) -> tuple[dict[str, object], list[dict]]:
    """All annotation files as {path relative to OUT: records (list) or object}, plus provenance
    records (annotations/meta.jsonl: template, order-dependence, event/line ids of each item)."""
    files: dict[str, object] = {}
    meta: list[dict] = []
    desc_id = qid = clip_id = sen_id = ann_id = 0
    violin: dict[str, dict] = {}
    for split in LABELLED:
        tvr, tvqa, tvc, caps = [], [], [], []
        for script in splits[split]:
            idx = int(script.vid_name[2:])
            rng = _rng(seed, 2, idx)
            vid, dur = script.vid_name, script.duration
            for q in tvr_queries(rng, script, _n(dur, TVR_SECONDS_PER_QUERY[split], 3)):
                tvr.append(
                    {
                        "desc_id": desc_id,
                        "desc": q["desc"],
                        "vid_name": vid,
                        "duration": dur,
                        "ts": q["ts"],
                        "type": q["type"],
                    }
                )
                meta.append(
                    {
                        "file": f"tvr_{split}.jsonl",
                        "id": desc_id,
                        "vid_name": vid,
                        "type": q["type"],
                        "order": q["order"],
                        "events": q["events"],
                        "lines": q["lines"],
                    }
                )
                descs = tvc_descs(rng, script, q)
                for k, d in enumerate(descs):
                    d["desc_id"] = desc_id if k == 0 else 1_000_000 + sen_id
                    sen_id += k > 0
                tvc.append(
                    {"clip_id": clip_id, "vid_name": vid, "ts": q["ts"], "duration": dur, "descs": descs}
                )
                desc_id += 1
                clip_id += 1
            for q in tvqa_questions(rng, script, _n(dur, 15.0, 2)):
                rec = {
                    "qid": qid,
                    "q": q["q"],
                    **{f"a{i}": a for i, a in enumerate(q["answers"])},
                    "answer_idx": q["answer_idx"],
                    "ts": f"{q['ts'][0]:.2f}-{q['ts'][1]:.2f}",
                    "vid_name": vid,
                    "show_name": SHOW_NAME,
                }
                tvqa.append(rec)
                meta.append(
                    {
                        "file": f"tvqa_{split}.jsonl",
                        "id": qid,
                        "vid_name": vid,
                        "template": q["template"],
                        "order": q["order"],
                        "events": q["events"],
                        "distractor_events": q["distractor_events"],
                        "lines": q.get("lines", []),
                    }
                )
                qid += 1
            pairs = violin_statements(rng, script, _n(dur, 15.0, 2))
            violin[vid] = {
                "file": vid,
                "source": SOURCE,
                "split": split,
                "span": [0.0, dur],
                "statement": [[p["real"], p["fake"]] for p in pairs],
            }
            for k, p in enumerate(pairs):
                meta.append(
                    {
                        "file": "violin_annotation.json",
                        "id": f"{vid}:{k}",
                        "vid_name": vid,
                        "template": p["template"],
                        "order": p["order"],
                    }
                )
            caps.append({"video": f"videos/{vid}.mp4", "caption": clip_caption(rng, script)})
        files[f"annotations/tvr_{split}.jsonl"] = tvr
        files[f"annotations/tvqa_{split}.jsonl"] = tvqa
        files[f"annotations/tvc_{split}.jsonl"] = tvc
        files[f"annotations/captions_{split}.jsonl"] = caps
    files["annotations/captions_pretrain.jsonl"] = [
        {"video": f"videos/{s.vid_name}.mp4", "caption": clip_caption(_rng(seed, 2, int(s.vid_name[2:])), s)}
        for s in splits["pretrain"]
    ]
    files["annotations/violin_annotation.json"] = violin
    files["annotations/tvr_subtitles.jsonl"] = [
        {
            "vid_name": s.vid_name,
            "sub": [{"text": ln.shown, "start": ln.start, "end": ln.end} for ln in s.lines],
        }
        for split in (*LABELLED, "pretrain")
        for s in splits[split]
    ]
    msr_sen = 0
    for split in LABELLED:
        didemo, msrvtt, ssv2 = [], [], []
        for script in splits[f"single_{split}"]:
            vid = script.vid_name
            ann = single_annotations(_rng(seed, 3, int(vid[2:])), script)
            for d in ann["didemo"]:
                didemo.append(
                    {
                        "annotation_id": ann_id,
                        "video": f"{vid}.mp4",
                        "description": d["description"],
                        "times": d["times"],
                    }
                )
                meta.append(
                    {
                        "file": f"didemo_{split}.json",
                        "id": ann_id,
                        "vid_name": vid,
                        "order": d["order"],
                        "events": d["events"],
                    }
                )
                ann_id += 1
            for cap in ann["msrvtt"]:
                msrvtt.append({"video_id": vid, "caption": cap, "sen_id": msr_sen})
                msr_sen += 1
            ssv2.append({"id": vid, "video": vid, **ann["ssv2"]})
        files[f"annotations/didemo_{split}.json"] = didemo
        files[f"annotations/msrvtt_{split}.jsonl"] = msrvtt
        files[f"annotations/ssv2_template_{split}.jsonl"] = ssv2
    return files, meta


def write_annotation_files(out: Path, files: dict[str, object], meta: list[dict]) -> None:
    """Write each file atomically: .jsonl one record a line, .json indented (sorted for stable bytes)."""
    for rel, content in files.items():
        path = out / rel
        if rel.endswith(".jsonl"):
            _write_lines(path, content)
        else:
            write_json(path, content, indent=1)
    _write_lines(out / "annotations/meta.jsonl", meta)


def _write_lines(path: Path, records) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


_WORD = re.compile(r"[a-z']+")


def _texts(files: dict[str, object]):
    for rel, content in files.items():
        name = rel.rsplit("/", 1)[-1]
        if name.startswith("tvr_subtitles"):
            yield from (s["text"] for r in content for s in r["sub"])
        elif name.startswith(("tvr_", "tvc_")):
            yield from (r["desc"] for r in content if "desc" in r)
            yield from (d["desc"] for r in content for d in r.get("descs", []))
        elif name.startswith("tvqa_"):
            yield from (r[k] for r in content for k in ("q", "a0", "a1", "a2", "a3", "a4"))
        elif name.startswith("violin"):
            yield from (s for v in content.values() for pair in v["statement"] for s in pair)
        elif name.startswith("captions_") or name.startswith("msrvtt_"):
            yield from (r["caption"] for r in content)
        elif name.startswith("didemo_"):
            yield from (r["description"] for r in content)
        elif name.startswith("ssv2_"):
            yield from (r["label"] for r in content)


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    a = np.array(values)
    return {
        "n": len(values),
        "min": round(float(a.min()), 2),
        "mean": round(float(a.mean()), 2),
        "max": round(float(a.max()), 2),
        "total": round(float(a.sum()), 2),
    }


def make_card(
    preset: str,
    seed: int,
    splits: dict[str, list[Script]],
    files: dict[str, object],
    meta: list[dict],
    settings: dict,
) -> dict:
    """The dataset card: everything measured from what was written."""
    tvr = [m for m in meta if m["file"].startswith("tvr_")]
    qa = [m for m in meta if m["file"].startswith("tvqa_")]
    mix = {t: sum(m["type"] == t for m in tvr) for t in ("v", "t", "vt")}
    vocab = {w for text in _texts(files) for w in _WORD.findall(text.lower())}
    lengths = [
        r["ts"][1] - r["ts"][0]
        for rel, c in files.items()
        if "/tvr_" in rel and "subtitles" not in rel
        for r in c
    ]
    multi = [s for k in (*LABELLED, "pretrain") for s in splits[k]]
    single = [s for k in LABELLED for s in splits[f"single_{k}"]]
    n_lines = sum(len(s.lines) for s in multi)
    n_grounded = sum(grounded(s, ln) for s in multi for ln in s.lines)
    return {
        "name": "tempovl synthetic demo corpus",
        "preset": preset,
        "seed": seed,
        "settings": settings,
        "videos": {k: len(v) for k, v in splits.items()},
        "files": {rel: len(c) for rel, c in sorted(files.items())} | {"annotations/meta.jsonl": len(meta)},
        "tvr_query_types": {
            t: {"count": n, "fraction": round(n / max(1, len(tvr)), 3)} for t, n in mix.items()
        },
        "tvr_order_dependent": sum(m["order"] for m in tvr),
        "tvqa_order_dependent": sum(m["order"] for m in qa),
        "violin_order_dependent": sum(m["order"] for m in meta if m["file"].startswith("violin")),
        "moment_length_s": _stats(lengths),
        "vocab_size": len(vocab),
        "subtitle_lines": n_lines,
        "grounded_lines": {"count": n_grounded, "fraction": round(n_grounded / max(1, n_lines), 3)},
        "prefixed_lines": round(sum(ln.prefixed for s in multi for ln in s.lines) / max(1, n_lines), 3),
        "seconds_per_line": round(sum(s.duration for s in multi) / max(1, n_lines), 2),
        "events": sum(len(s.events) for s in multi + single),
        "duration_s": {
            "multi": _stats([s.duration for s in multi]),
            "single": _stats([s.duration for s in single]),
        },
    }


def card_markdown(card: dict) -> str:
    """CARD.md: the card for people."""
    lines = [
        "# tempovl synthetic demo corpus",
        "",
        f"Preset `{card['preset']}`, seed {card['seed']}. Re-create with "
        f"`tempovl corpus make OUT --preset {card['preset']} --seed {card['seed']}` (byte-identical annotations).",
        "",
        "Coloured shapes act in rooms; their names, feelings and plans are only heard in the dialogue (SRT),",
        "which mostly reacts to what is on screen (actions, the room, objects, who is there).",
        "Layout and formats: docs/demo-corpus.md in the tempovl repository.",
        "",
        "## Videos",
        "",
        "| split | videos |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in card["videos"].items()),
        "",
        f"Durations (s): multi-channel {card['duration_s']['multi']}, single-channel {card['duration_s']['single']}.",
        "",
        "## TVR query types (measured)",
        "",
        "| type | count | fraction |",
        "|---|---|---|",
        *(f"| {t} | {d['count']} | {d['fraction']:.3f} |" for t, d in card["tvr_query_types"].items()),
        "",
        f"Order-dependent: {card['tvr_order_dependent']} TVR queries, {card['tvqa_order_dependent']} TVQA "
        f"questions, {card['violin_order_dependent']} VIOLIN pairs. Moment length (s): {card['moment_length_s']}.",
        f"Vocabulary: {card['vocab_size']} distinct lowercase words. Subtitle lines: {card['subtitle_lines']} "
        f"(one every {card['seconds_per_line']} s, {card['prefixed_lines']:.0%} speaker-prefixed). "
        f"Events: {card['events']}.",
        f"Grounded lines: {card['grounded_lines']['count']} ({card['grounded_lines']['fraction']:.1%}) name an "
        "action, room, object or character visible during the line or in the 3 s before it; the rest tell "
        "what no frame shows (feelings, whereabouts, plans).",
        "",
        "## Files (records)",
        "",
        "| file | records |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in card["files"].items()),
        "",
    ]
    return "\n".join(lines)
