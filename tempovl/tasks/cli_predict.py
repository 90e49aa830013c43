"""`tempovl predict CKPT VIDEO [--subtitles SRT] (--query "..." | --question "..." --answers A B ...)`: the
command line of :func:`tempovl.inference.predict` (see there for what it does and the task contract)."""

from __future__ import annotations

import argparse
import json

from tempovl.errors import ConfigError


def register(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("checkpoint", help="checkpoint or export directory (or a run dir with `latest`)")
    parser.add_argument("video", help="a video file (mp4, mkv, webm, ...)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument("--subtitles", metavar="FILE", help="SRT or WebVTT subtitles of the video")
    parser.add_argument("--query", help="text query: rank the moments of the video")
    parser.add_argument("--question", help="a question about the video (QA checkpoints)")
    parser.add_argument("--answers", nargs="+", metavar="ANSWER", help="the candidate answers")
    parser.add_argument("--statement", help="a statement to check against the video (VIOLIN checkpoints)")
    parser.add_argument("--start", type=float, help="captioning: the moment's start, in seconds")
    parser.add_argument("--end", type=float, help="captioning: the moment's end, in seconds")
    parser.add_argument("--beam-size", type=int, help="captioning: beams (default: the checkpoint's)")
    parser.add_argument("--top-k", type=int, default=5, help="moments to print")
    parser.add_argument("--extractor", help="override the feature extractor spec")
    parser.add_argument("--interval", type=float, help="override seconds per feature-frame")
    parser.add_argument("--size", type=int, help="override the frame size fed to the extractor")
    parser.add_argument("--json", metavar="FILE", help="also write the result as JSON")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tempovl.inference import predict as tempovl_predict

    if args.query and args.question:
        raise ConfigError(
            "predict: give --query (moment retrieval) or --question [--answers ...] (QA), not both"
        )
    # tasks that need nothing (video captioning) answer; the others say which of these they need
    request = {
        "query": args.query,
        "top_k": args.top_k,
        "question": args.question,
        "answers": list(args.answers) if args.answers else None,
        "statement": args.statement,
        "start": args.start,
        "end": args.end,
        "beam_size": args.beam_size,
    }
    result = tempovl_predict(
        args.checkpoint,
        args.video,
        args.subtitles,
        args.overrides,
        args.extractor,
        args.interval,
        args.size,
        args.device,
        **request,
    )
    if "moments" in result:
        print(f"{result['video']}: video score {result.get('video_score', float('nan')):.4f}")
        print("rank  start (s)  end (s)  score")
        for i, m in enumerate(result["moments"], 1):
            print(f"{i:>4}  {m['start']:>9.1f}  {m['end']:>7.1f}  {m['score']:.4g}")
    else:
        print(
            json.dumps({k: v for k, v in result.items() if k not in ("checkpoint",)}, indent=2, default=float)
        )
    if args.json:
        from tempovl.io import write_json

        write_json(args.json, json.loads(json.dumps(result, default=float)))
    return 0
