"""Readers for the public annotation formats, validated on load.

Each reader returns a list of plain dicts that keep the public release's field names (TVR, TVQA,
VIOLIN, TVC, DiDeMo, MSR-VTT, SSv2) and adds a few normalised fields, listed in its docstring; the
How2R / How2QA CSV files (no header row) come back as the TVR / TVQA records. Every record is checked;
a problem names the file and the record (`file:line` for JSON lines and CSV, `file [i]` or the clip id
for JSON files) and says what is wrong: a missing required field, a wrong number of CSV columns, a
video that does not exist, a timestamp outside [0, duration] or start > end, an answer index out of
range, a wrong number of candidates, DiDeMo segments out of range.

Pass `video_durations` ({vid_name: seconds}) to check that the videos named exist and that spans fit
inside them (with `DURATION_TOLERANCE`, since container durations are rounded to packets). Pass a
list as `problems` to collect problems and skip bad records (what `validate_corpus` does); without
it the first problems are raised together as one `InputError`.
"""

from __future__ import annotations

import csv
import functools
import glob
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tempovl.errors import InputError

DURATION_TOLERANCE = 0.5  # seconds a span may pass a probed video duration (packet rounding)
DIDEMO_SEGMENT_SECONDS = 5.0  # DiDeMo times are indices of 5-second segments
DIDEMO_NUM_SEGMENTS = 6  # videos are cut to at most 30 s = 6 segments
TVR_TYPES = ("v", "t", "vt")
_MAX_RAISED = 20


class _Problems:
    """Collects problems of one file; `finish` raises them unless the caller collects them."""

    def __init__(self, path: str | os.PathLike, sink: list[str] | None) -> None:
        self.path, self.sink, self.found = str(path), sink, []

    def add(self, where: str, message: str) -> None:
        self.found.append(f"{self.path}{where}: {message}")

    def finish(self) -> None:
        if self.sink is not None:
            self.sink.extend(self.found)
        elif self.found:
            more = len(self.found) - _MAX_RAISED
            tail = [f"... and {more} more problems"] if more > 0 else []
            raise InputError("\n".join(self.found[:_MAX_RAISED] + tail))


class _Bad(Exception):
    """One record's problem; caught per record so the others are still checked."""


def _iter_records(
    path: str | os.PathLike,
    probs: _Problems,
    list_key: str | None = None,
    columns: tuple[str, ...] | None = None,
) -> Iterator[tuple[str, Any]]:
    """Yield (where, record): where is ":LINE" for .jsonl and .csv (a header row, then one record a row:
    the MSR-VTT 1k-A / 9k lists), " [i]" for a JSON list, " [key]" for a dict.

    With `list_key`, a JSON object's records are the list under that key (MSR-VTT's "sentences").
    With `columns`, a .csv has no header row (the How2R / How2QA releases): every row must have these
    columns, and its record is {column: text} plus "line", the line the row starts on."""
    try:
        f = open(path, encoding="utf-8-sig", newline="" if str(path).endswith(".csv") else None)
    except OSError as e:
        probs.add("", f"cannot read ({e.strerror})")
        return
    with f:
        if str(path).endswith(".csv") and columns is not None:
            rows, start = csv.reader(f), 1
            for row in rows:
                line, start = start, rows.line_num + 1  # the row's first line (a quoted field may span lines)
                if not row:  # a blank line
                    continue
                if len(row) != len(columns):
                    probs.add(
                        f":{line}", f"expected {len(columns)} columns ({', '.join(columns)}), got {len(row)}"
                    )
                    continue
                yield f":{line}", {"line": line, **dict(zip(columns, row, strict=True))}
            return
        if str(path).endswith(".csv"):
            for lineno, row in enumerate(csv.DictReader(f), 2):
                yield f":{lineno}", dict(row)
            return
        if str(path).endswith(".jsonl"):
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield f":{lineno}", json.loads(line)
                except json.JSONDecodeError as e:
                    probs.add(f":{lineno}", f"not valid JSON ({e.msg})")
            return
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            probs.add(f":{e.lineno}", f"not valid JSON ({e.msg})")
            return
    prefix = ""
    if list_key is not None and isinstance(data, dict):
        if not isinstance(data.get(list_key), list):
            probs.add("", f"missing required list {list_key!r}")
            return
        prefix, data = f" {list_key}", data[list_key]
    if isinstance(data, list):
        yield from ((f"{prefix}[{i}]" if prefix else f" [{i}]", r) for i, r in enumerate(data))
    elif isinstance(data, dict):
        yield from ((f" [{k!r}]", r) for k, r in data.items())
    else:
        probs.add("", "expected a JSON list or object at the top level")


