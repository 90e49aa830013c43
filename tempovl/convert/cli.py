"""`tempovl convert KIND SRC DST`: official checkpoints -> tempovl's checkpoint format."""

from __future__ import annotations

import argparse
import importlib

# kind -> (module, function(src, dst, **kwargs), help)
CONVERTERS = {
    "hero-official": (
        "tempovl.convert.hero_official",
        "convert",
        "a checkpoint of the official HERO code (.pt)",
    ),
    "hitea-modelscope": (
        "tempovl.convert.hitea_modelscope",
        "convert",
        "the public HiTeA release on ModelScope (a local directory or .bin/.pth)",
    ),
}


def register(parser: argparse.ArgumentParser, name: str) -> None:
    sub = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, (module, fn, help_text) in CONVERTERS.items():
        p = sub.add_parser(kind, help=help_text)
        p.add_argument("src", help="source checkpoint")
        p.add_argument("dst", help="output directory (model.safetensors + config.yaml)")
        p.add_argument(
            "--preset", default=None, help="model preset to convert into (default: the base preset)"
        )
        p.set_defaults(
            func=lambda a, m=module, f=fn: getattr(importlib.import_module(m), f)(
                a.src, a.dst, preset=a.preset
            )
        )
