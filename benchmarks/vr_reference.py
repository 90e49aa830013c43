"""Reference points for video retrieval (VR R@1) on a demo corpus, to read HERO's numbers against.

    python benchmarks/vr_reference.py CORPUS [NAME=FEATURE_STORE ...] [--steps 1500] [--out FILE]

1. **Perfect reader** (no learning): for every val/test query with events, the videos of the split whose
   script holds every event the query names (actor, action, object, target; in order when the query's
   wording depends on it; in the named room when the query says "in the <room>, "), read from the corpus's
   scripts and ``annotations/meta.jsonl``. A perfect model can do no better than rank the right video
   first among those, so the expected R@1 is the mean of 1 / (#matching videos). Subtitle-only queries
   are left out (they name no event).
2. **Bag-of-words reference** (learned, one seed): the query as a bag of words -> MLP; each feature-frame
   -> LayerNorm, linear, ReLU, plus a width-5 temporal convolution; score = max over frames of the cosine;
   InfoNCE (query -> video, temperature 0.05) over 16 train videos per step; R@1 on val and test, and on the
   train split (a gap = memorising, not reading).

3. **What a model's top-1 video holds** (``--predictions SPLIT=FILE``, a TVR-format predictions file as
   ``tempovl evaluate`` writes it): for the queries with events, the share whose top-ranked video holds
   every named actor, every named action, every named (actor, action) pair, and every named event (the
   perfect reader's condition). Actors and actions right but pairs wrong = the model finds the words but
   does not bind who did what.

Prints a markdown table and writes it to ``--out`` (default runs/bench/vr_reference.md).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from machine import cpu_model
from torch import nn

from tempovl.data.features.store import FeatureStore

SPLITS = ("val", "test")


def read_queries(corpus: Path, split: str) -> list[dict]:
    path = corpus / "annotations" / f"tvr_{split}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _key(e: dict, room: bool) -> tuple:
    return (e["actor"], e["action"], e.get("obj"), e.get("target")) + ((e["room"],) if room else ())


def _holds(events: list[dict], want: list[tuple], ordered: bool, room: bool) -> bool:
    """Does a video with these script events hold every wanted event (in order when `ordered`)?"""
    keys = [_key(e, room) for e in sorted(events, key=lambda e: e["start"])]
    if ordered:
        it = iter(keys)
        return all(k in it for k in want)
    return set(want) <= set(keys)


def event_queries(corpus: Path, split: str) -> tuple[list[tuple[dict, dict, list[tuple], bool]], dict]:
    """`split`'s queries that name events, each as (query, meta record, wanted event keys, names a room),
    and every split video's script events by name."""
    queries = {q["desc_id"]: q for q in read_queries(corpus, split)}
    meta_path = corpus / "annotations" / "meta.jsonl"
    meta = [json.loads(line) for line in meta_path.read_text().splitlines() if line.strip()]
    vids = sorted({q["vid_name"] for q in queries.values()})
    events = {v: json.loads((corpus / "script" / f"{v}.json").read_text())["events"] for v in vids}
    out = []
    for m in meta:
        if m["file"] == f"tvr_{split}.jsonl" and m["events"]:
            q = queries[m["id"]]
            room = re.match(r"in the (\w+), ", q["desc"]) is not None
            out.append((q, m, [_key(events[m["vid_name"]][i], room) for i in m["events"]], room))
    return out, events


def perfect_reader(corpus: Path, split: str) -> tuple[float, int, int]:
    """(expected R@1 in percent, queries with events, videos) of the perfect reader on `split`."""
    items, events = event_queries(corpus, split)
    total = sum(
        1.0 / sum(_holds(ev, want, m["order"], room) for ev in events.values()) for _, m, want, room in items
    )
    return 100.0 * total / max(1, len(items)), len(items), len(events)


HOLDS = ("right video", "holds actors", "holds actions", "holds actor-action pairs", "holds every event")


def top1_holds(corpus: Path, split: str, predictions: Path) -> dict[str, float]:
    """Percent of `split`'s event queries whose top-1 video (from a TVR predictions file) holds what they name."""
    pred = json.loads(predictions.read_text())
    name_of = {i: v for v, i in pred["video2idx"].items()}
    top = {p["desc_id"]: name_of[p["predictions"][0][0]] for p in pred["VCMR"] if p["predictions"]}
    items, events = event_queries(corpus, split)
    items = [it for it in items if it[0]["desc_id"] in top]
    counts = dict.fromkeys(HOLDS, 0)
    for q, m, want, room in items:
        got = events[top[q["desc_id"]]]
        counts["right video"] += top[q["desc_id"]] == q["vid_name"]
        counts["holds actors"] += {w[0] for w in want} <= {e["actor"] for e in got}
        counts["holds actions"] += {w[1] for w in want} <= {e["action"] for e in got}
        counts["holds actor-action pairs"] += {w[:2] for w in want} <= {
            (e["actor"], e["action"]) for e in got
        }
        counts["holds every event"] += _holds(got, want, m["order"], room)
    return {k: 100.0 * v / max(1, len(items)) for k, v in counts.items()} | {"queries": len(items)}


