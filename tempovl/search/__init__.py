"""Moment search over a video collection: index (index.py), query (searcher.py), HTTP + web page
(service.py, static/), CLI (cli.py). Encoders (encoders.py) plug a model in; the one shipped is the
subtitle-only baseline `SubtitleEncoder`. See README.md in this folder."""

from tempovl.search.encoders import (
    MomentEncoder,
    SubtitleEncoder,
    VideoEncoding,
    build_encoder,
    register_encoder,
)
from tempovl.search.index import BuildReport, build_index
from tempovl.search.searcher import Hit, Searcher

__all__ = [
    "BuildReport",
    "Hit",
    "MomentEncoder",
    "Searcher",
    "SubtitleEncoder",
    "VideoEncoding",
    "build_encoder",
    "build_index",
    "register_encoder",
]
