"""The library's inference API: `tempovl.load`, `load_task`, `predict`, `extract_video`, `encode_video`,
`encode_text`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tempovl.errors import InputError


def test_import_stays_light_and_the_api_resolves_to_the_inference_module():
    code = (
        "import sys, tempovl; light = 'torch' not in sys.modules; "
        "print(light, tempovl.predict.__module__, tempovl.load_task.__module__, tempovl.extract_video.__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "tempovl.inference", "tempovl.inference", "tempovl.inference"]


def test_unknown_attribute_is_an_attribute_error():
    import tempovl

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tempovl.nope  # noqa: B018


def test_encode_video_and_text_are_what_the_search_index_stores(hero_vcmr_run, tiny_corpus):
    import numpy as np

    import tempovl
    from tempovl.data.subtitles import read_subtitle_file
    from tempovl.search.hero_encoder import HeroEncoder

    video, subs = tiny_corpus / "videos" / "tv00006.mp4", tiny_corpus / "subtitles" / "tv00006.srt"
    frames = tempovl.encode_video(hero_vcmr_run, video, subs, device="cpu")  # (T, D)
    queries = tempovl.encode_text(hero_vcmr_run, ["the red circle jumps", "a blue square"], device="cpu")
    encoder = HeroEncoder.from_checkpoint(hero_vcmr_run)
    hidden = encoder.hidden
    assert frames.ndim == 2 and frames.shape[1] == hidden and queries.shape == (2, hidden)
    rows = encoder.encode_video(video, read_subtitle_file(subs)).frame_embs  # unit directions + norms
    unit = frames / np.linalg.norm(frames, axis=1, keepdims=True)
    assert np.allclose(rows[:, :hidden], unit, atol=1e-4)
    q_rows = encoder.encode_query(["the red circle jumps"])
    assert np.allclose(q_rows[0, :hidden], queries[0] / np.linalg.norm(queries[0]), atol=1e-5)
    with pytest.raises(InputError, match="no such video file"):
        tempovl.encode_video(hero_vcmr_run, tiny_corpus / "missing.mp4")
