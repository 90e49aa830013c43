"""Can the features see who does what? A linear probe on the demo corpus's feature-frames.

Every window of a multi-channel video that an event covers for at least half its length is labelled
with that event's acting character (7 classes) and action (11 classes), from the ground-truth scripts.
A softmax classifier on standardised features is fit on the pretrain + train videos' windows and scored
on the test videos' windows; the majority class is printed beside it. Several stores are compared in one
run; `a+b` concatenates two stores' features per window.

    python benchmarks/probe_features.py runs/demo/corpus \
        demo=runs/demo/features oracle=runs/demo/oracle

Writes the table to runs/bench/probe_features.md (or --out).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from machine import cpu_model

from tempovl.data.corpus.world import ACTIONS, CHARACTERS
from tempovl.data.features.oracle import load_script
from tempovl.data.features.store import FeatureStore

CHARS = [c.name for c in CHARACTERS]


def window_labels(script, num: int, interval: float) -> list[tuple[int, int] | None]:
    """(character, action) index of the event covering at least half of each window, else None."""
    out = []
    for i in range(num):
        t0, t1 = i * interval, (i + 1) * interval
        best, cover = None, 0.5 * interval
        for e in script.events:
            overlap = min(t1, e.end) - max(t0, e.start)
            if overlap >= cover:
                best, cover = e, overlap
        out.append(None if best is None else (CHARS.index(best.actor), ACTIONS.index(best.action)))
    return out


def collect(corpus: Path, stores: list[FeatureStore], videos: list[str]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for vid in videos:
        feats = [s[vid] for s in stores]
        n = min(len(f) for f in feats)
        x = np.concatenate([f[:n] for f in feats], axis=1)
        labels = window_labels(load_script(corpus / "script" / f"{vid}.json"), n, stores[0].interval)
        for row, lab in zip(x, labels):
            if lab is not None:
                xs.append(row)
                ys.append(lab)
    return np.stack(xs), np.array(ys)


def probe(x_tr, y_tr, x_te, y_te, classes: int, epochs: int = 300, l2: float = 1e-2, seed: int = 0) -> float:
    """Test accuracy (%) of a softmax classifier fit with Adam (L2 penalty `l2`) on standardised features."""
    torch.manual_seed(seed)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    xt = torch.tensor((x_tr - mu) / sd, dtype=torch.float32)
    xe = torch.tensor((x_te - mu) / sd, dtype=torch.float32)
    yt = torch.tensor(y_tr)
    lin = torch.nn.Linear(xt.shape[1], classes)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(xt), yt) + l2 * lin.weight.pow(2).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((lin(xe).argmax(1).numpy() == y_te).mean() * 100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path)
    ap.add_argument("stores", nargs="+", help="NAME=PATH[+PATH...]")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/probe_features.md"))
    args = ap.parse_args()
    splits = json.loads((args.corpus / "splits.json").read_text())
    train_vids, test_vids = splits["pretrain"] + splits["train"], splits["test"]
    cpu = cpu_model()
    rows = []
    for spec in args.stores:
        name, _, paths = spec.partition("=")
        stores = [FeatureStore(p) for p in paths.split("+")]
        t0 = time.perf_counter()
        x_tr, y_tr = collect(args.corpus, stores, train_vids)
        x_te, y_te = collect(args.corpus, stores, test_vids)
        char = probe(x_tr, y_tr[:, 0], x_te, y_te[:, 0], len(CHARS))
        act = probe(x_tr, y_tr[:, 1], x_te, y_te[:, 1], len(ACTIONS))
        rows.append((name, "+".join(s.extractor for s in stores), x_tr.shape[1], char, act))
        print(
            f"{name}: character {char:.1f} %, action {act:.1f} % ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    maj_c = np.bincount(y_te[:, 0]).max() / len(y_te) * 100
    maj_a = np.bincount(y_te[:, 1]).max() / len(y_te) * 100
    lines = [
        f"Linear probe on {args.corpus} ({len(y_tr)} train / {len(y_te)} test windows); CPU {cpu} ({platform.machine()})",
        "",
        "| features | extractor | dim | acting character % | action % |",
        "| --- | --- | ---: | ---: | ---: |",
        *(f"| {n} | {e} | {d} | {c:.1f} | {a:.1f} |" for n, e, d, c, a in rows),
        f"| majority class | | | {maj_c:.1f} | {maj_a:.1f} |",
    ]
    table = "\n".join(lines)
    print("\n" + table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
