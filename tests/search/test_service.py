"""The HTTP service, in-process (TestClient) and on a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from tempovl.cli import main
from tempovl.search.searcher import video_recall
from tempovl.search.service import create_app


@pytest.fixture(scope="module")
def client(searcher):
    return TestClient(create_app(searcher))


@pytest.fixture(scope="module")
def token_client(searcher):
    return TestClient(create_app(searcher, token="s3cret"))


def test_health_and_page(client, searcher):
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert {k: v for k, v in body.items() if k != "searches"} == {
        "status": "ok",
        "videos": 18,
        "frames": searcher.num_frames,
        "hours": round(sum(v["duration"] for v in searcher.manifest["videos"].values()) / 3600, 3),
        "encoder": "subtitle-minilm",
        "auth": False,
        "token_required": False,
        "threshold": getattr(searcher, "threshold", None),
    }
    assert set(body["searches"]) == {"waiting", "answered", "batches", "dropped"}
    page = client.get("/")
    assert page.status_code == 200 and 'id="query"' in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert "http" not in client.get("/static/style.css").text  # nothing from a CDN


def test_search_endpoint(client, searcher):
    r = client.post("/api/search", json={"query": "Eve says she feels sad", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["k"] == 3 and len(body["hits"]) == 3 and body["took_ms"] >= 0
    hit = body["hits"][0]
    assert hit["video"] == "tv00001" and hit["url"] == f"/api/videos/{hit['video_idx']}" and "path" not in hit
    expected = [h.to_dict() for h in searcher.search("Eve says she feels sad", k=3)]
    assert [(h["video"], h["start"], h["end"]) for h in body["hits"]] == [
        (h["video"], h["start"], h["end"]) for h in expected
    ]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"query": "", "k": 5}, "query: String should have at least 1 character"),
        ({"query": "   ", "k": 5}, "query: Value error, the query is blank"),
        ({"query": "x" * 501}, "query: String should have at most 500 characters"),
        ({"query": "hello", "k": 0}, "k: Input should be greater than or equal to 1"),
        ({"query": "hello", "k": 101}, "k: Input should be less than or equal to 100"),
        ({"query": "hello", "k": "many"}, "k: Input should be a valid integer"),
        ({"k": 3}, "query: Field required"),
    ],
)
def test_bad_search_requests(client, payload, message):
    r = client.post("/api/search", json=payload)
    assert r.status_code == 422
    assert r.json()["error"].startswith(message)


def test_not_json_is_a_4xx(client):
    r = client.post("/api/search", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "error" in r.json()


def test_video_ranges(client, searcher):
    data = searcher.video_path(3).read_bytes()
    full = client.get("/api/videos/3")
    assert full.status_code == 200 and full.content == data and full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-type"] == "video/mp4"
    part = client.get("/api/videos/3", headers={"Range": "bytes=100-299"})
    assert part.status_code == 206 and part.content == data[100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{len(data)}"
    tail = client.get("/api/videos/3", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == data[-50:]
    open_end = client.get("/api/videos/3", headers={"Range": f"bytes={len(data) - 10}-"})
    assert open_end.content == data[-10:]
    past = client.get("/api/videos/3", headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize(
    "url",
    [
        "/api/videos/18",
        "/api/videos/-1",
        "/api/videos/../manifest.json",
        "/api/videos/..%2F..%2Fmanifest.json",
        "/api/videos/%2e%2e/%2e%2e/etc/passwd",
        "/api/videos/tv00000",
        "/static/../manifest.json",
        "/static/..%2F..%2Fsearch%2Findex.py",
        "/manifest.json",
    ],
)
def test_nothing_outside_the_index_is_served(client, url):
    r = client.get(url)
    assert r.status_code in (404, 422), (url, r.status_code)
    assert b"encoder" not in r.content and b"import" not in r.content


def test_token(token_client):
    assert token_client.get("/api/health").status_code == 200  # health stays open
    r = token_client.post("/api/search", json={"query": "hello"})
    assert r.status_code == 401 and "API token" in r.json()["error"]
    bad = token_client.post("/api/search", json={"query": "hello"}, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    ok = token_client.post(
        "/api/search", json={"query": "hello", "k": 2}, headers={"Authorization": "Bearer s3cret"}
    )
    assert ok.status_code == 200 and len(ok.json()["hits"]) == 2
    assert token_client.get("/api/videos/0").status_code == 401
    assert token_client.get("/api/videos/0?access_token=s3cret").status_code == 200
    # a token in a URL (logs, history, Referer) opens the video route only, never the search API
    in_url = token_client.post("/api/search?access_token=s3cret", json={"query": "hello"})
    assert in_url.status_code == 401


def test_every_4xx_is_one_json_error_format(client):
    for r in (
        client.get("/api/nope"),
        client.delete("/api/search"),
        client.post("/api/search", content=b"{not json", headers={"Content-Type": "application/json"}),
    ):
        assert 400 <= r.status_code < 500 and set(r.json()) == {"error"}, (r.status_code, r.text)


def test_oversized_bodies_and_ranges_are_refused(client, searcher):
    big = client.post("/api/search", content=b"x" * 200_000, headers={"Content-Type": "application/json"})
    assert big.status_code == 413 and "body over" in big.json()["error"]
    size = searcher.video_path(3).stat().st_size
    huge = client.get("/api/videos/3", headers={"Range": "bytes=" + "9" * 4400 + "-"})
    assert huge.status_code == 416 and huge.headers["content-range"] == f"bytes */{size}"


def test_only_the_allowed_host_names_are_answered(searcher):
    """DNS rebinding: a page on evil.example resolving its name to 127.0.0.1 must not read the server."""
    local = TestClient(create_app(searcher, allowed_hosts=["127.0.0.1", "localhost", "::1"]))
    assert local.get("/api/health", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    assert local.get("/api/health", headers={"Host": "[::1]:8000"}).status_code == 200
    evil = local.get("/api/health", headers={"Host": "evil.example:8000"})
    assert evil.status_code == 421 and "not served here" in evil.json()["error"]


def test_real_server(live_server, live_server_token, searcher, spoken_line):
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        assert http.get("/api/health").json()["videos"] == 18
        hits = http.post("/api/search", json={"query": spoken_line["text"], "k": 5}).json()["hits"]
        assert hits[0]["video"] == spoken_line["vid"]
        data = searcher.video_path(hits[0]["video_idx"]).read_bytes()
        part = http.get(hits[0]["url"], headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == data[:100]
        assert http.get("/api/videos/..%2Fmanifest.json").status_code == 404
        assert http.post("/api/search", json={"query": "hi", "k": 1000}).status_code == 422
    with httpx.Client(base_url=live_server_token.url, timeout=30) as http:
        assert http.post("/api/search", json={"query": "hi"}).status_code == 401
        authed = http.post("/api/search", json={"query": "hi"}, headers={"Authorization": "Bearer s3cret"})
        assert authed.status_code == 200


def test_recall_through_http_and_cli_agree(
    live_server, search_index, tiny_corpus, tvr_queries, capsys, tmp_path
):
    """R@10 of every TVR query of the tiny corpus: the same numbers through the CLI and over HTTP."""
    queries = tmp_path / "tvr_all.jsonl"
    queries.write_text("".join(json.dumps(q) + "\n" for q in tvr_queries), encoding="utf-8")
    assert main(["search", str(search_index), "--queries", str(queries), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        ranked = {}
        for q in tvr_queries:
            hits = http.post("/api/search", json={"query": q["desc"], "k": 100}).json()["hits"]
            ranked[q["desc_id"]] = list(dict.fromkeys(h["video"] for h in hits))
    http_recall = video_recall(ranked, tvr_queries, ks=(1, 5, 10, 100))
    assert http_recall == cli["video_recall"]
    assert {str(k): v[:10] for k, v in ranked.items()} == {k: v[:10] for k, v in cli["ranked_videos"].items()}
    print(f"R@K over {len(tvr_queries)} queries (CLI == HTTP): {http_recall}")


@pytest.mark.slow
def test_load_500_queries_8_at_a_time(live_server, tvr_queries):
    texts = [q["desc"] for q in tvr_queries]
    with httpx.Client(base_url=live_server.url, timeout=60, limits=httpx.Limits(max_connections=8)) as http:

        def one(i: int) -> int:
            r = http.post("/api/search", json={"query": texts[i % len(texts)], "k": 10})
            return r.status_code if r.status_code != 200 or len(r.json()["hits"]) == 10 else -1

        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(one, range(500)))
    assert codes.count(200) == 500, {c: codes.count(c) for c in set(codes)}


class _SlowEncoder:
    """The searcher's encoder, counting its calls and taking `delay` seconds per call."""

    def __init__(self, inner, delay: float):
        self.inner, self.delay, self.calls = inner, delay, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode_query(self, texts):
        import time

        self.calls.append(len(texts))
        time.sleep(self.delay)
        return self.inner.encode_query(texts)


