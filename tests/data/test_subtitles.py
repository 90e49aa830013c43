"""Subtitle readers: SRT, WebVTT, TVR JSONL, VIOLIN's inline "sub" — good files, odd-but-valid files, and
malformed ones."""

from __future__ import annotations

import json

import pytest

from tempovl.data.subtitles import (
    Sentence,
    parse_timestamp,
    read_srt,
    read_subtitle_collection,
    read_subtitle_file,
    read_tvr_subtitles,
    read_violin_subtitles,
    read_vtt,
    split_speaker,
)
from tempovl.errors import InputError


def _write(tmp_path, name, text, encoding="utf-8", newline="\n"):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


SRT = """1
00:00:01,000 --> 00:00:02,500
ALICE: Hello there.

2
00:00:03,000 --> 00:00:05,250
<i>Where is</i> the
<b>red ball</b>?

3
00:01:02,5 --> 01:00:00,000
(Bob:) It is &amp; was here.
"""


def test_parse_timestamp():
    assert parse_timestamp("00:00:01,000") == 1.0
    assert parse_timestamp("01:02:03.456") == pytest.approx(3723.456)
    assert parse_timestamp("02:03.5") == pytest.approx(123.5)
    assert parse_timestamp("00:61:00,000") is None
    assert parse_timestamp("1:02") is None
    assert parse_timestamp("00:01:2,5") is None
    assert parse_timestamp("01:02.000", need_hours=True) is None
    assert parse_timestamp("abc") is None


def test_split_speaker():
    assert split_speaker("ALICE: hi") == ("ALICE", "hi")
    assert split_speaker(" Chase : That's all this is?") == ("Chase", "That's all this is?")
    assert split_speaker("(Alice:) hi") == ("Alice", "hi")
    assert split_speaker("(Dr. House): go") == ("Dr. House", "go")
    assert split_speaker("it is 10:30 now") == (None, "it is 10:30 now")
    assert split_speaker("no speaker here") == (None, "no speaker here")


def test_read_srt(tmp_path):
    sents = read_srt(_write(tmp_path, "a.srt", SRT))
    assert sents == [
        Sentence("Hello there.", 1.0, 2.5, "ALICE"),
        Sentence("Where is the red ball?", 3.0, 5.25, None),
        Sentence("It is & was here.", 62.5, 3600.0, "Bob"),
    ]
    assert sents[0].full_text == "ALICE: Hello there."
    assert sents[1].full_text == "Where is the red ball?"


def test_srt_bom_crlf_and_suffix_dispatch(tmp_path):
    path = _write(tmp_path, "b.SRT", SRT, encoding="utf-8-sig", newline="\r\n")
    assert read_subtitle_file(path) == read_srt(_write(tmp_path, "a.srt", SRT))


def test_srt_without_cue_numbers_and_sorted(tmp_path):
    text = "00:00:05,000 --> 00:00:06,000\nlater\n\n00:00:01,000 --> 00:00:02,000\nearlier\n"
    sents = read_srt(_write(tmp_path, "c.srt", text))
    assert [s.text for s in sents] == ["earlier", "later"]


def test_empty_files(tmp_path):
    assert read_srt(_write(tmp_path, "e.srt", "")) == []
    assert read_srt(_write(tmp_path, "e2.srt", "\n\n  \n")) == []
    assert read_vtt(_write(tmp_path, "e.vtt", "")) == []
    assert read_vtt(_write(tmp_path, "e2.vtt", "WEBVTT\n")) == []


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:01:2,5 --> 00:00:03,000\nbad\n", 6, "bad timestamp"),
        ("1\n00:00:03,000 --> 00:00:02,000\nbackwards\n", 2, "ends before it starts"),
        ("1\nhello\n", 2, "bad timestamp"),
        ("\n\nfoo bar\n00:00:01,000 --> 00:00:02,000\n", 3, "expected a cue number"),
        ("1\n00:00:01,000 -> 00:00:02,000\nx\n", 2, "bad timestamp"),
    ],
)
def test_srt_malformed_names_file_and_line(tmp_path, text, line, fragment):
    path = _write(tmp_path, "x.srt", text)
    with pytest.raises(InputError) as e:
        read_srt(path)
    assert f"x.srt:{line}: " in str(e.value)
    assert fragment in str(e.value)


