"""Shared fixtures for the search tests: one sentence model, one index of the tiny corpus, one server."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tempovl.io import read_jsonl


class CountingEncoder:
    """Wraps an encoder and counts `encode_video` calls; raises `fail_with` on call number `fail_at`."""

    def __init__(self, inner, fail_at: int | None = None, fail_with: BaseException | None = None):
        self.inner, self.calls, self.fail_at, self.fail_with = inner, [], fail_at, fail_with
        self.name, self.dim, self.spec, self.fingerprint = (
            inner.name,
            inner.dim,
            inner.spec,
            inner.fingerprint,
        )

    def encode_video(self, video_path, subtitles):
        if self.fail_at is not None and len(self.calls) + 1 == self.fail_at:
            raise self.fail_with
        self.calls.append(str(video_path))
        return self.inner.encode_video(video_path, subtitles)

    def encode_query(self, texts):
        return self.inner.encode_query(texts)

    def localize(self, query_vec, frame_embs):
        return self.inner.localize(query_vec, frame_embs)


@pytest.fixture(scope="session")
def encoder():
    from tempovl.search.encoders import SubtitleEncoder

    return SubtitleEncoder()


@pytest.fixture(scope="session")
def search_index(tiny_corpus, encoder, tmp_path_factory):
    """An index of every video of the tiny corpus, built with the subtitle-only baseline."""
    from tempovl.search.index import build_index

    out = tmp_path_factory.mktemp("search") / "index"
    build_index(
        [tiny_corpus / "videos"], out, encoder, subtitles_dir=tiny_corpus / "subtitles", progress=False
    )
    return out


@pytest.fixture(scope="session")
def searcher(search_index, encoder):
    from tempovl.search.searcher import Searcher

    return Searcher(search_index, encoder=encoder)


@pytest.fixture(scope="session")
def spoken_line(tiny_corpus) -> dict:
    """A subtitle line (>= 4 words) said in exactly one video of the tiny corpus:
    {"vid", "text", "speaker", "start", "end"}. Tests search for it and expect its video first."""
    from tempovl.data.subtitles import read_srt

    said: dict[str, list[dict]] = {}
    for srt in sorted((tiny_corpus / "subtitles").glob("*.srt")):
        for s in read_srt(srt):
            said.setdefault(s.text, []).append(
                {"vid": srt.stem, "text": s.text, "speaker": s.speaker, "start": s.start, "end": s.end}
            )
    return min(
        (v[0] for v in said.values() if len(v) == 1 and len(v[0]["text"].split()) >= 4),
        key=lambda r: r["text"],
    )


@pytest.fixture(scope="session")
def tvr_queries(tiny_corpus):
    """Every TVR query of the tiny corpus (train + val + test)."""
    return [
        q
        for split in ("train", "val", "test")
        for q in read_jsonl(tiny_corpus / "annotations" / f"tvr_{split}.jsonl")
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A real uvicorn server on 127.0.0.1 in a background thread, stopped by `stop()`; configured as
    `tempovl serve` configures it (`timeouts`: header_timeout / body_timeout in seconds)."""

    def __init__(self, app, **timeouts):
        import uvicorn

        from tempovl.search.service_http import server_config

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = server_config(app, "127.0.0.1", self.port, access_log=False, **timeouts)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(searcher):
    from tempovl.search.service import create_app

    server = LiveServer(create_app(searcher))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_server_token(searcher):
    from tempovl.search.service import create_app

    server = LiveServer(create_app(searcher, token="s3cret"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def live_server_factory():
    """Start more live servers (`factory(app, **timeouts)`); all are stopped at the end of the session."""
    servers = []

    def start(app, **timeouts) -> LiveServer:
        servers.append(LiveServer(app, **timeouts))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def counting():
    """The CountingEncoder class (conftest modules are not importable by name)."""
    return CountingEncoder
