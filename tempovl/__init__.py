"""tempovl: hierarchical, temporal video-language pre-training (HERO and HiTeA)."""

import os

# OpenMP threads that spin while waiting make a busy CPU crawl: on this project's 2-core machines a
# tiny model trained at 0.5 steps/s beside one other process, and at 7 steps/s with passive waiting.
# Set before torch is imported (the `tempovl` command imports this package first); a user's own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"


def load(path):
    """Load an exported or checkpointed model directory (safetensors + config) in one call."""
    from tempovl.engine.checkpoint import load_exported

    return load_exported(path)


_INFERENCE = ("load_task", "predict", "extract_video", "encode_video", "encode_text")


def __getattr__(name):
    """``tempovl.load_task`` / ``predict`` / ``extract_video`` / ``encode_video`` / ``encode_text``
    (:mod:`tempovl.inference`), imported on first use so that ``import tempovl`` stays light."""
    if name in _INFERENCE:
        from tempovl import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'tempovl' has no attribute {name!r}")
