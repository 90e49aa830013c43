"""`oracle`: perfect per-window features of a demo-corpus video, read from its ground-truth event script
instead of its pixels. An UPPER BOUND, never a real extractor: it separates "the model cannot learn"
from "the features cannot see".

`tempovl features extract CORPUS/videos OUT --extractor oracle` writes them into an ordinary feature
store (same manifest, shards and window grid as a pixel extractor, so every task reads them as it reads
real features). Each video's script is looked up as `VIDEO/../../script/STEM.json` (the demo corpus
layout, docs/demo-corpus.md); a video without one is a bad video.

Window i covers [i * interval, (i + 1) * interval] (HERO's grid, `tempovl.data.video.window_times`).
Its vector, all values in [0, 1]:

    room            4   one-hot of the scene's room at the window's centre
    present         7   characters on screen at the centre
    position        7   their x position (0 when absent)
    scale           7   their size, (scale - 0.7) / 0.65 (0 when absent)
    action       7x11   per character and action: the share of the window the event covers
    holding      7x4    per character: the object it holds at the centre
    object seen     4   objects drawn at the centre
    tint            4   a temporary colour shown in the window
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tempovl.data.corpus.world import (
    ACTIONS,
    CHARACTERS,
    OBJECTS,
    ROOMS,
    TINTS,
    Event,
    Line,
    Scene,
    Script,
    state_at,
)
from tempovl.data.video import window_times
from tempovl.errors import InputError

NAME = "oracle"
_CHARS = [c.name for c in CHARACTERS]
_ROOMS, _OBJECTS, _TINTS = sorted(ROOMS), sorted(OBJECTS), sorted(TINTS)
DIM = len(_ROOMS) + 3 * len(_CHARS) + len(_CHARS) * len(ACTIONS) + len(_CHARS) * len(_OBJECTS)
DIM += len(_OBJECTS) + len(_TINTS)


def script_path(video: Path) -> Path:
    """Where the demo corpus keeps a video's script: CORPUS/script/STEM.json beside CORPUS/videos."""
    return video.parent.parent / "script" / f"{video.stem}.json"


def load_script(path: Path) -> Script:
    """Read a script written by `make_corpus` (`Script.to_json`)."""
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        scenes = [Scene(**s) for s in rec["scenes"]]
        events = [Event(**e) for e in rec["events"]]
        lines = [Line(**{k: v for k, v in ln.items() if k != "shown"}) for ln in rec["lines"]]
        return Script(
            rec["vid_name"], rec["kind"], rec["duration"], rec["fps"], rec["size"], scenes, events, lines
        )
    except FileNotFoundError:
        raise InputError(
            f"{path}: no ground-truth script (the oracle needs the demo corpus layout)"
        ) from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{path}: unreadable script ({e.__class__.__name__}: {e})") from None


def _holders(script: Script, t: float) -> dict[str, str]:
    """character -> object held at time t (after pick-ups and hand-overs that finished by t)."""
    scene = script.scene_at(t)
    held: dict[str, str] = {}
    for e in script.events:
        if e.scene != scene.index or e.start > t:
            continue
        done = t >= e.end
        if e.action == "pick_up" and (done or t >= (e.start + e.end) / 2):
            held[e.actor] = e.obj
        elif e.action == "hand" and done:
            held.pop(e.actor, None)
            held[e.target] = e.obj
        elif e.action == "leave" and done:
            held.pop(e.actor, None)
    return held


def oracle_features(script: Script, interval: float, duration: float | None = None) -> np.ndarray:
    """(T, DIM) float32 for the windows of `script`'s video. `duration` is the decoded video's (so T
    matches what a pixel extractor produces); default: the script's."""
    _, spans = window_times(script.duration if duration is None else duration, interval, 1)
    out = np.zeros((len(spans), DIM), dtype=np.float32)
    nc, na, no = len(_CHARS), len(ACTIONS), len(_OBJECTS)
    for i, (t0, t1) in enumerate(spans):
        mid = min((t0 + t1) / 2, script.duration - 1e-3)
        scene, _sprites, objects = state_at(script, mid)
        row, k = out[i], 0
        row[k + _ROOMS.index(scene.room)] = 1.0
        k += len(_ROOMS)
        here = [n for n in _CHARS if script.present(n, mid, mid)]
        pos, scale = _positions(script, mid)
        for n in here:
            j = _CHARS.index(n)
            row[k + j] = 1.0
            row[k + nc + j] = pos.get(n, 0.0)
            row[k + 2 * nc + j] = (scale.get(n, 1.0) - 0.7) / 0.65
        k += 3 * nc
        for e in script.events:
            overlap = min(t1, e.end) - max(t0, e.start)
            if overlap > 0:
                row[k + _CHARS.index(e.actor) * na + ACTIONS.index(e.action)] += overlap / interval
                if e.tint:
                    row[DIM - len(_TINTS) + _TINTS.index(e.tint)] = 1.0
        k += nc * na
        for n, obj in _holders(script, mid).items():
            row[k + _CHARS.index(n) * no + _OBJECTS.index(obj)] = 1.0
        k += nc * no
        for name, _, _ in objects:
            row[k + _OBJECTS.index(name)] = 1.0
    return np.clip(out, 0.0, 1.0)


def _positions(script: Script, t: float) -> tuple[dict[str, float], dict[str, float]]:
    """x position (fraction of the width, clipped to [0, 1]) and scale of every character at time t."""
    scene = script.scene_at(t)
    pos = dict(scene.initial)
    scale: dict[str, float] = {}
    for e in script.events:
        if e.scene != scene.index or e.start > t:
            continue
        u = 1.0 if t >= e.end else (t - e.start) / max(e.end - e.start, 1e-6)
        pos[e.actor] = e.x0 + (e.x1 - e.x0) * u
        scale[e.actor] = e.scale0 + (e.scale1 - e.scale0) * u
    return {n: float(np.clip(x, 0.0, 1.0)) for n, x in pos.items()}, scale
