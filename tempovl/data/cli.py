"""`tempovl data ...`: check a corpus's files, and show how a subtitle file aligns with frames.

tempovl data validate ROOT          per-file table (records, problems); exit 2 if anything is wrong
tempovl data align SUBS --duration 60 [--interval 1.5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tempovl.errors import InputError


def register(parser: argparse.ArgumentParser, name: str) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = sub.add_parser("validate", help="validate videos, subtitles and annotations of a corpus dir")
    p.add_argument("root", type=Path, help="corpus directory (layout: docs/demo-corpus.md)")
    p.add_argument("--max-problems", type=int, default=20, help="problems to print (all are counted)")
    p.set_defaults(func=_validate)
    p = sub.add_parser("align", help="print the HERO A.4 frame-subtitle alignment of one subtitle file")
    p.add_argument("subtitles", type=Path, help=".srt or .vtt file")
    p.add_argument("--duration", type=float, required=True, help="video duration in seconds")
    p.add_argument("--interval", type=float, default=1.5, help="seconds per frame (HERO TV: 1.5)")
    p.set_defaults(func=_align)


def _validate(args: argparse.Namespace) -> int:
    from tempovl.data.annotations import validate_corpus_report

    if not args.root.is_dir():
        raise InputError(f"{args.root}: not a directory")
    reports = validate_corpus_report(args.root)
    rows = [
        (str(Path(r.path).relative_to(args.root)), r.kind, str(r.records), str(len(r.problems)))
        for r in reports
    ]
    header = ("file", "kind", "records", "problems")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    line = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    print(line.format(*header))
    for row in rows:
        print(line.format(*row))
    problems = [p for r in reports for p in r.problems]
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for p in problems[: args.max_problems]:
            print(f"  {p}")
        if len(problems) > args.max_problems:
            print(f"  ... and {len(problems) - args.max_problems} more")
        return 2
    print(f"\nok: {len(reports)} files, no problems")
    return 0


def _align(args: argparse.Namespace) -> int:
    from tempovl.data.align import align, cross_modal_units, frame_spans, num_frames_covering
    from tempovl.data.subtitles import read_subtitle_file

    if not args.duration > 0:
        raise InputError(f"--duration must be > 0, got {args.duration}")
    spans = frame_spans(num_frames_covering(args.duration, args.interval), args.interval)
    alignment = align(spans, read_subtitle_file(args.subtitles))
    for unit in cross_modal_units(alignment, spans):
        frames = f"{unit.frame_ids[0]}-{unit.frame_ids[-1]}" if unit.frame_ids else "-"
        text = unit.text or "(no subtitle)"
        print(f"{unit.start:8.2f} {unit.end:8.2f}  frames {frames:>9}  {text}")
    print(
        f"\n{len(alignment.groups)} groups, {len(alignment.unmatched_frames)} unmatched frames of {len(spans)}"
    )
    return 0
