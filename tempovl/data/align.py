"""Frame–subtitle alignment, exactly as HERO appendix A.4.

HERO's Cross-modal Transformer runs once per subtitle sentence s_i over [frames of s_i ; tokens of s_i],
so every sentence needs its own set of frames and every frame may be used once. A.4 says:

1. *Overlap pairing.* Sentence s_i is paired with the frames whose time spans overlap its timestamps.
   Here "overlap" means a positive-length intersection; a zero-length sentence (start == end) overlaps
   the frame whose half-open span [start, end) contains its instant.
2. *Maximal tIoU.* A frame that overlaps several sentences goes to the one with maximal temporal IoU
   (intersection / union of the two spans), "to avoid duplication". **Ties** (equal tIoU) go to the
   sentence that comes first in time order (earliest start, then earliest end, then lowest index) —
   the same outcome as HERO's official preprocessing, which keeps the first strict maximum.
3. *No sentence is lost.* A sentence left with no frame (it overlaps none, or lost all of its frames
   to rule 2) is concatenated to a neighbouring sentence. A.4 does not say which neighbour; we use:
   among the sentences in time order, the nearest preceding sentence that has frames (A) and the
   nearest following one (B) are the candidates; the sentence joins the one with the smaller time gap
   (gap = distance between the two spans, 0 when they overlap); **ties join the preceding one**; within a
   run of frameless sentences between A and B, once one joins B all later ones do too, so every group
   is a contiguous run of sentences in time order. With no A it joins B, with no B it joins A. Texts
   are concatenated in time order with a space. If no sentence has any frame (e.g. an empty frame
   list), every sentence is its own group with no frames.
4. *Frames with no sentence* are kept in `Alignment.unmatched_frames`. HERO's official code treats
   them as frames with an empty subtitle: a model should feed every maximal run of consecutive
   unmatched frames through the Cross-modal Transformer as a unit with no text tokens, so that every
   frame reaches the Temporal Transformer in time order. `cross_modal_units` builds exactly that list.

Group texts use `Sentence.full_text` (speaker prefix kept), as TVR/TVQA subtitle text does.

This module also holds tempovl's one seconds -> frame conversion: `seconds_to_frames` (a moment's first and
last frame, the official HERO labels, used by every task) and `num_frames_covering` (frames of a video).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tempovl.data.subtitles import Sentence
from tempovl.errors import InputError


@dataclass
class AlignedGroup:
    """One input unit of the Cross-modal Transformer: sentence(s) and the frames they own."""

    text: str  # sentence text; joined with " " when sentences were merged
    sentence_ids: list[int]  # indices into the input sentence list, ascending
    frame_ids: list[int]  # indices into the frame list, ascending
    start: float
    end: float


@dataclass
class Alignment:
    """Groups in time order, and the frames that overlap no sentence (ascending)."""

    groups: list[AlignedGroup]
    unmatched_frames: list[int]

    def frame_to_group(self, num_frames: int) -> np.ndarray:
        """(num_frames,) int64: the group index owning each frame, -1 for unmatched frames."""
        owner = np.full(num_frames, -1, dtype=np.int64)
        for g, group in enumerate(self.groups):
            owner[group.frame_ids] = g
        return owner


# ------------------------------------------------------------------------ seconds <-> frame indices
# Frame i of a clip sampled every `interval` seconds covers [i * interval, (i + 1) * interval). The
# quotient t / interval is rounded to 1e-6 frames before floor / ceil / round, so float error cannot
# move a boundary: 2.1 / 0.3 = 7.000000000000001 counts as exactly 7.
_FRAME_DECIMALS = 6
END_RULES = ("overlap", "nearest")


def _frames(t: float, interval: float) -> float:
    """`t` seconds in frames, rounded to 1e-6 frames (see above)."""
    if not interval > 0:
        raise InputError(f"frame interval must be > 0 seconds, got {interval}")
    return round(t / interval, _FRAME_DECIMALS)


def num_frames_covering(duration: float, interval: float) -> int:
    """Frames sampled every `interval` s that cover [0, duration]: ``ceil(duration / interval)``, at least 1."""
    return max(1, math.ceil(_frames(duration, interval)))


def seconds_to_frames(
    start: float,
    end: float,
    interval: float,
    num_frames: int,
    min_frames: int = 2,
    end_rule: str = "overlap",
) -> tuple[int, int]:
    """First and last frame (both inclusive) of the moment [start, end] seconds in a clip of `num_frames`.

    The one seconds -> frame conversion of tempovl, following the official HERO labels
    (``get_st_ed_label`` in HERO's VCMR / TVQA / TVC data code):

    - start: ``floor(start / interval)``, the frame that contains `start`;
    - end, ``end_rule="overlap"`` (VCMR, TVQA): ``ceil(end / interval) - 1``, the last frame the moment
      overlaps; ``end_rule="nearest"`` (TVC): ``round(end / interval) - 1``, so the frame that contains
      `end` counts only when the moment covers at least half of it (Python's round: halves to even);
    - at least `min_frames` frames (official VCMR / TVQA: 2, i.e. ``ed >= st + 1``; TVC: 1), then both
      clamped to ``[0, num_frames - 1]`` with ``ed >= st``.

    Quotients are rounded to 1e-6 frames first (module comment above). Examples at 1.5 s per frame:
    [3.2, 7.6] -> (2, 5) with "overlap", (2, 4) with "nearest".
    """
    if num_frames < 1:
        raise InputError(f"seconds_to_frames: the clip has no frames (num_frames={num_frames})")
    if end_rule not in END_RULES:
        raise InputError(f"seconds_to_frames: end_rule {end_rule!r} is not one of {END_RULES}")
    last = num_frames - 1
    q_end = _frames(end, interval)
    st = min(max(math.floor(_frames(start, interval)), 0), last)
    ed = (math.ceil(q_end) if end_rule == "overlap" else round(q_end)) - 1
    ed = min(max(ed, st + max(min_frames, 1) - 1), last)
    return st, ed


def frame_spans(num_frames: int, interval: float) -> np.ndarray:
    """(N, 2) float64 spans of frames sampled every `interval` s: row i is [i*interval, (i+1)*interval]."""
    if num_frames < 0:
        raise InputError(f"num_frames must be >= 0, got {num_frames}")
    if not interval > 0:
        raise InputError(f"frame interval must be > 0 seconds, got {interval}")
    starts = np.arange(num_frames, dtype=np.float64) * interval  # (N,)
    return np.stack([starts, starts + interval], axis=1)  # (N, 2)


def _check_spans(spans: np.ndarray) -> np.ndarray:
    spans = np.asarray(spans, dtype=np.float64)
    if spans.size == 0:
        return spans.reshape(0, 2)
    if spans.ndim != 2 or spans.shape[1] != 2:
        raise InputError(f"frame spans must have shape (N, 2), got {tuple(spans.shape)}")
    if np.any(spans[:, 1] < spans[:, 0]):
        bad = int(np.argmax(spans[:, 1] < spans[:, 0]))
        raise InputError(f"frame {bad} ends before it starts: {spans[bad].tolist()}")
    return spans


def overlap_and_tiou(spans: np.ndarray, sentences: list[Sentence]) -> tuple[np.ndarray, np.ndarray]:
    """Rule 1 and the tIoU of rule 2: (N, S) bool `overlaps` and (N, S) float `tiou`."""
    spans = _check_spans(spans)
    sent = np.array([[s.start, s.end] for s in sentences], dtype=np.float64).reshape(-1, 2)  # (S, 2)
    f_st, f_ed = spans[:, None, 0], spans[:, None, 1]  # (N, 1)
    s_st, s_ed = sent[None, :, 0], sent[None, :, 1]  # (1, S)
    inter = np.minimum(f_ed, s_ed) - np.maximum(f_st, s_st)  # (N, S)
    union = np.maximum(f_ed, s_ed) - np.minimum(f_st, s_st)  # (N, S)
    instant = (s_st == s_ed) & (f_st <= s_st) & (s_st < f_ed)  # zero-length sentence inside a frame
    overlaps = (inter > 0) | instant
    tiou = np.where(union > 0, np.clip(inter, 0, None) / np.where(union > 0, union, 1), 0.0)
    return overlaps, tiou


def align(frame_spans: np.ndarray, sentences: list[Sentence]) -> Alignment:
    """Align sentences with frames (HERO A.4; rules in the module docstring)."""
    spans = _check_spans(frame_spans)
    num_frames, num_sents = len(spans), len(sentences)
    for i, s in enumerate(sentences):
        if s.end < s.start:
            raise InputError(f"sentence {i} ends before it starts ({s.start} > {s.end}): {s.text!r}")
    if num_sents == 0:
        return Alignment(groups=[], unmatched_frames=list(range(num_frames)))

    order = sorted(range(num_sents), key=lambda i: (sentences[i].start, sentences[i].end, i))
    overlaps, tiou = overlap_and_tiou(spans, sentences)
    # Rule 2: columns in time order so that argmax's first maximum is the earliest sentence.
    score = np.where(overlaps, tiou, -1.0)[:, order]  # (N, S) time-ordered columns
    best = score.argmax(axis=1)  # (N,) first maximum = earliest sentence
    has_owner = overlaps.any(axis=1)  # (N,)
    owner = np.where(has_owner, np.asarray(order)[best], -1)  # (N,) sentence index or -1

    frames_of: dict[int, list[int]] = {i: [] for i in range(num_sents)}
    for f in np.flatnonzero(owner >= 0):
        frames_of[int(owner[f])].append(int(f))
    unmatched = [int(f) for f in np.flatnonzero(owner < 0)]

    anchors = [r for r, i in enumerate(order) if frames_of[i]]  # ranks of sentences with frames
    if not anchors:
        groups = [_group([i], [], sentences) for i in order]
        return Alignment(groups=groups, unmatched_frames=unmatched)

    # Rule 3: give every frameless sentence (by rank) the rank of the anchor it joins.
    joins = {r: r for r in anchors}
    bounds = [-1, *anchors, num_sents]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        run = range(a + 1, b)
        to_next = a < 0
        for r in run:
            if b >= num_sents:
                joins[r] = a
                continue
            if not to_next:
                s, prev, nxt = sentences[order[r]], sentences[order[a]], sentences[order[b]]
                gap_prev = max(0.0, s.start - prev.end)
                gap_next = max(0.0, nxt.start - s.end)
                to_next = gap_next < gap_prev
            joins[r] = b if to_next else a

    members: dict[int, list[int]] = {r: [] for r in anchors}
    for r in range(num_sents):
        members[joins[r]].append(order[r])  # appended in time order
    groups = []
    for r in anchors:
        frames = sorted(f for i in members[r] for f in frames_of[i])
        groups.append(_group(members[r], frames, sentences))
    return Alignment(groups=groups, unmatched_frames=unmatched)


def _group(ids_in_time_order: list[int], frames: list[int], sentences: list[Sentence]) -> AlignedGroup:
    chosen = [sentences[i] for i in ids_in_time_order]
    return AlignedGroup(
        text=" ".join(s.full_text for s in chosen),
        sentence_ids=sorted(ids_in_time_order),
        frame_ids=frames,
        start=min(s.start for s in chosen),
        end=max(s.end for s in chosen),
    )


def unmatched_runs(frame_ids: list[int]) -> list[list[int]]:
    """Split ascending frame ids into maximal runs of consecutive ids: [0, 1, 4] -> [[0, 1], [4]]."""
    runs: list[list[int]] = []
    for f in frame_ids:
        if runs and f == runs[-1][-1] + 1:
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


def cross_modal_units(alignment: Alignment, frame_spans: np.ndarray) -> list[AlignedGroup]:
    """The Cross-modal Transformer's inputs: every group plus one empty-text unit per maximal run of
    consecutive unmatched frames (HERO's "empty subtitle"), sorted by start time. Every frame appears
    in exactly one unit, so a model that runs each unit and scatters the frame outputs back by
    `frame_ids` gives the Temporal Transformer all frames in order."""
    spans = _check_spans(frame_spans)
    units = list(alignment.groups)
    for run in unmatched_runs(alignment.unmatched_frames):
        units.append(
            AlignedGroup(
                text="",
                sentence_ids=[],
                frame_ids=run,
                start=float(spans[run[0], 0]),
                end=float(spans[run[-1], 1]),
            )
        )
    return sorted(units, key=lambda u: (u.start, u.frame_ids[0] if u.frame_ids else -1))
