"""Search results: well-formed, deterministic, and good enough on subtitle-only queries; the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tempovl.cli import main
from tempovl.errors import ConfigError, InputError
from tempovl.search.searcher import Searcher, tvr_submission, video_recall


def test_hits_are_well_formed(searcher, spoken_line):
    hits = searcher.search(spoken_line["text"], k=10)
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1)) and len(hits) == 10
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    for h in hits:
        assert 0.0 <= h.start < h.end <= h.duration + 1e-6
        assert h.end - h.start <= searcher.max_moment_s + 1e-6
        assert h.video == searcher.data.video_ids[h.video_idx]
        assert str(searcher.video_path(h.video_idx)) == h.path
    top = hits[0]
    line = spoken_line
    assert top.video == line["vid"] and top.start <= line["start"] + 1.5 and top.end >= line["end"] - 1.5
    assert any(s["text"] == line["text"] for s in top.subtitles)


def test_search_is_deterministic(searcher, search_index, encoder):
    a = [h.to_dict() for h in searcher.search("someone asks Bob a question", k=20)]
    b = [h.to_dict() for h in searcher.search("someone asks Bob a question", k=20)]
    c = [
        h.to_dict()
        for h in Searcher(search_index, encoder=encoder).search("someone asks Bob a question", k=20)
    ]
    assert a == b == c


def test_no_two_hits_overlap_more_than_nms_allows(searcher):
    from tempovl.metrics.moment import temporal_iou

    hits = searcher.search("Eve says she feels sad", k=30)
    for i, h in enumerate(hits):
        for g in hits[:i]:
            if g.video == h.video:
                assert temporal_iou([[g.start, g.end]], [[h.start, h.end]])[0, 0] <= 0.5 + 1e-9


def test_subtitle_queries_find_their_video(searcher, tvr_queries):
    """The t-type (dialogue-only) queries: R@10 must be perfect and R@1 far above chance. A query whose
    exact text is also a query of another video (e.g. "someone says they have just come in") names no
    single video and is left out."""
    videos_of: dict[str, set[str]] = {}
    for q in tvr_queries:
        videos_of.setdefault(q["desc"], set()).add(q["vid_name"])
    t_queries = [q for q in tvr_queries if q["type"] == "t" and len(videos_of[q["desc"]]) == 1]
    assert len(t_queries) >= 3
    ranked = {q["desc_id"]: searcher.search(q["desc"], k=10) for q in t_queries}
    recall = video_recall(ranked, t_queries, ks=(1, 10))
    chance_r1 = 100.0 / searcher.num_videos  # 18 videos: 5.6 %
    assert recall["r10"] == 100.0
    assert recall["r1"] >= 50.0 > 5 * chance_r1


def test_exact_and_approximate_agree_on_a_small_index(searcher, tvr_queries):
    for q in tvr_queries[:5]:
        exact = searcher.search(q["desc"], k=5)
        approx = searcher.search(q["desc"], k=5, approx=True)
        assert [h.video for h in exact] == [h.video for h in approx]


def test_video_scores_are_the_max_over_frames(searcher):
    q = searcher.encoder.encode_query(["Grace says she feels excited"])[0]
    videos, scores = searcher.video_scores(q)
    brute = np.array([(searcher.data.video_embs(v) @ q).max() for v in range(searcher.num_videos)])
    np.testing.assert_allclose(scores, np.sort(brute)[::-1][: len(scores)], atol=1e-5)
    assert int(videos[0]) == int(np.argmax(brute))


def test_bad_queries(searcher):
    with pytest.raises(InputError, match="empty"):
        searcher.search("   ")
    with pytest.raises(InputError, match="k must be"):
        searcher.search("hello", k=0)


def test_tvr_submission_scores_with_the_official_eval(searcher, tvr_queries):
    from tempovl.metrics.moment import eval_tvr

    metrics = eval_tvr(tvr_submission(searcher, tvr_queries, k=100), tvr_queries)
    assert metrics["VR_by_type"]["t-r10"] == 100.0
    assert metrics["VCMR_by_type"]["t-0.5-r10"] >= 50.0


def test_cli_table_and_json(search_index, capsys):
    assert main(["search", str(search_index), "Eve says she feels sad", "-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["rank", "video", "start", "end", "score"]
    assert len(lines) == 4 and lines[1].split()[:2] == ["1", "tv00001"]
    assert main(["search", str(search_index), "Eve says she feels sad", "-k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [h["rank"] for h in out["hits"]] == [1, 2] and out["hits"][0]["video"] == "tv00001"


def test_cli_errors(tmp_path, search_index, capsys):
    assert main(["search", str(tmp_path), "hello"]) == 2
    assert "not a search index" in capsys.readouterr().err
    assert main(["search", str(search_index), "hello", "-k", "0"]) == 2
    assert "-k must be >= 1" in capsys.readouterr().err


def test_cli_index_build_and_info(tiny_corpus, tmp_path, capsys):
    out = tmp_path / "idx"
    code = main(
        [
            "index",
            "build",
            str(tiny_corpus / "videos" / "tv00004.mp4"),
            str(out),
            "--model",
            "subtitle",
            "--subtitles",
            str(tiny_corpus / "subtitles"),
            "--no-progress",
            "--approx",
            "ivf",
        ]
    )
    assert code == 0 and "1 added" in capsys.readouterr().out
    assert main(["index", "info", str(out)]) == 0
    assert (
        "1 videos, 20 frames, encoder subtitle-minilm (dim 384), IVF1-HNSW-SQ8 over 20 frames"
        in capsys.readouterr().out
    )


class FixedProbs:
    """Wraps an index's encoder; `localize` gives fixed random start/end probabilities per video length,
    and `span_frames` is a HERO task's span-length window (as HeroEncoder exposes it)."""

    def __init__(self, inner, span_frames=None):
        self.inner, self.span_frames = inner, span_frames
        self.name, self.dim, self.spec, self.fingerprint = (
            inner.name,
            inner.dim,
            inner.spec,
            inner.fingerprint,
        )

    def encode_query(self, texts):
        return self.inner.encode_query(texts)

    def localize(self, query_vec, frame_embs):
        rng = np.random.default_rng(len(frame_embs))
        st, ed = rng.random(len(frame_embs)), rng.random(len(frame_embs))
        return st / st.sum(), ed / ed.sum()


