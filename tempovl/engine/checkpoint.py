"""The one checkpoint format, shared by training checkpoints and exported models.

A checkpoint is a directory::

    ckpt-0000400/
      model.safetensors   the task's state dict (tied weights stored once, re-tied on load)
      config.yaml         the whole merged config (model, task, data, train)
      trainer.pt          optimiser, scheduler, grad scaler, per-rank RNG states, data positions, step, ...

An export has the first two files only. A directory is written under a hidden temporary name and renamed
into place when every file is complete, so a name ``ckpt-*`` always means a complete checkpoint; the
``latest`` file is a hint updated atomically after the rename. :func:`find_resumable` trusts neither
blindly: it picks the newest directory that has every file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from tempovl.errors import ConfigError, InputError
from tempovl.io import atomic_open, disk_full_is_said, fsync_path

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
TRAINER_FILE = "trainer.pt"
CKPT_RE = re.compile(r"^ckpt-(\d{7})$")


def ckpt_name(step: int) -> str:
    return f"ckpt-{step:07d}"


# ----------------------------------------------------------------------------------------- weights
def _dedupe(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Drop tensors that share memory with an earlier one (tied weights). Returns (tensors, alias->kept)."""
    kept: dict[tuple, str] = {}
    out: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    for name in sorted(state):
        t = state[name]
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride())
        if t.numel() > 0 and key in kept:
            aliases[name] = kept[key]
            continue
        kept[key] = name
        out[name] = t.detach().to("cpu").contiguous()
    return out, aliases


def save_weights(state: dict[str, torch.Tensor], path: str | Path, prefix: str = "") -> None:
    """Write a state dict to a safetensors file; `prefix` names the sub-module it came from ("" = task)."""
    tensors, aliases = _dedupe(state)
    meta = {"format": "pt", "tempovl_aliases": json.dumps(aliases), "tempovl_prefix": prefix}
    save_file(tensors, str(path), metadata=meta)


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The full state dict (aliases restored) and the module prefix stored in a safetensors file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:
        raise InputError(f"{path}: not a readable safetensors file ({e})") from None
    for alias, kept in json.loads(meta.get("tempovl_aliases", "{}")).items():
        state[alias] = state[kept]
    return state, meta.get("tempovl_prefix", "")


LOAD_MODES = ("strict", "fit", "partial")


def load_into(module: nn.Module, path: str | Path, mode: str = "strict") -> tuple[list[str], list[str]]:
    """Load a weights file into `module` (or, if it was saved from a sub-module, into that sub-module).

    mode "strict": any missing, unexpected or mis-shaped key raises ConfigError listing them. "fit"
    (initialising a task from another's checkpoint: pre-training -> fine-tuning): keys may be missing
    (new heads) or unexpected (pre-training heads), but a mis-shaped key (another feature dimension,
    another size) or finding under half of the module's weights (a checkpoint of the other model family)
    raises ConfigError saying what did not match. "partial": loads whatever matches, skips mis-shaped
    keys. Returns (missing, unexpected + mis-shaped).
    """
    if mode not in LOAD_MODES:
        raise ConfigError(f"load mode {mode!r}: expected one of {LOAD_MODES}")
    state, prefix = load_weights(path)
    try:
        target = module.get_submodule(prefix) if prefix else module
    except AttributeError:
        raise ConfigError(
            f"{path}: weights of sub-module {prefix!r}, which this model does not have"
        ) from None
    own = target.state_dict()
    bad_shape = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    loaded = set(own) & set(state) - set(bad_shape)
    missing = sorted(set(own) - loaded)  # mis-shaped keys included: they keep their initial values
    unexpected = sorted(set(state) - set(own)) + sorted(bad_shape)
    if mode == "strict" and (missing or unexpected):
        raise ConfigError(
            f"{path}: weights do not match the model built from the config "
            f"(missing {_show(missing)}; unexpected or mis-shaped {_show(unexpected)})"
        )
    found = sum(own[k].numel() for k in loaded)
    total = sum(v.numel() for v in own.values())
    if mode == "fit" and (bad_shape or found < total / 2):
        shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(bad_shape)[:3]]
        raise ConfigError(
            f"{path}: its weights do not fit this model: {len(bad_shape)} of another shape "
            f"({'; '.join(shapes) or 'none'}), {found / max(total, 1):.0%} of the model's weights found "
            f"({len(loaded)} of {len(own)} tensors; a checkpoint of another model family or "
            "feature dimension?). To load only what matches, set train.init_partial=true"
        )
    state = {k: v for k, v in state.items() if k not in bad_shape}
    target.load_state_dict(state, strict=False)
    return missing, unexpected


def _show(keys: list[str], n: int = 5) -> str:
    if not keys:
        return "none"
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


