"""Data side of HERO retrieval: queries, training items (a clip with its queries) and batches. Used by
:mod:`tempovl.tasks.hero.retrieval`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from tempovl.data.align import seconds_to_frames
from tempovl.data.hero_data import HeroClipDataset, TextSpecials, moment_window, pad_frames
from tempovl.data.packing import one_per_video, pack_clips, pad_ids


@dataclass
class Query:
    """One query: id, text, its video, ground-truth spans (seconds; several for DiDeMo), training span."""

    qid: Any
    text: str
    vid: str | None  # None: an unlabelled query (TVR's test_public release)
    spans: list[list[float]] | None = None
    train_span: list[float] | None = None
    qtype: str | None = None
    segments: list[list[int]] | None = None  # DiDeMo annotators' segment moments


def mode_span(spans: list[list[float]]) -> list[float]:
    """The annotators' most frequent span (ties: the first), DiDeMo's training target."""
    counts = Counter(tuple(s) for s in spans)
    best = max(counts.values())
    return list(next(tuple(s) for s in spans if counts[tuple(s)] == best))


def chunks(n: int, size: int) -> list[range]:
    return [range(i, min(i + size, n)) for i in range(0, n, max(size, 1))]


def video_batch(items: Sequence[dict], specials: TextSpecials, pack_max_len: int | None) -> dict:
    """Frames + subtitle groups (``[SEP] + tokens`` per unit, as HERO's non-MLM inputs) of clips."""
    frame_feats, frame_mask = pad_frames(items)
    groups = [[([specials.sep, *u.tokens], u.frame_ids) for u in it["units"]] for it in items]
    batch = pack_clips(groups, [len(it["frame_feats"]) for it in items], pack_max_len, specials.pad)
    batch.update(frame_feats=frame_feats, frame_mask=frame_mask, vids=[it["vid"] for it in items])
    return batch


class QueryVideos(Dataset):
    """Training items: a clip (``vid``, ``frame_feats``, ``units``) with ``queries``: its
    ``([CLS] + tokens, (st_idx, ed_idx))`` pairs (``(-1, -1)`` when the task has no spans).

    A video longer than ``data.max_frames`` is trained on the window around each query's moment
    (`training_window`), so a moment at 8 minutes is a target at 8 minutes, not one clipped to the
    first window's end; queries whose moments share a window share its item."""

    def __init__(self, clips: HeroClipDataset, queries: Sequence[Query], encode, interval: float):
        self.clips = clips
        by_key: dict[tuple[str, int], list[tuple[list[int], tuple[int, int]]]] = {}
        position = {v: i for i, v in enumerate(clips.vids)}
        for q in queries:
            full = clips.store.num_frames(q.vid)
            lo, target = 0, (-1, -1)
            if q.train_span is not None:
                st, ed = seconds_to_frames(*q.train_span, interval, full)  # in the whole video
                lo, target = moment_window(st, ed, full, clips.cfg)
            by_key.setdefault((q.vid, lo), []).append((encode(q.text), target))
        self.keys = [(position[v], lo) for v, lo in by_key]
        self.by_key = by_key

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> dict:
        index, lo = self.keys[i]
        item = dict(self.clips.window(index, lo))
        item["queries"] = self.by_key[(self.clips.vids[index], lo)]
        return item


class RetrievalCollate:
    """Clips + `queries_per_video` queries each (random, repeat-padded; global torch RNG)."""

    def __init__(self, specials: TextSpecials, pack_max_len: int | None, queries_per_video: int):
        self.specials, self.pack_max_len, self.k = specials, pack_max_len, queries_per_video

    def __call__(self, items: list[dict]) -> dict:
        items = one_per_video(items)  # a clip twice in one batch would be its own negative
        batch = video_batch(items, self.specials, self.pack_max_len)
        queries, targets, query_video = [], [], []
        for b, it in enumerate(items):
            order = torch.randperm(len(it["queries"])).tolist()
            for j in range(self.k):
                ids, target = it["queries"][order[j % len(order)]]
                queries.append(ids)
                targets.append(target)
                query_video.append(b)
        batch["query_ids"], batch["query_mask"] = pad_ids(queries, self.specials.pad)
        batch["span_targets"] = torch.tensor(targets, dtype=torch.long)  # (Nq, 2)
        batch["query_video"] = torch.tensor(query_video, dtype=torch.long)  # (Nq,)
        return batch
