"""tempovl: hierarchical, temporal video-language pre-training (HERO and HiTeA)."""

__version__ = "0.1.0"


def load(path):
    """Load an exported or checkpointed model directory (safetensors + config) in one call."""
    from tempovl.engine.checkpoint import load_exported

    return load_exported(path)
