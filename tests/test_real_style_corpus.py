"""Issue 13, end to end: a corpus of files nobody designed for tempovl — an mp4 whose header claims
0.00008 s, a .mov, an MPEG-1 .mpg, a phone video stored sideways, and a 10-minute video — goes through
`data validate` -> `features extract` -> train -> evaluate -> predict -> index -> search. Evaluation
scores the long video past its first window, and evaluate, predict and search, all reading whole
videos in the same windows, put their best moment for the query of the 8-minute moment at one place
(the model trains 3 steps: agreement and reach are tested here, not accuracy; the training window of a
late moment is tested in tests/tasks/test_hero_retrieval.py)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from video_files import encode_frames

from tempovl.cli import main
from tempovl.config import load_config

pytestmark = pytest.mark.slow
FPS = 2
LONG_S = 600
QUERY = "the violet kite drifts over the harbour at dusk"


def _write(
    path: Path,
    seconds: float,
    fmt: str | None = None,
    codec: str = "libx264",
    rotate: int = 0,
    fps: int = FPS,
) -> None:
    """A video whose frames move (a bright square walks across), so features differ over time."""

    def frame(k: int) -> np.ndarray:
        img = np.full((48, 64, 3), 20 + (k * 7) % 200, np.uint8)
        img[16:28, (k * 3) % 56 : (k * 3) % 56 + 8] = 255
        return img

    encode_frames(
        path, (frame(k) for k in range(int(seconds * fps))), fps, codec=codec, fmt=fmt, rotate=rotate
    )


def _srt(path: Path, lines: list[tuple[float, float, str]]) -> None:
    def ts(t: float) -> str:
        ms = int(round(t * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    path.write_text(
        "".join(f"{i}\n{ts(a)} --> {ts(b)}\n{text}\n\n" for i, (a, b, text) in enumerate(lines, 1))
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real") / "corpus"
    videos, subs, ann = root / "videos", root / "subtitles", root / "annotations"
    for d in (videos, subs, ann):
        d.mkdir(parents=True)
    _write(videos / "long.mp4", LONG_S)
    _write(videos / "clip.mov", 30, fmt="mov")
    _write(videos / "camera.mpg", 24, fmt="mpeg", codec="mpeg1video", fps=25)  # MPEG-1 allows 25, not 2
    _write(videos / "phone.mp4", 20, rotate=90)
    _write(videos / "lying.mp4", 16)
    data = bytearray((videos / "lying.mp4").read_bytes())
    for box, offset in ((b"mvhd", 16), (b"mdhd", 16), (b"tkhd", 20)):  # the header says 0.00008 s
        at = data.find(box) + 4
        data[at + offset : at + offset + 4] = struct.pack(">I", 1)
    (videos / "lying.mp4").write_bytes(data)
    _srt(
        subs / "long.srt",
        [
            (30, 34, "Welcome aboard, everyone."),
            (490, 494, "Look, a violet kite over the harbour."),
            (500, 505, "It drifts so slowly at dusk."),
            (570, 574, "Time to head home."),
        ],
    )
    for vid in ("clip", "camera", "phone", "lying"):
        _srt(
            subs / f"{vid}.srt", [(2, 5, f"This is the {vid} video."), (8, 11, "Nothing much happens here.")]
        )
    train = [
        {"desc_id": 1, "desc": QUERY, "vid_name": "long", "duration": LONG_S, "ts": [488.0, 540.0], "type": "vt"},
        {"desc_id": 2, "desc": "someone says welcome aboard", "vid_name": "long", "duration": LONG_S, "ts": [29.0, 35.0], "type": "t"},
        {"desc_id": 3, "desc": "the clip video begins", "vid_name": "clip", "duration": 30.0, "ts": [1.0, 6.0], "type": "t"},
        {"desc_id": 4, "desc": "the camera video begins", "vid_name": "camera", "duration": 24.0, "ts": [1.0, 6.0], "type": "t"},
        {"desc_id": 5, "desc": "the phone video begins", "vid_name": "phone", "duration": 20.0, "ts": [1.0, 6.0], "type": "t"},
        {"desc_id": 6, "desc": "the lying video begins", "vid_name": "lying", "duration": 16.0, "ts": [1.0, 6.0], "type": "t"},
    ]  # fmt: skip
    for split in ("train", "val"):
        (ann / f"tvr_{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (root / "splits.json").write_text(
        json.dumps(
            {"train": [r["vid_name"] for r in train][1:], "val": ["long", "clip", "camera", "phone", "lying"]}
        )
    )
    return root


def test_real_style_files_through_every_command(corpus, tmp_path, capsys):
    assert main(["data", "validate", str(corpus)]) == 0, capsys.readouterr()
    feats = tmp_path / "features"
    args = [
        "features",
        "extract",
        str(corpus / "videos"),
        str(feats),
        "--extractor",
        "random2d+motion",
        "--size",
        "32",
    ]
    assert main([*args, "--no-progress"]) == 0
    from tempovl.data.features.store import FeatureStore

    store = FeatureStore(feats)
    assert sorted(store.keys()) == ["camera", "clip", "long", "lying", "phone"]
    assert store.meta("lying")["duration"] == pytest.approx(16.0, abs=0.6)  # the frames, not the header
    assert store.num_frames("long") == LONG_S / 1.5  # the whole 10 minutes

    run = tmp_path / "run"
    overrides = [
        f"data.corpus={corpus}", f"data.features={feats}", "data.splits.train=[train]", "data.splits.val=[val]",
        "data.subtitles=srt", "data.max_frames=40", "data.extract_size=32",
        *(f"model.{k}={v}" for k, v in load_config("model/hero-tiny")["model"].items()), "model.frame_dim=auto",
        f"train.output_dir={run}", "train.max_steps=3", "train.batch_size=2", "train.warmup_steps=0",
        "train.eval_every=0", "train.progress=false", "train.curves=false", "task.max_span_frames=40",
    ]  # fmt: skip
    assert main(["train", "hero-tiny-vcmr", *overrides]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--split", "val", "--out", str(out)]) == 0
    predictions = json.loads((out / "predictions.json").read_text())
    svmr = next(r for r in predictions["SVMR"] if r["desc_id"] == 1)["predictions"]
    assert max(p[2] for p in svmr) > 150  # past the first window: the whole video is scored
    evaluated = svmr[0][1:3]

    import tempovl

    predicted = tempovl.predict(
        run, corpus / "videos" / "long.mp4", subtitles=corpus / "subtitles" / "long.srt", query=QUERY
    )
    top = predicted["moments"][0]
    assert [round(top["start"], 3), round(top["end"], 3)] == [round(x, 3) for x in evaluated]

    index = tmp_path / "index"
    assert main(["index", "build", str(corpus / "videos"), str(index), "--model", str(run / "best"
                 if (run / "best").exists() else run), "--subtitles", str(corpus / "subtitles"), "--no-progress"]) == 0  # fmt: skip
    from tempovl.search import Searcher

    searcher = Searcher(index, max_moment_s=60.0, per_video=50)
    hits = [h for h in searcher.search(QUERY, k=50) if h.video == "long"]
    assert hits and [hits[0].start, hits[0].end] == [round(x, 3) for x in evaluated]
