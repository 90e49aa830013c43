"""HiTeA's downstream tasks check the time spans their annotations give (MC / open-ended QA's "ts",
DiDeMo's segments) against the probed video durations, as the HERO readers do: past the end (beyond
DURATION_TOLERANCE) or start > end is an InputError naming the file, the record and the video; a span
that passes the end by less than the tolerance is read (and sampled at the video's end)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from video_files import encode_frames

from tempovl.config import load_config
from tempovl.data.annotations import DURATION_TOLERANCE
from tempovl.errors import InputError
from tempovl.registry import build_task
from tempovl.tasks.hitea.base import check_span

FPS = 10


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """videos/short.mp4 (2.0 s) and videos/near5.mp4 (4.8 s, just short of DiDeMo's second segment)."""
    root = tmp_path_factory.mktemp("spans")
    (root / "videos").mkdir()
    (root / "annotations").mkdir()
    rng = np.random.default_rng(0)
    for name, seconds in (("short", 2.0), ("near5", 4.8)):
        frames = rng.integers(0, 255, (round(seconds * FPS), 16, 16, 3), dtype=np.uint8)
        encode_frames(root / "videos" / f"{name}.mp4", frames, FPS)
    return root


def _task(kind: str, corpus, annotation: str, *extra: str):
    overrides = [
        f"data.corpus={corpus}",
        f"data.annotations.train=[{annotation}]",
        "data.num_frames=4",
        "data.frame_size=16",
        "data.cache=none",
        "model.queue_size=16",
        *extra,
    ]
    return build_task(load_config(f"hitea-tiny-{kind}", overrides))


def _qa(corpus, ts: str, vid: str = "short") -> str:
    rec = {"qid": 7, "q": "What?", **{f"a{i}": f"answer {i}" for i in range(5)}, "answer_idx": 1}
    (corpus / "annotations" / "qa.jsonl").write_text(json.dumps({**rec, "ts": ts, "vid_name": vid}) + "\n")
    return "annotations/qa.jsonl"


@pytest.mark.parametrize("kind", ["mcqa", "oeqa"])
def test_qa_span_past_the_video_is_an_error_naming_file_record_and_video(corpus, kind):
    task = _task(kind, corpus, _qa(corpus, f"0.50-{2.0 + DURATION_TOLERANCE + 0.2:.2f}"))
    with pytest.raises(InputError) as e:
        task.dataset("train")
    message = str(e.value)
    assert str(corpus / "annotations" / "qa.jsonl") in message and "(qid=7)" in message
    assert (
        f"'ts' [0.5, 2.7] ends after the end of video {corpus / 'videos' / 'short.mp4'} (2.00 s)" in message
    )


def test_qa_span_starting_after_it_ends_is_an_error(corpus):
    task = _task("mcqa", corpus, _qa(corpus, "1.50-1.00"))
    with pytest.raises(InputError, match=r"qa\.jsonl:1 \(qid=7\): 'ts' starts after it ends"):
        task.dataset("train")


def test_qa_span_within_the_tolerance_is_read_and_sampled_at_the_end(corpus):
    task = _task("mcqa", corpus, _qa(corpus, "2.10-2.40"))  # wholly in [duration, duration + tolerance]
    (record,) = task.records("train")
    assert record["span"] == [2.1, 2.4]
    times = task.sampler.times(record["video_path"], False, record["span"], np.random.default_rng(0))
    # widened to hold the 4 frames (0.4 s at 10 fps) inside the video, flush with its end
    assert len(times) == 4 and 1.6 - 1e-6 <= times.min() and times.max() <= 2.0


def test_check_span_is_the_hero_readers_rule():
    check_span([0.0, 10.0 + DURATION_TOLERANCE], 10.0, "f.jsonl (qid=1)", "v.mp4")  # the tolerance
    for span, fragment in (
        ([0.0, 10.6], "[0, 10.6] ends after the end of video v.mp4 (10.00 s)"),
        ([4.0, 3.0], "[4, 3] starts after it ends (video v.mp4)"),
        ([-1.0, 3.0], "[-1, 3] starts before 0 (video v.mp4)"),
    ):
        with pytest.raises(InputError, match=r"^f\.jsonl \(qid=1\): span ") as e:
            check_span(span, 10.0, "f.jsonl (qid=1)", "v.mp4")
        assert fragment in str(e.value)


def _didemo(corpus, video: str, times: list) -> str:
    rec = {"annotation_id": 3, "video": video, "description": "a thing moves", "times": times}
    (corpus / "annotations" / "didemo.json").write_text(json.dumps([rec]))
    return "annotations/didemo.json"


def test_didemo_moment_past_the_video_is_an_error_naming_file_record_and_video(corpus):
    task = _task("retrieval", corpus, _didemo(corpus, "short.mp4", [[0, 0], [0, 1]]), "data.format=didemo")
    with pytest.raises(InputError) as e:
        task.data("train")
    message = str(e.value)
    assert str(corpus / "annotations" / "didemo.json") in message and "(annotation_id=3)" in message
    assert "'times'[1] [0, 1] reaches segment 1, which starts at 5 s" in message
    assert f"after the end of video {corpus / 'videos' / 'short.mp4'} (2.00 s)" in message


def test_didemo_segment_starting_within_the_tolerance_is_read(corpus):
    # segment 1 starts at 5 s; the video is 4.8 s, inside DURATION_TOLERANCE
    task = _task("retrieval", corpus, _didemo(corpus, "near5.mp4", [[0, 1], [1, 1]]), "data.format=didemo")
    assert task.data("train").texts == ["a thing moves"]
