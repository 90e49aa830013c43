"""tempovl: hierarchical, temporal video-language pre-training (HERO and HiTeA)."""

import os

from tempovl.lazy import lazy_exports

# OpenMP threads that spin while waiting make a busy CPU crawl: on this project's 2-core machines a
# tiny model trained at 0.5 steps/s beside one other process, and at 7 steps/s with passive waiting.
# Set before torch is imported (the `tempovl` command imports this package first); a user's own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"


def load(path):
    """Load an exported or checkpointed model directory (safetensors + config) in one call."""
    from tempovl.engine.checkpoint import load_exported

    return load_exported(path)


__getattr__ = lazy_exports(
    __name__,
    dict.fromkeys(
        ("load_task", "predict", "extract_video", "encode_video", "encode_text"), "tempovl.inference"
    ),
)  # tempovl.load_task / predict / extract_video / encode_video / encode_text, imported on first use