def _read(
    path: str | os.PathLike,
    problems: list[str] | None,
    check: Callable[[Any, str], dict | list[dict]],
    id_key: str | None = None,
    list_key: str | None = None,
    columns: tuple[str, ...] | None = None,
) -> list[dict]:
    """Run `check(record, where)` over every record; collect `_Bad` problems; flag duplicate ids."""
    probs = _Problems(path, problems)
    out: list[dict] = []
    seen: set = set()
    for where, record in _iter_records(path, probs, list_key, columns):
        if not isinstance(record, dict):
            probs.add(where, f"expected a JSON object, got {type(record).__name__}")
            continue
        rid = record.get(id_key) if id_key else None
        label = f"{where} ({id_key}={rid!r})" if id_key and rid is not None else where
        try:
            result = check(record, label)
        except _Bad as e:
            probs.add(label, str(e))
            continue
        if id_key is not None:
            key = rid if isinstance(rid, str | int | float) else json.dumps(rid, sort_keys=True)
            if key in seen:
                probs.add(label, f"duplicate {id_key} {rid!r}")
                continue
            seen.add(key)
        out.extend(result if isinstance(result, list) else [result])
    probs.finish()
    return out


# ---- field checks (raise _Bad with a message that names the field) ----


def _require(record: dict, *keys: str) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        raise _Bad(f"missing required field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")


def _str(record: dict, key: str) -> str:
    value = record[key]
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{key!r} must be a non-empty string, got {value!r}")
    return value


