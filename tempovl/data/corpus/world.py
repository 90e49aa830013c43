"""The demo world: characters (coloured shapes), rooms, objects, and the event scripts of videos.

A script is the ground truth of one video: its scenes (a room each), the events that happen in them
(one at a time, each 1-4 s, so that temporal order is always well defined) and, once
`language.add_dialogue` has run, the lines of dialogue. `state_at` turns a script into what is on
screen at a time `t`; the renderer draws exactly that.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Character:
    """A named character, drawn as a coloured shape. The name is only ever heard, never shown."""

    name: str
    shape: str
    colour: str
    rgb: tuple[int, int, int]
    pronoun: str  # "she" | "he"

    @property
    def visual(self) -> str:
        """How a viewer who cannot hear the dialogue names the character: 'the red circle'."""
        return f"the {self.colour} {self.shape}"


CHARACTERS: tuple[Character, ...] = (
    Character("Alice", "circle", "red", (220, 40, 40), "she"),
    Character("Bob", "square", "blue", (40, 70, 220), "he"),
    Character("Charlie", "triangle", "green", (30, 160, 60), "he"),
    Character("Dana", "star", "yellow", (245, 215, 30), "she"),
    Character("Eve", "diamond", "purple", (140, 50, 190), "she"),
    Character("Frank", "cross", "orange", (250, 130, 20), "he"),
    Character("Grace", "ring", "cyan", (30, 200, 210), "she"),
)
BY_NAME: dict[str, Character] = {c.name: c for c in CHARACTERS}

# room -> (wall rgb, floor rgb, accent rgb); patterns are drawn by render.py
ROOMS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "kitchen": ((236, 226, 200), (200, 200, 200), (120, 120, 120)),
    "garden": ((150, 205, 245), (70, 150, 60), (40, 110, 35)),
    "bedroom": ((200, 180, 225), (150, 100, 60), (175, 155, 205)),
    "library": ((95, 60, 40), (130, 30, 40), (210, 180, 120)),
}
OBJECTS: dict[str, tuple[int, int, int]] = {
    "ball": (250, 250, 250),
    "cup": (150, 200, 255),
    "key": (20, 20, 20),
    "box": (205, 160, 100),
}
# temporary colours of "change_colour"; none is a character's own colour
TINTS: dict[str, tuple[int, int, int]] = {
    "pink": (255, 150, 205),
    "grey": (128, 128, 128),
    "brown": (120, 70, 25),
    "white": (255, 255, 255),
}
# places only ever mentioned in dialogue (plus the rooms)
PLACES: tuple[str, ...] = ("market", "beach", "school", "park", "station", "bakery")
FEELINGS: tuple[str, ...] = ("tired", "happy", "hungry", "sad", "excited", "bored", "nervous", "sleepy")

ACTIONS: tuple[str, ...] = (
    "enter",
    "leave",
    "move_left",
    "move_right",
    "jump",
    "spin",
    "grow",
    "shrink",
    "change_colour",
    "pick_up",
    "hand",
)
SCALES: tuple[float, ...] = (0.7, 1.0, 1.35)
GROUND = 0.78  # y of the floor line, fraction of the frame height
RADIUS = 0.085  # character radius at scale 1, fraction of the frame size


@dataclass
class Event:
    """One visible action. Positions are fractions of the frame width; times are seconds."""

    eid: int
    actor: str
    action: str
    start: float
    end: float
    scene: int
    room: str
    obj: str | None = None
    target: str | None = None
    tint: str | None = None
    x0: float = 0.5
    x1: float = 0.5
    scale0: float = 1.0
    scale1: float = 1.0

    def key(self) -> tuple:
        """What a viewer can tell apart: two events with the same key look the same."""
        return (self.actor, self.action, self.obj, self.target, self.tint)


@dataclass
class Line:
    """One subtitle line. `topic`/`slot` hold what it says, e.g. ("going", "market")."""

    lid: int
    speaker: str
    text: str
    start: float
    end: float
    topic: str
    slot: str | None = None
    addressee: str | None = None
    prefixed: bool = False
    event: int | None = None  # the event this line announces or reacts to

    @property
    def shown(self) -> str:
        """The subtitle text as written in the SRT: 'ALICE: ...' when speaker-prefixed."""
        return f"{self.speaker.upper()}: {self.text}" if self.prefixed else self.text


@dataclass
class Scene:
    index: int
    room: str
    start: float
    end: float
    initial: dict[str, float] = field(default_factory=dict)  # character -> x at scene start
    objects: dict[str, float] = field(default_factory=dict)  # object -> x on the floor


@dataclass
class Script:
    """Ground truth of one video."""

    vid_name: str
    kind: str  # "multi" (with dialogue) | "single" (no subtitles)
    duration: float
    fps: float
    size: int
    scenes: list[Scene]
    events: list[Event]
    lines: list[Line] = field(default_factory=list)

    def to_json(self) -> dict:
        out = asdict(self)
        out["characters"] = sorted(
            {e.actor for e in self.events} | {n for s in self.scenes for n in s.initial}
        )
        for line, rec in zip(self.lines, out["lines"]):
            rec["shown"] = line.shown
        return out

    def scene_at(self, t: float) -> Scene:
        for s in self.scenes:
            if s.start <= t < s.end:
                return s
        return self.scenes[-1]

    def present(self, name: str, t0: float, t1: float) -> bool:
        """Whether `name` is on screen for the whole of [t0, t1] (entering/leaving counts as absent)."""
        scene = self.scene_at(t0)
        if t1 > scene.end:
            return False
        since = scene.start if name in scene.initial else None
        for e in self.events:
            if e.scene != scene.index or e.actor != name:
                continue
            if e.action == "enter":
                since = e.end
            elif e.action == "leave":
                if since is not None and since <= t0 and t1 <= e.start:
                    return True
                since = None
        return since is not None and since <= t0


def _r1(x: float) -> float:
    return round(float(x), 1)


class _SceneSim:
    """Draws a random sequence of feasible events for one scene, tracking who is where."""

    def __init__(self, rng: np.random.Generator, scene: Scene, cast: list[str], events: list[Event]):
        self.rng, self.scene, self.cast, self.events = rng, scene, cast, events
        self.x: dict[str, float] = dict(scene.initial)  # present characters -> x
        self.scale = {n: 1.0 for n in cast}
        self.holding: dict[str, str] = {}  # character -> object
        self.floor: dict[str, float] = dict(scene.objects)

    def free_x(self, avoid: str | None = None) -> float:
        """A spot on the floor away from the other characters (best of a few random tries)."""
        others = [x for n, x in self.x.items() if n != avoid]
        cands = self.rng.uniform(0.15, 0.85, size=8)
        dist = [min((abs(c - o) for o in others), default=1.0) for c in cands]
        return round(float(cands[int(np.argmax(dist))]), 3)

    def options(self, n_done: int) -> list[tuple[str, str, float]]:
        """(actor, action, weight) of every feasible next event."""
        present = list(self.x)
        absent = [n for n in self.cast if n not in self.x]
        opts: list[tuple[str, str, float]] = []
        if absent and len(present) < 4:
            opts += [(n, "enter", 3.0 if len(present) < 2 else 1.2) for n in absent]
        for n in present:
            x = self.x[n]
            if len(present) >= 2 and n_done >= 3:
                opts.append((n, "leave", 0.7))
            if x > 0.32:
                opts.append((n, "move_left", 0.8))
            if x < 0.68:
                opts.append((n, "move_right", 0.8))
            opts += [(n, "jump", 1.3), (n, "spin", 1.1), (n, "change_colour", 0.8)]
            if self.scale[n] < SCALES[-1]:
                opts.append((n, "grow", 0.7))
            if self.scale[n] > SCALES[0]:
                opts.append((n, "shrink", 0.7))
            if n not in self.holding and self.floor:
                opts.append((n, "pick_up", 1.6))
            if n in self.holding and len(present) >= 2:
                opts.append((n, "hand", 2.5))
        return opts

    def make(self, actor: str, action: str, t: float, dur: float) -> Event:
        """Build the event and update the state to what holds after it."""
        s, rng = self.scene, self.rng
        ev = Event(len(self.events), actor, action, _r1(t), _r1(t + dur), s.index, s.room)
        x = self.x.get(actor, 0.5)
        ev.x0 = ev.x1 = x
        ev.scale0 = ev.scale1 = self.scale[actor]
        if action == "enter":
            ev.x0 = -0.12 if rng.random() < 0.5 else 1.12
            ev.x1 = self.free_x()
            self.x[actor] = ev.x1
        elif action == "leave":
            ev.x1 = -0.15 if x < 0.5 else 1.15
            del self.x[actor]
            self.holding.pop(actor, None)  # a held object leaves with its holder
        elif action in ("move_left", "move_right"):
            step = float(rng.uniform(0.15, 0.3)) * (-1 if action == "move_left" else 1)
            ev.x1 = round(min(0.88, max(0.12, x + step)), 3)
            self.x[actor] = ev.x1
        elif action in ("grow", "shrink"):
            i = SCALES.index(self.scale[actor]) + (1 if action == "grow" else -1)
            ev.scale1 = self.scale[actor] = SCALES[i]
        elif action == "change_colour":
            ev.tint = str(rng.choice(list(TINTS)))
        elif action == "pick_up":
            ev.obj = str(rng.choice(sorted(self.floor)))
            ev.x1 = round(min(0.88, max(0.12, self.floor.pop(ev.obj))), 3)
            self.x[actor] = ev.x1
            self.holding[actor] = ev.obj
        elif action == "hand":
            ev.obj = self.holding.pop(actor)
            free = [n for n in sorted(self.x) if n != actor and n not in self.holding]
            ev.target = str(rng.choice(free))
            self.holding[ev.target] = ev.obj
        self.events.append(ev)
        return ev


_DURATION = {"enter": (1.5, 2.5), "leave": (1.5, 2.5), "pick_up": (1.5, 3.0), "hand": (2.0, 3.5)}


def _duration(rng: np.random.Generator, action: str) -> float:
    lo, hi = _DURATION.get(action, (1.0, 3.0))
    return _r1(rng.uniform(lo, hi))


def _new_scene(rng, index, room, t0, t1, cast, n_initial, n_objects) -> Scene:
    scene = Scene(index, room, _r1(t0), _r1(t1))
    xs = np.linspace(0.2, 0.8, max(n_initial, 1) + 1)
    for i, name in enumerate(cast[:n_initial]):
        scene.initial[name] = round(float(xs[i] + rng.uniform(0.0, 0.08)), 3)
    for obj in rng.choice(sorted(OBJECTS), size=n_objects, replace=False):
        scene.objects[str(obj)] = round(float(rng.uniform(0.15, 0.85)), 3)
    return scene


def _avoid_holding_two(sim: _SceneSim, actor: str, action: str) -> bool:
    """A character holds at most one object: refuse hand-overs to someone whose hands are full."""
    if action != "hand":
        return True
    return any(n != actor and n not in sim.holding for n in sim.x)


def make_multi_script(
    rng: np.random.Generator, vid_name: str, duration: float, fps: float, size: int
) -> Script:
    """A multi-channel video: 1-3 scenes in different rooms, 2-4 characters each, events back to back."""
    duration = float(round(duration))  # whole seconds: the video holds exactly duration * fps frames
    n_scenes = 1 if duration < 36 else int(rng.integers(1, min(3, int(duration // 18)) + 1))
    cuts = sorted(rng.uniform(0.3, 0.7, size=n_scenes - 1) * duration) if n_scenes > 1 else []
    bounds = [0.0, *[_r1(c) for c in cuts], duration]
    rooms = rng.choice(sorted(ROOMS), size=n_scenes, replace=False)
    scenes: list[Scene] = []
    events: list[Event] = []
    for i in range(n_scenes):
        cast = [
            str(c)
            for c in rng.choice([c.name for c in CHARACTERS], size=int(rng.integers(3, 5)), replace=False)
        ]
        scene = _new_scene(
            rng,
            i,
            str(rooms[i]),
            bounds[i],
            bounds[i + 1],
            cast,
            int(rng.integers(0, 3)),
            int(rng.integers(1, 3)),
        )
        scenes.append(scene)
        sim = _SceneSim(rng, scene, cast, events)
        t = scene.start + float(rng.uniform(0.3, 1.0))
        n_done = 0
        while True:
            opts = [o for o in sim.options(n_done) if _avoid_holding_two(sim, o[0], o[1])]
            weights = np.array([w for _, _, w in opts])
            actor, action, _ = opts[int(rng.choice(len(opts), p=weights / weights.sum()))]
            dur = _duration(rng, action)
            if t + dur > scene.end - 0.3:
                break
            ev = sim.make(actor, action, t, dur)
            n_done += 1
            t = ev.end + float(rng.uniform(0.2, 1.4))
    return Script(vid_name, "multi", duration, fps, size, scenes, events)


SINGLE_ACTIONS = ("jump", "spin", "grow", "shrink", "move_left", "move_right", "change_colour", "pick_up")


def make_single_script(
    rng: np.random.Generator, vid_name: str, duration: float, fps: float, size: int
) -> Script:
    """A single-channel clip (no dialogue): one room, 1-2 characters on screen, one or two actions."""
    duration = float(round(duration))  # whole seconds: the video holds exactly duration * fps frames
    cast = [
        str(c) for c in rng.choice([c.name for c in CHARACTERS], size=int(rng.integers(1, 3)), replace=False)
    ]
    scene = _new_scene(rng, 0, str(rng.choice(sorted(ROOMS))), 0.0, duration, cast, len(cast), 1)
    events: list[Event] = []
    sim = _SceneSim(rng, scene, cast, events)
    n_actions = 1 if rng.random() < 0.3 else 2
    t = float(rng.uniform(0.5, duration * 0.35))
    for k in range(n_actions):
        actor = cast[0] if k == 0 or len(cast) == 1 or rng.random() < 0.6 else cast[1]
        feasible = {a for n, a, _ in sim.options(n_done=0) if n == actor}
        action = str(rng.choice([a for a in SINGLE_ACTIONS if a in feasible]))
        dur = _r1(rng.uniform(1.5, 4.0))
        if t + dur > duration - 0.5:
            break
        ev = sim.make(actor, action, t, dur)
        t = ev.end + float(rng.uniform(0.5, 3.0))
    return Script(vid_name, "single", duration, fps, size, [scene], events)


@dataclass
class Sprite:
    """What the renderer draws for one character at one instant (positions in pixels)."""

    shape: str
    rgb: tuple[int, int, int]
    cx: float
    cy: float
    radius: float
    angle: float


def state_at(script: Script, t: float) -> tuple[Scene, list[Sprite], list[tuple[str, float, float]]]:
    """What is on screen at time `t`: the scene, character sprites, and objects as (name, cx, cy) pixels."""
    scene = script.scene_at(t)
    size = script.size
    pos = dict(scene.initial)  # character -> x (present ones)
    scale: dict[str, float] = {}
    holder: dict[str, str | None] = {o: None for o in scene.objects}
    obj_anim: dict[str, tuple[str | None, str, float]] = {}  # obj -> (from, to, u) while moving
    sprites: dict[str, dict] = {}
    evs = [e for e in script.events if e.scene == scene.index and e.start <= t]
    for e in evs:
        u = 1.0 if t >= e.end else (t - e.start) / max(e.end - e.start, 1e-6)
        scale[e.actor] = e.scale0 + (e.scale1 - e.scale0) * u
        pos[e.actor] = e.x0 + (e.x1 - e.x0) * (u if e.action != "pick_up" else min(1.0, 2 * u))
        if e.action == "leave" and u >= 1.0:
            pos.pop(e.actor)
        if e.action == "pick_up":
            if u >= 0.5:
                holder[e.obj] = e.actor
            if u < 1.0:
                obj_anim[e.obj] = (None, e.actor, max(0.0, 2 * u - 1))
        if e.action == "hand":
            holder[e.obj] = e.target if u >= 1.0 else e.actor
            if u < 1.0:
                obj_anim[e.obj] = (e.actor, e.target, u)
        if u < 1.0:
            sprites[e.actor] = {"event": e, "u": u}
    out: list[Sprite] = []
    heads: dict[str, tuple[float, float]] = {}
    for c in CHARACTERS:
        if c.name not in pos:
            continue
        r = RADIUS * size * scale.get(c.name, 1.0)
        cx, cy, angle, rgb = pos[c.name] * size, GROUND * size - r, 0.0, c.rgb
        cur = sprites.get(c.name)
        if cur is not None:
            e, u = cur["event"], cur["u"]
            if e.action == "jump":
                cy -= 0.28 * size * math.sin(math.pi * u)
            elif e.action == "spin":
                angle = 2 * math.pi * u
            elif e.action == "change_colour":
                rgb = TINTS[e.tint]
        out.append(Sprite(c.shape, rgb, cx, cy, r, angle))
        heads[c.name] = (cx, cy - r - 0.05 * size)
    objects: list[tuple[str, float, float]] = []
    floor_y = GROUND * size - 0.035 * size
    for obj, x in scene.objects.items():
        if obj in obj_anim:
            src, dst, u = obj_anim[obj]
            a = (x * size, floor_y) if src is None else heads.get(src)
            b = heads.get(dst)
            if a is None or b is None:
                continue
            objects.append((obj, a[0] + (b[0] - a[0]) * u, a[1] + (b[1] - a[1]) * u))
        elif holder[obj] is None:
            objects.append((obj, x * size, floor_y))
        elif holder[obj] in heads:
            objects.append((obj, *heads[holder[obj]]))
    return scene, out, objects


def visible_objects(script: Script, t: float) -> set[str]:
    """Names of the objects drawn at time `t` (on the floor, carried, or held by someone on screen)."""
    return {name for name, _, _ in state_at(script, t)[2]}
