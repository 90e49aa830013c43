"""The library's inference API: `tempovl.load`, `load_task`, `predict`, `extract_video`."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_import_stays_light_and_the_api_resolves_to_the_inference_module():
    code = (
        "import sys, tempovl; light = 'torch' not in sys.modules; "
        "print(light, tempovl.predict.__module__, tempovl.load_task.__module__, tempovl.extract_video.__module__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "tempovl.inference", "tempovl.inference", "tempovl.inference"]


def test_unknown_attribute_is_an_attribute_error():
    import tempovl

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tempovl.nope  # noqa: B018
