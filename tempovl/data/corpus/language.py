"""Words for the world: event phrases (what a viewer sees), dialogue (what is heard), and the
third-person retellings of dialogue that queries, QA and statements use.

Most dialogue is grounded in the picture, as in TV: characters react to the action just done, remark
on the room, the objects and who is there, and announce what they are about to do. Witnesses also
tell what is on screen in the words a viewer would use ("Look, the red circle jumps!", "The blue
square picks up the cup and then spins around."), and characters name each other by look as well as
by name, so the subtitles share their words with the visual queries. The rest (feelings,
whereabouts, plans) carries what no frame shows."""

from __future__ import annotations

import numpy as np

from tempovl.data.corpus.world import (
    ACTIONS,
    BY_NAME,
    FEELINGS,
    PLACES,
    ROOMS,
    Event,
    Line,
    Script,
    visible_objects,
)

# action -> verb-phrase variants; the first is canonical (used for answers and statements)
_VERBS: dict[str, tuple[str, ...]] = {
    "enter": ("enters", "comes in", "walks in"),
    "leave": ("leaves", "goes out", "walks out"),
    "move_left": ("moves to the left", "slides to the left"),
    "move_right": ("moves to the right", "slides to the right"),
    "jump": ("jumps", "hops up"),
    "spin": ("spins around", "turns around"),
    "grow": ("grows bigger", "gets bigger"),
    "shrink": ("shrinks", "gets smaller"),
    "change_colour": ("turns {tint}", "changes colour to {tint}"),
    "pick_up": ("picks up the {obj}", "grabs the {obj}"),
    "hand": ("hands the {obj} to {target}", "gives the {obj} to {target}"),
}
# SSv2-style templates: action -> words after "[something]"
TEMPLATE_VERBS: dict[str, str] = {
    "enter": "enters",
    "leave": "leaves",
    "move_left": "moves left",
    "move_right": "moves right",
    "jump": "jumps",
    "spin": "spins",
    "grow": "grows",
    "shrink": "shrinks",
    "change_colour": "changes colour",
    "pick_up": "picks up [something]",
    "hand": "hands [something] to [something]",
}


def visual(name: str) -> str:
    return BY_NAME[name].visual


def verb_phrase(ev: Event, rng: np.random.Generator | None = None, variant: int | None = None) -> str:
    """'picks up the cup' -- canonical wording without `rng`, a random paraphrase with it (or the
    `variant`-th wording). A hand-over's receiver is named by look."""
    variants = _VERBS[ev.action]
    if variant is None:
        variant = 0 if rng is None else int(rng.integers(len(variants)))
    target = visual(ev.target) if ev.target else ""
    return variants[variant].format(obj=ev.obj, target=target, tint=ev.tint)


def event_phrase(ev: Event, rng: np.random.Generator | None = None) -> str:
    """'the red circle picks up the cup': what anyone watching (without sound) can say."""
    return f"{visual(ev.actor)} {verb_phrase(ev, rng)}"


def sentence(text: str) -> str:
    """Capitalise and end with a full stop."""
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


# ---------------------------------------------------------------- dialogue

