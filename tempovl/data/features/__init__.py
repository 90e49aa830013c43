"""Frame features for HERO-style models: extractors (2D + motion/3D, concatenated per window), a
sharded memory-mapped feature store, and resumable extraction over a folder of videos."""

from tempovl.lazy import lazy_exports

_EXPORTS = {
    "ExtractReport": "tempovl.data.features.extract",
    "extract_features": "tempovl.data.features.extract",
    "find_videos": "tempovl.data.features.extract",
    "FrameExtractor": "tempovl.data.features.extractors",
    "available_extractors": "tempovl.data.features.extractors",
    "build_extractor": "tempovl.data.features.extractors",
    "FeatureStore": "tempovl.data.features.store",
    "FeatureWriter": "tempovl.data.features.store",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
