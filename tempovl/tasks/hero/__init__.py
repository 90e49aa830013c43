"""HERO tasks: pre-training and the downstream tasks, all built on `base.HeroTask`."""