async def _concurrent(app, payloads):
    import asyncio

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        return await asyncio.gather(*(c.post("/api/search", json=p) for p in payloads))


def test_concurrent_searches_are_batched_and_answer_as_alone(searcher, monkeypatch):
    import asyncio

    queries = [f"{w} the box" for w in ("open", "close", "find", "move", "hide", "take", "drop", "lift")]
    alone = {q: [h.to_dict()["video"] for h in searcher.search(q, k=3)] for q in queries}
    slow = _SlowEncoder(searcher.encoder, 0.05)
    monkeypatch.setattr(searcher, "encoder", slow)
    app = create_app(searcher)
    replies = asyncio.run(_concurrent(app, [{"query": q, "k": 3} for q in queries]))
    assert all(r.status_code == 200 for r in replies)
    assert {r.json()["query"]: [h["video"] for h in r.json()["hits"]] for r in replies} == alone
    assert len(slow.calls) < len(queries) and sum(slow.calls) == len(queries)  # fewer passes than queries


def test_a_full_queue_answers_503_with_retry_after(searcher, monkeypatch):
    import asyncio

    monkeypatch.setattr(searcher, "encoder", _SlowEncoder(searcher.encoder, 0.2))
    app = create_app(searcher, max_waiting=2)
    replies = asyncio.run(_concurrent(app, [{"query": f"q{i}", "k": 1} for i in range(12)]))
    codes = sorted(r.status_code for r in replies)
    assert 200 in codes and 503 in codes and set(codes) <= {200, 503}, codes
    busy = next(r for r in replies if r.status_code == 503)
    assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]


