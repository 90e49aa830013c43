"""Subtitle readers: SRT, WebVTT, the TVR/TVQA preprocessed JSONL and VIOLIN's inline subtitles, all
into `Sentence`s.

Every reader returns sentences sorted by start time (stable, so file order breaks ties), which is what
`tempovl.data.align.align` expects. Cue text is cleaned the same way for every format: HTML-ish tags
(`<i>`, `<font ...>`, VTT `<c.x>` / `<00:00:01.000>`) and ASS override blocks (`{\\an8}`) are removed,
HTML entities are unescaped, the lines of a multi-line cue are joined with a space. A speaker prefix
on the first line ("ALICE: hi", "Chase : hi", "(Alice:) hi", VTT "<v Alice>hi") goes to
`Sentence.speaker`; `Sentence.full_text` puts it back ("ALICE: hi") for models, because in TV data the
speaker's name is information the video does not show.

Malformed input raises `InputError` naming the file and the line ("x.srt:17: bad timestamp ...").
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from tempovl.errors import InputError


@dataclass
class Sentence:
    """One subtitle cue: cleaned text, start/end in seconds, and the speaker when the cue names one."""

    text: str
    start: float
    end: float
    speaker: str | None = None

    @property
    def full_text(self) -> str:
        """The text with its speaker prefix ("ALICE: hi"), as TV subtitles show it."""
        return f"{self.speaker}: {self.text}" if self.speaker else self.text


# "HH:MM:SS,mmm" (SRT; "." accepted too) or "MM:SS.mmm" / "HH:MM:SS.mmm" (VTT). Minutes and seconds
# take two digits ("00:01:2,5" is an error, as players disagree on it); hours any number; 1-3 decimals.
_TIME = r"(?:(\d+):)?(\d{2}):(\d{2})(?:[,.](\d{1,3}))?"
_TIME_RE = re.compile(rf"^{_TIME}$")
_ARROW_RE = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)(?:\s+(.*))?$")
_TAG_RE = re.compile(r"<[^>]*>")
_ASS_RE = re.compile(r"\{\\[^}]*\}")
_VOICE_RE = re.compile(r"^\s*<v(?:\.[\w.-]+)?\s+([^>]+)>")
# A speaker prefix: 1-3 capitalised words (or ALL CAPS), optionally in parentheses, then a colon.
_NAME = r"[A-Z][A-Za-z'.\-]*(?:\s+[A-Z][A-Za-z'.\-]*){0,2}"
_SPEAKER_RES = (
    re.compile(rf"^\(\s*({_NAME})\s*:\s*\)\s*(.*)$"),  # "(Alice:) hi"
    re.compile(rf"^\(\s*({_NAME})\s*\)\s*:\s*(.*)$"),  # "(Alice): hi"
    re.compile(rf"^({_NAME})\s*:\s+(.*)$"),  # "ALICE: hi", "Chase : hi"
)


def parse_timestamp(value: str, need_hours: bool = False) -> float | None:
    """Seconds from "HH:MM:SS,mmm", "HH:MM:SS.mmm" or "MM:SS.mmm"; None when it is not a timestamp."""
    m = _TIME_RE.match(value.strip())
    if m is None:
        return None
    hours, minutes, seconds, frac = m.groups()
    if need_hours and hours is None:
        return None
    if int(minutes) >= 60 or int(seconds) >= 60:
        return None
    ms = int(frac.ljust(3, "0")) if frac else 0
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + ms / 1000.0


def split_speaker(text: str) -> tuple[str | None, str]:
    """Split a leading speaker prefix off `text`: "ALICE: hi" -> ("ALICE", "hi").

    One to three capitalised words before a colon count as a speaker, so "Note: ..." does too;
    TV subtitles are written that way, and `full_text` restores the prefix unchanged."""
    stripped = text.strip()
    for pattern in _SPEAKER_RES:
        m = pattern.match(stripped)
        if m:
            return m.group(1).strip(), m.group(2).strip()
    return None, stripped


def clean_text(text: str) -> str:
    """Remove tags and ASS override blocks, unescape entities, collapse whitespace."""
    text = _ASS_RE.sub("", text)
    text = _TAG_RE.sub("", text)
    text = html.unescape(text)
    return " ".join(text.split())


def _make_sentence(lines: list[str], start: float, end: float) -> Sentence | None:
    """Build a sentence from raw cue lines; None for a cue with no text left after cleaning."""
    speaker = None
    voice = _VOICE_RE.match(lines[0]) if lines else None
    if voice:
        speaker = " ".join(voice.group(1).split())
    cleaned = [clean_text(line) for line in lines]
    cleaned = [c for c in cleaned if c]
    if not cleaned:
        return None
    if speaker is None:
        speaker, cleaned[0] = split_speaker(cleaned[0])
    text = " ".join(c for c in cleaned if c)
    if not text:
        return None
    return Sentence(text=text, start=start, end=end, speaker=speaker)


def decode_text(raw: bytes) -> str:
    """Text of a subtitle file in the encodings people's files come in: UTF-16 (with a BOM, or ASCII
    text with every other byte zero), UTF-8 (BOM or not), else Windows-1252 (what Windows editors
    save: curly quotes and dashes at 0x91-0x97; latin-1 would turn them into control characters),
    else latin-1 for the few bytes cp1252 leaves undefined."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    if len(raw) >= 4 and raw[1::2][:64].count(0) > 0.9 * len(raw[1::2][:64]):
        return raw.decode("utf-16-le", errors="replace")
    if len(raw) >= 4 and raw[0::2][:64].count(0) > 0.9 * len(raw[0::2][:64]):
        return raw.decode("utf-16-be", errors="replace")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            pass
    return raw.decode("latin-1")


