"""`tempovl evaluate CKPT [--task NAME] [--split val|test] [--out DIR] [--shuffle-frames] [key=value ...]`.

Builds the task named in the checkpoint's ``config.yaml`` (or ``--task NAME``), loads the weights, runs
``task.evaluate(split)`` and writes what it returns to ``DIR/metrics.json`` and ``DIR/metrics.md`` (DIR
defaults to ``CKPT/eval-SPLIT``; CKPT may be a run directory, which evaluates its ``latest``).
Any task works: the command only calls ``evaluate(split, out_dir=DIR)`` (the ``Task`` contract); tasks
that write files put them in DIR (HERO retrieval writes the TVR standalone-evaluation JSON and a
timeline PNG there). ``--shuffle-frames`` sets
``data.shuffle_frames=true``: tasks that honour it permute every video's frames with a fixed seed (the
temporal shuffling test).

A checkpoint of another task (``--task`` differs from the one it was trained for) is loaded as
:func:`tempovl.inference.load_task` says.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

from tempovl.io import atomic_open, write_json

log = logging.getLogger(__name__)


def register(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("checkpoint", help="checkpoint or export directory (or a run dir with `latest`)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.corpus=..."
    )
    parser.add_argument("--task", help="task to evaluate with (default: the checkpoint's task)")
    parser.add_argument("--split", default="val", help="split to evaluate (val or test)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: CKPT/eval-SPLIT)")
    parser.add_argument(
        "--shuffle-frames", action="store_true", help="temporal shuffling test: permute frames (fixed seed)"
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.set_defaults(func=run)


def markdown_table(metrics: dict[str, Any], title: str) -> str:
    """Two-column markdown table of flat metrics (nested dicts are flattened with '/')."""
    rows = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}/{k}" if prefix else str(k), v)
        elif isinstance(value, float):
            rows.append((prefix, "nan" if math.isnan(value) else f"{value:.4g}"))
        else:
            rows.append((prefix, str(value)))

    walk("", metrics)
    lines = [f"### {title}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def evaluate_checkpoint(
    ckpt: str | Path,
    task: str | None = None,
    split: str = "val",
    out: str | Path | None = None,
    overrides: list[str] = (),
    shuffle_frames: bool = False,
    device: str = "auto",
) -> dict:
    """Evaluate a checkpoint; writes ``metrics.json`` and ``metrics.md`` into `out`. Returns the record."""
    import torch

    from tempovl.inference import load_task

    overrides = list(overrides) + (["data.shuffle_frames=true"] if shuffle_frames else [])
    built, cfg, path = load_task(ckpt, task, overrides, device)
    suffix = "-shuffled" if shuffle_frames else ""
    home = (
        Path(ckpt) if Path(ckpt).is_dir() else path
    )  # a run directory keeps evaluations beside its checkpoints
    out = Path(out) if out is not None else home / f"eval-{split}{suffix}"
    out.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        metrics = built.evaluate(split, out_dir=out) or {}
    record = {
        "checkpoint": str(path),
        "task": cfg["task"]["name"],
        "split": split,
        "shuffle_frames": shuffle_frames,
        "metrics": metrics,
    }
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
    write_json(out / "metrics.json", json.loads(json.dumps({**record, "metrics": clean}, default=float)))
    title = f"{record['task']} on {split}{' (frames shuffled)' if shuffle_frames else ''}: {path}"
    with atomic_open(out / "metrics.md") as f:
        f.write(markdown_table(metrics, title))
    record["out"] = str(out)
    return record


def run(args: argparse.Namespace) -> int:
    record = evaluate_checkpoint(
        args.checkpoint, args.task, args.split, args.out, args.overrides, args.shuffle_frames, args.device
    )
    print(markdown_table(record["metrics"], f"{record['task']} on {record['split']}"))
    print(f"wrote {record['out']}/metrics.json and metrics.md")
    return 0
