"""The HTTP service (FastAPI): JSON search, health, the indexed video files, and the web page.

    GET  /                 the search page (tempovl/search/static, no build step, nothing from a CDN)
    GET  /api/health       {"status": "ok", "videos", "frames", "encoder"}
    POST /api/search       {"query": str, "k": int = 10, "approx": bool = false} -> {"query", "k",
                           "took_ms", "hits": [Hit..., each with "url" of its video]}
    GET  /api/videos/{n}   the n-th indexed video file, with HTTP Range requests (206 + Content-Range)

Video files are reached only by their number in the index; no part of a URL is ever resolved as a
path on disk, so nothing outside the indexed files can be read. With a token, every /api route
except health needs "Authorization: Bearer TOKEN" (the page's <video> elements, which cannot send
headers, pass it as ?access_token=TOKEN instead). Bad requests get 4xx with {"error": message}.
"""

from __future__ import annotations

import hmac
import mimetypes
import os
import re
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, field_validator

from tempovl.search.searcher import Searcher

STATIC_DIR = Path(__file__).parent / "static"
MAX_QUERY_CHARS = 500
MAX_K = 100
_CHUNK = 1 << 16
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(default=10, ge=1, le=MAX_K)
    approx: bool = False

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


def create_app(index: str | os.PathLike | Searcher, token: str | None = None) -> FastAPI:
    """The FastAPI app over an index folder (or a ready Searcher, which tests share)."""
    searcher = index if isinstance(index, Searcher) else Searcher(index)
    app = FastAPI(title="tempovl search", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_message(exc))

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        path = request.url.path
        if token and path.startswith("/api/") and path != "/api/health":
            given = request.headers.get("authorization", "")
            supplied = (
                given[7:]
                if given.lower().startswith("bearer ")
                else request.query_params.get("access_token", "")
            )
            if not hmac.compare_digest(supplied.encode(), token.encode()):
                return JSONResponse(
                    {"error": "missing or wrong API token (send 'Authorization: Bearer TOKEN')"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    @app.get("/api/health")
    def health() -> dict:
        return {
            "status": "ok",
            "videos": searcher.num_videos,
            "frames": searcher.num_frames,
            "encoder": searcher.manifest["encoder"]["name"],
            "auth": bool(token),
        }

    @app.post("/api/search")
    def search(req: SearchRequest) -> dict:
        started = time.perf_counter()
        hits = searcher.search(req.query, k=req.k, approx=req.approx)
        out = []
        for h in hits:
            d = h.to_dict()
            d.pop("path")  # the server's file layout is not the client's business
            d["url"] = f"/api/videos/{h.video_idx}"
            out.append(d)
        took_ms = round(1000 * (time.perf_counter() - started), 2)
        return {"query": req.query, "k": req.k, "took_ms": took_ms, "hits": out}

    @app.get("/api/videos/{video_idx}")
    def video(video_idx: int, request: Request) -> Response:
        try:
            path = searcher.video_path(video_idx)
        except IndexError:
            return _error(404, f"no video number {video_idx} in this index ({searcher.num_videos} videos)")
        if not path.is_file():
            return _error(410, f"video {video_idx} was indexed but its file is gone; rebuild the index")
        return _file_response(path, request.headers.get("range"))

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
