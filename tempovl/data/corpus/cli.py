"""`tempovl corpus make OUT [--preset tiny|demo|large] [--seed N] [--force]`."""

from __future__ import annotations

import argparse
import time

from tempovl.data.corpus import PRESETS, make_corpus


def register(parser: argparse.ArgumentParser, name: str) -> None:
    sub = parser.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    make = sub.add_parser("make", help="generate the synthetic demo corpus into OUT")
    make.add_argument("out", metavar="OUT", help="output folder (must be empty or absent unless --force)")
    make.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="corpus size (default: demo)")
    make.add_argument("--seed", type=int, default=0, help="random seed; same seed, same corpus (default: 0)")
    make.add_argument("--force", action="store_true", help="replace a non-empty OUT")
    make.add_argument("--quiet", action="store_true", help="no progress bar")
    make.set_defaults(func=_make)


def _make(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    card = make_corpus(
        args.out, preset=args.preset, seed=args.seed, progress=not args.quiet, force=args.force
    )
    mix = ", ".join(f"{t} {d['fraction']:.0%}" for t, d in card["tvr_query_types"].items())
    videos = sum(card["videos"].values())
    print(
        f"wrote {args.out}: {videos} videos, {card['files'].get('annotations/tvr_train.jsonl', 0)} TVR train "
        f"queries ({mix}), vocabulary {card['vocab_size']} words, in {time.perf_counter() - t0:.1f} s"
    )
    return 0
