"""Moment search over a video collection: index (index.py), query (searcher.py), HTTP + web page
(service.py, static/), CLI (cli.py). Encoders (encoders.py) plug a model in; the one shipped is the
subtitle-only baseline `SubtitleEncoder`. See README.md in this folder."""

from tempovl.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        ["MomentEncoder", "SubtitleEncoder", "VideoEncoding", "build_encoder", "register_encoder"],
        "tempovl.search.encoders",
    ),
    "BuildReport": "tempovl.search.index",
    "build_index": "tempovl.search.index",
    "Hit": "tempovl.search.searcher",
    "Searcher": "tempovl.search.searcher",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
