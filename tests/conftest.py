"""Shared fixtures. The tiny demo corpus is generated once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see tempovl/__init__.py
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """Path to a `tiny` demo corpus (seed 0), made once per session."""
    from tempovl.data.corpus import make_corpus

    out = tmp_path_factory.mktemp("corpus") / "tiny"
    make_corpus(out, preset="tiny", seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_features(tiny_corpus, tmp_path_factory):
    """Path to a feature store of the tiny corpus, extracted offline with `random2d+motion`."""
    from tempovl.data.features.extract import extract_features, find_videos

    out = tmp_path_factory.mktemp("features") / "random2d"
    extract_features(find_videos(tiny_corpus / "videos"), out, extractor="random2d+motion", progress=False)
    return out


@pytest.fixture(scope="session")
def hero_unused() -> dict[str, set[str]]:
    """HERO modules each pre-training sub-task does not reach (every other parameter must get a gradient)."""
    return {
        "mlm": {
            "frame_transform",
            "frame_mask_embedding",
            "temporal_embed",
            "temporal",
            "query_encoder",
            "mffr_head",
            "fom_head",
            "vsm_query_proj",
            "vsm_start",
            "vsm_end",
            "frame_embed.mask_embedding",
        },
        "mffr": {"query_encoder", "mlm_head", "fom_head", "vsm_query_proj", "vsm_start", "vsm_end"},
        "mnce": {"query_encoder", "mlm_head", "fom_head", "vsm_query_proj", "vsm_start", "vsm_end"},
        "fom": {
            "frame_embed.mask_embedding",
            "frame_mask_embedding",
            "query_encoder",
            "mlm_head",
            "mffr_head",
            "vsm_query_proj",
            "vsm_start",
            "vsm_end",
        },
        "vsm": {"frame_embed.mask_embedding", "frame_mask_embedding", "mlm_head", "mffr_head", "fom_head"},
    }


@pytest.fixture(scope="session")
def hero_tiny_config():
    """`make(experiment, corpus, features, out, *overrides)`: a HERO experiment preset at test size (d 32, 2 steps)."""
    from tempovl.config import load_config

    def make(experiment: str, corpus, feats, out, *extra: str) -> dict:
        overrides = [
            f"data.corpus={corpus}",
            f"data.features={feats}",
            "model.hidden=32",
            "model.num_heads=2",
            "model.mlp_hidden=64",
            "model.dropout=0.0",
            "model.attn_dropout=0.0",
            f"train.output_dir={out}",
            "train.max_steps=2",
            "train.batch_size=3",
            "train.warmup_steps=0",
            "train.eval_every=0",
            "train.log_every=1",
            "train.progress=false",
            "train.curves=false",
            *extra,
        ]
        return load_config(f"experiment/{experiment}", overrides)

    return make


@pytest.fixture(scope="session")
def hero_vcmr_run(tiny_corpus, tiny_features, tmp_path_factory):
    """A hero-vcmr run directory, 2 steps on the tiny corpus through the CLI (SRT subtitles, as the search index
    reads them)."""
    from tempovl.cli import main

    out = tmp_path_factory.mktemp("hero-vcmr") / "run"
    rc = main(
        ["train", "hero-tiny-vcmr", f"data.corpus={tiny_corpus}", f"data.features={tiny_features}",
         "data.subtitles=srt", "data.extract_size=null", "data.max_frames=24", "train.max_steps=2",
         "train.batch_size=2", "train.eval_every=0", "train.progress=false", "train.curves=false", "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    return out