class BagOfWords(nn.Module):
    def __init__(self, vocab: int, frame_dim: int, dim: int = 128):
        super().__init__()
        self.query = nn.Sequential(nn.Linear(vocab, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.frame = nn.Sequential(nn.LayerNorm(frame_dim), nn.Linear(frame_dim, dim), nn.ReLU())
        self.context = nn.Conv1d(dim, dim, 5, padding=2)

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        h = self.frame(x)  # (T, D)
        return F.normalize(h + self.context(h.t()[None])[0].t(), dim=-1)


def bag_of_words(corpus: Path, store: Path, steps: int, seed: int = 0) -> dict[str, float]:
    """R@1 (percent) of the bag-of-words reference on train, val and test."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    data = {s: read_queries(corpus, s) for s in ("train", *SPLITS)}
    words = sorted({w for qs in data.values() for q in qs for w in re.findall(r"\w+", q["desc"].lower())})
    index = {w: i for i, w in enumerate(words)}
    fs = FeatureStore(store)
    vids = {s: sorted({q["vid_name"] for q in qs}) for s, qs in data.items()}
    feats = {v: torch.tensor(np.asarray(fs[v], dtype=np.float32)) for vs in vids.values() for v in vs}
    model = BagOfWords(len(index), next(iter(feats.values())).shape[1])
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.01)

    def bow(texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), len(index))
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, index[w]] += 1
        return out

    def scores(qs: list[dict], vs: list[str]) -> torch.Tensor:
        q = F.normalize(model.query(bow([x["desc"] for x in qs])), dim=-1)
        return torch.stack([(q @ model.frames(feats[v]).t()).amax(-1) for v in vs], dim=1)

    for _ in range(steps):
        batch_vids = rng.sample(vids["train"], min(16, len(vids["train"])))
        qs = [q for q in data["train"] if q["vid_name"] in batch_vids]
        qs = rng.sample(qs, min(48, len(qs)))
        target = torch.tensor([batch_vids.index(q["vid_name"]) for q in qs])
        loss = F.cross_entropy(scores(qs, batch_vids) / 0.05, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    out = {}
    with torch.no_grad():
        for split, qs in data.items():
            target = torch.tensor([vids[split].index(q["vid_name"]) for q in qs])
            out[split] = 100.0 * (scores(qs, vids[split]).argmax(1) == target).float().mean().item()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("stores", nargs="*", help="NAME=FEATURE_STORE for the bag-of-words reference")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument(
        "--predictions", nargs="*", default=[], help="SPLIT=FILE: what a model's top-1 videos hold"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench/vr_reference.md"))
    args = parser.parse_args(argv)
    lines = [f"VR R@1 references on {args.corpus} ({cpu_model()})", ""]
    lines += ["| reference | train | val | test |", "| --- | ---: | ---: | ---: |"]
    cells = []
    for split in SPLITS:
        r1, n, v = perfect_reader(args.corpus, split)
        cells.append(f"{r1:.1f} ({n} queries, {v} videos)")
    lines.append(f"| perfect reader (expected) | | {cells[0]} | {cells[1]} |")
    for spec in args.stores:
        name, _, path = spec.partition("=")
        r = bag_of_words(args.corpus, Path(path), args.steps)
        lines.append(f"| bag of words, {name} features, {args.steps} steps | {r['train']:.1f} | "
                     f"{r['val']:.1f} | {r['test']:.1f} |")  # fmt: skip
        print(lines[-1], flush=True)
    chance = {s: 100.0 / perfect_reader(args.corpus, s)[2] for s in SPLITS}
    lines.append(f"| chance (random ranking) | | {chance['val']:.1f} | {chance['test']:.1f} |")
    if args.predictions:
        lines += ["", "| predictions | split | queries | " + " | ".join(f"top-1 {k}" for k in HOLDS) + " |",
                  "| --- | --- |" + " ---: |" * (len(HOLDS) + 1)]  # fmt: skip
    for spec in args.predictions:
        split, _, path = spec.partition("=")
        r = top1_holds(args.corpus, split, Path(path))
        cells = " | ".join(f"{r[k]:.1f}" for k in HOLDS)
        lines.append(f"| {path} | {split} | {r['queries']} | {cells} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
