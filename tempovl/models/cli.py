"""`tempovl models`: every model preset with its parameter count (built on the meta device: no memory)."""

from __future__ import annotations

import argparse

from tempovl.config import load_config, preset_names


def count_parameters(preset: str) -> int:
    """Number of parameters of a model preset (``model/hero-base`` or ``hero-base``)."""
    import torch

    from tempovl.registry import build_model

    name = preset if "/" in preset else f"model/{preset}"
    with torch.device("meta"):
        model = build_model(load_config(name)["model"])
    return sum(p.numel() for p in model.parameters())


def run(args: argparse.Namespace) -> int:
    rows = [(n.split("/", 1)[1], count_parameters(n)) for n in preset_names("model")]
    width = max((len(n) for n, _ in rows), default=6)
    print(f"{'preset':<{width}}  parameters")
    for name, n in rows:
        print(f"{name:<{width}}  {n / 1e6:9.1f}M  ({n:,})")
    return 0


def register(parser: argparse.ArgumentParser, name: str) -> None:
    parser.set_defaults(func=run)