def test_serve_on_a_busy_port_says_so_before_claiming_to_serve(search_index, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(search_index), "--port", str(port)]) == 2
    out = capsys.readouterr()
    assert "serving" not in out.out and f"cannot listen on 127.0.0.1:{port}" in out.err


def test_results_are_grouped_by_video(client, searcher):
    """One group per video, best first; no two moments of a video overlap or show only the same lines;
    every hit is shown or counted as folded into a shown moment of its video."""
    body = client.post("/api/search", json={"query": "Eve says she feels sad", "k": 30}).json()
    hits, groups = body["hits"], body["groups"]
    assert [g["video"] for g in groups] == list(dict.fromkeys(h["video"] for h in hits))
    assert sum(1 + len(g["more"]) + g["folded"] for g in groups) == len(hits) == 30
    assert sum(g["folded"] for g in groups) > 0  # the nested spans of this query are folded
    for g in groups:
        moments = [g["best"], *g["more"]]
        assert g["best"]["score"] == max(h["score"] for h in hits if h["video"] == g["video"])
        assert g["file"] == searcher.video_path(g["video_idx"]).name
        assert g["relevance"] == round(100 * min(max(g["video_score"], 0), 1))
        for i, a in enumerate(moments):
            assert a["thumbnail"].startswith(f"/api/videos/{g['video_idx']}/thumbnail?t=")
            assert a["line"]["text"] in {s["text"] for s in searcher.subtitles(g["video"])}
            for b in moments[i + 1 :]:
                assert a["end"] <= b["start"] or b["end"] <= a["start"], (g["video"], a, b)
    lines = [(g["video"], m["line"]["start"]) for g in groups for m in [g["best"], *g["more"]]]
    assert len(lines) == len(set(lines))  # no two cards of a video on the same subtitle line