@pytest.mark.parametrize("window", [(2, 16), (0, 5)])
def test_search_decodes_moments_as_evaluate(search_index, encoder, window):
    """Same probabilities -> the same spans, in the same order, as the evaluation decoder (issue 14)."""
    import torch

    from tempovl.tasks.hero import moments as hm

    fixed = FixedProbs(encoder, span_frames=window)
    searcher = Searcher(search_index, encoder=fixed, per_video=50)
    assert (searcher.min_span_frames, searcher.max_span_frames) == window
    query = encoder.encode_query(["someone asks Bob a question"])[0]
    videos = [0, 1, 2, searcher.num_videos - 1]
    assert len({len(searcher.data.video_spans(v)) for v in videos}) > 1  # decoded together, padded
    together = [row for rows in searcher._moments([(query, v, 0.0) for v in videos]) for row in rows]
    for video in videos:
        spans = searcher.data.video_spans(video)
        rows = [r for r in together if r[0] == video]
        st, ed = (torch.as_tensor(p)[None, None] for p in fixed.localize(query, spans))  # (1, 1, T)
        scores, _, si, ei = hm.top_spans(st, ed, *window, 50)  # as evaluate
        assert [(r[1], r[2]) for r in rows] == [
            (float(spans[i, 0]), float(spans[j, 1])) for i, j in zip(si[0].tolist(), ei[0].tolist())
        ]
        np.testing.assert_allclose([math.exp(20.0 * r[3]) for r in rows], scores[0].numpy(), rtol=1e-9)
        assert all(window[0] <= j - i < window[1] for i, j in zip(si[0].tolist(), ei[0].tolist()))


def test_search_window_defaults_and_bad_windows(search_index, encoder):
    searcher = Searcher(search_index, encoder=encoder, max_moment_s=30.0)
    assert (searcher.min_span_frames, searcher.max_span_frames) == (0, 20)  # single frames .. 30 s of 1.5 s
    capped = Searcher(search_index, encoder=FixedProbs(encoder, (2, 16)), max_moment_s=6.0)
    assert (capped.min_span_frames, capped.max_span_frames) == (2, 4)  # 6 s = 4 frames
    with pytest.raises(ConfigError, match="span-length window"):
        Searcher(search_index, encoder=FixedProbs(encoder, (2, 16)), max_moment_s=3.0)


def test_relevance_threshold_is_calibrated_on_nonsense(searcher, spoken_line):
    """index build records the 95th percentile of nonsense queries' best video scores; a spoken line
    of the corpus scores above it, and about 5 % of the nonsense does."""
    from tempovl.search.index import null_queries

    assert searcher.threshold is not None
    assert searcher.manifest["relevance"]["revision"] == searcher.manifest["revision"]
    assert searcher.search(spoken_line["text"], k=1)[0].video_score > searcher.threshold
    best = [searcher.video_scores(v)[1][0] for v in searcher.encoder.encode_query(null_queries())]
    assert 0.0 < np.mean(np.asarray(best) >= searcher.threshold) <= 0.06
