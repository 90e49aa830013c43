"""The subtitle-only baseline encoder: frame rules checked by hand, localisation, the encoder registry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tempovl.data.subtitles import Sentence
from tempovl.errors import ConfigError, InputError
from tempovl.search import encoders as enc_mod
from tempovl.search.encoders import MomentEncoder, build_encoder, register_encoder


def test_is_a_moment_encoder(encoder):
    assert isinstance(encoder, MomentEncoder)
    assert encoder.dim == 384 and encoder.spec == "subtitle-minilm" and len(encoder.fingerprint) == 16


def test_frame_spans_cover_the_video(encoder):
    np.testing.assert_allclose(encoder.frame_spans(4.0), [[0, 1.5], [1.5, 3.0], [3.0, 4.0]])
    np.testing.assert_allclose(encoder.frame_spans(3.0), [[0, 1.5], [1.5, 3.0]])
    np.testing.assert_allclose(encoder.frame_spans(0.2), [[0, 0.2]])


def test_frames_get_their_sentences_and_silence_is_down_weighted(encoder):
    subs = [Sentence("hello Eve", 0.0, 1.5, "DANA"), Sentence("take the ball", 3.0, 3.375)]
    sent = encoder.text.embed(["DANA: hello Eve", "take the ball"])  # speaker prefix is embedded
    frames = encoder.embed_frames(encoder.frame_spans(6.0), subs)  # frames at 0, 1.5, 3, 4.5 s
    assert frames.shape == (4, 384) and frames.dtype == np.float32
    np.testing.assert_allclose(frames[0], sent[0], atol=1e-6)  # full speech: unit norm
    # silent, 0 s from both lines: the earlier one wins, at silence weight 0.5
    np.testing.assert_allclose(frames[1], 0.5 * sent[0], atol=1e-6)
    # a quarter of the frame is speech: norm 0.5 + 0.5 * min(1, 2 * 0.25) = 0.75
    np.testing.assert_allclose(frames[2], 0.75 * sent[1], atol=1e-6)
    # silent, 1.125 s after the second line
    np.testing.assert_allclose(frames[3], 0.5 * math.exp(-1.125 / 3.0) * sent[1], atol=1e-6)


def test_no_subtitles_gives_zero_frames(encoder):
    frames = encoder.embed_frames(encoder.frame_spans(3.0), [])
    assert frames.shape == (2, 384) and not frames.any()


def test_query_embeddings_are_unit_norm_and_meaningful(encoder):
    q = encoder.encode_query(["Dana says hello to Eve"])
    assert q.shape == (1, 384)
    assert np.linalg.norm(q[0]) == pytest.approx(1.0, abs=1e-5)
    lines = encoder.text.embed(["DANA: Hello Eve, good to see you.", "EVE: I feel sad today."])
    assert lines[0] @ q[0] > lines[1] @ q[0] + 0.2


def test_localize_finds_the_plateau():
    from tempovl.search.encoders import SubtitleEncoder

    enc = SubtitleEncoder.__new__(SubtitleEncoder)  # localize needs only the temperature
    enc.temperature = 20.0
    frame_embs = np.zeros((6, 4), dtype=np.float32)
    frame_embs[2:4, 0] = 1.0  # frames 2 and 3 match the query
    st, ed = enc.localize(np.array([1.0, 0, 0, 0]), frame_embs)
    assert st.sum() == pytest.approx(1.0) and ed.sum() == pytest.approx(1.0)
    assert int(np.argmax(st)) == 2 and int(np.argmax(ed)) == 3
    assert st[2] > 0.9 and ed[3] > 0.9


def test_build_encoder_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown encoder.*subtitle-minilm"):
        build_encoder("no-such-model")
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"x")
    with pytest.raises(InputError, match="not a tempovl checkpoint"):
        build_encoder(str(ckpt))


def test_registered_checkpoint_encoder_gets_the_path(tmp_path):
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"x")
    seen = []
    register_encoder("ckpt", lambda arg: seen.append(arg) or "built")
    try:
        assert build_encoder(str(ckpt)) == "built"
        assert build_encoder(f"ckpt:{ckpt}") == "built"
        assert seen == [str(ckpt), str(ckpt)]
    finally:
        enc_mod._ENCODERS.pop("ckpt")
