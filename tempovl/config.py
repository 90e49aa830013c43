"""The one config loader: YAML presets merged in order, `key=value` overrides, strict dataclasses.

A config file is YAML. It may name presets to start from::

    defaults: [model/hero-tiny, task/hero-pretrain, data/demo, train/cpu-short]
    train: {max_steps: 200}

Presets are looked up in `tempovl/configs/` (``model/hero-tiny`` -> ``configs/model/hero-tiny.yaml``) or
given as paths. They are deep-merged in order, then the file's own keys, then command-line overrides
(``train.lr=1e-4``). Sections are turned into dataclasses with :func:`from_dict`, which rejects unknown
keys and wrong types with a message that names the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

from tempovl.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"
T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` (no dot) as a float, as people write learning rates."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def yaml_load(text: str):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


def preset_names(kind: str | None = None) -> list[str]:
    """All shipped presets, e.g. ``model/hero-tiny``; optionally only those of one kind."""
    names = sorted(str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in CONFIG_DIR.rglob("*.yaml"))
    return [n for n in names if kind is None or n.startswith(kind + "/")]


def resolve(spec: str | Path) -> Path:
    """A path to an existing YAML file, or the name of a shipped preset."""
    p = Path(spec)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    for cand in (CONFIG_DIR / f"{spec}.yaml", CONFIG_DIR / "experiment" / f"{spec}.yaml"):
        if cand.exists():
            return cand
    if p.suffix in (".yaml", ".yml"):
        raise ConfigError(f"config file not found: {spec}")
    close = difflib.get_close_matches(str(spec), preset_names(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"no config file or preset named {spec!r}{hint}")


def load_yaml(path: str | Path) -> dict:
    try:
        data = yaml_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


SECTIONS = ("model", "task", "data", "train")  # the top level of every config


def load_config(spec: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Load `spec` with its `defaults` chain, then apply ``a.b=value`` overrides. Returns a plain dict.
    A top-level section other than :data:`SECTIONS` is an error, as an unknown key inside one is."""
    path = resolve(spec)
    cfg = _load_with_defaults(path, seen=())
    _check_sections(cfg, f"{path}")
    for item in overrides:
        apply_override(cfg, item)
        _check_sections(cfg, f"override {item!r}")
    return cfg


def _check_sections(cfg: dict, where: str) -> None:
    for key in cfg:
        if key not in SECTIONS:
            close = difflib.get_close_matches(str(key), SECTIONS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where}: unknown config section {key!r}{hint}; known sections: {', '.join(SECTIONS)}"
            )


def _load_with_defaults(path: Path, seen: tuple[Path, ...]) -> dict:
    if path in seen:
        raise ConfigError(f"{path}: circular 'defaults' chain")
    data = load_yaml(path)
    merged: dict = {}
    defaults = data.pop("defaults", []) or []
    if not isinstance(defaults, list):
        raise ConfigError(f"{path}: 'defaults' must be a list of preset names or paths")
    for name in defaults:
        base = Path(name)
        if not base.is_absolute() and (path.parent / base).exists():
            base = path.parent / base
        merged = deep_merge(merged, _load_with_defaults(resolve(base), seen + (path,)))
    return deep_merge(merged, data)


def deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def apply_override(cfg: dict, item: str) -> None:
    """Apply one ``a.b.c=value`` override in place; the value is parsed as YAML (``1e-4``, ``[1,2]``)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. train.lr=1e-4)")
    key, raw = item.split("=", 1)
    try:
        value = yaml_load(raw)
    except yaml.YAMLError:
        value = raw
    node = cfg
    parts = key.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {p!r} is not a section")
    node[parts[-1]] = value


def from_dict(cls: type[T], data: dict | None, where: str = "") -> T:
    """Build dataclass `cls` from `data`, checking every key and type. `where` prefixes key names."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(str(k), list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown config key {_join(where, k)!r}{hint}; known keys: {', '.join(fields)}")
    kwargs = {k: _check(hints[k], v, _join(where, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{where or cls.__name__}: {e}") from None


def to_dict(obj: Any) -> Any:
    """Dataclasses (nested) to plain dicts, for saving next to checkpoints."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


def _check(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check(a, value, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = get_args(tp)
        inner = args[0] if args else Any
        items = [_check(inner, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_check(kt, k, key): _check(vt, v, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_dict(tp, value, key)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value
