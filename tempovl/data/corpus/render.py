"""Draw a script's frames with numpy masks and write them as an H.264 mp4 with PyAV."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np

from tempovl.data.corpus.world import GROUND, OBJECTS, ROOMS, Script, Sprite, state_at


def background(room: str, size: int) -> np.ndarray:
    """The room's backdrop (size, size, 3) uint8: a wall and a floor, each with its own pattern."""
    wall, floor, accent = (np.array(c, dtype=np.uint8) for c in ROOMS[room])
    img = np.empty((size, size, 3), dtype=np.uint8)
    ground = int(GROUND * size)
    img[:ground] = wall
    img[ground:] = floor
    yy, xx = np.mgrid[0:size, 0:size]
    tile = max(2, size // 16)
    if room == "kitchen":  # chequered floor tiles, a tiled strip on the wall
        checker = ((yy // tile + xx // tile) % 2 == 0) & (yy >= ground)
        img[checker] = accent
        img[(yy > size * 0.25) & (yy < size * 0.3)] = accent
    elif room == "garden":  # grass stripes, a sun
        img[(yy >= ground) & ((xx // tile) % 2 == 0)] = accent
        sun = (yy - size * 0.15) ** 2 + (xx - size * 0.82) ** 2 <= (size * 0.08) ** 2
        img[sun] = (255, 230, 90)
    elif room == "bedroom":  # striped wallpaper, floor boards
        img[(yy < ground) & ((yy // tile) % 3 == 0)] = accent
        img[(yy >= ground) & ((xx // (3 * tile)) % 2 == 0)] = (130, 85, 50)
    elif room == "library":  # shelves of coloured books
        shelf = (yy < ground * 0.8) & ((yy // (2 * tile)) % 3 == 2)
        img[shelf] = accent
        books = (yy < ground * 0.8) & ((yy // (2 * tile)) % 3 != 2) & ((xx // max(1, tile // 2)) % 3 == 0)
        img[books] = (60, 110, 70)
    return img


def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of a shape of radius `r` at offsets (dx, dy) from its centre (already un-rotated)."""
    dist = np.sqrt(dx**2 + dy**2)
    if shape == "circle":
        return dist <= r
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * r
    if shape == "triangle":  # pointing up (image y grows downwards)
        return (dy <= 0.75 * r) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.62)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.1 * r
    if shape == "cross":
        arm = 0.36 * r
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    if shape == "ring":
        return (dist <= r) & (dist >= 0.5 * r)
    if shape == "star":
        theta = np.arctan2(dy, dx) + math.pi / 2
        return dist <= r * (0.6 + 0.4 * np.cos(5 * theta))
    raise ValueError(f"unknown shape {shape!r}")


def _draw_sprite(img: np.ndarray, sp: Sprite) -> None:
    size = img.shape[0]
    pad = int(math.ceil(sp.radius)) + 1
    x0, x1 = int(sp.cx) - pad, int(sp.cx) + pad + 1
    y0, y1 = int(sp.cy) - pad, int(sp.cy) + pad + 1
    cx0, cx1, cy0, cy1 = max(x0, 0), min(x1, size), max(y0, 0), min(y1, size)
    if cx0 >= cx1 or cy0 >= cy1:
        return
    yy, xx = np.mgrid[cy0:cy1, cx0:cx1].astype(np.float32)
    px, py = xx + 0.5 - sp.cx, yy + 0.5 - sp.cy
    cos, sin = math.cos(sp.angle), math.sin(sp.angle)
    dx, dy = cos * px + sin * py, -sin * px + cos * py  # rotate the grid by -angle
    patch = img[cy0:cy1, cx0:cx1]
    patch[shape_mask(sp.shape, dx, dy, sp.radius)] = sp.rgb
    # an eye, so that spinning is visible even for a circle
    eye = (dx**2 + (dy + 0.6 * sp.radius) ** 2) <= max(0.8, 0.17 * sp.radius) ** 2
    patch[eye] = (15, 15, 15)


def _draw_object(img: np.ndarray, name: str, cx: float, cy: float) -> None:
    size = img.shape[0]
    h = max(1.5, 0.035 * size)
    yy, xx = np.mgrid[0:size, 0:size]
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    if name == "ball":
        mask = dx**2 + dy**2 <= h**2
    elif name == "cup":
        mask = (np.abs(dx) <= 0.7 * h) & (np.abs(dy) <= h)
    elif name == "key":
        mask = (np.abs(dx) <= 1.3 * h) & (np.abs(dy) <= 0.4 * h)
    else:  # box
        mask = (np.abs(dx) <= h) & (np.abs(dy) <= h)
    img[mask] = OBJECTS[name]


def render_frames(script: Script) -> list[np.ndarray]:
    """Every frame of the video (size, size, 3) uint8, sampled at t = i / fps."""
    n = int(math.floor(script.duration * script.fps + 1e-6))
    backgrounds = {s.room: background(s.room, script.size) for s in script.scenes}
    frames = []
    for i in range(n):
        scene, sprites, objects = state_at(script, i / script.fps)
        img = backgrounds[scene.room].copy()
        for name, cx, cy in objects:
            _draw_object(img, name, cx, cy)
        for sp in sprites:
            _draw_sprite(img, sp)
        frames.append(img)
    return frames


def write_mp4(frames: list[np.ndarray], path: str | Path, fps: float, crf: int = 23) -> None:
    """Encode RGB frames as H.264 (yuv420p) mp4. One encoder thread keeps the bytes reproducible."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=_fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        stream.codec_context.thread_count = 1
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1000)


def render_video(script: Script, path: str | Path) -> None:
    """Render a script and write it to `path` (.mp4)."""
    write_mp4(render_frames(script), path, script.fps)
