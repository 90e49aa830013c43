"""The HTTP service (FastAPI): JSON search, health, the indexed video files, and the web page.

    GET  /                 the search page (tempovl/search/static, no build step, nothing from a CDN)
    GET  /api/health       {"status": "ok", "videos", "frames", "hours", "encoder", "token_required",
                           "threshold", "searches"}: open without a token
    GET  /api/info         the index's size and encoder, "threshold" and a few "examples" (subtitle lines)
    POST /api/search       {"query": str, "k": int = 10, "approx": bool = false} -> {"query", "k",
                           "took_ms", "threshold", "relevant", "hits": [Hit..., each with "url" of its
                           video], "groups": the hits grouped by video (service_results.group_hits)}
    GET  /api/videos/{n}   the n-th indexed video file, with HTTP Range requests (206 + Content-Range)
    GET  /api/videos/{n}/thumbnail?t=S   a small JPEG of the frame at S seconds (service_media)
    GET  /api/videos/{n}/captions.vtt    the video's indexed subtitles as WebVTT

"threshold" is the searcher's calibrated `threshold` on a hit's video score (None: not calibrated);
"relevant" is false when the best video score of a search is below it (null without a threshold).

Video files are reached only by their number in the index; no part of a URL is ever resolved as a
path on disk, so nothing outside the indexed files can be read. With a token, every /api route
except health needs "Authorization: Bearer TOKEN"; only the video routes (file, thumbnail, captions)
also take it as ?access_token=TOKEN (<video>, <img> and <track> cannot send headers), so a token in a
URL never opens the search API. Every 4xx, unknown routes and unparseable bodies included, is {"error": message}.

Load: concurrent searches are micro-batched (:class:`SearchBatcher`): one worker thread, of its own,
takes every waiting request (up to MAX_BATCH), encodes their queries in one forward pass and answers
each, so throughput grows with concurrency instead of queueing one search behind another. At most
MAX_WAITING searches wait; past that a search gets 503 with Retry-After. A request whose client has
gone is dropped before any work is done for it. Video files stream from the event loop and the
default thread pool, thumbnails decode on a pool of their own, never behind a search.

Hardening: request bodies over MAX_BODY_BYTES get 413 before they are read into memory; with
`allowed_hosts` (what `tempovl serve` passes: the loopback names and the address it listens on), a
request whose Host header is not one of them gets 421, so a page on another site cannot read a
token-less local server through DNS rebinding; a Range header whose numbers do not fit a file size
gets 416. Header and body read timeouts are the server's (service_http, what `tempovl serve` runs).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import mimetypes
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from tempovl.errors import InputError
from tempovl.search.searcher import Hit, Searcher
from tempovl.search.service_media import DECODE_ERRORS, ThumbnailBusy, Thumbnails, webvtt
from tempovl.search.service_results import example_queries, group_hits

STATIC_DIR = Path(__file__).parent / "static"
MAX_QUERY_CHARS = 500
MAX_K = 100
MAX_BODY_BYTES = 64 * 1024  # a search request is a few hundred bytes
MAX_BATCH = 32  # queries encoded in one forward pass
MAX_WAITING = 256  # searches queued before 503
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_CHUNK = 1 << 16
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_MAX_RANGE_DIGITS = 18  # more digits than any file size: 416 (int() of 4,300+ digits would raise)


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(default=10, ge=1, le=MAX_K)
    approx: bool | None = None  # None: the searcher's choice

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the query is blank")
        return value


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    """One readable line per problem: "k: Input should be less than or equal to 100"."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _file_response(path: Path, range_header: str | None) -> Response:
    """The whole file (200) or one byte range of it (206); 416 when the range is outside the file."""
    size = path.stat().st_size
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    headers = {"Accept-Ranges": "bytes"}
    if not range_header:
        return FileResponse(path, media_type=media_type, headers=headers)
    m = _RANGE_RE.match(range_header.strip())
    if m is not None and max(len(m.group(1)), len(m.group(2))) > _MAX_RANGE_DIGITS:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}", **headers})
    if m is None or m.group(1) == m.group(2) == "":
        # several ranges or an unknown unit: a server may answer with the whole file
        return FileResponse(path, media_type=media_type, headers=headers)
    first, last = m.group(1), m.group(2)
    if first == "":  # "bytes=-N": the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}", **headers})

    def body():
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(_CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    headers.update({"Content-Range": f"bytes {start}-{end}/{size}", "Content-Length": str(end - start + 1)})
    return StreamingResponse(body(), status_code=206, media_type=media_type, headers=headers)


@dataclass
class _Waiting:
    req: SearchRequest
    request: Request
    future: asyncio.Future


class SearchBatcher:
    """Micro-batching of concurrent searches (module docstring). Lives on the event loop of the app; its
    worker task starts with the first search."""

    def __init__(self, searcher: Searcher, max_batch: int = MAX_BATCH, max_waiting: int = MAX_WAITING):
        self.searcher, self.max_batch, self.max_waiting = searcher, max_batch, max_waiting
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queue: asyncio.Queue[_Waiting] | None = None
        self.worker: asyncio.Task | None = None
        self.batches = self.searched = self.dropped = 0  # what /api/health reports

    def waiting(self) -> int:
        return 0 if self.queue is None else self.queue.qsize()

    async def search(self, req: SearchRequest, request: Request) -> list[Hit]:
        loop = asyncio.get_running_loop()
        if self.loop is not loop or self.worker is None or self.worker.done():
            # the first search on this event loop (a test client may run one loop per request)
            self.loop, self.queue = loop, asyncio.Queue(maxsize=self.max_waiting)
            self.worker = loop.create_task(self._work(self.queue))
        item = _Waiting(req, request, loop.create_future())
        self.queue.put_nowait(item)  # asyncio.QueueFull past max_waiting: the caller answers 503
        return await item.future

    async def _work(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            live = []
            for item in batch:
                if item.future.done() or await item.request.is_disconnected():
                    self.dropped += 1  # the client gave up: no work for it
                    if not item.future.done():
                        item.future.cancel()
                else:
                    live.append(item)
            if not live:
                continue
            queries, ks = [it.req.query for it in live], [it.req.k for it in live]
            approx = [it.req.approx for it in live]
            try:
                results = await loop.run_in_executor(
                    self.pool, self.searcher.search_many, queries, ks, approx
                )
            except Exception as e:  # noqa: BLE001 (handed to each waiting request)
                for it in live:
                    if not it.future.done():
                        it.future.set_exception(e)
                continue
            self.batches += 1
            self.searched += len(live)
            for it, hits in zip(live, results, strict=True):
                if not it.future.done():
                    it.future.set_result(hits)


class _Guard:
    """Host allow-list, body-size limits and the token check, before any route (module docstring).

    A plain ASGI middleware: Starlette's `@app.middleware("http")` wraps every request in an extra task
    and memory streams, which cost about 1 ms of the event loop per search under load."""

    def __init__(self, app, hosts: set[str] | None, token: str | None):
        self.app, self.hosts, self.token = app, hosts, token

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            return await refusal(scope, receive, send)
        return await self.app(scope, receive, send)

    def _refusal(self, scope, headers: dict[str, str]) -> JSONResponse | None:
        host = headers.get("host", "")
        if self.hosts is not None and _host_name(host) not in self.hosts:
            return _error(421, f"host {host!r} is not served here")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return _error(413, f"request body over {MAX_BODY_BYTES} bytes")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return _error(411, "send the body with a Content-Length")
        path = scope["path"]
        if self.token and path.startswith("/api/") and path != "/api/health":
            given = headers.get("authorization", "")
            from_url = ""
            if path.startswith("/api/videos/"):  # the <video> and <img> elements cannot send headers
                query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
                from_url = (query.get("access_token") or [""])[0]
            supplied = given[7:] if given.lower().startswith("bearer ") else from_url
            if not hmac.compare_digest(supplied.encode(), self.token.encode()):
                return JSONResponse(
                    {"error": "missing or wrong API token (send 'Authorization: Bearer TOKEN')"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return None


def _host_name(host_header: str) -> str:
    """The host of a Host header without its port: "127.0.0.1:8000" -> "127.0.0.1", "[::1]:80" -> "::1"."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def create_app(
    index: str | os.PathLike | Searcher,
    token: str | None = None,
    allowed_hosts: list[str] | tuple[str, ...] | None = None,
    max_waiting: int = MAX_WAITING,
) -> FastAPI:
    """The FastAPI app over an index folder (or a ready Searcher, which tests share). `allowed_hosts`:
    the Host header names served (None: any); `max_waiting`: searches queued before 503."""
    searcher = index if isinstance(index, Searcher) else Searcher(index)
    app = FastAPI(title="tempovl search", docs_url=None, redoc_url=None, openapi_url=None)
    batcher = SearchBatcher(searcher, max_waiting=max_waiting)
    thumbnails = Thumbnails()
    hours = round(
        sum(float(v.get("duration") or 0.0) for v in searcher.manifest["videos"].values()) / 3600, 3
    )
    examples: list[str] = []

    def threshold() -> float | None:
        value = searcher.threshold  # calibrated by the index build; None: not known
        return None if value is None else float(value)

    def indexed_file(video_idx: int) -> Path | JSONResponse:
        try:
            path = searcher.video_path(video_idx)
        except IndexError:
            return _error(404, f"no video number {video_idx} in this index ({searcher.num_videos} videos)")
        if not path.is_file():
            return _error(410, f"video {video_idx} was indexed but its file is gone; rebuild the index")
        return path

    hosts = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))  # unknown routes, wrong methods: the one format

    app.add_middleware(_Guard, hosts=hosts, token=token)

    @app.get("/api/health")
    def health() -> dict:
        return {
            "status": "ok",
            "videos": searcher.num_videos,
            "frames": searcher.num_frames,
            "hours": hours,
            "encoder": searcher.manifest["encoder"]["name"],
            "auth": bool(token),
            "token_required": bool(token),
            "threshold": threshold(),
            "searches": {
                "waiting": batcher.waiting(),
                "answered": batcher.searched,
                "batches": batcher.batches,
                "dropped": batcher.dropped,
            },
        }

    @app.get("/api/info")
    def info() -> dict:
        if not examples:
            examples.extend(example_queries(searcher))
        return {
            "videos": searcher.num_videos,
            "frames": searcher.num_frames,
            "hours": hours,
            "encoder": searcher.manifest["encoder"]["name"],
            "threshold": threshold(),
            "examples": examples,
        }

    @app.post("/api/search", response_model=None)
    async def search(req: SearchRequest, request: Request) -> Response:
        started = time.perf_counter()
        try:
            hits = await batcher.search(req, request)
        except asyncio.QueueFull:
            return JSONResponse(
                {"error": f"busy: {max_waiting} searches are waiting; retry shortly"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        except InputError as e:
            return _error(400, str(e))
        out = [{**h.to_dict(), "url": f"/api/videos/{h.video_idx}"} for h in hits]
        groups = group_hits(out)  # reads the file names from "path"
        for d in out:
            d.pop("path")  # the server's file layout is not the client's business
        took_ms = round(1000 * (time.perf_counter() - started), 2)
        limit = threshold()
        relevant = None if limit is None else bool(hits) and max(h.video_score for h in hits) >= limit
        body = {
            "query": req.query,
            "k": req.k,
            "took_ms": took_ms,
            "threshold": limit,
            "relevant": relevant,
            "hits": out,
            "groups": groups,
        }
        # plain JSON: FastAPI's jsonable_encoder walks every nested value and costs ~8x json.dumps here
        return Response(json.dumps(body), media_type="application/json")

    @app.get("/api/videos/{video_idx}")
    def video(video_idx: int, request: Request) -> Response:
        path = indexed_file(video_idx)
        if isinstance(path, Response):
            return path
        return _file_response(path, request.headers.get("range"))

    @app.get("/api/videos/{video_idx}/thumbnail")
    async def thumbnail(video_idx: int, t: float = 0.0) -> Response:
        path = indexed_file(video_idx)
        if isinstance(path, Response):
            return path
        if not math.isfinite(t):
            return _error(422, f"t: a time in seconds, got {t}")
        duration = float(searcher.manifest["videos"][searcher.data.video_ids[video_idx]]["duration"])
        try:
            jpeg = await thumbnails.get(path, t, duration)
        except ThumbnailBusy:
            return JSONResponse(
                {"error": "busy: too many thumbnails are waiting; retry shortly"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        except DECODE_ERRORS as e:
            return _error(422, f"video {video_idx}: no frame could be decoded at {t} s ({e})")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/videos/{video_idx}/captions.vtt")
    def captions(video_idx: int) -> Response:
        if not 0 <= video_idx < searcher.num_videos:
            return _error(404, f"no video number {video_idx} in this index ({searcher.num_videos} videos)")
        subs = searcher.subtitles(searcher.data.video_ids[video_idx])
        return Response(webvtt(subs), media_type="text/vtt; charset=utf-8")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