def test_nothing_relevant_against_the_calibrated_threshold(client, searcher, spoken_line, monkeypatch):
    plain = client.post("/api/search", json={"query": "zxqv blorf", "k": 5}).json()
    if getattr(searcher, "threshold", None) is None:
        assert plain["threshold"] is None and plain["relevant"] is None
    monkeypatch.setattr(searcher, "threshold", 0.4, raising=False)
    assert client.get("/api/health").json()["threshold"] == 0.4
    nonsense = client.post("/api/search", json={"query": "zxqv blorf", "k": 5}).json()
    assert nonsense["threshold"] == 0.4 and nonsense["relevant"] is False and nonsense["hits"]
    said = client.post("/api/search", json={"query": spoken_line["text"], "k": 5}).json()
    assert said["relevant"] is True and said["hits"][0]["video_score"] >= 0.4


def test_info_gives_example_queries_from_the_subtitles(client, token_client, searcher):
    info = client.get("/api/info").json()
    assert client.get("/api/info").json() == info  # deterministic
    said = {s["text"] for vid in searcher.data.video_ids for s in searcher.subtitles(vid)}
    assert len(info["examples"]) == 4 and set(info["examples"]) <= said
    assert {k: info[k] for k in ("videos", "frames", "encoder")} == {
        "videos": 18,
        "frames": searcher.num_frames,
        "encoder": "subtitle-minilm",
    }
    assert token_client.get("/api/info").status_code == 401  # subtitle lines are the index's content
    assert token_client.get("/api/health").json()["token_required"] is True


def _frames_rgb(path) -> list:
    """Every frame of a video as (start time, float32 RGB), decoded here independently of the service."""
    import av
    import numpy as np

    with av.open(str(path)) as c:
        return [(f.time, f.to_ndarray(format="rgb24").astype(np.float32)) for f in c.decode(video=0)]


