"""Search results as the page shows them: grouped by video, overlapping moments folded, scores on a
0-100 scale, and the example queries of the empty page.

`Searcher.search` returns moments ranked one by one (temporal NMS at tIoU 0.5 inside a video), so one
region of one video can come back as several nested spans, and two spans can show the same subtitle
line. :func:`group_hits` keeps, per video, the best moment and the moments that neither overlap a
better one nor only repeat its subtitle lines; the rest are counted as folded into it.
"""

from __future__ import annotations

from pathlib import Path

RELEVANCE_HELP = (
    "match: the cosine similarity between the query and this video's best-matching frame, x 100 "
    "(100 = the same meaning; unrelated text scores about 0-30 with the subtitle encoder)"
)


def relevance(video_score: float) -> int:
    """A video score (a cosine similarity) as a 0-100 match a person can read."""
    return int(round(100 * min(max(video_score, 0.0), 1.0)))


def _overlap(sub: dict, start: float, end: float) -> float:
    return min(sub["end"], end) - max(sub["start"], start)


def matched_line(hit: dict) -> dict | None:
    """The subtitle line the moment is about: the one it overlaps most, else the nearest one (with
    "inside": False). None when the video has no subtitles near the moment."""
    subs = hit.get("subtitles") or []
    if not subs:
        return None
    start, end = hit["start"], hit["end"]
    best = max(subs, key=lambda s: (_overlap(s, start, end), -s["start"]))
    if _overlap(best, start, end) > 0:
        return {**best, "inside": True}
    nearest = min(subs, key=lambda s: (max(s["start"] - end, start - s["end"]), s["start"]))
    return {**nearest, "inside": False}


def _lines_key(hit: dict, line: dict | None) -> frozenset:
    """What a card shows of the dialogue: the lines inside the moment, else its nearest line."""
    inside = {
        (s["start"], s["text"])
        for s in hit.get("subtitles") or []
        if _overlap(s, hit["start"], hit["end"]) > 0
    }
    if not inside and line is not None:
        inside = {(line["start"], line["text"])}
    return frozenset(inside)


def group_hits(hits: list[dict]) -> list[dict]:
    """Hits (dicts of `Hit.to_dict()`, best first, with "url" and "path") grouped by video, best video
    first: [{video, video_idx, file, url, captions, video_score, relevance, best, more, folded}], where
    `best` and each of `more` is a moment {rank, start, end, score, duration, line, thumbnail, ...}."""
    groups: dict[int, dict] = {}
    for hit in hits:
        idx = hit["video_idx"]
        group = groups.get(idx)
        if group is None:
            url = hit.get("url", f"/api/videos/{idx}")
            group = groups[idx] = {
                "video": hit["video"],
                "video_idx": idx,
                "file": Path(hit["path"]).name if hit.get("path") else hit["video"],
                "url": url,
                "captions": f"{url}/captions.vtt",
                "video_score": hit["video_score"],
                "relevance": relevance(hit["video_score"]),
                "moments": [],
                "keys": [],
                "folded": 0,
            }
        line = matched_line(hit)
        key = _lines_key(hit, line)
        overlaps = any(hit["start"] < m["end"] and m["start"] < hit["end"] for m in group["moments"])
        repeats = bool(key) and any(key <= k for k in group["keys"])
        if overlaps or repeats:
            group["folded"] += 1  # a nested span of a region already shown, or the same lines again
            continue
        mid = round((hit["start"] + hit["end"]) / 2, 1)
        moment = {k: v for k, v in hit.items() if k not in ("path", "url", "video", "video_idx")}
        moment.update(line=line, thumbnail=f"{group['url']}/thumbnail?t={mid}")
        group["moments"].append(moment)
        group["keys"].append(key)
    out = []
    for group in groups.values():
        moments = group.pop("moments")
        group.pop("keys")
        out.append({**group, "best": moments[0], "more": moments[1:]})
    return out


def example_queries(searcher, n: int = 4, min_words: int = 3, max_words: int = 9) -> list[str]:
    """`n` subtitle lines of the index to offer as example queries: the first line of a readable length
    of videos spread evenly over the index (deterministic; at most 4n videos are read)."""
    ids = list(searcher.data.video_ids)
    m = min(len(ids), 4 * n)
    order = sorted(range(m), key=lambda i: (i % 4, i))  # the first n picks span the whole index
    examples: list[str] = []
    for vid in (ids[i * len(ids) // m] for i in order):
        for sub in searcher.subtitles(vid):
            text = " ".join(str(sub["text"]).split())
            if min_words <= len(text.split()) <= max_words and text not in examples:
                examples.append(text)
                break
        if len(examples) == n:
            break
    return examples