VTT = """WEBVTT - some title
Kind: captions

NOTE this is a comment
spanning two lines

STYLE
::cue { color: red }

intro
00:01.000 --> 00:02.000 align:start position:10%
<v Alice>Hi <c.yellow>there</c>

00:00:03.000 --> 00:00:04.500
- BOB: <00:00:03.500>Two
lines here.
"""


def test_read_vtt(tmp_path):
    sents = read_vtt(_write(tmp_path, "a.vtt", VTT, encoding="utf-8-sig", newline="\r\n"))
    assert sents == [
        Sentence("Hi there", 1.0, 2.0, "Alice"),
        Sentence("- BOB: Two lines here.", 3.0, 4.5, None),
    ]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("00:01.000 --> 00:02.000\nhi\n", 1, "not a WebVTT file"),
        ("WEBVTT\n\n00:01.000 --> 00:0x.000\nhi\n", 3, "bad timestamp"),
        ("WEBVTT\n\ncue-id\nhello\n", 3, "expected 'start --> end'"),
        ("WEBVTT\n\n00:05.000 --> 00:02.000\nhi\n", 3, "ends before it starts"),
    ],
)
def test_vtt_malformed_names_file_and_line(tmp_path, text, line, fragment):
    with pytest.raises(InputError) as e:
        read_vtt(_write(tmp_path, "y.vtt", text))
    assert f"y.vtt:{line}: " in str(e.value)
    assert fragment in str(e.value)


def test_unknown_suffix(tmp_path):
    with pytest.raises(InputError, match=r"z\.ass: unknown subtitle format"):
        read_subtitle_file(_write(tmp_path, "z.ass", ""))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.srt: cannot read"):
        read_srt(tmp_path / "nope.srt")


def _jsonl(tmp_path, records, name="subs.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_read_tvr_subtitles(tmp_path):
    path = _jsonl(
        tmp_path,
        [
            {
                "vid_name": "v1",
                "sub": [
                    {"text": "later", "start": 4.0, "end": 5.0},
                    {"text": " Chase : That's all this is?", "start": 0.862, "end": 1.862},
                ],
            },
            {"vid_name": "v2", "sub": []},
        ],
    )
    subs = read_tvr_subtitles(path)
    assert subs == {
        "v1": [Sentence("That's all this is?", 0.862, 1.862, "Chase"), Sentence("later", 4.0, 5.0)],
        "v2": [],
    }


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ({"sub": []}, "missing 'vid_name'"),
        ({"vid_name": "v"}, "missing 'sub'"),
        ({"vid_name": "v", "sub": [{"text": "a", "start": 1}]}, "v sub[0] needs"),
        (
            {"vid_name": "v", "sub": [{"text": "a", "start": "1", "end": 2}]},
            "v sub[0].start must be a number",
        ),
        ({"vid_name": "v", "sub": [{"text": "a", "start": 3, "end": 2}]}, "ends before it starts"),
        ({"vid_name": "ok", "sub": []}, "duplicate vid_name 'ok'"),
    ],
)
def test_tvr_subtitles_malformed(tmp_path, record, fragment):
    path = _jsonl(tmp_path, [{"vid_name": "ok", "sub": []}, record])
    with pytest.raises(InputError) as e:
        read_tvr_subtitles(path)
    assert "subs.jsonl:2: " in str(e.value)
    assert fragment in str(e.value)


def _violin(tmp_path, clips: dict):
    path = tmp_path / "violin_annotation.json"
    path.write_text(json.dumps(clips), encoding="utf-8")
    return path


def _clip(file: str, sub=None) -> dict:
    clip = {"file": file, "source": "src", "split": "train", "span": [12.5, 44.0], "statement": [["a", "b"]]}
    return clip if sub is None else {**clip, "sub": sub}


def test_read_violin_subtitles(tmp_path):
    """VIOLIN's "sub": [text, [start_ms, end_ms]] from the clip's start, keyed by the clip's file."""
    path = _violin(
        tmp_path,
        {
            "1": _clip("friends_s01e01_clip_00", [["Later.", [4000, 5250]], ["(Ross:) Hi!", [862, 1862]]]),
            "2": _clip("movie_clip.mp4", []),  # a suffix is dropped, as data.splits names the video
            "3": _clip("no_sub"),  # no "sub": no subtitles
        },
    )
    subs = read_violin_subtitles(path)
    assert subs == {
        "friends_s01e01_clip_00": [Sentence("Hi!", 0.862, 1.862, "Ross"), Sentence("Later.", 4.0, 5.25)],
        "movie_clip": [],
    }
    assert read_subtitle_collection(path) == subs