# topic -> line variants. Reactions name the action just done: "did_<action>" is said by the actor,
# "saw_<action>" by a witness to the actor (addressee = actor), "look_<action>" by a witness who tells
# what is on screen as a viewer would ("Look, the red circle jumps!"), "look_order" by a witness who
# tells two events in order ("The red circle jumps and then spins around."); "greet" and "thanks" are
# witness / receiver reactions to "enter" and "hand". Slots: the tint of change_colour, the object of
# pick_up and hand, the room of "room", the object of "object", and for look_* what is told, with
# names ("Alice jumps"). Fields: {to} the addressee's name, {look} / {pron} the addressee's look
# ("the blue square") / pronoun, {me} the speaker's look, {what} / {What} the told events (by look).
_SAY: dict[str, tuple[str, ...]] = {
    # invisible: feelings, whereabouts, plans
    "feeling": ("I feel {slot} today.", "I'm so {slot} right now.", "Honestly, I am {slot}."),
    "going": (
        "I'm going to the {slot}.",
        "I have to go to the {slot} now.",
        "See you, I'm off to the {slot}.",
    ),
    "was_at": ("I was at the {slot} this morning.", "I spent the morning at the {slot}."),
    "ask": ("{to}, where were you?", "{to}, are you okay?"),
    # intentions, said just before the action
    "take": (
        "I'll take the {slot}.",
        "I need that {slot}.",
        "Let me get the {slot}.",
        "I will take the {slot}.",
    ),
    "give": ("{to}, this {slot} is for you.", "Here {to}, take the {slot}."),
    # remarks on what is on screen
    "room": (
        "I love this {slot}.",
        "It's cold in the {slot}.",
        "This {slot} is so nice.",
        "What a lovely {slot}.",
    ),
    "object": ("Is that a {slot} over there?", "Look, there's a {slot}.", "Whose {slot} is that?"),
    "present": (
        "{to} is here too.",
        "Oh, {to} is with us.",
        "Look, {to} is here.",
        "Look, {look} is here too. Hi, {to}!",
        "Oh, {to} is here. I'd know {look} anywhere.",
    ),
    # reactions
    "greet": (
        "Hi {to}!",
        "Hello {to}, good to see you.",
        "Oh, hey {to}.",
        "Hi {to}! Nice to see {look} again.",
    ),
    "thanks": ("Thank you, {to}!", "Thanks a lot, {to}.", "At last! Thank you, {to}."),
    "did_enter": (
        "Hi everyone, I just came in.",
        "Hello, I just came in!",
        "Hello, I have just come in!",
        "I came in to see you all.",
        "Hi, it's me, {me}. I just came in.",
    ),
    "did_move_left": (
        "I'm moving over to the left.",
        "Let me slide to the left.",
        "Over to the left I go.",
        "I'm {me} and I move to the left.",
    ),
    "did_move_right": (
        "I'm moving over to the right.",
        "Let me slide to the right.",
        "Over to the right I go.",
        "I'm {me} and I move to the right.",
    ),
    "did_jump": ("Look, I can jump!", "Watch me jump!", "Wow, I jump so high!", "I'm {me} and I jump!"),
    "did_spin": (
        "Look, I can spin!",
        "Whee, I'm spinning!",
        "Watch me spin around!",
        "I'm {me} and I spin around.",
    ),
    "did_grow": ("Wow, I'm getting bigger!", "Look, I'm bigger now!", "I'm {me} and I'm getting bigger!"),
    "did_shrink": (
        "Oh no, I'm getting smaller!",
        "Look, I'm smaller now!",
        "I'm {me} and I'm getting smaller!",
    ),
    "did_change_colour": ("Look, I'm {slot} now!", "Wow, I turned {slot}!", "I'm {me}, but now I'm {slot}!"),
    "did_pick_up": ("Got the {slot}!", "Look, I have the {slot} now.", "I'm {me} and I've got the {slot}."),
    "did_hand": ("There you go, {to}, the {slot} is yours.", "{to}, now you have the {slot}."),
    "saw_enter": ("Look, {to} just came in!", "Oh, {to} came in.", "{to} is back! Look, {pron} walks in."),
    "saw_leave": ("{to} just walked out.", "Oh, {to} went out.", "Oh no, {to} leaves. Where does {pron} go?"),
    "saw_move_left": (
        "{to}, why did you move to the left?",
        "{to} slid over to the left.",
        "Look at {to}, {pron} slides to the left.",
    ),
    "saw_move_right": (
        "{to}, why did you move to the right?",
        "{to} slid over to the right.",
        "Look at {to}, {pron} slides to the right.",
    ),
    "saw_jump": ("Nice jump, {to}!", "{to}, you jump so high!", "Look at {to}, {pron} hops up so high!"),
    "saw_spin": ("Nice spin, {to}!", "{to}, stop spinning!", "Look at {to}, {pron} spins around!"),
    "saw_grow": ("{to}, you are getting bigger!", "Wow, {to} got bigger!", "Look, {to} grows bigger!"),
    "saw_shrink": (
        "{to}, you are getting smaller!",
        "Oh, {to} got smaller!",
        "Oh no, {to} shrinks, {pron} gets smaller!",
    ),
    "saw_change_colour": (
        "{to}, why are you {slot} now?",
        "{to}, you turned {slot}!",
        "Look, {to} turns {slot}!",
    ),
    "saw_pick_up": (
        "{to}, why did you take the {slot}?",
        "{to} has the {slot} now.",
        "Look, {to} grabs the {slot}.",
    ),
    "saw_hand": (
        "{to}, that was kind, giving away the {slot}.",
        "{to} gave away the {slot}.",
        "Look, {to} gives away the {slot}.",
    ),
    **{f"look_{a}": ("Look, {what}!", "Wow, {what}!", "{What}.", "Hey, {what}!") for a in ACTIONS},
    "look_order": ("Look, {what}!", "{What}.", "Wow, {what}!"),
}
TOPICS: tuple[str, ...] = tuple(_SAY)
# reaction topic -> the action it names (and follows)
REACTIONS: dict[str, str] = {
    "greet": "enter",
    "thanks": "hand",
    **{f"did_{a}": a for a in ACTIONS if a != "leave"},
    **{f"saw_{a}": a for a in ACTIONS},
    **{f"look_{a}": a for a in ACTIONS},
}
# topics whose line names its object slot / names a room
_OBJECT_TOPICS = frozenset({"take", "give", "object", "did_pick_up", "did_hand", "saw_pick_up", "saw_hand"})
# topics whose addressee must be on screen while the line is said
_ADDRESSEE_HERE = frozenset(
    {"give", "thanks", "greet", "present", "did_hand", "look_order"}
    | {t for t in REACTIONS if t.startswith(("saw_", "look_"))}
) - {"saw_leave", "look_leave"}
# actions named while they are still on screen (the reaction starts halfway through the event);
# the others are reacted to right after they end
_DURING = frozenset({"move_left", "move_right", "jump", "spin", "grow", "shrink", "change_colour"})
# free remarks: topic -> weight
_FREE = {"room": 0.12, "object": 0.12, "present": 0.08, "feeling": 0.36, "was_at": 0.22, "ask": 0.1}