def _num(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Bad(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"{what} must be an integer, got {value!r}")
    return value


def _span(value: Any, what: str) -> list[float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _Bad(f"{what} must be [start, end], got {value!r}")
    st, ed = _num(value[0], f"{what}[0]"), _num(value[1], f"{what}[1]")
    if st > ed:
        raise _Bad(f"{what} starts after it ends ({st} > {ed})")
    return [st, ed]


def _video(vid: str, video_durations: dict[str, float] | None) -> float | None:
    """The video's duration, or None when no duration map is given; a missing video is a problem."""
    if video_durations is None:
        return None
    if vid not in video_durations:
        raise _Bad(f"video {vid!r} does not exist")
    return video_durations[vid]


def _fits(span: list[float], duration: float | None, what: str, tolerance: float = 1e-6) -> None:
    if span[0] < 0:
        raise _Bad(f"{what} {span} starts before 0")
    if duration is not None and span[1] > duration + tolerance:
        raise _Bad(f"{what} {span} ends after the video's duration {duration:g} s")


# ---- readers ----


def read_tvr(
    path: str | os.PathLike,
    video_durations: dict[str, float] | None = None,
    *,
    problems: list[str] | None = None,
) -> list[dict]:
    """TVR / How2R moment queries: {"desc_id", "desc", "vid_name", "duration", "ts": [st, ed], "type"}.

    `desc_id` and `desc` are required (the public test release has only these); the others are
    checked when present. `ts` and `duration` come back as floats. A .csv is How2R as first released
    (`read_how2r`).
    """
    if Path(path).suffix.lower() == ".csv":
        return read_how2r(path, video_durations, problems=problems)

    def check(r: dict, where: str) -> dict:
        _require(r, "desc_id", "desc")
        _str(r, "desc")
        out = dict(r)
        video_dur = _video(_str(r, "vid_name"), video_durations) if "vid_name" in r else None
        if "duration" in r:
            out["duration"] = _num(r["duration"], "'duration'")
        if "ts" in r:
            out["ts"] = _span(r["ts"], "'ts'")
            _fits(out["ts"], out.get("duration"), "'ts'")
            _fits(out["ts"], video_dur, "'ts'", DURATION_TOLERANCE)
        if "type" in r and r["type"] not in TVR_TYPES:
            raise _Bad(f"'type' must be one of {TVR_TYPES}, got {r['type']!r}")
        return out

    return _read(path, problems, check, id_key="desc_id")


def parse_tvqa_ts(value: Any) -> list[float] | None:
    """TVQA's "st-ed" string -> [st, ed]; None for "NaN-NaN" (TVQA's no-span marker)."""
    if not isinstance(value, str) or "-" not in value:
        raise _Bad(f"'ts' must be a 'start-end' string, got {value!r}")
    st, _, ed = value.strip().partition("-")
    try:
        span = [float(st), float(ed)]
    except ValueError:
        raise _Bad(f"'ts' must be a 'start-end' string, got {value!r}") from None
    if all(math.isnan(x) for x in span):
        return None
    return _span(span, "'ts'")


def read_tvqa(
    path: str | os.PathLike,
    video_durations: dict[str, float] | None = None,
    *,
    num_answers: int = 5,
    problems: list[str] | None = None,
) -> list[dict]:
    """TVQA / How2QA multiple-choice QA: {"qid", "q", "a0".."a4", "answer_idx", "ts": "st-ed",
    "vid_name", "show_name"}. How2QA has 4 candidates: pass `num_answers=4`.

    Adds `answers` (the candidate list) and `span` ([st, ed] seconds, or None for "NaN-NaN").
    `answer_idx` may be absent (test split); when present it must index a candidate. A .csv is How2QA
    as first released (`read_how2qa`).
    """
    if Path(path).suffix.lower() == ".csv":
        return read_how2qa(path, video_durations, num_answers=num_answers, problems=problems)
    answer_key = re.compile(r"^a(\d+)$")

    def check(r: dict, where: str) -> dict:
        _require(r, "qid", "q", "vid_name", *(f"a{i}" for i in range(num_answers)))
        _str(r, "q")
        n_cand = sum(1 for k in r if answer_key.match(k))
        if n_cand != num_answers:
            raise _Bad(f"expected {num_answers} candidate answers a0..a{num_answers - 1}, got {n_cand}")
        answers = [_str(r, f"a{i}") for i in range(num_answers)]
        duration = _video(_str(r, "vid_name"), video_durations)
        out = dict(r, answers=answers, span=None)
        if "answer_idx" in r:
            idx = _int(r["answer_idx"], "'answer_idx'")
            if not 0 <= idx < num_answers:
                raise _Bad(f"'answer_idx' {idx} is not in range 0..{num_answers - 1}")
        if "ts" in r:
            out["span"] = parse_tvqa_ts(r["ts"])
            if out["span"] is not None:
                _fits(out["span"], duration, "'ts'", DURATION_TOLERANCE)
        return out

    return _read(path, problems, check, id_key="qid")


# ---- How2R / How2QA as first released (github.com/ych133/How2R-and-How2QA): CSV without a header row ----

HOW2R_COLUMNS = ("youtube_id", "clip", "moment", "description")
HOW2QA_COLUMNS = ("youtube_id", "span", "wrong1", "wrong2", "wrong3", "question", "answer")
HOW2QA_NUM_ANSWERS = 4
HOW2_TIME = re.compile(r"\[([^:\]]*):([^:\]]*)\]")  # "[start:end]", seconds


def _how2_span(value: str, what: str) -> list[float]:
    """The releases' "[start:end]" (seconds in the whole YouTube video) -> [start, end] >= 0."""
    m = HOW2_TIME.fullmatch(value.strip())
    try:
        span = [float(m[1]), float(m[2])] if m else None
    except ValueError:
        span = None
    if span is None:
        raise _Bad(f"{what} must be [start:end] in seconds, got {value!r}")
    span = _span(span, what)
    _fits(span, None, what)
    return span


def read_how2r(
    path: str | os.PathLike,
    video_durations: dict[str, float] | None = None,
    *,
    problems: list[str] | None = None,
) -> list[dict]:
    """How2R's `how2R_{split}_release.csv`: rows `youtube_id,[clip_start:clip_end],[moment_start:moment_end],
    description`, no header, times in seconds of the whole YouTube video (the video is `youtube_id`).

    Records as `read_tvr`'s: {"desc_id" (the row's line), "desc", "vid_name", "ts": [st, ed]} plus
    "clip" (the release's clip, [st, ed]; only checked for form). One record a row, as published: a
    description the release repeats on two rows with adjacent moments (a long moment cut in two halves)
    stays two queries, each with its own half.
    """

    def check(r: dict, where: str) -> dict:
        vid, desc = _str(r, "youtube_id").strip(), _str(r, "description")
        clip, ts = _how2_span(r["clip"], "clip"), _how2_span(r["moment"], "moment")
        _fits(ts, _video(vid, video_durations), "moment", DURATION_TOLERANCE)
        return {"desc_id": r["line"], "desc": desc, "vid_name": vid, "ts": ts, "clip": clip}

    return _read(path, problems, check, columns=HOW2R_COLUMNS)


def how2qa_candidate_order(vid: str, question: str) -> tuple[int, ...]:
    """The order `read_how2qa` gives a How2QA row's candidates: `answers[k]` is the row's candidate
    `order[k]` (0, 1, 2: the wrong answers, 3: the correct one, in column order). The release always puts
    the correct answer last; this permutation is pseudo-random per row yet fixed by its content
    (SHA-256 of the video and the question), the same on every run and machine."""
    digest = hashlib.sha256(f"{vid}\x1f{question}".encode()).digest()
    orders = list(itertools.permutations(range(HOW2QA_NUM_ANSWERS)))
    return orders[int.from_bytes(digest[:8], "big") % len(orders)]


def read_how2qa(
    path: str | os.PathLike,
    video_durations: dict[str, float] | None = None,
    *,
    num_answers: int = HOW2QA_NUM_ANSWERS,
    problems: list[str] | None = None,
) -> list[dict]:
    """How2QA's `how2QA_{split}_release.csv`: rows `youtube_id,[start:end],wrong1,wrong2,wrong3,question,
    correct_answer`, no header, times in seconds of the whole YouTube video (a point when start = end).

    Records as `read_tvqa`'s: {"qid" (the row's line), "q", "answers", "answer_idx", "span": [st, ed],
    "vid_name"}, the candidates in `how2qa_candidate_order` (not the file's, where the answer is last).
    """
    if num_answers != HOW2QA_NUM_ANSWERS:
        raise InputError(
            f"{path}: How2QA rows have {HOW2QA_NUM_ANSWERS} candidate answers, not {num_answers} "
            f"(task.num_answers: {HOW2QA_NUM_ANSWERS})"
        )

    def check(r: dict, where: str) -> dict:
        vid, q = _str(r, "youtube_id").strip(), _str(r, "question")
        candidates = [_str(r, k) for k in ("wrong1", "wrong2", "wrong3", "answer")]
        span = _how2_span(r["span"], "span")
        _fits(span, _video(vid, video_durations), "span", DURATION_TOLERANCE)
        order = how2qa_candidate_order(vid, q)
        return {
            "qid": r["line"],
            "q": q,
            "answers": [candidates[k] for k in order],
            "answer_idx": order.index(HOW2QA_NUM_ANSWERS - 1),
            "span": span,
            "vid_name": vid,
        }

    return _read(path, problems, check, columns=HOW2QA_COLUMNS)


def read_violin(
    path: str | os.PathLike,
    video_durations: dict[str, float] | None = None,
    *,
    split: str | None = None,
    problems: list[str] | None = None,
) -> list[dict]:
    """VIOLIN: {clip_id: {"file", "source", "split", "span": [st, ed] (the clip's place in its source
    video), "statement": [[real, fake], ...], "sub"}}. Flattened to one record per statement:
    {"clip_id", "file", "vid_name" (= file), "source", "split", "span", "statement", "label", "pair_idx"}
    with `label` 1 for the real (entailed) statement and 0 for the fake (contradicted) one.
    """

    def check(r: dict, where: str) -> list[dict]:
        _require(r, "file", "split", "statement")
        vid = _str(r, "file")
        duration = _video(vid, video_durations)
        span = None
        if "span" in r:  # where the clip lies in its source episode / YouTube video, not inside the clip
            span = _span(r["span"], "'span'")
            if duration is not None and span[1] - span[0] > duration + DURATION_TOLERANCE:
                raise _Bad(
                    f"'span' {span} is {span[1] - span[0]:.2f} s long, more than the clip's video "
                    f"({duration:.2f} s)"
                )
        pairs = r["statement"]
        if not isinstance(pairs, list) or not pairs:
            raise _Bad("'statement' must be a non-empty list of [real, fake] pairs")
        if split is not None and r["split"] != split:
            return []
        out = []
        clip_id = r.get("clip_id", where.strip(" []'\""))
        for k, pair in enumerate(pairs):
            if not (
                isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) and s for s in pair)
            ):
                raise _Bad(f"'statement'[{k}] must be a [real, fake] pair of strings, got {pair!r}")
            for label, text in ((1, pair[0]), (0, pair[1])):
                out.append(
                    {
                        "clip_id": clip_id,
                        "file": vid,
                        "vid_name": vid,
                        "source": r.get("source"),
                        "split": r["split"],
                        "span": span,
                        "statement": text,
                        "label": label,
                        "pair_idx": k,
                    }
                )
        return out

    return _read(path, problems, check)


