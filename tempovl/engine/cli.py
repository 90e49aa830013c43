"""`tempovl train | pretrain | finetune CONFIG [key=value ...] [--resume] [--out DIR] [--init CKPT]`, and
`tempovl learnability CONFIG ... [--examples N] [--steps N]` (:mod:`tempovl.engine.learnability`).

The three training commands run the same engine; `finetune` insists on initial weights (``--init`` or
``train.init``). Works in one process or under ``torchrun --nproc_per_node N -m tempovl.cli train ...``.
Nothing heavy is imported until a command runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse

from tempovl.config import load_config
from tempovl.errors import ConfigError


def register(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "learnability":
        register_learnability(parser)
        return
    parser.add_argument("config", help="config file or preset name (e.g. task/toy or my-run.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides, e.g. train.lr=1e-4")
    parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    parser.add_argument("--out", metavar="DIR", help="output directory (sets train.output_dir)")
    parser.add_argument(
        "--init", metavar="CKPT", help="initialise weights from a checkpoint or export (sets train.init)"
    )
    parser.set_defaults(func=run, command_name=name)


def build_config(args: argparse.Namespace) -> dict:
    """The whole config: file, then overrides, then --out / --init."""
    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"train.output_dir={args.out}")
    if args.init:
        overrides.append(f"train.init={args.init}")
    cfg = load_config(args.config, overrides)
    if args.command_name == "finetune" and not (cfg.get("train") or {}).get("init"):
        raise ConfigError("train.init: finetune needs initial weights: pass --init CKPT or train.init=PATH")
    return cfg


def run(args: argparse.Namespace) -> int:
    from tempovl.engine import distributed
    from tempovl.engine.trainer import train

    cfg = build_config(args)
    try:
        result = train(cfg, resume=args.resume)
        main = distributed.is_main()
    finally:
        distributed.cleanup()
    if main:
        state = "interrupted" if result.interrupted else "finished"
        print(f"{state} at step {result.step}; checkpoint: {result.checkpoint}")
        if result.best:
            print(f"best {result.best['name']} = {result.best['value']:.4g} at step {result.best['step']}")
    return 0


def register_learnability(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "configs", nargs="+", metavar="CONFIG", help="presets or config files, e.g. hero-tiny-tvqa"
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="key=value",
                        help="override for every config, e.g. --set data.corpus=runs/demo/corpus")  # fmt: skip
    parser.add_argument("--examples", type=int, default=64, help="train items to fit (default %(default)s)")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps (default %(default)s)")
    parser.add_argument("--min-acc", type=float, default=0.9, help="accuracy that counts as fitted")
    parser.add_argument("--out", help="also write the markdown table here")
    parser.set_defaults(func=run_learnability)


def run_learnability(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tempovl.engine.learnability import HEADER, check_task

    fits = []
    print(HEADER, flush=True)
    for name in args.configs:
        for fit in check_task(load_config(name, args.overrides), args.examples, args.steps, args.min_acc):
            fits.append(fit)
            print(fit.row(), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join([HEADER, *(f.row() for f in fits)]) + "\n")
    return 0 if all(f.passed for f in fits) else 1
