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
