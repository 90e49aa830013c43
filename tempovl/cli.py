"""The `tempovl` command. Each sub-command lives in the module that owns its work and is imported
only when used, so `tempovl corpus ...` does not pay for the models."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tempovl.errors import TempovlError

# sub-command -> (module with `register(parser)`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("tempovl.demo", "run the quick-start pipeline on the demo corpus"),
    "corpus": ("tempovl.data.corpus.cli", "make the synthetic demo corpus (real mp4 + SRT + annotations)"),
    "data": ("tempovl.data.cli", "validate annotation files and subtitles"),
    "features": ("tempovl.data.features.cli", "extract frame features from a folder of videos"),
    "models": ("tempovl.models.cli", "list model presets with their parameter counts"),
    "train": ("tempovl.engine.cli", "train from a config (any task)"),
    "pretrain": ("tempovl.engine.cli", "pre-train from a config (same as train)"),
    "finetune": ("tempovl.engine.cli", "fine-tune from a config (same as train, with --init)"),
    "learnability": ("tempovl.engine.cli", "check that each task fits a small train subset"),
    "evaluate": ("tempovl.tasks.cli", "evaluate a checkpoint on a task; writes metrics JSON + markdown"),
    "predict": ("tempovl.tasks.cli_predict", "run a checkpoint on your own video file"),
    "metrics": ("tempovl.metrics.cli", "compute metrics from prediction files"),
    "convert": ("tempovl.convert.cli", "convert official checkpoints to tempovl's format"),
    "index": ("tempovl.search.cli", "build a moment-search index over a video collection"),
    "search": ("tempovl.search.cli", "search an index by text"),
    "serve": ("tempovl.search.cli", "serve an index over HTTP with a web page"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="tempovl", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).register(p, name)
    # key=value overrides may also come after options (`evaluate CKPT --shuffle-frames data.x=1`), which a
    # plain nargs="*" positional does not take: collect them here.
    args, rest = parser.parse_known_args(argv)
    late = [a for a in rest if "=" in a and not a.startswith("-")]
    if late and isinstance(getattr(args, "overrides", None), list):
        args.overrides += late
        rest = [a for a in rest if a not in late]
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except TempovlError as e:
        print(f"tempovl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tempovl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
