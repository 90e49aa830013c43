"""The synthetic demo corpus: layout, determinism, annotation validity, query mix, grounded dialogue,
CLI safety."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import av
import numpy as np
import pytest

from tempovl.data.corpus import build_scripts, make_corpus
from tempovl.data.corpus.formats import build_annotations, srt_text
from tempovl.data.corpus.language import (
    REACTIONS,
    TOPICS,
    event_phrase,
    grounded,
    retell,
    sentence,
    verb_phrase,
    visual,
)
from tempovl.data.corpus.render import render_frames
from tempovl.data.corpus.world import (
    ACTIONS,
    CHARACTERS,
    OBJECTS,
    ROOMS,
    Event,
    Line,
    Script,
    visible_objects,
)
from tempovl.errors import InputError

SPLITS = ("train", "val", "test")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _annotation_bytes(root: Path) -> dict[str, bytes]:
    paths = [*root.glob("annotations/*"), *root.glob("subtitles/*"), *root.glob("script/*")]
    paths += [root / "splits.json", root / "card.json", root / "CARD.md"]
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(paths)}


@pytest.fixture(scope="module")
def seed1_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "tiny_seed1"
    make_corpus(out, preset="tiny", seed=1, progress=False)
    return out


def test_layout(tiny_corpus: Path):
    splits = json.loads((tiny_corpus / "splits.json").read_text())
    assert set(splits) == {"train", "val", "test", "pretrain", "single_train", "single_val", "single_test"}
    assert [len(splits[k]) for k in ("train", "val", "test", "pretrain")] == [4, 2, 2, 4]
    assert sum(len(splits[f"single_{k}"]) for k in SPLITS) == 6
    for key, vids in splits.items():
        for vid in vids:
            assert (tiny_corpus / "videos" / f"{vid}.mp4").stat().st_size > 0
            assert (tiny_corpus / "script" / f"{vid}.json").exists()
            assert (tiny_corpus / "subtitles" / f"{vid}.srt").exists() == (not key.startswith("single"))
    for s in SPLITS:
        for name in (
            f"tvr_{s}.jsonl",
            f"tvqa_{s}.jsonl",
            f"tvc_{s}.jsonl",
            f"captions_{s}.jsonl",
            f"ssv2_template_{s}.jsonl",
            f"didemo_{s}.json",
            f"msrvtt_{s}.jsonl",
        ):
            assert (tiny_corpus / "annotations" / name).exists(), name
    for name in ("tvr_subtitles.jsonl", "violin_annotation.json", "captions_pretrain.jsonl", "meta.jsonl"):
        assert (tiny_corpus / "annotations" / name).exists(), name
    card = json.loads((tiny_corpus / "card.json").read_text())
    assert card["seed"] == 0 and card["preset"] == "tiny" and card["vocab_size"] > 50
    assert "# tempovl synthetic demo corpus" in (tiny_corpus / "CARD.md").read_text()
    assert 0.5 <= card["grounded_lines"]["fraction"] <= 1.0 and card["grounded_lines"]["count"] > 10
    assert "Grounded lines:" in (tiny_corpus / "CARD.md").read_text()
    # field names of the public formats
    tvr = _jsonl(tiny_corpus / "annotations/tvr_train.jsonl")[0]
    assert set(tvr) == {"desc_id", "desc", "vid_name", "duration", "ts", "type"}
    qa = _jsonl(tiny_corpus / "annotations/tvqa_train.jsonl")[0]
    assert set(qa) == {"qid", "q", "a0", "a1", "a2", "a3", "a4", "answer_idx", "ts", "vid_name", "show_name"}
    assert re.fullmatch(r"\d+\.\d\d-\d+\.\d\d", qa["ts"])
    ssv2 = _jsonl(tiny_corpus / "annotations/ssv2_template_train.jsonl")[0]
    assert ssv2["template"].startswith("[Something]")
    assert ssv2["template"].count("[something]") + 1 == len(ssv2["placeholders"])


def test_video_matches_script(tiny_corpus: Path):
    vid = json.loads((tiny_corpus / "splits.json").read_text())["train"][0]
    script = json.loads((tiny_corpus / "script" / f"{vid}.json").read_text())
    frames = _decode(tiny_corpus / "videos" / f"{vid}.mp4")
    assert frames.shape[1:] == (64, 64, 3)
    assert len(frames) == int(script["duration"] * script["fps"])
    assert frames.std() > 10  # not a blank video
    rebuilt = build_scripts("tiny", 0)["train"][0]
    assert rebuilt.to_json() == script
    drawn = np.stack(render_frames(rebuilt)).astype(np.float32)
    assert np.abs(drawn - frames).mean() < 8.0  # only H.264 loss between drawn and decoded frames


def test_same_seed_same_corpus(tiny_corpus: Path, tmp_path: Path):
    again = tmp_path / "again"
    make_corpus(again, preset="tiny", seed=0, progress=False)
    assert _annotation_bytes(again) == _annotation_bytes(tiny_corpus)
    for vid in ("tv00000", "sc00000"):
        np.testing.assert_array_equal(
            _decode(again / f"videos/{vid}.mp4"), _decode(tiny_corpus / f"videos/{vid}.mp4")
        )


def test_different_seed_differs(tiny_corpus: Path, seed1_corpus: Path):
    for name in ("annotations/tvr_train.jsonl", "annotations/tvqa_train.jsonl", "subtitles/tv00000.srt"):
        assert (tiny_corpus / name).read_bytes() != (seed1_corpus / name).read_bytes(), name
    a, b = _decode(tiny_corpus / "videos/tv00000.mp4"), _decode(seed1_corpus / "videos/tv00000.mp4")
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_spans_inside_video_and_short(tiny_corpus: Path):
    ann = tiny_corpus / "annotations"
    durations = {}
    for p in (tiny_corpus / "script").glob("*.json"):
        durations[p.stem] = json.loads(p.read_text())["duration"]
    for s in SPLITS:
        for r in _jsonl(ann / f"tvr_{s}.jsonl") + _jsonl(ann / f"tvc_{s}.jsonl"):
            st, ed = r["ts"]
            assert r["duration"] == durations[r["vid_name"]]
            assert 0 <= st < ed <= r["duration"] and 0.5 <= ed - st <= 12.0, r
        for r in _jsonl(ann / f"tvqa_{s}.jsonl"):
            st, ed = map(float, r["ts"].split("-"))
            assert 0 <= st < ed <= durations[r["vid_name"]] and ed - st <= 12.0, r
            assert 0 <= r["answer_idx"] < 5 and len({r[f"a{i}"] for i in range(5)}) == 5
        for r in json.loads((ann / f"didemo_{s}.json").read_text()):
            n_seg = int(np.ceil(durations[r["video"][:-4]] / 5 - 1e-6))
            assert len(r["times"]) == 4 and all(0 <= a <= b < n_seg for a, b in r["times"]), r


def test_query_mix_and_order_on_large_sample():
    splits = build_scripts("demo", seed=3)  # language only, nothing rendered
    files, meta = build_annotations(splits, seed=3)
    tvr = [m for m in meta if m["file"].startswith("tvr_")]
    assert len(tvr) > 500
    frac = {t: sum(m["type"] == t for m in tvr) / len(tvr) for t in ("v", "t", "vt")}
    assert abs(frac["v"] - 0.74) < 0.05 and abs(frac["t"] - 0.09) < 0.04 and abs(frac["vt"] - 0.17) < 0.05, (
        frac
    )
    assert sum(m["order"] for m in tvr) / len(tvr) > 0.5
    qa = [m for m in meta if m["file"].startswith("tvqa_")]
    assert sum(m["order"] for m in qa) / len(qa) > 0.5
    names = [c.name for c in CHARACTERS]
    records = [r for s in SPLITS for r in files[f"annotations/tvr_{s}.jsonl"]]
    for r in records:  # names are only heard: a video-only query never uses one
        if r["type"] == "v":
            assert not any(n in r["desc"] for n in names), r["desc"]
        if r["type"] == "t":
            assert not any(c.visual in r["desc"] for c in CHARACTERS), r["desc"]


def test_qa_distractors_are_events_of_the_same_video(tiny_corpus: Path):
    ann = tiny_corpus / "annotations"
    meta = {(m["file"], m["id"]): m for m in _jsonl(ann / "meta.jsonl")}
    n_checked = 0
    for s in SPLITS:
        for r in _jsonl(ann / f"tvqa_{s}.jsonl"):
            m = meta[(f"tvqa_{s}.jsonl", r["qid"])]
            if not m["order"]:
                continue
            script = json.loads((tiny_corpus / "script" / f"{r['vid_name']}.json").read_text())
            events = {e["eid"]: Event(**e) for e in script["events"]}
            if m["template"] == "actor_next":
                text = lambda e: sentence(f"It {verb_phrase(e)}")  # noqa: E731
            else:
                text = lambda e: sentence(event_phrase(e))  # noqa: E731
            answers = [r[f"a{i}"] for i in range(5)]
            anchor, correct = (events[i] for i in m["events"])
            assert answers[r["answer_idx"]] == text(correct)
            wrong = [a for i, a in enumerate(answers) if i != r["answer_idx"]]
            assert sorted(wrong) == sorted(text(events[i]) for i in m["distractor_events"])
            if m["template"] == "next":
                assert correct.eid == anchor.eid + 1
            n_checked += 1
    assert n_checked >= 5


def test_violin_pairs(tiny_corpus: Path):
    violin = json.loads((tiny_corpus / "annotations/violin_annotation.json").read_text())
    splits = json.loads((tiny_corpus / "splits.json").read_text())
    assert set(violin) == set(splits["train"] + splits["val"] + splits["test"])
    for clip in violin.values():
        assert set(clip) == {"file", "source", "split", "span", "statement"}
        for real, fake in clip["statement"]:
            assert real != fake
            if " before " in real and sorted(real.split()) == sorted(fake.split()):
                a, b = real[:-1].split(" before ")  # an order swap: "A before B" -> "B before A"
                assert fake == sentence(f"{b} before {a[0].lower()}{a[1:]}")


def _parse_srt(text: str) -> list[tuple[float, float, str]]:
    def secs(stamp: str) -> float:
        h, m, rest = stamp.split(":")
        s, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    cues = []
    for block in text.strip().split("\n\n") if text.strip() else []:
        num, timing, *body = block.split("\n")
        assert num.isdigit() and len(body) == 1
        st, ed = timing.split(" --> ")
        cues.append((secs(st), secs(ed), body[0]))
    return cues


def test_srt_parses_and_matches_tvr_subtitles(tiny_corpus: Path):
    subs = {r["vid_name"]: r["sub"] for r in _jsonl(tiny_corpus / "annotations/tvr_subtitles.jsonl")}
    n_lines = n_prefixed = 0
    for vid, sub in subs.items():
        cues = _parse_srt((tiny_corpus / "subtitles" / f"{vid}.srt").read_text())
        assert [(round(a, 2), round(b, 2), t) for a, b, t in cues] == [
            (s["start"], s["end"], s["text"]) for s in sub
        ]
        assert all(a < b and (not i or cues[i - 1][1] <= a) for i, (a, b, _) in enumerate(cues))
        n_lines += len(cues)
        n_prefixed += sum(bool(re.match(r"^[A-Z]+: ", t)) for _, _, t in cues)
    assert n_lines >= 24 and 0 < n_prefixed < n_lines
    read_srt = pytest.importorskip("tempovl.data.subtitles").read_srt
    vid = next(v for v, s in subs.items() if s)
    got = read_srt(tiny_corpus / "subtitles" / f"{vid}.srt")
    assert [round(s.start, 2) for s in got] == [s["start"] for s in subs[vid]]


def test_srt_text_format():
    script = build_scripts("tiny", 0)["train"][0]
    script.lines = script.lines[:1]
    script.lines[0].start, script.lines[0].end = 3661.5, 3662.25
    assert srt_text(script).startswith("1\n01:01:01,500 --> 01:01:02,250\n")


def test_cli_refuses_non_empty_out_without_force(tmp_path: Path, capsys):
    from tempovl.cli import main

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["corpus", "make", str(out), "--preset", "tiny", "--quiet"]) == 2
    assert str(out) in capsys.readouterr().err and (out / "keep.txt").exists()
    assert main(["corpus", "make", str(out), "--preset", "tiny", "--seed", "2", "--force", "--quiet"]) == 0
    assert not (out / "keep.txt").exists() and json.loads((out / "card.json").read_text())["seed"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left behind


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch):
    import tempovl.data.corpus.render as render

    calls = []

    def failing(script, path):
        calls.append(script.vid_name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        Path(path).write_bytes(b"x")

    monkeypatch.setattr(render, "render_video", failing)
    with pytest.raises(KeyboardInterrupt):
        make_corpus(tmp_path / "out", preset="tiny", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unknown_preset():
    with pytest.raises(InputError, match="unknown corpus preset 'huge'"):
        build_scripts("huge")


# ---------------------------------------------------------------- grounded dialogue (language only)

# words that name each action in a reaction line (change_colour names the tint, pick_up / hand the object)
_ACTION_WORDS = {
    "enter": ("came in", "come in", "comes in", "walks in", "enters"),
    "leave": ("out", "leaves"),
    "move_left": ("left",),
    "move_right": ("right",),
    "jump": ("jump", "hops up"),
    "spin": ("spin", "turns around"),
    "grow": ("bigger",),
    "shrink": ("smaller", "shrinks"),
}


@pytest.fixture(scope="module")
def demo_multi() -> list[Script]:
    """Every multi-channel script of the demo preset (seed 0), nothing rendered."""
    splits = build_scripts("demo", seed=0)
    return [s for k in (*SPLITS, "pretrain") for s in splits[k]]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _action_named(ev: Event, text: str) -> bool:
    words = (ev.tint or ev.obj,) if ev.tint or ev.obj else _ACTION_WORDS[ev.action]
    return any(w in text.lower() for w in words)


def _grounded_by_text(script: Script, line: Line) -> bool:
    """Independent of the generator's topic labels: does the spoken text (prefix excluded) name a
    character other than the speaker (by name or by look), the room, or an object that is on screen
    during the line or in the 3 s before it, or the action of the event the line reacts to?"""
    words = _words(line.text)
    times = np.arange(max(0.0, line.start - 3.0), line.end + 1e-6, 0.5)
    for c in CHARACTERS:
        named = c.name.lower() in words or c.visual in line.text.lower()
        if named and c.name != line.speaker:
            if any(script.present(c.name, t, t) for t in times):
                return True
    if script.scene_at(line.start).room in words:
        return True
    if any(o in words and any(o in visible_objects(script, t) for t in times) for o in OBJECTS):
        return True
    if line.event is not None and line.topic in REACTIONS:
        ev = script.events[line.event]
        return ev.end >= line.start - 3.0 and ev.start <= line.end and _action_named(ev, line.text)
    return False


def test_most_dialogue_is_grounded(demo_multi: list[Script]):
    lines = [(s, ln) for s in demo_multi for ln in s.lines]
    assert len(lines) > 1000
    by_text = sum(_grounded_by_text(s, ln) for s, ln in lines) / len(lines)
    by_topic = sum(grounded(s, ln) for s, ln in lines) / len(lines)
    assert by_text >= 0.65 and by_topic >= 0.65, (by_text, by_topic)
    assert abs(by_text - by_topic) < 0.03  # the card's count agrees with what the text says
    invisible = sum(ln.topic in ("feeling", "was_at", "going", "ask") for _, ln in lines) / len(lines)
    assert 0.18 <= invisible <= 0.32, invisible  # some lines still tell what no frame shows
    prefixed = sum(ln.prefixed for _, ln in lines) / len(lines)
    assert 0.62 <= prefixed <= 0.78, prefixed
    seconds_per_line = sum(s.duration for s in demo_multi) / len(lines)
    assert 3.5 <= seconds_per_line <= 6.0, seconds_per_line


def test_lines_do_not_overlap_and_speaker_is_on_screen(demo_multi: list[Script]):
    for s in demo_multi:
        for a, b in zip(s.lines, s.lines[1:]):
            assert a.end <= b.start, (s.vid_name, a, b)
        for ln in s.lines:
            assert 0 <= ln.start < ln.end <= s.duration and s.present(ln.speaker, ln.start, ln.end), ln


def test_reactions_follow_an_event_of_the_named_type(demo_multi: list[Script]):
    reacted: set[str] = set()
    n = 0
    n_order = 0
    for s in demo_multi:
        for ln in s.lines:
            if ln.topic == "look_order":  # two events told in their true order, by look
                ev, prev = s.events[ln.event], s.events[ln.event - 1]
                assert prev.end <= ev.start <= ln.start and prev.scene == ev.scene, (ln, ev)
                assert visual(prev.actor) in ln.text.lower() and visual(ev.actor) in ln.text.lower(), ln
                assert _action_named(prev, ln.text) and _action_named(ev, ln.text), ln
                assert re.search(r"\b(before|then|after)\b", ln.text), ln
                n_order += 1
            if ln.topic not in REACTIONS:
                continue
            ev = s.events[ln.event]
            assert ev.action == REACTIONS[ln.topic], ln
            assert ev.start <= ln.start <= ev.end + 3.0, (ln, ev)
            if ln.topic.startswith("did_"):
                assert ln.speaker == ev.actor and _action_named(ev, ln.text), (ln, ev)
            elif ln.topic.startswith("saw_"):
                assert ln.speaker != ev.actor and ln.addressee == ev.actor, (ln, ev)
                assert ev.actor in ln.text and _action_named(ev, ln.text), (ln, ev)
            elif ln.topic.startswith("look_"):  # told as a viewer would: by look, in the queries' words
                assert ln.speaker != ev.actor and ln.addressee == ev.actor, (ln, ev)
                assert visual(ev.actor) in ln.text.lower() and _action_named(ev, ln.text), (ln, ev)
                assert ln.slot.startswith(ev.actor), (ln, ev)  # the account with names
            elif ln.topic == "thanks":
                assert ln.speaker == ev.target and ln.addressee == ev.actor
            else:  # greet
                assert ln.addressee == ev.actor and s.present(ev.actor, ln.start, ln.end)
            reacted.add(ev.action)
            n += 1
    assert reacted == set(ACTIONS) and n > 500 and n_order > 20


def test_remarks_name_what_is_on_screen(demo_multi: list[Script]):
    rooms: set[str] = set()
    topics: set[str] = set()
    for s in demo_multi:
        for ln in s.lines:
            topics.add(ln.topic)
            if ln.topic == "room":  # said in that room, start to end
                assert ln.slot in _words(ln.text) and ln.slot in ROOMS
                assert s.scene_at(ln.start).room == ln.slot == s.scene_at(ln.end - 1e-3).room, ln
                rooms.add(ln.slot)
            elif ln.topic == "object":
                assert all(ln.slot in visible_objects(s, t) for t in (ln.start, ln.end)), ln
            elif ln.topic == "present":
                assert ln.addressee != ln.speaker and s.present(ln.addressee, ln.start, ln.end), ln
    assert rooms == set(ROOMS)
    assert topics == set(TOPICS)  # every kind of line occurs


def test_every_topic_has_a_third_person_account():
    for topic in TOPICS:
        for prefixed, (subject, pronoun) in ((True, ("Alice", "she")), (False, ("someone", "they"))):
            line = Line(0, "Alice", "", 0.0, 1.0, topic, "cup", "Bob", prefixed, None)
            told = retell(line, subject, pronoun)
            assert told.startswith(subject + " ") and "{" not in told and "None" not in told, told
    line = Line(0, "Alice", "", 0.0, 1.0, "did_grow", None, None, False, 0)
    assert retell(line, "someone", "they") == "someone says they are getting bigger"
    assert retell(line, "the red circle", "it") == "the red circle says it is getting bigger"


def test_vt_queries_tell_the_true_order():
    splits = build_scripts("demo", seed=1)
    by_vid = {s.vid_name: s for v in splits.values() for s in v}
    files, meta = build_annotations(splits, seed=1)
    descs = {(m["file"], m["id"]): m for m in meta}
    n = 0
    for split in SPLITS:
        for r in files[f"annotations/tvr_{split}.jsonl"]:
            if r["type"] != "vt":
                continue
            m = descs[(f"tvr_{split}.jsonl", r["desc_id"])]
            s = by_vid[r["vid_name"]]
            ln, ev = s.lines[m["lines"][0]], s.events[m["events"][0]]
            if r["desc"].startswith("after "):
                assert ln.end <= ev.start, r
            elif " while " in r["desc"]:
                assert ln.start < ev.end and ev.start < ln.end and not m["order"], r  # they overlap
            else:
                assert ln.start >= ev.end and " after " in r["desc"], r
            n += 1
    assert n > 50


def test_dialogue_is_deterministic():
    a = [s.to_json() for v in build_scripts("tiny", seed=4).values() for s in v]
    b = [s.to_json() for v in build_scripts("tiny", seed=4).values() for s in v]
    c = [s.to_json() for v in build_scripts("tiny", seed=5).values() for s in v]
    assert json.dumps(a) == json.dumps(b) and json.dumps(a) != json.dumps(c)


# ---------------------------------------------------------------- shared words, no text-only QA shortcut


def test_subtitles_use_the_words_of_the_visual_queries(demo_multi: list[Script]):
    """What the queries say by look ("the red circle jumps") is also heard in the dialogue, so that
    pre-training on subtitles has something to transfer to the queries."""
    heard = {w for s in demo_multi for ln in s.lines for w in re.findall(r"[a-z']+", ln.shown.lower())}
    for c in CHARACTERS:
        assert c.colour in heard and c.shape in heard, c
    ev = Event(0, "Alice", "hand", 0.0, 1.0, 0, "kitchen", obj="cup", target="Bob", tint="pink")
    for action in ACTIONS:
        variant = 0
        while True:
            try:
                phrase = verb_phrase(dataclasses.replace(ev, action=action), variant=variant)
            except IndexError:
                break
            assert phrase.split()[0] in heard, (action, phrase)  # "jumps", "hops", "grabs", ...
            variant += 1
    splits = build_scripts("demo", seed=0)
    files, _ = build_annotations(splits, seed=0)
    for split in SPLITS:
        heard = {w for s in splits[split] for ln in s.lines for w in re.findall(r"[a-z']+", ln.shown.lower())}
        words = [
            w
            for r in files[f"annotations/tvr_{split}.jsonl"]
            for w in re.findall(r"[a-z']+", r["desc"].lower())
        ]
        share = sum(w in heard for w in words) / len(words)
        assert share >= 0.8, (split, share)  # 43 % when no one on screen was ever described by look


def test_tvqa_has_no_text_only_shortcut():
    """Answer-only rules stay at chance: the answer is not the one whose character is most frequent
    among the five (25-26 % when distractors preferred the answer's character), nor the longest or
    shortest; order-free questions stand beside the order-dependent ones in every split."""
    looks = {c.visual[4:]: c.name for c in CHARACTERS}
    n = hits_char = hits_long = hits_short = 0.0
    for seed in (0, 1):
        splits = build_scripts("demo", seed=seed)
        files, meta = build_annotations(splits, seed=seed)
        by_id = {m["id"]: m for m in meta if m["file"].startswith("tvqa_")}
        for split in SPLITS:
            records = files[f"annotations/tvqa_{split}.jsonl"]
            free = sum(not by_id[r["qid"]]["order"] for r in records)
            assert 0.25 <= free / len(records) <= 0.5, (seed, split, free, len(records))
            for r in records:
                answers = [r[f"a{i}"] for i in range(5)]
                who = [next((looks[k] for k in looks if k in a.lower()), None) for a in answers]
                counts = {c: who.count(c) for c in who if c}
                for scores, hits in (
                    ([counts.get(c, 0) for c in who], "char"),
                    ([len(a) for a in answers], "long"),
                    ([-len(a) for a in answers], "short"),
                ):
                    best = [i for i, v in enumerate(scores) if v == max(scores)]
                    hit = (r["answer_idx"] in best) / len(best)
                    if hits == "char":
                        hits_char += hit
                    elif hits == "long":
                        hits_long += hit
                    else:
                        hits_short += hit
                n += 1
                if by_id[r["qid"]]["template"] == "who":  # only the answer's character does it
                    s = next(s for s in splits[split] if s.vid_name == r["vid_name"])
                    ev = s.events[by_id[r["qid"]]["events"][0]]
                    doers = {e.actor for e in s.events if e.key()[1:] == ev.key()[1:]}
                    assert doers == {ev.actor} and answers[r["answer_idx"]] == sentence(visual(ev.actor))
        violin = [m for m in meta if m["file"] == "violin_annotation.json"]
        assert (
            all(isinstance(m["order"], bool) for m in violin)
            and 0.25 <= np.mean([m["order"] for m in violin]) <= 0.75
        )
    assert n > 600
    for name, hits in (
        ("most frequent character", hits_char),
        ("longest", hits_long),
        ("shortest", hits_short),
    ):
        # within 3 binomial standard deviations of chance (n ~ 700: +-4.4 points)
        assert abs(hits / n - 0.2) < 3 * math.sqrt(0.2 * 0.8 / n), (name, hits / n)