# third person of a did_* line: action -> (singular, plural) predicate after "says she / they"
_DID_SAID: dict[str, tuple[str, str]] = {
    "enter": ("has just come in", "have just come in"),
    "move_left": ("is moving to the left", "are moving to the left"),
    "move_right": ("is moving to the right", "are moving to the right"),
    "jump": ("can jump", "can jump"),
    "spin": ("can spin", "can spin"),
    "grow": ("is getting bigger", "are getting bigger"),
    "shrink": ("is getting smaller", "are getting smaller"),
    "change_colour": ("turned {s}", "turned {s}"),
    "pick_up": ("has the {s}", "have the {s}"),
    "hand": ("gave the {s} to {to}", "gave the {s} to {to}"),
}
# third person of a saw_* line: action -> what the witness says the addressee did
_SAW_SAID: dict[str, str] = {
    "enter": "came in",
    "leave": "just left",
    "move_left": "moved to the left",
    "move_right": "moved to the right",
    "jump": "jumped",
    "spin": "spun around",
    "grow": "got bigger",
    "shrink": "got smaller",
    "change_colour": "turned {s}",
    "pick_up": "took the {s}",
    "hand": "gave away the {s}",
}


def retell(line: Line, subject: str, pronoun: str) -> str:
    """Third-person account of a line: ('Alice', 'she') -> 'Alice says she feels tired'.

    `pronoun` is 'she', 'he', 'it' or 'they' (for 'someone'); the verb agrees with it.
    """
    they = pronoun == "they"
    be, feel, was = ("are", "feel", "were") if they else ("is", "feels", "was")
    s, to, topic = line.slot, line.addressee, line.topic
    if topic.startswith("did_"):
        said = _DID_SAID[topic[4:]][int(they)].format(s=s, to=to)
        return f"{subject} says {pronoun} {said}"
    if topic.startswith("saw_"):
        return f"{subject} says {to} {_SAW_SAID[topic[4:]].format(s=s)}"
    if topic.startswith("look_"):  # the slot holds what was told, with names
        return f"{subject} says {s}"
    return {
        "feeling": f"{subject} says {pronoun} {feel} {s}",
        "going": f"{subject} says {pronoun} {be} going to the {s}",
        "was_at": f"{subject} says {pronoun} {was} at the {s} this morning",
        "take": f"{subject} says {pronoun} will take the {s}",
        "give": f"{subject} tells {to} that the {s} is for {to}",
        "thanks": f"{subject} thanks {to}",
        "greet": f"{subject} says hello to {to}",
        "ask": f"{subject} asks {to} a question",
        "room": f"{subject} talks about the {s}",
        "object": f"{subject} points out the {s}",
        "present": f"{subject} says {to} is here",
    }[topic]


def _window(line: Line, before: float = 3.0, step: float = 0.5) -> np.ndarray:
    """Times from `before` seconds before the line to its end (what is on screen 'during or just before')."""
    return np.arange(max(0.0, line.start - before), line.end + 1e-6, step)


def grounded(script: Script, line: Line) -> bool:
    """Whether the line names something visible during it or in the 3 s before: the action it reacts
    to, the room, an object, or a character other than the speaker (a speaker prefix does not count)."""
    action = REACTIONS.get(line.topic)
    if action is not None and line.event is not None:
        ev = script.events[line.event]
        if ev.action == action and ev.end >= line.start - 3.0 and ev.start <= line.end:
            return True
    if line.topic in ("room", "going") and line.slot == script.scene_at(line.start).room:
        return True
    times = _window(line)
    if line.addressee is not None and any(script.present(line.addressee, t, t) for t in times):
        return True
    if line.topic in _OBJECT_TOPICS:
        return any(line.slot in visible_objects(script, t) for t in times)
    return False


