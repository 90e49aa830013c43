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
        "encoder": "subtitle-minilm",
        "auth": False,
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
