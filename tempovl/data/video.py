"""Video reading with PyAV: probing, HERO's fixed-rate windows and HiTeA's sparse sampling.

Every reader decodes the file once, front to back, and keeps only the frames whose presentation
interval contains a requested time (the frame "on screen" at that time). There is no per-frame
seeking, so reading cost is one sequential decode plus colour conversion of the picked frames.

Images are resized in torch (shorter side to `size`, bilinear with antialiasing) and centre-cropped
to `size x size`. A missing, corrupt, truncated or stream-less file raises `InputError` naming it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from tempovl.data.align import num_frames_covering
from tempovl.errors import InputError

log = logging.getLogger(__name__)
_WARNED: set[str] = set()  # files whose wrong header was reported (once each)

# a decode that stops this far before the declared end of the stream means the file is truncated
# The one list of video files every command reads (features extract, index build, data validate, predict
# takes any file): what phones, cameras, the web and the public datasets publish
VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".mpv", ".ts", ".wmv", ".flv", ".3gp",
)  # fmt: skip


def video_files(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """The video files under `folder` (by `VIDEO_EXTENSIONS`, any case; sorted; hidden files left out).
    Every other file except subtitles (`SUBTITLE_SUFFIXES`) is named in one WARNING as skipped, so a
    video in a container we do not list is never dropped silently."""
    from tempovl.data.subtitles import SUBTITLE_SUFFIXES

    files = sorted(
        p for p in (Path(folder).rglob("*") if recursive else Path(folder).glob("*")) if p.is_file()
    )
    files = [p for p in files if not p.name.startswith(".")]
    videos = [p for p in files if p.suffix.lower() in VIDEO_EXTENSIONS]
    others = [p for p in files if p.suffix.lower() not in (*VIDEO_EXTENSIONS, *SUBTITLE_SUFFIXES)]
    if others:
        names = ", ".join(str(p.relative_to(folder)) for p in others[:10])
        log.warning(
            "%s: %d file(s) skipped, not videos (%s): %s%s",
            folder,
            len(others),
            " ".join(VIDEO_EXTENSIONS),
            names,
            f" and {len(others) - 10} more" if len(others) > 10 else "",
        )
    return videos


_TRUNCATION_SLACK_S = 1.0
_TRUNCATION_SLACK_FRAC = 0.1


@dataclass
class VideoInfo:
    """What `probe` learns from a file's headers (no decoding)."""

    path: str
    duration: float  # seconds
    fps: float
    num_frames: int
    width: int
    height: int