@pytest.mark.parametrize(
    ("clip", "fragment"),
    [
        (_clip("v", {"a": 1}), "['bad']: 'sub' must be a list"),
        (
            _clip("v", [["hi", 0, 1000]]),
            "['bad']: sub[0] must be [text, [start_ms, end_ms]], got [\"hi\", 0, 1000]",
        ),
        (_clip("v", [["ok", [0, 1]], "hi"]), "['bad']: sub[1] must be [text, [start_ms, end_ms]]"),
        (_clip("v", [[3, [0, 1]]]), "['bad']: sub[0] text must be a string"),
        (_clip("v", [["hi", ["0", 1]]]), "['bad']: sub[0] start must be a number of milliseconds"),
        (_clip("v", [["hi", [2000, 1000]]]), "['bad']: sub[0] ends before it starts (2000 > 1000 ms)"),
        ({"sub": []}, "['bad']: 'file' (the clip's video) must be a non-empty string"),
        (_clip("ok", []), "['bad']: a second clip with file 'ok'"),
        (["not", "a", "clip"], "['bad']: expected a JSON object"),
    ],
)
def test_violin_subtitles_malformed(tmp_path, clip, fragment):
    path = _violin(tmp_path, {"good": _clip("ok", []), "bad": clip})
    with pytest.raises(InputError) as e:
        read_violin_subtitles(path)
    assert f"{path} {fragment}" in str(e.value)


def test_subtitle_collection_is_chosen_by_suffix(tmp_path):
    tvr = _jsonl(tmp_path, [{"vid_name": "v1", "sub": [{"text": "hi", "start": 1.0, "end": 2.0}]}])
    assert read_subtitle_collection(tvr) == {"v1": [Sentence("hi", 1.0, 2.0)]}
    bad = tmp_path / "broken.json"
    bad.write_text('{"1": {"file": "v",\n "sub": [}')
    with pytest.raises(InputError, match=r"broken\.json:2: not valid JSON"):
        read_subtitle_collection(bad)
    with pytest.raises(InputError, match=r"no clip has inline subtitles \('sub'\)"):
        read_subtitle_collection(_violin(tmp_path, {"1": _clip("v")}))
    with pytest.raises(InputError, match=r"unknown subtitle collection '\.srt'"):
        read_subtitle_collection(_write(tmp_path, "a.srt", SRT))


def test_validate_checks_violin_inline_subtitles(tmp_path):
    from tempovl.data.annotations import validate_corpus_report

    (tmp_path / "annotations").mkdir()
    _violin(tmp_path / "annotations", {"c1": _clip("v", [["hi", [900, 100]]])})
    (report,) = [r for r in validate_corpus_report(tmp_path) if r.kind == "violin"]
    assert any("['c1']: sub[0] ends before it starts (900 > 100 ms)" in p for p in report.problems)


def test_cp1252_and_utf16_subtitles_are_decoded(tmp_path):
    """Issue 13: a Windows editor's cp1252 file keeps its curly quotes and dashes; UTF-16 files (with
    a BOM, as Windows 'Unicode' saves them, or without) are decoded, not rejected."""
    from tempovl.data.subtitles import read_subtitle_file

    text = "1\r\n00:00:01,000 --> 00:00:02,500\r\n\u201cWait\u201d \u2014 it\u2019s Eve\u2026\r\n\r\n"
    expected = "\u201cWait\u201d \u2014 it\u2019s Eve\u2026"
    for name, data in {
        "cp1252.srt": text.encode("cp1252"),
        "utf16.srt": text.encode("utf-16"),  # with a BOM
        "utf16le.srt": text.encode("utf-16-le"),
        "utf16be.srt": text.encode("utf-16-be"),
        "utf8.srt": text.encode("utf-8"),
    }.items():
        (tmp_path / name).write_bytes(data)
        (sentence,) = read_subtitle_file(tmp_path / name)
        assert sentence.text == expected, name
        assert (sentence.start, sentence.end) == (1.0, 2.5)