def test_thumbnail_is_the_frame_at_the_moment(client, token_client, searcher):
    import io

    import numpy as np
    from PIL import Image

    frames = _frames_rgb(searcher.video_path(3))
    duration = searcher.manifest["videos"][searcher.data.video_ids[3]]["duration"]
    for t, shown_t in ((5.3, 5.3), (12.0, 12.0), (-5, 0.0), (1e9, duration)):
        r = client.get(f"/api/videos/3/thumbnail?t={t}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg", (t, r.text[:200])
        image = Image.open(io.BytesIO(r.content))
        assert image.format == "JPEG" and image.size == (64, 64)  # 320 px wide at most, never enlarged
        got = np.asarray(image.convert("RGB"), dtype=np.float32)
        want = [img for start, img in frames if start <= shown_t + 1e-6][-1]  # the frame on screen at t
        closest = min(frames, key=lambda f: abs(got - f[1]).mean())[1]
        assert abs(closest - want).mean() < 0.5, t  # the JPEG is nearest to that frame (or its twin)
    assert client.get("/api/videos/3/thumbnail?t=nan").status_code == 422
    assert client.get("/api/videos/99/thumbnail?t=1").status_code == 404
    assert token_client.get("/api/videos/3/thumbnail?t=1").status_code == 401
    assert token_client.get("/api/videos/3/thumbnail?t=1&access_token=s3cret").status_code == 200


def test_thumbnails_decode_off_the_search_path(searcher, monkeypatch):
    """A slow thumbnail does not hold a search up: they run on different threads."""
    import asyncio
    import time

    from tempovl.search import service_media

    real = service_media.thumbnail_jpeg

    def slow(path, t, *args):
        time.sleep(1.5)
        return real(path, t, *args)

    monkeypatch.setattr(service_media, "thumbnail_jpeg", slow)
    app = create_app(searcher)

    async def both():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            started = time.perf_counter()

            async def timed(coro):
                r = await coro
                return r.status_code, time.perf_counter() - started

            thumb = asyncio.create_task(timed(c.get("/api/videos/2/thumbnail?t=3.3")))
            await asyncio.sleep(0.05)
            search = await timed(c.post("/api/search", json={"query": "hello there", "k": 3}))
            return search, await thumb

    (search_code, search_s), (thumb_code, thumb_s) = asyncio.run(both())
    assert search_code == 200 and thumb_code == 200
    assert search_s < 1.0 < thumb_s, (search_s, thumb_s)


def test_captions_are_the_indexed_subtitles_as_webvtt(client, token_client, searcher):
    vid = searcher.data.video_ids[1]
    subs = searcher.subtitles(vid)
    r = client.get("/api/videos/1/captions.vtt")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/vtt")
    assert r.text.startswith("WEBVTT\n\n")
    cues = [c for c in r.text.split("\n\n")[1:] if c.strip()]
    assert len(cues) == len(subs)
    first = cues[0].splitlines()
    assert first[1] == f"00:00:{subs[0]['start']:06.3f} --> 00:00:{subs[0]['end']:06.3f}"
    assert subs[0]["text"] in first[2]
    assert client.get("/api/videos/18/captions.vtt").status_code == 404
    assert token_client.get("/api/videos/1/captions.vtt").status_code == 401
    assert token_client.get("/api/videos/1/captions.vtt?access_token=s3cret").status_code == 200


def test_webvtt_escapes_cue_text():
    from tempovl.search.service_media import webvtt

    vtt = webvtt(
        [
            {
                "start": 0.5,
                "end": 2.0,
                "text": "a <b>bold</b> & --> arrow\n\n\nsecond line",
                "speaker": "A<B",
            },
            {"start": 3.0, "end": 3.0, "text": "zero length", "speaker": None},
            {"start": 3661.25, "end": 3662.0, "text": "late", "speaker": None},
        ]
    )
    assert vtt == (
        "WEBVTT\n\n1\n00:00:00.500 --> 00:00:02.000\n"
        "<v A&lt;B>a &lt;b&gt;bold&lt;/b&gt; &amp; --&gt; arrow\nsecond line</v>\n\n"
        "3\n01:01:01.250 --> 01:01:02.000\nlate\n"
    )


def _read_until_closed(sock, limit_s: float) -> tuple[bytes, float]:
    import time

    sock.settimeout(limit_s)
    started, out = time.monotonic(), b""
    while True:
        chunk = sock.recv(4096)  # socket.timeout past limit_s: the server held the connection
        if not chunk:
            return out, time.monotonic() - started
        out += chunk


def test_stalled_clients_are_cut_off(searcher, live_server_factory):
    """Half a request head, or a Content-Length and then part of the body: 408 and closed after the
    configured read timeout (1 s here), not held."""
    import socket
    import time

    server = live_server_factory(create_app(searcher), header_timeout=1.0, body_timeout=1.0)
    head = f"Host: 127.0.0.1:{server.port}\r\n"
    for sent, what in (
        (b"", None),  # connects and says nothing
        (f"GET /api/health HTTP/1.1\r\n{head}".encode(), "head"),
        (
            f"POST /api/search HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
            'Content-Length: 100\r\n\r\n{"query": '.encode(),
            "body",
        ),
    ):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(sent)
            reply, took = _read_until_closed(sock, 10)
        assert took < 4, (what, took)
        if what is None:
            assert reply == b""
        else:
            assert reply.startswith(b"HTTP/1.1 408 ") and f"request {what} did not arrive".encode() in reply
    # a client that is merely slow within the limit is served, and its connection kept
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\n")
        time.sleep(0.4)
        sock.sendall(head.encode() + b"\r\n")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        with httpx.Client(base_url=server.url, timeout=10) as http:  # a search slower than 1 s is not cut
            assert http.post("/api/search", json={"query": "hello", "k": 100}).status_code == 200


def test_serve_runs_with_read_timeouts(search_index, monkeypatch):
    import uvicorn

    from tempovl.search.service_http import TimedH11Protocol

    seen = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **kw: seen.setdefault("config", self.config))
    argv = ["serve", str(search_index), "--port", "0", "--header-timeout", "2.5", "--body-timeout", "7"]
    assert main(argv) == 0  # the server's run() is replaced: only its configuration is looked at
    protocol = seen["config"].http
    assert issubclass(protocol, TimedH11Protocol)
    assert (protocol.header_timeout, protocol.body_timeout) == (2.5, 7.0)
    assert main(["serve", str(search_index), "--header-timeout", "0"]) == 2