def _open(path: str | Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: video file not found")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise InputError(f"{path}: not a readable video ({reason})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: has no video stream")
    return container


def _packet_end(path: str | Path) -> tuple[float, int] | None:
    """(seconds from the stream's start to the end of its last video packet, number of packets), read
    from the packets without decoding; None when they carry no timestamps."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        first, last, count = None, None, 0
        for packet in container.demux(stream):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None or packet.size == 0:  # the demuxer's final empty packet
                continue
            count += 1
            first = stamp if first is None else min(first, stamp)
            last = max(last or stamp, stamp + (packet.duration or 0))
    except (av.FFmpegError, OSError):
        return None  # unreadable packets: decoding will say so, naming the file
    finally:
        container.close()
    if last is None or stream.time_base is None:
        return None
    start = stream.start_time if stream.start_time is not None else first
    return float((last - start) * stream.time_base), count


def _stream_info(path: str | Path, container: av.container.InputContainer) -> VideoInfo:
    """The stream's duration, rate, frame count and size. A header that declares less than its packets
    hold (MPEG program streams estimate from the bit rate; some writers leave 0.02 s for minutes of
    frames) is overruled by the packets, with a warning naming the file. A header that declares more
    is kept: decoding then finds the file truncated and says so."""
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    num_frames = int(stream.frames or 0)
    if num_frames == 0 and fps > 0:
        num_frames = int(round(duration * fps))
    if duration <= 0 and num_frames > 0 and fps > 0:
        duration = num_frames / fps
    frame_dt = 1.0 / fps if fps > 0 else 0.04
    packets = _packet_end(path)
    if packets is not None and packets[0] > duration + 2 * frame_dt:
        if duration > 0 and str(path) not in _WARNED:
            _WARNED.add(str(path))
            log.warning(
                "%s: the header declares %.2f s but the frames run to %.2f s; using the frames",
                path,
                duration,
                packets[0],
            )
        duration, num_frames = packets[0], max(num_frames, packets[1])
    width, height = stream.codec_context.width, stream.codec_context.height
    if duration <= 0 or width <= 0 or height <= 0:
        raise InputError(f"{path}: video stream has no usable duration or size")
    return VideoInfo(str(path), duration, fps, num_frames, width, height)


def probe(path: str | Path) -> VideoInfo:
    """Duration, frame rate, frame count and size of a video; InputError naming the file if unreadable."""
    container = _open(path)
    try:
        return _stream_info(path, container)
    finally:
        container.close()


def _decode(
    path: str | Path, container: av.container.InputContainer
) -> Iterator[tuple[float, av.VideoFrame]]:
    """Yield (seconds since stream start, frame) in presentation order; decode errors name the file."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    frames = container.decode(stream)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except (av.FFmpegError, OSError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise InputError(f"{path}: decoding failed ({reason})") from None
        if frame.pts is None or frame.time is None:
            continue
        yield float(frame.time) - start, frame


def frame_rgb(frame: av.VideoFrame) -> np.ndarray:
    """(H, W, 3) uint8 of a decoded frame as it is meant to be seen: phone videos are stored sideways
    with a rotation in their display matrix, which is applied here (counterclockwise, ffmpeg's sense)."""
    image = frame.to_ndarray(format="rgb24")
    turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


def resize_crop(image: np.ndarray, size: int | None) -> np.ndarray:
    """Resize `image (H, W, 3) uint8` so its shorter side is `size`, then centre-crop `size x size`."""
    if size is None:
        return image
    h, w = image.shape[:2]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    if (new_h, new_w) != (h, w):
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        image = x[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()  # (H', W', 3)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def _iter_frames_at(
    path: str | Path, times: np.ndarray, size: int | None, info: VideoInfo | None = None
) -> Iterator[np.ndarray]:
    """Yield the frame on screen at each of `times` (seconds, non-decreasing), (H, W, 3) uint8 each.

    The frame on screen at t is the last frame whose timestamp is <= t (the first frame for t before
    it). Decodes sequentially once; each picked frame is converted and resized once.
    """
    if len(times) > 1 and np.any(np.diff(times) < 0):
        raise ValueError("times must be non-decreasing")
    container = _open(path)
    try:
        info = info or _stream_info(path, container)
        k = 0  # next time to serve
        prev_frame, prev_image = None, None
        last_time = -1.0

        def image_of_prev() -> np.ndarray:
            nonlocal prev_image
            if prev_image is None:
                prev_image = resize_crop(frame_rgb(prev_frame), size)
            return prev_image

        for t, frame in _decode(path, container):
            last_time = t
            if prev_frame is None:  # times before the first frame get the first frame
                prev_frame, prev_image = frame, None
            while k < len(times) and times[k] < t:
                yield image_of_prev()
                k += 1
            prev_frame, prev_image = frame, None
            if k == len(times):
                return
        if prev_frame is None:
            raise InputError(f"{path}: no decodable video frames")
        frame_dt = 1.0 / info.fps if info.fps > 0 else 0.0
        slack = max(_TRUNCATION_SLACK_S, _TRUNCATION_SLACK_FRAC * info.duration)
        if last_time + frame_dt < info.duration - slack:
            raise InputError(
                f"{path}: truncated or corrupt: frames end at {last_time:.2f}s "
                f"but the stream declares {info.duration:.2f}s"
            )
        while k < len(times):
            yield image_of_prev()
            k += 1
    finally:
        container.close()


def _frames_at(path: str | Path, times: np.ndarray, size: int | None) -> np.ndarray:
    """The frames on screen at `times` (any order): (len(times), H, W, 3) uint8."""
    order = np.argsort(times, kind="stable")
    picked = list(_iter_frames_at(path, np.asarray(times)[order], size))
    out: list[np.ndarray] = [None] * len(times)  # type: ignore[list-item]
    for i, image in zip(order, picked):
        out[i] = image
    return np.stack(out)


def window_times(duration: float, interval: float, frames_per_window: int) -> tuple[np.ndarray, np.ndarray]:
    """HERO's fixed-rate grid: window i covers [i*interval, (i+1)*interval]; its F frames are at the
    centres of F equal parts of the window (clipped to the video). A trailing partial window counts.

    Returns times (N, F) and spans (N, 2) in seconds; N >= 1 even for a video shorter than a window.
    """
    if interval <= 0 or frames_per_window < 1:
        raise InputError(
            f"interval must be > 0 and frames_per_window >= 1 (got {interval}, {frames_per_window})"
        )
    n = num_frames_covering(duration, interval)
    starts = np.arange(n, dtype=np.float64) * interval
    spans = np.stack([starts, starts + interval], axis=1)  # (N, 2)
    ends = np.minimum(spans[:, 1], max(duration, 1e-6))
    ends = np.maximum(ends, starts + 1e-6)  # a window past the end still samples its start
    frac = (np.arange(frames_per_window) + 0.5) / frames_per_window  # (F,)
    times = starts[:, None] + (ends - starts)[:, None] * frac[None, :]  # (N, F)
    return times, spans


def iter_windows(
    path: str | Path,
    interval: float = 1.5,
    frames_per_window: int = 4,
    size: int | None = 224,
    batch_windows: int = 32,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`read_windows` in chunks of at most `batch_windows` windows, decoding as it goes, so a long
    video never sits in memory: yields clips (B, F, H, W, 3) uint8 and spans (B, 2) seconds."""
    info = probe(path)
    times, spans = window_times(info.duration, interval, frames_per_window)
    f = times.shape[1]
    frames = _iter_frames_at(path, times.reshape(-1), size, info)  # (N*F,) images in order
    for start in range(0, len(times), batch_windows):
        stop = min(start + batch_windows, len(times))
        chunk = [next(frames) for _ in range((stop - start) * f)]
        clips = np.stack(chunk).reshape(stop - start, f, *chunk[0].shape)  # (B*F, H, W, 3) -> (B, F, H, W, 3)
        yield clips, spans[start:stop]


def read_windows(
    path: str | Path, interval: float = 1.5, frames_per_window: int = 4, size: int | None = 224
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-rate windows (HERO): clips (N, F, H, W, 3) uint8 and spans (N, 2) seconds.

    One window (one future feature-frame) per `interval` seconds; its `frames_per_window` frames are
    spread evenly over the window.
    """
    chunks = list(iter_windows(path, interval, frames_per_window, size, batch_windows=1 << 30))
    return chunks[0]


def sparse_times(
    start: float,
    end: float,
    num_frames: int,
    jitter: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """HiTeA's sparse sampling: split [start, end] into `num_frames` equal segments and take the
    middle of each, or a uniformly random time in each when `jitter` (training)."""
    if num_frames < 1:
        raise InputError(f"num_frames must be >= 1 (got {num_frames})")
    if end <= start:
        raise InputError(f"empty sampling range [{start}, {end}]")
    seg = (end - start) / num_frames
    offsets = np.full(num_frames, 0.5)
    if jitter:
        rng = rng if rng is not None else np.random.default_rng()
        offsets = rng.uniform(0.0, 1.0, size=num_frames)
    return start + (np.arange(num_frames) + offsets) * seg


def sample_frames(
    path: str | Path,
    num_frames: int,
    size: int | None = 224,
    start: float = 0.0,
    end: float | None = None,
    jitter: bool = False,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Sparse sampling (HiTeA) over [start, end] (default: the whole video): (N, H, W, 3) uint8, in
    temporal order."""
    info = probe(path)
    end = info.duration if end is None else min(end, info.duration)
    start = max(0.0, start)
    if end <= start:
        raise InputError(f"{path}: sampling range [{start}, {end}] is empty (duration {info.duration:.2f}s)")
    times = sparse_times(start, end, num_frames, jitter=jitter, rng=rng)
    return _frames_at(path, times, size)
