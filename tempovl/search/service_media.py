"""What the search page shows beside the video itself: a thumbnail of the moment (a small JPEG decoded
with PyAV) and the indexed subtitles as a WebVTT captions track.

Thumbnails are decoded on a thread pool of their own (never the search thread, never the event loop),
kept in a small LRU cache, and refused with 503 past a bounded number waiting, so a page full of cards
cannot queue unbounded work or slow a search down.
"""

from __future__ import annotations

import asyncio
import io
import math
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av

THUMB_WIDTH = 320  # px; smaller videos are not enlarged
THUMB_QUALITY = 80
THUMB_CACHE = 256  # JPEGs kept (a few KB each)
THUMB_WORKERS = 2
THUMB_WAITING = 64  # thumbnails queued before 503
DECODE_ERRORS = (OSError, ValueError, av.FFmpegError)  # what a bad or truncated file raises


class ThumbnailBusy(Exception):
    """Too many thumbnails are waiting to be decoded."""


def frame_at(path: str | Path, t: float):
    """The av.VideoFrame shown at `t` seconds: seek to the key frame at or before t, then decode up to t.
    `t` is clamped to the video; the first frame when t is before it, the last when t is past the end."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        t = max(0.0, t)
        if stream.duration is not None and stream.time_base is not None:
            t = min(t, float(stream.duration * stream.time_base))
        elif container.duration is not None:
            t = min(t, container.duration / av.time_base)
        if t > 0 and stream.time_base is not None:
            container.seek(int(t / stream.time_base), stream=stream, backward=True, any_frame=False)
        shown = None
        for frame in container.decode(stream):
            if frame.time is not None and frame.time > t + 1e-6 and shown is not None:
                break  # `shown` is the last frame that starts at or before t
            shown = frame
        if shown is None:  # a seek past the last key frame's packets: decode from the start
            container.seek(0, stream=stream)
            for frame in container.decode(stream):
                shown = frame
        if shown is None:
            raise ValueError(f"{path}: no video frame could be decoded")
        return shown


def thumbnail_jpeg(
    path: str | Path, t: float, width: int = THUMB_WIDTH, quality: int = THUMB_QUALITY
) -> bytes:
    """A JPEG of the frame at `t` seconds, `width` px wide at most (aspect kept)."""
    frame = frame_at(path, t)
    w = min(width, frame.width)
    h = max(2, round(frame.height * w / frame.width / 2) * 2)
    image = frame.to_image(width=w, height=h)  # PIL RGB (Pillow is a declared dependency)
    if frame.rotation:  # a phone video stored sideways: as data.video.frame_rgb, counterclockwise
        image = image.rotate(round(frame.rotation / 90) * 90, expand=True)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class Thumbnails:
    """LRU-cached thumbnails, decoded on a pool of their own (module docstring)."""

    def __init__(
        self, workers: int = THUMB_WORKERS, cache: int = THUMB_CACHE, max_waiting: int = THUMB_WAITING
    ):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="thumbnail")
        self.cache: OrderedDict[tuple, bytes] = OrderedDict()
        self.cache_size, self.max_waiting = cache, max_waiting
        self.lock = threading.Lock()
        self.waiting = 0
        self.decoded = self.hits = 0

    async def get(self, path: Path, t: float, duration: float) -> bytes:
        """The JPEG of `path` at `t` (clamped to [0, duration], on a 0.1 s grid so that the cache works)."""
        t = round(min(max(t, 0.0), max(duration, 0.0)), 1)
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, t)
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                self.hits += 1
                return self.cache[key]
            if self.waiting >= self.max_waiting:
                raise ThumbnailBusy
            self.waiting += 1
        try:
            jpeg = await asyncio.get_running_loop().run_in_executor(self.pool, thumbnail_jpeg, path, t)
        finally:
            with self.lock:
                self.waiting -= 1
        with self.lock:
            self.decoded += 1
            self.cache[key] = jpeg
            self.cache.move_to_end(key)
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return jpeg


def _vtt_time(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _vtt_escape(text: str) -> str:
    """Cue text: &, < and > escaped (so "-->" and tags in a subtitle are text), one line per line, no
    blank line (a blank line would end the cue)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def webvtt(subtitles: list[dict]) -> str:
    """A WebVTT file of subtitle sentences ({start, end, text, speaker}); the speaker as a voice span."""
    out = ["WEBVTT", ""]
    for n, s in enumerate(subtitles, 1):
        text = _vtt_escape(str(s.get("text") or ""))
        start, end = float(s["start"]), float(s["end"])
        if not text or not (math.isfinite(start) and math.isfinite(end)) or end <= start:
            continue
        speaker = " ".join(_vtt_escape(str(s.get("speaker") or "")).split())
        if speaker:
            text = f"<v {speaker}>{text}</v>"
        out += [str(n), f"{_vtt_time(start)} --> {_vtt_time(end)}", text, ""]
    return "\n".join(out)