def read_tvc(
    path: str | os.PathLike,
    video_durations: dict[str, float] | None = None,
    *,
    problems: list[str] | None = None,
) -> list[dict]:
    """TVC moment captions: {"clip_id", "vid_name", "ts": [st, ed], "duration",
    "descs": [{"desc", "type", "desc_id"}]}. `ts` and `duration` come back as floats; `descs` may be
    absent (test split) but every entry present needs a non-empty "desc"."""

    def check(r: dict, where: str) -> dict:
        _require(r, "clip_id", "vid_name", "ts", "duration")
        video_dur = _video(_str(r, "vid_name"), video_durations)
        out = dict(r, ts=_span(r["ts"], "'ts'"), duration=_num(r["duration"], "'duration'"))
        _fits(out["ts"], out["duration"], "'ts'")
        _fits(out["ts"], video_dur, "'ts'", DURATION_TOLERANCE)
        descs = r.get("descs", [])
        if not isinstance(descs, list):
            raise _Bad("'descs' must be a list")
        for k, d in enumerate(descs):
            if not isinstance(d, dict) or not isinstance(d.get("desc"), str) or not d["desc"].strip():
                raise _Bad(f"'descs'[{k}] needs a non-empty 'desc'")
            if "type" in d and d["type"] not in TVR_TYPES:
                raise _Bad(f"'descs'[{k}].type must be one of {TVR_TYPES}, got {d['type']!r}")
        return out

    return _read(path, problems, check, id_key="clip_id")


