"""Name -> class registries for models and tasks. Config files name what they build."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tempovl.errors import ConfigError


@dataclass
class ModelEntry:
    name: str
    config_cls: type
    model_cls: type


MODELS: dict[str, ModelEntry] = {}
TASKS: dict[str, type] = {}


def register_model(name: str, config_cls: type) -> Callable[[type], type]:
    def wrap(cls: type) -> type:
        MODELS[name] = ModelEntry(name, config_cls, cls)
        return cls

    return wrap


def register_task(name: str) -> Callable[[type], type]:
    def wrap(cls: type) -> type:
        TASKS[name] = cls
        return cls

    return wrap


# the modules whose import registers the built-in models and tasks (their packages' __init__ import nothing,
# so that a task module importing a sibling never runs into a half-initialised package)
BUILTIN_MODULES = (
    "tempovl.models.hero",
    "tempovl.models.hero_baselines",
    "tempovl.models.hitea",
    "tempovl.tasks.hero.caption",
    "tempovl.tasks.hero.pretrain",
    "tempovl.tasks.hero.qa",
    "tempovl.tasks.hero.retrieval",
    "tempovl.tasks.hitea.caption",
    "tempovl.tasks.hitea.pretrain",
    "tempovl.tasks.hitea.qa",
    "tempovl.tasks.hitea.retrieval",
    "tempovl.tasks.toy",
)


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def lookup(table: dict[str, Any], name: str, what: str) -> Any:
    _load_builtins()
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown {what} {name!r}{hint}; known: {', '.join(sorted(table)) or 'none'}")
    return table[name]


def build_model(model_cfg: dict) -> Any:
    """Build a model from the `model:` config section (``name`` picks the registry entry)."""
    from tempovl.config import from_dict

    cfg = dict(model_cfg)
    name = cfg.pop("name", None)
    if name is None:
        raise ConfigError("model.name is missing")
    entry = lookup(MODELS, name, "model")
    return entry.model_cls(from_dict(entry.config_cls, cfg, "model"))


def build_task(cfg: dict) -> Any:
    """Build a task from a whole config (``task.name`` picks it; it builds its own model)."""
    name = (cfg.get("task") or {}).get("name")
    if name is None:
        raise ConfigError("task.name is missing")
    return lookup(TASKS, name, "task")(cfg)