def _read_lines(path: str | os.PathLike) -> list[str]:
    """Lines of a text file without BOM and line endings (CRLF, CR and LF all accepted)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read subtitle file ({e.strerror})") from None
    return decode_text(raw).replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _parse_timing(
    path: str | os.PathLike, lineno: int, line: str, need_hours: bool
) -> tuple[float, float, str]:
    """Parse "start --> end [settings]"; returns (start, end, settings) or raises naming file:line."""
    m = _ARROW_RE.match(line)
    start = parse_timestamp(m.group(1), need_hours) if m else None
    end = parse_timestamp(m.group(2), need_hours) if m else None
    if start is None or end is None:
        raise InputError(f"{path}:{lineno}: bad timestamp {line.strip()!r}")
    if end < start:
        raise InputError(f"{path}:{lineno}: cue ends before it starts ({line.strip()!r})")
    return start, end, (m.group(3) or "").strip()


def _blocks(lines: list[str]) -> list[tuple[int, list[str]]]:
    """Split lines into blank-line-separated blocks: [(1-based line number of first line, lines)]."""
    blocks, current, first = [], [], 0
    for i, line in enumerate(lines, 1):
        if line.strip():
            if not current:
                first = i
            current.append(line)
        elif current:
            blocks.append((first, current))
            current = []
    if current:
        blocks.append((first, current))
    return blocks


def _sorted(sentences: list[Sentence]) -> list[Sentence]:
    return sorted(sentences, key=lambda s: s.start)


def read_srt(path: str | os.PathLike) -> list[Sentence]:
    """Read a SubRip file. A block is [cue number], "start --> end", text lines; empty file -> []."""
    sentences = []
    for first, block in _blocks(_read_lines(path)):
        timing_at = 0
        if "-->" not in block[0]:
            if not block[0].strip().isdigit():
                raise InputError(
                    f"{path}:{first}: expected a cue number or 'start --> end', got {block[0].strip()!r}"
                )
            if len(block) < 2 or "-->" not in block[1]:
                got = block[1].strip() if len(block) > 1 else "end of cue"
                raise InputError(f"{path}:{first + 1}: bad timestamp {got!r} (expected 'start --> end')")
            timing_at = 1
        start, end, _ = _parse_timing(path, first + timing_at, block[timing_at], True)
        sentence = _make_sentence(block[timing_at + 1 :], start, end)
        if sentence is not None:
            sentences.append(sentence)
    return _sorted(sentences)


def read_vtt(path: str | os.PathLike) -> list[Sentence]:
    """Read a WebVTT file: header, NOTE / STYLE / REGION blocks skipped, cue settings ignored."""
    lines = _read_lines(path)
    if not any(line.strip() for line in lines):
        return []
    if not lines[0].startswith("WEBVTT") or (len(lines[0]) > 6 and lines[0][6] not in " \t"):
        raise InputError(f"{path}:1: not a WebVTT file (first line must be 'WEBVTT', got {lines[0]!r})")
    sentences = []
    for n, (first, block) in enumerate(_blocks(lines)):
        if n == 0:
            continue  # the header block: "WEBVTT" and optional metadata lines
        head = block[0].strip()
        if head.split()[0] in ("NOTE", "STYLE", "REGION"):
            continue
        timing_at = 0 if "-->" in block[0] else 1  # an optional cue identifier comes first
        if timing_at == 1 and (len(block) < 2 or "-->" not in block[1]):
            raise InputError(f"{path}:{first}: expected 'start --> end' in cue, got {head!r}")
        start, end, _ = _parse_timing(path, first + timing_at, block[timing_at], False)
        sentence = _make_sentence(block[timing_at + 1 :], start, end)
        if sentence is not None:
            sentences.append(sentence)
    return _sorted(sentences)


SUBTITLE_SUFFIXES = (".srt", ".vtt")  # what every command reads as a video's subtitle file


def subtitle_file_of(folder: Path, vid: str) -> Path | None:
    """folder/{vid}.srt or folder/{vid}.vtt, whichever exists first; None when neither does."""
    for suffix in SUBTITLE_SUFFIXES:
        if (folder / f"{vid}{suffix}").is_file():
            return folder / f"{vid}{suffix}"
    return None


def read_subtitle_file(path: str | os.PathLike) -> list[Sentence]:
    """Read an .srt or .vtt file, chosen by suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".srt":
        return read_srt(path)
    if suffix == ".vtt":
        return read_vtt(path)
    raise InputError(f"{path}: unknown subtitle format {suffix!r} (expected .srt or .vtt)")