def read_didemo(
    path: str | os.PathLike,
    video_durations: dict[str, float] | None = None,
    *,
    problems: list[str] | None = None,
) -> list[dict]:
    """DiDeMo: [{"annotation_id", "video", "description", "times": [[s, e], ...]}], times in 5-second
    segment indices (several annotators). Adds `times_sec` ([[5 s, 5 (e + 1)], ...]). Segments must lie
    in 0..num_segments-1 (the record's "num_segments", else 6) and start inside the video."""

    def check(r: dict, where: str) -> dict:
        _require(r, "annotation_id", "video", "description", "times")
        _str(r, "description")
        vid = _str(r, "video")
        duration = _video(Path(vid).stem if Path(vid).suffix else vid, video_durations)
        n_seg = _int(r.get("num_segments", DIDEMO_NUM_SEGMENTS), "'num_segments'")
        if duration is not None:
            n_seg = min(n_seg, max(1, math.ceil(duration / DIDEMO_SEGMENT_SECONDS - 1e-6)))
        times = r["times"]
        if not isinstance(times, list) or not times:
            raise _Bad("'times' must be a non-empty list of [start_segment, end_segment]")
        for k, t in enumerate(times):
            if not isinstance(t, list) or len(t) != 2:
                raise _Bad(f"'times'[{k}] must be [start_segment, end_segment], got {t!r}")
            s, e = _int(t[0], f"'times'[{k}][0]"), _int(t[1], f"'times'[{k}][1]")
            if not 0 <= s <= e < n_seg:
                raise _Bad(f"'times'[{k}] {t} is out of segment range 0..{n_seg - 1} (or start > end)")
        sec = DIDEMO_SEGMENT_SECONDS
        return dict(r, times_sec=[[t[0] * sec, (t[1] + 1) * sec] for t in times])

    return _read(path, problems, check, id_key="annotation_id")


