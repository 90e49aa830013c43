"""`tempovl index build|info`, `tempovl search` and `tempovl serve`: one module, branched on the name."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tempovl.errors import InputError


def register(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "index":
        sub = parser.add_subparsers(dest="index_command", required=True, metavar="ACTION")
        b = sub.add_parser(
            "build", help="encode new or changed videos into an index (incremental, resumable)"
        )
        b.add_argument("videos", nargs="+", help="video folders (searched recursively) or video files")
        b.add_argument("out", help="index folder (created, or updated in place)")
        b.add_argument(
            "--model",
            required=True,
            help="encoder: 'subtitle-minilm' (subtitle-only baseline) or a checkpoint",
        )
        b.add_argument(
            "--subtitles", default=None, help="folder of {video id}.srt/.vtt (default: next to each video)"
        )
        b.add_argument(
            "--approx",
            default="auto",
            choices=["auto", "ivf", "none"],
            help="approximate index: auto = IVF-HNSW-SQ8 past 250,000 frames, exact search below",
        )
        b.add_argument("--skip-bad", action="store_true", help="list unreadable videos and go on")
        b.add_argument("--shard-size", type=int, default=32, help="videos per shard (saved as they finish)")
        b.add_argument("--no-progress", action="store_true")
        b.set_defaults(func=_build)
        i = sub.add_parser("info", help="what an index holds")
        i.add_argument("index")
        i.set_defaults(func=_info)
    elif name == "search":
        parser.add_argument("index", help="index folder")
        parser.add_argument("query", nargs="?", help="the text to search for")
        parser.add_argument("-k", type=int, default=10, help="moments to return (default 10)")
        how = parser.add_mutually_exclusive_group()
        how.add_argument(
            "--approx",
            action="store_true",
            default=None,
            help="force the approximate index (default: the index's choice, approximate where it built one)",
        )
        how.add_argument("--exact", dest="approx", action="store_false", help="force exact search")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.add_argument(
            "--queries",
            default=None,
            help="a TVR-format .jsonl of queries: run them all and print R@K (VCMR + VR)",
        )
        parser.set_defaults(func=_search)
    elif name == "serve":
        parser.add_argument("index", help="index folder")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' on /api")
        parser.add_argument(
            "--allow-host",
            action="append",
            default=[],
            metavar="NAME",
            help="also answer requests for this Host name (the loopback names and --host always are)",
        )
        parser.add_argument(
            "--header-timeout",
            type=float,
            default=10.0,
            metavar="S",
            help="close a connection whose request head has not arrived in S seconds (default 10)",
        )
        parser.add_argument(
            "--body-timeout",
            type=float,
            default=30.0,
            metavar="S",
            help="408 and close when a request body has not arrived in S seconds (default 30)",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            metavar="N",
            help="torch threads for query encoding (default: torch's own, all cores; on 2 cores 1 thread "
            "measured 132 searches/s at 50 clients against 146 with 2: see bench_serve --threads)",
        )
        parser.set_defaults(func=_serve)
    else:
        raise ValueError(f"tempovl.search.cli cannot serve sub-command {name!r}")


def _build(args: argparse.Namespace) -> int:
    from tempovl.search.index import build_index

    report = build_index(
        args.videos,
        args.out,
        args.model,
        subtitles_dir=args.subtitles,
        skip_bad=args.skip_bad,
        approx=args.approx,
        shard_size=args.shard_size,
        progress=not args.no_progress,
    )
    print(f"index {args.out}: {report.summary()}")
    for vid, err in sorted(report.bad.items()):
        print(f"  bad: {vid}: {err}", file=sys.stderr)
    return 0


def _info(args: argparse.Namespace) -> int:
    from tempovl.search.index import describe_approx, load_manifest, verify_index

    m = load_manifest(args.index)
    shards = verify_index(args.index)  # says what it reports only after reading it
    frames = sum(v["num_frames"] for v in m["videos"].values())
    print(
        f"{args.index}: {len(m['videos'])} videos, {frames} frames, encoder {m['encoder']['spec']} "
        f"(dim {m['encoder']['dim']}), {describe_approx(m.get('approx'))}, {len(m['bad'])} bad; "
        f"verified ({shards} shards read)"
    )
    return 0


def _search(args: argparse.Namespace) -> int:
    from tempovl.search.searcher import Searcher

    if args.k < 1:
        raise InputError(f"-k must be >= 1, got {args.k}")
    if (args.query is None) == (args.queries is None):
        raise InputError("give a query text or --queries FILE (one of them)")
    searcher = Searcher(args.index)
    if args.queries:
        return _search_queries(searcher, args)
    hits = searcher.search(args.query, k=args.k, approx=args.approx)
    if args.json:
        print(json.dumps({"query": args.query, "hits": [h.to_dict() for h in hits]}, indent=2))
        return 0
    print(f"{'rank':>4}  {'video':<24} {'start':>8} {'end':>8} {'score':>8}")
    for h in hits:
        print(f"{h.rank:>4}  {h.video:<24} {h.start:>8.2f} {h.end:>8.2f} {h.score:>8.4f}")
    if not hits:
        print("(no results: the index is empty)")
    return 0


def _search_queries(searcher, args: argparse.Namespace) -> int:
    from tempovl.data.annotations import read_tvr
    from tempovl.metrics.moment import eval_tvr, tvr_table
    from tempovl.search.searcher import tvr_submission, video_recall

    path = Path(args.queries)
    if not path.is_file():
        raise InputError(f"{path}: no such query file")
    queries = read_tvr(path)
    for q in queries:
        if "vid_name" not in q or "ts" not in q:
            raise InputError(f"{path}: desc_id {q['desc_id']}: needs 'vid_name' and 'ts' to be scored")
    missing = sorted({q["vid_name"] for q in queries} - set(searcher.data.video_ids))
    if missing:
        raise InputError(f"{path}: queries name videos that are not in the index: {', '.join(missing[:10])}")
    k = max(args.k, 100)
    submission = tvr_submission(searcher, queries, k=k, approx=args.approx)
    ranked = {
        e["desc_id"]: [searcher.data.video_ids[int(p[0])] for p in e["predictions"]] for e in submission["VR"]
    }
    metrics = eval_tvr(submission, queries, allow_partial=False)
    recall = video_recall(ranked, queries, ks=(1, 5, 10, 100))
    if args.json:
        print(
            json.dumps(
                {"queries": len(queries), "video_recall": recall, "tvr": metrics, "ranked_videos": ranked},
                indent=2,
            )
        )
    else:
        print(f"{len(queries)} queries from {path}; video R@K (%): {recall}\n")
        print(tvr_table(metrics))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import logging
    import socket

    import uvicorn

    from tempovl.search.service import LOOPBACK_HOSTS, create_app
    from tempovl.search.service_http import server_config

    if not (args.header_timeout > 0 and args.body_timeout > 0):
        raise InputError("serve: --header-timeout and --body-timeout must be > 0 seconds")
    if args.host not in LOOPBACK_HOSTS and not args.token:
        logging.getLogger(__name__).warning(
            "serve: listening on %s without --token: anyone who can reach it can search and read the videos",
            args.host,
        )
    try:  # a busy port is said before anything claims to serve
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((args.host, args.port))
    except OSError as e:
        raise InputError(
            f"serve: cannot listen on {args.host}:{args.port} ({e.strerror}); pick another --port"
        ) from None
    # a wildcard address is reached by any of the machine's names: say which with --allow-host
    wildcard = args.host in ("0.0.0.0", "::") and not args.allow_host
    hosts = None if wildcard else [*LOOPBACK_HOSTS, args.host, *args.allow_host]
    import torch

    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"serve: --threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    app = create_app(args.index, token=args.token, allowed_hosts=hosts)
    print(f"serving {args.index} on http://{args.host}:{args.port}/", flush=True)
    config = server_config(
        app, args.host, args.port, header_timeout=args.header_timeout, body_timeout=args.body_timeout
    )
    uvicorn.Server(config).run()
    return 0