def _line_time(words: int) -> float:
    return round(min(3.5, max(1.3, 0.4 * words)), 1)


def _fits(script: Script, line: Line, taken: list[Line]) -> bool:
    """Whether the line can be said: inside the video, speaker (and, where needed, addressee or
    object) on screen, the room it names is the one shown, and no overlap with lines already taken."""
    start, end = line.start, line.end
    if end > script.duration or not script.present(line.speaker, start, end):
        return False
    if line.topic in _ADDRESSEE_HERE and not script.present(line.addressee, start, end):
        return False
    if line.topic == "room" and script.scene_at(start).room != line.slot:
        return False
    if line.topic == "object" and not all(line.slot in visible_objects(script, t) for t in (start, end)):
        return False
    return not any(start < ln.end + 0.2 and ln.start < end + 0.2 for ln in taken)


def _told(ev: Event, variant: int, by_name: bool, actor: bool = True) -> str:
    """'the red circle hands the cup to the blue square' (by look) or 'Alice hands the cup to Bob';
    without the actor when `actor` is False."""
    target = (ev.target if by_name else visual(ev.target)) if ev.target else ""
    text = _VERBS[ev.action][variant].format(obj=ev.obj, target=target, tint=ev.tint)
    if not actor:
        return text
    return f"{ev.actor if by_name else visual(ev.actor)} {text}"


def _narration(
    rng: np.random.Generator, script: Script, ev: Event, nth: tuple[int, int], speaker: str
) -> tuple:
    """(topic, what by look, what with names, addressee): a witness telling `ev` as a viewer would, in
    the wording of the visual queries -- with the event just before it in order ("... and then ...",
    "... before ...", "right after ..."), or alone, "again" / "for the second time" when it repeats."""
    i = ev.eid
    prev = script.events[i - 1] if i > 0 else None
    v = int(rng.integers(len(_VERBS[ev.action])))
    if (
        prev is not None
        and prev.scene == ev.scene
        and ev.start - prev.end <= 3.0
        and prev.key() != ev.key()
        and speaker not in (prev.actor, prev.target)
        and rng.random() < 0.4
    ):
        u = int(rng.integers(len(_VERBS[prev.action])))
        if prev.actor == ev.actor:
            parts = [f"{_told(prev, u, b)} and then {_told(ev, v, b, actor=False)}" for b in (False, True)]
        else:
            form = int(rng.integers(3))
            parts = []
            for b in (False, True):
                a, c = _told(prev, u, b), _told(ev, v, b)
                parts.append((f"{a} before {c}", f"right after {a}, {c}", f"first {a}, and then {c}")[form])
        return "look_order", parts[0], parts[1], ev.actor
    k, n = nth
    suffix = ""
    if n > 1 and rng.random() < 0.5:
        suffix = " for the first time" if k == 0 else " for the second time" if k == 1 else " again"
    return f"look_{ev.action}", _told(ev, v, False) + suffix, _told(ev, v, True) + suffix, ev.actor


def _reaction(rng: np.random.Generator, script: Script, ev: Event, nth: tuple[int, int]) -> tuple | None:
    """(start, speaker, topic, slot, addressee, told) of a reaction to `ev`, by its actor or a witness;
    `told` is what a look_* line tells, by look (None for other topics)."""
    t = ev.start + 0.5 * (ev.end - ev.start) if ev.action in _DURING else ev.end + 0.1
    witnesses = [n for n in sorted(BY_NAME) if n != ev.actor and script.present(n, t, t + 2.0)]
    slot = ev.tint or ev.obj
    if ev.action == "hand":
        who = str(rng.choice(["thanks", "did", "saw", "look"], p=[0.4, 0.2, 0.15, 0.25]))
        if who == "thanks":
            return t, ev.target, "thanks", None, ev.actor, None
        if who == "did":
            return t, ev.actor, "did_hand", slot, ev.target, None
        witnesses = [n for n in witnesses if n != ev.target]
        if not witnesses:
            return None
        if who == "saw":
            return t, str(rng.choice(witnesses)), "saw_hand", slot, ev.actor, None
    elif ev.action == "enter" and rng.random() < 0.6:
        if not witnesses:
            return None
        r = rng.random()
        if r < 0.7:
            return t, str(rng.choice(witnesses)), "greet" if r < 0.45 else "saw_enter", None, ev.actor, None
    else:
        by_actor = ev.action != "leave" and (ev.action == "enter" or rng.random() < 0.4 or not witnesses)
        if by_actor:
            return t, ev.actor, f"did_{ev.action}", slot, ev.target, None
        if not witnesses:
            return None
        if rng.random() < 0.35:
            return t, str(rng.choice(witnesses)), f"saw_{ev.action}", slot, ev.actor, None
    witnesses = [n for n in witnesses if n != ev.target] or witnesses
    speaker = str(rng.choice(witnesses))
    topic, told, named, to = _narration(rng, script, ev, nth, speaker)
    return t, speaker, topic, named, to, told