def read_msrvtt(
    path: str | os.PathLike,
    video_durations: dict[str, float] | None = None,
    *,
    split: str | None = None,
    problems: list[str] | None = None,
) -> list[dict]:
    """MSR-VTT captions -> [{"video_id", "caption", "sen_id"}]. Accepts the official
    `*_videodatainfo.json` ({"videos": [...], "sentences": [...]}; `split` keeps the sentences of the
    videos whose "split" matches), a JSON list, JSON lines, or the 1k-A test list as published
    (`MSRVTT_JSFUSION_test.csv`: key, vid_key, video_id, sentence)."""

    def check(r: dict, where: str) -> dict:
        if "sentence" in r and "caption" not in r:  # the JSFusion 1k-A csv
            r = {"video_id": r.get("video_id"), "caption": r["sentence"], "sen_id": r.get("key")}
        _require(r, "video_id", "caption")
        _str(r, "caption")
        _video(_str(r, "video_id"), video_durations)
        return {"video_id": r["video_id"], "caption": r["caption"], "sen_id": r.get("sen_id")}

    records = _read(path, problems, check, list_key="sentences")
    if split is None:
        return records
    try:
        videos = json.loads(Path(path).read_text(encoding="utf-8-sig"))["videos"]
        keep = {v["video_id"] for v in videos if v.get("split") == split}
    except (json.JSONDecodeError, KeyError, TypeError):
        raise InputError(
            f"{path}: no 'videos' list with 'video_id' and 'split' to select {split!r}"
        ) from None
    return [r for r in records if r["video_id"] in keep]


def _video_path(r: dict, key: str, root: str | os.PathLike | None, durations: Any) -> str | None:
    """Resolve a record's video against `root` and check it by stem. The value is a path relative to
    `root` ("videos/x.mp4") or, without a suffix, a vid_name looked up as `root/videos/{vid}.*`."""
    vid = _str(r, key)
    _video(Path(vid).stem, durations)
    if root is None:
        return None
    candidates = [Path(root) / vid]
    if not Path(vid).suffix:
        candidates += sorted((Path(root) / "videos").glob(f"{glob.escape(vid)}.*"))
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise _Bad(f"video {vid!r} does not exist under {root}")
    return str(found)


