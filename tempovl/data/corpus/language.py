"""Words for the world: event phrases (what a viewer sees), dialogue (what is only heard), and the
third-person retellings of dialogue that queries, QA and statements use."""

from __future__ import annotations

import numpy as np

from tempovl.data.corpus.world import BY_NAME, FEELINGS, PLACES, ROOMS, Event, Line, Script

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


def verb_phrase(ev: Event, rng: np.random.Generator | None = None) -> str:
    """'picks up the cup' -- canonical wording without `rng`, a random paraphrase with it."""
    variants = _VERBS[ev.action]
    text = variants[0] if rng is None else variants[int(rng.integers(len(variants)))]
    target = visual(ev.target) if ev.target else ""
    return text.format(obj=ev.obj, target=target, tint=ev.tint)


def event_phrase(ev: Event, rng: np.random.Generator | None = None) -> str:
    """'the red circle picks up the cup': what anyone watching (without sound) can say."""
    return f"{visual(ev.actor)} {verb_phrase(ev, rng)}"


def sentence(text: str) -> str:
    """Capitalise and end with a full stop."""
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "?", "!")) else ".")


# ---------------------------------------------------------------- dialogue

_SAY: dict[str, tuple[str, ...]] = {
    "feeling": ("I feel {slot} today.", "I'm so {slot} right now.", "Honestly, I am {slot}."),
    "going": (
        "I'm going to the {slot}.",
        "I have to go to the {slot} now.",
        "See you, I'm off to the {slot}.",
    ),
    "was_at": ("I was at the {slot} this morning.", "I spent the morning at the {slot}."),
    "take": ("I'll take the {slot}.", "I need that {slot}.", "Let me get the {slot}."),
    "give": ("{to}, this {slot} is for you.", "Here {to}, take the {slot}."),
    "thanks": ("Thank you, {to}!", "Thanks a lot, {to}."),
    "greet": ("Hi {to}!", "Hello {to}, good to see you.", "Oh, hey {to}."),
    "ask": ("{to}, where were you?", "{to}, are you okay?"),
}


def retell(line: Line, subject: str, pronoun: str) -> str:
    """Third-person account of a line: ('Alice', 'she') -> 'Alice says she feels tired'.

    `pronoun` is 'she', 'he', 'it' or 'they' (for 'someone'); the verb agrees with it.
    """
    they = pronoun == "they"
    be, feel, was = ("are", "feel", "were") if they else ("is", "feels", "was")
    s, to = line.slot, line.addressee
    return {
        "feeling": f"{subject} says {pronoun} {feel} {s}",
        "going": f"{subject} says {pronoun} {be} going to the {s}",
        "was_at": f"{subject} says {pronoun} {was} at the {s} this morning",
        "take": f"{subject} says {pronoun} will take the {s}",
        "give": f"{subject} tells {to} that the {s} is for {to}",
        "thanks": f"{subject} thanks {to}",
        "greet": f"{subject} says hello to {to}",
        "ask": f"{subject} asks {to} a question",
    }[line.topic]


def _line_time(words: int) -> float:
    return round(min(3.5, max(1.3, 0.4 * words)), 1)


def add_dialogue(rng: np.random.Generator, script: Script, prefix_prob: float = 0.5) -> None:
    """Write the video's dialogue into `script.lines`: intentions before actions, greetings and thanks
    after them, feelings and whereabouts at random moments. Lines never overlap; gaps stay silent."""
    mood = {c: str(rng.choice(FEELINGS)) for c in BY_NAME}
    cands: list[tuple[float, float, str, str, str | None, str | None, int | None]] = []
    # (priority, start, speaker, topic, slot, addressee, event)
    for ev in script.events:
        others = [n for n in BY_NAME if n != ev.actor]
        if ev.action == "leave" and rng.random() < 0.75:
            dest = [p for p in (*PLACES, *ROOMS) if p != ev.room]
            cands.append((0.0, ev.start - 2.3, ev.actor, "going", str(rng.choice(dest)), None, ev.eid))
        elif ev.action == "pick_up" and rng.random() < 0.6:
            cands.append((0.2, ev.start - 2.0, ev.actor, "take", ev.obj, None, ev.eid))
        elif ev.action == "hand":
            if rng.random() < 0.7:
                cands.append((0.1, ev.start - 2.2, ev.actor, "give", ev.obj, ev.target, ev.eid))
            if rng.random() < 0.6:
                cands.append((0.3, ev.end + 0.1, ev.target, "thanks", None, ev.actor, ev.eid))
        elif ev.action == "enter" and rng.random() < 0.5:
            greeter = [n for n in others if script.present(n, ev.end, ev.end + 2.0)]
            if greeter:
                who = str(rng.choice(greeter))
                cands.append((0.4, ev.end + 0.1, who, "greet", None, ev.actor, ev.eid))
    n_free = max(2, int(script.duration / 5))
    for _ in range(n_free):
        t = round(float(rng.uniform(0.0, script.duration - 3.0)), 1)
        here = [n for n in sorted(BY_NAME) if script.present(n, t, t + 3.0)]
        if not here:
            continue
        topic = str(rng.choice(["feeling", "feeling", "was_at", "ask"]))
        speaker = str(rng.choice(here))
        slot = mood[speaker] if topic == "feeling" else str(rng.choice(PLACES)) if topic == "was_at" else None
        to = str(rng.choice([n for n in sorted(BY_NAME) if n != speaker])) if topic == "ask" else None
        cands.append((0.8 + float(rng.random()) * 0.1, t, speaker, topic, slot, to, None))
    cands.sort(key=lambda c: (c[0], c[1]))
    taken: list[Line] = []
    for _prio, start, speaker, topic, slot, to, eid in cands:
        variants = _SAY[topic]
        text = variants[int(rng.integers(len(variants)))].format(slot=slot, to=to)
        dur = _line_time(len(text.split()))
        if topic in ("going", "take", "give"):  # an intention ends just before the action starts
            start = script.events[eid].start - 0.2 - dur
        start = round(max(0.0, start), 1)
        end = round(start + dur, 1)
        if end > script.duration or not script.present(speaker, start, end):
            continue
        if topic in ("give", "thanks", "greet") and not script.present(to, start, end):
            continue
        if any(start < ln.end + 0.2 and ln.start < end + 0.2 for ln in taken):
            continue
        prefixed = bool(rng.random() < prefix_prob)
        taken.append(Line(0, speaker, text, start, end, topic, slot, to, prefixed, eid))
    taken.sort(key=lambda ln: ln.start)
    for i, ln in enumerate(taken):
        ln.lid = i
    script.lines = taken
