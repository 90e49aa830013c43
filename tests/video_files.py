"""One writer of test videos (PyAV): frames in, a real file out, in any container and codec."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np


def encode_frames(
    path: str | Path,
    frames: Iterable[np.ndarray],
    rate: int,
    codec: str = "libx264",
    fmt: str | None = None,
    options: dict | None = None,
    stream_options: dict | None = None,
    rotate: int = 0,
) -> Path:
    """Write RGB frames (H, W, 3) uint8 to `path` at `rate` fps; `rotate` sets a display rotation
    (counterclockwise degrees, as phones store portrait video). Returns the path."""
    container = av.open(str(path), "w", format=fmt, options=options or {})
    stream = None
    for img in frames:
        if stream is None:
            stream = container.add_stream(codec, rate=rate, options=stream_options or {})
            stream.height, stream.width = img.shape[:2]
            stream.pix_fmt = "yuv420p"
            if rotate:
                stream.set_display_rotation(rotate)
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return Path(path)