def read_caption_pairs(
    path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    video_durations: dict[str, float] | None = None,
    *,
    problems: list[str] | None = None,
) -> list[dict]:
    """Plain video–caption pairs for pre-training: {"video": "videos/x.mp4", "caption": str or [str]}.

    With `root`, `video` is resolved against it, must exist, and `video_path` is added."""

    def check(r: dict, where: str) -> dict:
        _require(r, "video", "caption")
        cap = r["caption"]
        if isinstance(cap, list):
            if not cap or not all(isinstance(c, str) and c.strip() for c in cap):
                raise _Bad("'caption' list must hold non-empty strings")
        else:
            _str(r, "caption")
        out = dict(r)
        full = _video_path(r, "video", root, video_durations)
        if full is not None:
            out["video_path"] = full
        return out

    return _read(path, problems, check)


def read_ssv2_template(
    path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    video_durations: dict[str, float] | None = None,
    *,
    problems: list[str] | None = None,
) -> list[dict]:
    """Something-Something-v2 labels (JSON list or JSON lines): {"id", "label", "template",
    "placeholders"} (+ "video" in the demo corpus). The template's "[something]" slots must match the
    placeholders in number. With `root`, "video" must exist there (`video_path` is added)."""

    def check(r: dict, where: str) -> dict:
        _require(r, "id", "template")
        template = _str(r, "template")
        out = dict(r)
        if "placeholders" in r:
            ph = r["placeholders"]
            slots = len(re.findall(r"\[[^\]]+\]", template))
            if not isinstance(ph, list) or len(ph) != slots:
                raise _Bad(f"template has {slots} [slots] but 'placeholders' is {ph!r}")
        if "label" in r:
            _str(r, "label")
        if "video" in r:
            full = _video_path(r, "video", root, video_durations)
            if full is not None:
                out["video_path"] = full
        elif video_durations is not None:
            _video(str(r["id"]), video_durations)
        return out

    return _read(path, problems, check, id_key="id")


# ---- whole corpus ----


@dataclass
class FileReport:
    """Validation result of one file of a corpus."""

    path: str
    kind: str
    records: int = 0
    problems: list[str] = field(default_factory=list)


def probe_durations(video_dir: str | os.PathLike, problems: list[str] | None = None) -> dict[str, float]:
    """{vid_name: duration in seconds} for every video file under `video_dir`, as `data.video.probe`
    reads it (the header, overruled by the packets when it declares too little)."""
    from tempovl.data.video import probe, video_files

    out: dict[str, float] = {}
    for p in video_files(video_dir, recursive=False):
        try:
            out[p.stem] = probe(p).duration
        except InputError as e:
            if problems is None:
                raise
            problems.append(str(e))
    return out


# TVR/TVQA-format subtitles, under tempovl's name or the public releases' (TVQA's; VALUE's How2)
SUBTITLE_FILES = ("tvr_subtitles.jsonl", "tvqa_preprocessed_subtitles.jsonl", "how2_subtitles.jsonl")

# file name -> (kind, reader); the public releases' own names included (docs/datasets/)
_READERS: list[tuple[str, str, Callable[..., list]]] = [
    (r"(?i)how2r_(train|val|test).*\.(csv|jsonl)$", "how2r", read_tvr),  # the CSV release and VALUE's
    (
        r"(?i)how2qa_(train|val|test).*\.(csv|jsonl)$",
        "how2qa",
        functools.partial(read_tvqa, num_answers=HOW2QA_NUM_ANSWERS),
    ),
    (r"tvr_(train|val|test).*\.jsonl$", "tvr", read_tvr),
    (r"tvqa_.*\.jsonl$", "tvqa", read_tvqa),
    (r"violin.*\.json$", "violin", read_violin),
    (r"tvc_.*\.jsonl$", "tvc", read_tvc),
    (r"(didemo_.*|(train|val|test)_data)\.json$", "didemo", read_didemo),
    (r"(msrvtt_.*\.jsonl?|.*videodatainfo\.json|MSRVTT_JSFUSION_test\.csv)$", "msrvtt", read_msrvtt),
    (r"captions_.*\.jsonl$", "captions", read_caption_pairs),
    (r"ssv2_template_.*\.jsonl?$", "ssv2_template", read_ssv2_template),
]