# ------------------------------------------------------------------------------- atomic directories
@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary directory beside `final`; rename it onto `final` only if the body succeeds.

    An existing `final` is replaced (moved aside, then deleted after the rename). On error the temporary
    directory is removed; after a kill it remains under a hidden ``.tmp-`` name that no reader looks at.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{final.name}-"))
    tmp.chmod(0o755)  # mkdtemp makes it private; checkpoints are meant to be shared
    try:
        with disk_full_is_said(final):
            yield tmp
        old = None
        if final.exists():
            old = final.parent / f".old-{final.name}-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        fsync_path(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _write_config(cfg: dict, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)


def _torch_save_synced(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


# -------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(
    output_dir: str | Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    cfg: dict,
    trainer_state: dict,
    keep_last: int | None = None,
    write_hook: Callable[[str], None] | None = None,
) -> Path:
    """Write ``ckpt-{step}`` atomically, point ``latest`` at it, prune to the newest `keep_last`."""
    output_dir = Path(output_dir)
    final = output_dir / ckpt_name(step)
    with atomic_dir(final) as tmp:
        for name, write in (
            (MODEL_FILE, lambda p: save_weights(model_state, p)),
            (CONFIG_FILE, lambda p: _write_config(cfg, p)),
            (TRAINER_FILE, lambda p: _torch_save_synced(trainer_state, p)),
        ):
            write(tmp / name)
            if write_hook is not None:  # lets tests interrupt a save between files
                write_hook(name)
    with atomic_open(output_dir / "latest", "w", encoding="utf-8") as f:
        f.write(final.name + "\n")
    if keep_last is not None:
        for old in list_checkpoints(output_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def is_complete(path: str | Path, with_trainer: bool = True) -> bool:
    p = Path(path)
    files = [MODEL_FILE, CONFIG_FILE] + ([TRAINER_FILE] if with_trainer else [])
    return p.is_dir() and all((p / f).is_file() and (p / f).stat().st_size > 0 for f in files)


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete ``ckpt-*`` directories of `output_dir`, oldest first."""
    d = Path(output_dir)
    if not d.is_dir():
        return []
    found = [p for p in d.iterdir() if CKPT_RE.match(p.name) and is_complete(p)]
    return sorted(found, key=lambda p: int(CKPT_RE.match(p.name).group(1)))


def find_resumable(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint in `output_dir` (whatever ``latest`` says), or None."""
    ckpts = list_checkpoints(output_dir)
    return ckpts[-1] if ckpts else None


def copy_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint directory atomically (hard links where possible: files are never rewritten)."""

    def link_or_copy(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    with atomic_dir(dst) as tmp:
        for f in Path(src).iterdir():
            if f.is_file():
                link_or_copy(str(f), str(tmp / f.name))
    return Path(dst)


def load_trainer_state(ckpt: str | Path) -> dict:
    path = Path(ckpt) / TRAINER_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as e:
        raise InputError(f"{path}: unreadable trainer state ({e})") from None


# ------------------------------------------------------------------------------------------- export
def export(task: nn.Module, cfg: dict, out_dir: str | Path) -> Path:
    """Write the inference weights (``task.export_module()``) and the config: what `tempovl.load` reads."""
    module = task.export_module() if hasattr(task, "export_module") else task
    prefix = next((n for n, m in task.named_modules() if m is module), "")
    with atomic_dir(out_dir) as tmp:
        save_weights(module.state_dict(), tmp / MODEL_FILE, prefix=prefix)
        _write_config(cfg, tmp / CONFIG_FILE)
    return Path(out_dir)


def read_config(path: str | Path) -> dict:
    p = Path(path) / CONFIG_FILE
    if not p.is_file():
        raise InputError(f"{path}: not a tempovl checkpoint or export (no {CONFIG_FILE})")
    data = yaml.safe_load(p.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise InputError(f"{p}: expected a mapping at the top level")
    return data


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint/export directory: the path itself, or what a run directory's (or its) ``latest`` names."""
    p = Path(path)
    if p.is_file() and p.name == "latest":
        p = p.parent / p.read_text(encoding="utf-8").strip()
    elif p.is_dir() and not (p / MODEL_FILE).is_file() and (p / "latest").is_file():
        p = p / (p / "latest").read_text(encoding="utf-8").strip()
    if not (p / MODEL_FILE).is_file() or not (p / CONFIG_FILE).is_file():
        raise InputError(f"{path}: not a tempovl checkpoint or export (needs {MODEL_FILE} and {CONFIG_FILE})")
    return p


def load_exported(path: str | Path) -> nn.Module:
    """Build the task named in ``config.yaml`` and load ``model.safetensors`` strictly; eval mode."""
    from tempovl.registry import build_task

    path = resolve_checkpoint(path)
    cfg = read_config(path)
    task = build_task(cfg)
    load_into(task, path / MODEL_FILE, mode="strict")
    return task.eval()