def _number(at: str, where: str, value: object, unit: str = "seconds") -> float:
    """`value` as a float; InputError "{at}: {where} must be a number of {unit}" otherwise (NaN too)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InputError(f"{at}: {where} must be a number of {unit}, got {value!r}")
    return float(value)


def read_tvr_subtitles(path: str | os.PathLike) -> dict[str, list[Sentence]]:
    """Read TVR/TVQA preprocessed subtitles: one {"vid_name", "sub": [{"text", "start", "end"}]} a line.

    TVR's text carries the speaker as " Chase : That's all"; it is split off into `speaker`.
    """
    out: dict[str, list[Sentence]] = {}
    try:
        f = open(path, encoding="utf-8-sig")
    except OSError as e:
        raise InputError(f"{path}: cannot read subtitle file ({e.strerror})") from None
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object")
            for key in ("vid_name", "sub"):
                if key not in record:
                    raise InputError(f"{path}:{lineno}: missing {key!r}")
            vid, subs = record["vid_name"], record["sub"]
            if not isinstance(vid, str) or not vid:
                raise InputError(f"{path}:{lineno}: 'vid_name' must be a non-empty string")
            if vid in out:
                raise InputError(f"{path}:{lineno}: duplicate vid_name {vid!r}")
            if not isinstance(subs, list):
                raise InputError(f"{path}:{lineno}: 'sub' must be a list")
            sentences = []
            for i, sub in enumerate(subs):
                where = f"{vid} sub[{i}]"
                if not isinstance(sub, dict) or not all(k in sub for k in ("text", "start", "end")):
                    raise InputError(f"{path}:{lineno}: {where} needs 'text', 'start' and 'end'")
                start = _number(f"{path}:{lineno}", f"{where}.start", sub["start"])
                end = _number(f"{path}:{lineno}", f"{where}.end", sub["end"])
                if end < start:
                    raise InputError(f"{path}:{lineno}: {where} ends before it starts ({start} > {end})")
                if not isinstance(sub["text"], str):
                    raise InputError(f"{path}:{lineno}: {where}.text must be a string")
                sentence = _make_sentence([sub["text"]], start, end)
                if sentence is not None:
                    sentences.append(sentence)
            out[vid] = _sorted(sentences)
    return out


def read_violin_subtitles(path: str | os.PathLike) -> dict[str, list[Sentence]]:
    """Read VIOLIN's inline subtitles from violin_annotation.json ({clip_id: {"file", ..., "sub"}}).

    A clip's "sub" is a list of [text, [start_ms, end_ms]], times in milliseconds from the start of the
    clip, i.e. of its video videos/{file}.mp4 (not of the source video that "span" places the clip in).
    Returned as {file: [Sentence]} (a suffix of the file dropped, as `data.splits` names the videos); a
    clip without "sub" is left out, so it has no subtitles. Errors name the file, the clip id and the
    entry.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except OSError as e:
        raise InputError(f"{path}: cannot read subtitle file ({e.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected an object of clip id -> clip, as violin_annotation.json")
    out: dict[str, list[Sentence]] = {}
    for clip_id, clip in data.items():
        at = f"{path} [{clip_id!r}]"
        if not isinstance(clip, dict):
            raise InputError(f"{at}: expected a JSON object, got {type(clip).__name__}")
        if "sub" not in clip:
            continue
        file = clip.get("file")
        if not isinstance(file, str) or not file.strip():
            raise InputError(f"{at}: 'file' (the clip's video) must be a non-empty string, got {file!r}")
        vid = Path(file).stem if Path(file).suffix else file  # as annotation_videos names it
        if vid in out:
            raise InputError(f"{at}: a second clip with file {file!r}")
        if not isinstance(clip["sub"], list):
            raise InputError(f"{at}: 'sub' must be a list of [text, [start_ms, end_ms]]")
        sentences = []
        for i, entry in enumerate(clip["sub"]):
            where = f"sub[{i}]"
            if not (
                isinstance(entry, list)
                and len(entry) == 2
                and isinstance(entry[1], list)
                and len(entry[1]) == 2
            ):
                got = json.dumps(entry)
                got = got if len(got) <= 80 else got[:77] + "..."
                raise InputError(f"{at}: {where} must be [text, [start_ms, end_ms]], got {got}")
            text, (start_ms, end_ms) = entry
            if not isinstance(text, str):
                raise InputError(f"{at}: {where} text must be a string, got {text!r}")
            start = _number(at, f"{where} start", start_ms, "milliseconds")
            end = _number(at, f"{where} end", end_ms, "milliseconds")
            if end < start:
                raise InputError(f"{at}: {where} ends before it starts ({start_ms} > {end_ms} ms)")
            sentence = _make_sentence([text], start / 1000.0, end / 1000.0)
            if sentence is not None:
                sentences.append(sentence)
        out[vid] = _sorted(sentences)
    return out


def read_subtitle_collection(path: str | os.PathLike) -> dict[str, list[Sentence]]:
    """The subtitles of many videos in one file, {video: [Sentence]}, chosen by suffix: TVR/TVQA
    preprocessed subtitles (.jsonl) or VIOLIN's violin_annotation.json (.json, its inline "sub")."""
    suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":
        return read_tvr_subtitles(path)
    if suffix == ".json":
        subs = read_violin_subtitles(path)
        if not subs:
            raise InputError(f"{path}: no clip has inline subtitles ('sub'), so it is no subtitle file")
        return subs
    raise InputError(
        f"{path}: unknown subtitle collection {suffix!r} (expected TVR/TVQA's .jsonl or VIOLIN's "
        "violin_annotation.json)"
    )