# where the public releases put their files: the dataset's folder, How2's how2R/ and how2QA/
_PUBLIC_FOLDERS = (".", "how2R", "how2QA")


def _annotation_files(root: Path) -> list[Path]:
    """Every file of annotations/ (tempovl's layout), then the files with a public release's name in
    `_PUBLIC_FOLDERS` (docs/datasets/)."""
    out = sorted((root / "annotations").glob("*")) if (root / "annotations").is_dir() else []
    for folder in (root / name for name in _PUBLIC_FOLDERS):
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            known = path.name in SUBTITLE_FILES or any(re.match(p, path.name) for p, _, _ in _READERS)
            if known and path.is_file():
                out.append(path)
    return out


def validate_corpus_report(root: str | os.PathLike) -> list[FileReport]:
    """Check every video, subtitle and annotation file of a corpus directory (docs/demo-corpus.md), and
    the public releases' files by their names (docs/datasets/)."""
    from tempovl.data.subtitles import (
        SUBTITLE_SUFFIXES,
        read_srt,
        read_tvr_subtitles,
        read_violin_subtitles,
        read_vtt,
    )

    root = Path(root)
    reports = []
    videos = FileReport(str(root / "videos"), "videos")
    durations = probe_durations(root / "videos", videos.problems) if (root / "videos").is_dir() else {}
    videos.records = len(durations)
    if not (root / "videos").is_dir():
        videos.problems.append(f"{root / 'videos'}: missing videos directory")
    reports.append(videos)

    if (root / "splits.json").is_file():
        rep = FileReport(str(root / "splits.json"), "splits")
        try:
            splits = json.loads((root / "splits.json").read_text(encoding="utf-8"))
            for name, vids in splits.items():
                rep.records += len(vids)
                rep.problems += [
                    f"{rep.path} [{name!r}]: video {v!r} does not exist" for v in vids if v not in durations
                ]
        except (json.JSONDecodeError, AttributeError, TypeError) as e:
            rep.problems.append(f"{rep.path}: not a {{split: [vid_name, ...]}} JSON object ({e})")
        reports.append(rep)

    for sub in sorted((root / "subtitles").glob("*")) if (root / "subtitles").is_dir() else []:
        if sub.suffix.lower() not in SUBTITLE_SUFFIXES:
            continue
        rep = FileReport(str(sub), "subtitles")
        try:
            rep.records = len(read_srt(sub) if sub.suffix.lower() == ".srt" else read_vtt(sub))
        except InputError as e:
            rep.problems.append(str(e))
        if sub.stem not in durations:
            rep.problems.append(f"{sub}: video {sub.stem!r} does not exist")
        reports.append(rep)

    for ann in _annotation_files(root):
        rep = FileReport(str(ann), "")
        if ann.name in SUBTITLE_FILES:
            rep.kind = "tvr_subtitles"
            try:
                subs = read_tvr_subtitles(ann)
                rep.records = len(subs)
                rep.problems += [f"{ann}: video {v!r} does not exist" for v in subs if v not in durations]
            except InputError as e:
                rep.problems.append(str(e))
            reports.append(rep)
            continue
        for pattern, kind, reader in _READERS:
            if re.match(pattern, ann.name):
                rep.kind = kind
                extra = {"root": root} if kind in ("captions", "ssv2_template") else {}
                rep.records = len(reader(ann, video_durations=durations, problems=rep.problems, **extra))
                if kind == "violin":  # its inline "sub": what data.subtitles: violin_annotation.json reads
                    try:
                        read_violin_subtitles(ann)
                    except InputError as e:
                        rep.problems.append(str(e))
                reports.append(rep)
                break
        else:
            reports.append(FileReport(str(ann), "(not checked)"))
    return reports


def validate_corpus(root: str | os.PathLike) -> list[str]:
    """Run every reader over a corpus directory; the problems found (empty = all good)."""
    return [p for rep in validate_corpus_report(root) for p in rep.problems]
