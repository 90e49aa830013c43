"""`tempovl train | pretrain | finetune CONFIG [key=value ...] [--resume] [--out DIR] [--init CKPT]`.

All three run the same engine; `finetune` insists on initial weights (``--init`` or ``train.init``).
Works in one process or under ``torchrun --nproc_per_node N -m tempovl.cli train ...``.
"""

from __future__ import annotations

import argparse

from tempovl.config import load_config
from tempovl.errors import ConfigError


def register(parser: argparse.ArgumentParser, name: str) -> None:
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
