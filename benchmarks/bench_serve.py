"""`tempovl serve` under load: search throughput and latency at 1, 50 and 500 concurrent clients, and
video Range latency while searches flood the server. Prints issue 15's targets beside the figures.

    python benchmarks/bench_serve.py                          # a tiny corpus + subtitle index made here
    python benchmarks/bench_serve.py --index runs/demo/index --requests 400 --seconds 60
    python benchmarks/bench_serve.py --memory-searches 20000  # server RSS across 20,000 searches

The server is the real command (`tempovl serve INDEX --port P` in a subprocess on 127.0.0.1), the
clients are httpx on asyncio, on the same cores (the table gives each side's CPU time per search). Each level sends `--requests` searches (at most `--seconds` seconds) with
that many in flight at once. A 503 (the server's queue is full) is back-pressure, not an error: the client
waits its Retry-After and sends the search again, and the table counts these in "busy"; anything else
that is not a 200 is an error. The Range test fetches 64 KiB ranges of one indexed video, one at a time,
while 50 clients keep searching.

`--memory-searches N` measures only memory instead: N searches (8 in flight, every query text different,
so a cache keyed by query would show) and the server's resident memory (VmRSS of its process) before the
first, after 1,000, at each quarter and after the last; "flat" is judged on the second half (the first
searches warm the allocator's arenas and the per-video caches).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from machine import machine_line, publish, target_line

QUERIES = [
    "someone opens the box",
    "the red circle jumps",
    "a blue square spins around",
    "she says goodbye in the kitchen",
    "two people argue about the keys",
    "the ball rolls under the table",
    "he laughs at the joke",
    "the green triangle changes colour",
]
TARGETS = {  # issue 15, on this project's 2-core machine
    "throughput_ratio": 3.0,  # searches/s at 50 concurrent >= 3x at 1
    "p99_50_s": 1.0,  # p99 latency at 50 concurrent <= 1 s
    "range_p99_s": 0.1,  # Range p99 under a search flood <= 100 ms
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_index(folder: Path) -> Path:
    """A tiny demo corpus and its subtitle-only index (the baseline encoder ships offline)."""
    from tempovl.data.corpus import make_corpus
    from tempovl.search.index import build_index

    corpus = folder / "corpus"
    make_corpus(corpus, preset="tiny", seed=0, progress=False)
    out = folder / "index"
    build_index(
        [corpus / "videos"], out, "subtitle-minilm", subtitles_dir=corpus / "subtitles", progress=False
    )
    return out


def start_server(index: Path, port: int, threads: int | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tempovl.cli", "serve", str(index), "--port", str(port)]
    cmd += ["--threads", str(threads)] if threads else []
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("bench_serve: the server did not come up in 120 s")


async def search_level(base: str, concurrency: int, requests: int, seconds: float) -> dict:
    """`requests` searches with `concurrency` in flight; latencies of the answered ones."""
    latencies: list[float] = []
    errors = busy = 0
    sent = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def one_client(worker: int) -> None:
            nonlocal errors, busy, sent
            while sent < requests and time.perf_counter() < deadline:
                query = QUERIES[(sent + worker) % len(QUERIES)]
                sent += 1
                t = time.perf_counter()
                while True:
                    try:
                        r = await client.post("/api/search", json={"query": query, "k": 10})
                    except httpx.HTTPError:
                        errors += 1
                        break
                    if r.status_code == 503 and time.perf_counter() < deadline:
                        busy += 1
                        await asyncio.sleep(float(r.headers.get("retry-after", "1")))
                        continue
                    if r.status_code == 200:
                        latencies.append(time.perf_counter() - t)  # waiting for a retry included
                    else:
                        errors += 1
                    break

        start = time.perf_counter()
        await asyncio.gather(*(one_client(w) for w in range(concurrency)))
        wall = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "answered": len(latencies),
        "errors": errors,
        "busy": busy,
        "per_s": len(latencies) / wall,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": percentile(latencies, 99),
        "latencies": latencies,
    }


def combine(rounds: list[dict]) -> dict:
    """One level over several rounds: counts summed, searches/s the median round (the machine's speed
    drifts over minutes here, so levels are interleaved and each judged by its median), latencies pooled."""
    latencies = [x for r in rounds for x in r["latencies"]]
    out = {k: sum(r[k] for r in rounds) for k in ("answered", "errors", "busy", "server_cpu", "client_cpu")}
    out.update(
        concurrency=rounds[0]["concurrency"],
        per_s=statistics.median(r["per_s"] for r in rounds),
        rounds=[r["per_s"] for r in rounds],
        p50=statistics.median(latencies) if latencies else float("nan"),
        p99=percentile(latencies, 99),
    )
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def range_under_flood(base: str, count: int, seconds: float) -> dict:
    """Range latencies of one video, fetched one after another while 50 clients search."""
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=60)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def flood() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    await client.post("/api/search", json={"query": QUERIES[i % len(QUERIES)], "k": 10})
                except httpx.HTTPError:
                    pass

        flooders = [asyncio.create_task(flood()) for _ in range(50)]
        await asyncio.sleep(1.0)  # let the queue fill
        latencies, errors = [], 0
        deadline = time.perf_counter() + seconds
        async with httpx.AsyncClient(base_url=base, timeout=60) as ranger:
            first = await ranger.get("/api/videos/0", headers={"Range": "bytes=0-0"})
            size = int(first.headers["content-range"].rsplit("/", 1)[1])
            for i in range(count):
                if time.perf_counter() > deadline:
                    break
                lo = (i * 65536) % max(1, size - 65536)
                t = time.perf_counter()
                r = await ranger.get("/api/videos/0", headers={"Range": f"bytes={lo}-{lo + 65535}"})
                if r.status_code in (200, 206):
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1
        stop.set()
        await asyncio.gather(*flooders)
    return {
        "answered": len(latencies),
        "errors": errors,
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 99),
    }


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` (VmRSS in /proc/PID/status), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def memory_run(base: str, pid: int, searches: int, concurrency: int = 8) -> dict:
    """`searches` distinct searches; the server's RSS (MiB) at the start, after 1,000, at each quarter
    and at the end."""
    marks = {"start": rss_mib(pid)}
    checkpoints = {1000} | {searches * q // 4 for q in (1, 2, 3)}
    done = errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        next_i = 0

        async def one_client() -> None:
            nonlocal done, errors, next_i
            while next_i < searches:
                i, next_i = next_i, next_i + 1
                query = f"{QUERIES[i % len(QUERIES)]} {i}"  # never the same text twice
                try:
                    r = await client.post("/api/search", json={"query": query, "k": 10})
                    errors += r.status_code != 200
                except httpx.HTTPError:
                    errors += 1
                done += 1
                if done in checkpoints and done < searches:
                    marks[f"after {done:,}"] = rss_mib(pid)

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
    marks[f"after {searches:,}"] = rss_mib(pid)
    return {"marks": marks, "errors": errors, "seconds": time.perf_counter() - started}


def memory_report(index: Path, searches: int, result: dict) -> str:
    marks = result["marks"]
    lines = [
        f"search service on {index}: server RSS across {searches:,} searches "
        f"({result['seconds']:.0f} s, {result['errors']} errors)",
        "",
        "| when | RSS (MiB) |",
        "| --- | ---: |",
    ]
    lines += [f"| {when} | {mib:.1f} |" for when, mib in marks.items()]
    half = f"after {searches // 2:,}"
    if half in marks:  # warm-up (allocator arenas, caches of the videos) is over well before half-way
        growth = marks[f"after {searches:,}"] - marks[half]
        lines += [
            "",
            target_line(
                f"flat once warm: RSS grows <= 4 MiB over the second {searches - searches // 2:,} searches",
                f"{growth:+.1f} MiB",
                growth <= 4,
            ),
        ]
    lines.append(machine_line())
    return "\n".join(lines)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process `pid` (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", help="an index folder (default: a tiny corpus indexed here)")
    p.add_argument("--levels", default="1,50,500", help="concurrent clients per level")
    p.add_argument("--requests", type=int, default=300, help="searches per level and round (at most)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of all levels, interleaved (median)")
    p.add_argument("--seconds", type=float, default=60, help="time limit per level")
    p.add_argument("--ranges", type=int, default=100, help="Range requests under the flood")
    p.add_argument("--threads", type=int, default=None, help="the server's --threads (default: its own)")
    p.add_argument(
        "--memory-searches", type=int, default=0, metavar="N", help="measure RSS across N searches"
    )
    p.add_argument(
        "--out", default=None, help="default runs/bench/serve.md (serve-memory.md with --memory-searches)"
    )
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(args.index) if args.index else make_index(Path(tmp))
        port = free_port()
        server = start_server(index, port, args.threads)
        base = f"http://127.0.0.1:{port}"
        if args.memory_searches > 0:
            try:
                result = asyncio.run(memory_run(base, server.pid, args.memory_searches))
            finally:
                server.terminate()
                server.wait(timeout=30)
            publish(
                memory_report(index, args.memory_searches, result), args.out or "runs/bench/serve-memory.md"
            )
            return 0
        try:
            runs: dict[int, list[dict]] = {int(c): [] for c in args.levels.split(",")}
            for _ in range(args.rounds):  # levels interleaved: 1, 50, 500, 1, 50, 500, ...
                for c, done in runs.items():
                    server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
                    done.append(asyncio.run(search_level(base, c, args.requests, args.seconds)))
                    done[-1]["server_cpu"] = cpu_seconds(server.pid) - server_cpu
                    done[-1]["client_cpu"] = time.process_time() - client_cpu
            levels = [combine(done) for done in runs.values()]
            ranges = asyncio.run(range_under_flood(base, args.ranges, args.seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)
    lines = [
        f"search service on {index} ({os.cpu_count()} CPUs)",
        "",
        "| concurrent | answered | errors | busy (503, retried) | searches/s (median; rounds) | p50 (s) | p99 (s) "
        "| CPU ms per search: server / client |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['concurrency']} | {r['answered']} | {r['errors']} | {r['busy']} | {r['per_s']:.1f}; "
        f"{', '.join(f'{x:.0f}' for x in r['rounds'])} | "
        f"{r['p50']:.3f} | {r['p99']:.3f} | {1000 * r['server_cpu'] / max(r['answered'], 1):.1f} / "
        f"{1000 * r['client_cpu'] / max(r['answered'], 1):.1f} |"
        for r in levels
    ]
    lines += [
        "",
        f"Range requests under a flood of 50 searching clients: {ranges['answered']} answered, "
        f"{ranges['errors']} errors, p50 {1000 * ranges['p50']:.1f} ms, p99 {1000 * ranges['p99']:.1f} ms",
        "",
    ]
    by = {r["concurrency"]: r for r in levels}
    if 1 in by and 50 in by:
        ratio, p99 = by[50]["per_s"] / by[1]["per_s"], by[50]["p99"]
        target = f"searches/s at 50 >= {TARGETS['throughput_ratio']:g}x at 1"
        lines.append(target_line(target, f"{ratio:.2f}x", ratio >= TARGETS["throughput_ratio"]))
        target = f"p99 at 50 <= {TARGETS['p99_50_s']:g} s"
        lines.append(target_line(target, f"{p99:.3f} s", p99 <= TARGETS["p99_50_s"]))
    rp99 = ranges["p99"]
    target = f"Range p99 under the flood <= {1000 * TARGETS['range_p99_s']:.0f} ms"
    lines.append(target_line(target, f"{1000 * rp99:.1f} ms", rp99 <= TARGETS["range_p99_s"]))
    total_errors = sum(r["errors"] for r in levels) + ranges["errors"]
    lines.append(target_line("0 errors", str(total_errors), total_errors == 0))
    lines.append(machine_line())
    publish("\n".join(lines), args.out or "runs/bench/serve.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
