from dataclasses import dataclass, field
from typing import Literal

import pytest

from tempovl.config import apply_override, from_dict, load_config
from tempovl.errors import ConfigError


@dataclass
class Inner:
    depth: int = 2
    kind: Literal["a", "b"] = "a"


@dataclass
class Outer:
    lr: float = 1e-3
    name: str = "x"
    layers: list[int] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    init: str | None = None


def test_from_dict_builds_nested_and_coerces_int_to_float():
    cfg = from_dict(Outer, {"lr": 1, "layers": [1, 2], "inner": {"depth": 3}})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.inner == Inner(depth=3) and cfg.layers == [1, 2] and cfg.init is None


def test_unknown_key_is_named_with_suggestion():
    with pytest.raises(ConfigError, match=r"unknown config key 'train.inner.deptth'.*did you mean 'depth'"):
        from_dict(Outer, {"inner": {"deptth": 3}}, "train")


@pytest.mark.parametrize(
    "data, key",
    [
        ({"lr": "fast"}, "lr"),
        ({"layers": [1, "x"]}, r"layers\[1\]"),
        ({"inner": {"kind": "c"}}, "inner.kind"),
        ({"inner": {"depth": True}}, "inner.depth"),
        ({"name": 3}, "name"),
    ],
)
def test_wrong_types_name_the_key(data, key):
    with pytest.raises(ConfigError, match=key):
        from_dict(Outer, data)


def test_defaults_chain_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {lr: 0.1, steps: 5}\nmodel: {name: m}\n")
    (tmp_path / "exp.yaml").write_text("defaults: [base.yaml]\ntrain: {steps: 10}\n")
    cfg = load_config(tmp_path / "exp.yaml", ["train.lr=1e-4", "model.extra.depth=[1, 2]"])
    assert cfg == {"train": {"lr": 1e-4, "steps": 10}, "model": {"name": "m", "extra": {"depth": [1, 2]}}}


def test_missing_preset_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="no config file or preset"):
        load_config("surely-not-a-preset")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        apply_override({}, "train.lr")


def test_invalid_yaml_names_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)


def test_an_unknown_section_is_an_error_like_an_unknown_key(tmp_path):
    """`trian.lr=0.1` or a `modle:` block used to run silently on the defaults (issue 13's guards)."""
    with pytest.raises(ConfigError, match=r"unknown config section 'trian' \(did you mean 'train'\?\)"):
        load_config("task/toy", ["trian.lr=0.1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults: [task/toy]\nmodle:\n  x: 1\n")
    with pytest.raises(
        ConfigError, match=rf"{bad}: unknown config section 'modle' \(did you mean 'model'\?\)"
    ):
        load_config(str(bad))
