"""Frame features for HERO-style models: extractors (2D + motion/3D, concatenated per window), a
sharded memory-mapped feature store, and resumable extraction over a folder of videos."""

from tempovl.data.features.extract import ExtractReport, extract_features, find_videos
from tempovl.data.features.extractors import FrameExtractor, available_extractors, build_extractor
from tempovl.data.features.store import FeatureStore, FeatureWriter

__all__ = [
    "ExtractReport",
    "FeatureStore",
    "FeatureWriter",
    "FrameExtractor",
    "available_extractors",
    "build_extractor",
    "extract_features",
    "find_videos",
]