def add_dialogue(rng: np.random.Generator, script: Script, prefix_prob: float = 0.7) -> None:
    """Write the video's dialogue into `script.lines`: intentions before actions, reactions naming the
    action during or right after it (by the actor, or a witness who may tell it as a viewer would),
    remarks on the room, objects and who is there, and some lines about what no frame shows
    (feelings, whereabouts). Lines never overlap; gaps stay silent."""
    mood = {c: str(rng.choice(FEELINGS)) for c in BY_NAME}
    cands: list[tuple] = []
    # (priority, start, speaker, topic, slot, addressee, event, told); lower priority is placed first
    seen: dict[tuple, list[int]] = {}
    for ev in script.events:
        seen.setdefault(ev.key(), []).append(ev.eid)
    for ev in script.events:
        if ev.action == "leave" and rng.random() < 0.6:
            dest = [p for p in (*PLACES, *ROOMS) if p != ev.room]
            cands.append((0.0, ev.start - 2.3, ev.actor, "going", str(rng.choice(dest)), None, ev.eid, None))
        elif ev.action == "pick_up" and rng.random() < 0.5:
            cands.append((0.2, ev.start - 2.0, ev.actor, "take", ev.obj, None, ev.eid, None))
        elif ev.action == "hand" and rng.random() < 0.6:
            cands.append((0.1, ev.start - 2.2, ev.actor, "give", ev.obj, ev.target, ev.eid, None))
        if rng.random() < 0.8:
            same = seen[ev.key()]
            react = _reaction(rng, script, ev, (same.index(ev.eid), len(same)))
            if react is not None:
                t, speaker, topic, slot, to, told = react
                cands.append((0.3 + 0.2 * float(rng.random()), t, speaker, topic, slot, to, ev.eid, told))
    topics, weights = list(_FREE), np.array(list(_FREE.values()))
    for _ in range(max(2, int(script.duration / 4))):
        t = round(float(rng.uniform(0.0, script.duration - 3.0)), 1)
        here = [n for n in sorted(BY_NAME) if script.present(n, t, t + 3.0)]
        if not here:
            continue
        topic = topics[int(rng.choice(len(topics), p=weights / weights.sum()))]
        speaker = str(rng.choice(here))
        slot = to = None
        if topic == "feeling":
            slot = mood[speaker]
        elif topic == "was_at":
            slot = str(rng.choice(PLACES))
        elif topic == "room":
            slot = script.scene_at(t).room
        elif topic == "object":
            objs = sorted(visible_objects(script, t))
            if not objs:
                continue
            slot = str(rng.choice(objs))
        elif topic == "present":
            others = [n for n in here if n != speaker]
            if not others:
                continue
            to = str(rng.choice(others))
        elif topic == "ask":
            to = str(rng.choice([n for n in sorted(BY_NAME) if n != speaker]))
        cands.append((0.3 + 0.6 * float(rng.random()), t, speaker, topic, slot, to, None, None))
    cands.sort(key=lambda c: (c[0], c[1]))
    taken: list[Line] = []
    for _prio, start, speaker, topic, slot, to, eid, told in cands:
        variants = _SAY[topic]
        text = variants[int(rng.integers(len(variants)))].format(
            slot=slot,
            to=to,
            look=visual(to) if to else "",
            pron=BY_NAME[to].pronoun if to else "",
            me=visual(speaker),
            what=told,
            What=told[:1].upper() + told[1:] if told else "",
        )
        text = text[:1].upper() + text[1:]
        dur = _line_time(len(text.split()))
        if topic in ("going", "take", "give"):  # an intention ends just before the action starts
            start = script.events[eid].start - 0.2 - dur
        start = round(max(0.0, start), 1)
        line = Line(0, speaker, text, start, round(start + dur, 1), topic, slot, to, False, eid)
        if not _fits(script, line, taken):
            continue
        line.prefixed = bool(rng.random() < prefix_prob)
        taken.append(line)
    taken.sort(key=lambda ln: ln.start)
    for i, ln in enumerate(taken):
        ln.lid = i
    script.lines = taken
