"""A feature store that scales past memory: memory-mapped `.npy` shards plus a manifest.

Layout of a store directory:
```
manifest.json          {"format", "version", "dim", "dtype", "interval", "extractor", "details",
                        "shards": [...]}; "details" is what else defines a feature (the frame size,
                        frames per window, the sampling): a resumed run must agree on all of it
shard-00000.npy        all feature-frames of up to `shard_size` videos, rows concatenated (rows, dim)
shard-00000.json       {"videos": {vid: {"offset", "length", "sha256", "meta"}}}
```
Why `.npy` shards and not LMDB: shards are immutable once written, so a plain file + atomic rename is
a complete commit protocol (no lock files, no map-size tuning, no writer/reader locking across
processes); `np.load(mmap_mode="r")` gives random access to one video's rows without reading the
rest; shards copy, rsync and checksum as ordinary files.

Commit protocol: a shard's `.npy` then its `.json` are written atomically (`tempovl.io`), then the
manifest is rewritten atomically to list it. A shard is part of the store only once the manifest
lists it, so a shard that was being written when a process died is ignored by readers and
overwritten when a writer resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from types import TracebackType

import numpy as np

from tempovl.errors import InputError
from tempovl.io import atomic_path, exclusive_lock, write_json

FORMAT = "tempovl-features"
VERSION = 1
_DTYPES = ("float16", "float32")


def _checksum(rows: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rows).tobytes()).hexdigest()


def _shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def _read_manifest(root: Path) -> dict:
    path = root / "manifest.json"
    if not path.is_file():
        raise InputError(f"{root}: not a feature store (no manifest.json)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: unreadable manifest ({e})") from None
    keys = ("format", "dim", "dtype", "interval", "extractor", "shards")
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or any(k not in manifest for k in keys)
    ):
        raise InputError(f"{path}: not a tempovl feature manifest (needs keys {', '.join(keys)})")
    if manifest["dtype"] not in _DTYPES:
        raise InputError(f"{path}: unsupported dtype {manifest['dtype']!r}")
    return manifest


def _read_shard_index(root: Path, shard: str) -> dict[str, dict]:
    path = root / f"{shard}.json"
    try:
        videos = json.loads(path.read_text(encoding="utf-8"))["videos"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{path}: missing or unreadable shard index ({e.__class__.__name__}: {e})") from None
    return videos


class FeatureWriter:
    """Writes per-video features (T, dim) into shards of `shard_size` videos; resumes an existing store.

    Use as a context manager. On leaving the block (normally or by an exception) the videos already
    added are committed as a last, possibly smaller, shard: every added video is complete. A writer holds
    the store's lock (``io.exclusive_lock``) until it is closed: a second writer of the same store fails
    at once, naming the first, instead of interleaving shards with it.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        dim: int,
        dtype: str = "float16",
        interval: float = 1.5,
        extractor: str = "",
        shard_size: int = 64,
        details: dict | None = None,
    ):
        if dtype not in _DTYPES:
            raise InputError(f"feature dtype must be one of {_DTYPES}, got {dtype!r}")
        if dim < 1 or shard_size < 1:
            raise InputError(f"dim and shard_size must be >= 1 (got {dim}, {shard_size})")
        self.root = Path(root)
        self.dim, self.dtype, self.interval, self.extractor = dim, dtype, float(interval), extractor
        self.shard_size = shard_size
        self.details = dict(details or {})
        self._pending: list[tuple[str, np.ndarray, dict]] = []
        self._done: set[str] = set()
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(exclusive_lock(self.root, "feature store"))
        try:
            self._open()
        except BaseException:
            self._lock.close()
            raise

    def _open(self) -> None:
        if (self.root / "manifest.json").exists():
            self._manifest = _read_manifest(self.root)
            self._check_compatible()
            for shard in self._manifest["shards"]:
                self._done.update(_read_shard_index(self.root, shard))
        else:
            self._manifest = {
                "format": FORMAT,
                "version": VERSION,
                "dim": self.dim,
                "dtype": self.dtype,
                "interval": self.interval,
                "extractor": self.extractor,
                "details": self.details,
                "shards": [],
                "num_videos": 0,
            }
            self.root.mkdir(parents=True, exist_ok=True)
            write_json(self.root / "manifest.json", self._manifest)
        self._remove_uncommitted()

    def _check_compatible(self) -> None:
        m = self._manifest
        mine = {"dim": self.dim, "dtype": self.dtype, "interval": self.interval, "extractor": self.extractor}
        for key, value in mine.items():
            if m[key] != value:
                raise InputError(
                    f"{self.root}: existing feature store has {key}={m[key]!r}, this run wants {value!r}; "
                    "use another output folder"
                )
        have = m.get("details") or {}
        for key, value in self.details.items():
            if key in have and have[key] != value:
                raise InputError(
                    f"{self.root}: existing feature store was extracted with {key}={have[key]!r}, this run "
                    f"wants {value!r} (one store never mixes features); use another output folder"
                )
            if key not in have:  # a store from before details were recorded: record what this run uses
                have[key] = value
        m["details"] = have

    def _remove_uncommitted(self) -> None:
        """Delete shard files (and temporaries) the manifest does not list: leftovers of a dead run."""
        listed = set(self._manifest["shards"])
        for path in self.root.iterdir():
            stem = path.name.split(".")[0] if not path.name.startswith(".") else ""
            leftover_tmp = path.name.startswith((".shard-", ".manifest.json.")) and path.name.endswith(".tmp")
            uncommitted = stem.startswith("shard-") and stem not in listed
            if leftover_tmp or uncommitted:
                path.unlink(missing_ok=True)

    def __contains__(self, vid: str) -> bool:
        return vid in self._done or any(v == vid for v, _, _ in self._pending)

    @property
    def done(self) -> set[str]:
        """Ids of videos already committed to the store."""
        return set(self._done)

    def add(self, vid: str, feats: np.ndarray, meta: dict | None = None) -> None:
        """Queue one video's features (T, dim); commits a shard every `shard_size` videos."""
        feats = np.asarray(feats)
        if feats.ndim != 2 or feats.shape[1] != self.dim or feats.shape[0] < 1:
            raise InputError(f"{vid}: features must be (T >= 1, {self.dim}), got {feats.shape}")
        if vid in self:
            raise InputError(f"{vid}: already in the feature store {self.root}")
        with np.errstate(over="ignore"):
            rows = feats.astype(self.dtype)  # overflow becomes inf, rejected just below
        if not np.isfinite(rows).all():
            raise InputError(f"{vid}: features contain NaN/inf (or overflow {self.dtype})")
        self._pending.append((vid, rows, dict(meta or {})))
        if len(self._pending) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Commit the queued videos as one shard (no-op if none)."""
        if not self._pending:
            return
        shard = _shard_name(len(self._manifest["shards"]))
        rows = np.concatenate([r for _, r, _ in self._pending], axis=0)  # (sum T, dim)
        index, offset = {}, 0
        for vid, r, meta in self._pending:
            index[vid] = {"offset": offset, "length": len(r), "sha256": _checksum(r), "meta": meta}
            offset += len(r)
        with atomic_path(self.root / f"{shard}.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, rows)
        write_json(self.root / f"{shard}.json", {"videos": index}, indent=None)
        self._manifest["shards"].append(shard)
        self._manifest["num_videos"] = self._manifest.get("num_videos", 0) + len(index)
        write_json(self.root / "manifest.json", self._manifest)
        self._done.update(index)
        self._pending = []

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._lock.close()

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class FeatureStore:
    """Read-only random access to a store by video id; each read checks dtype, shape and checksum."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        manifest = _read_manifest(self.root)
        self.dim: int = int(manifest["dim"])
        self.dtype = np.dtype(manifest["dtype"])
        self.interval: float = float(manifest["interval"])
        self.extractor: str = manifest["extractor"]
        self.details: dict = dict(manifest.get("details") or {})  # frame size, frames per window, sampling
        self._index: dict[str, tuple[str, dict]] = {}
        for shard in manifest["shards"]:
            for vid, entry in _read_shard_index(self.root, shard).items():
                self._index[vid] = (shard, entry)
        self._arrays: dict[str, np.ndarray] = {}

    def __contains__(self, vid: object) -> bool:
        return vid in self._index

    def __len__(self) -> int:
        return len(self._index)

    def keys(self) -> list[str]:
        return list(self._index)

    def num_frames(self, vid: str) -> int:
        """Number of feature-frames (T) of a video, from the index (reads no features)."""
        return int(self._lookup(vid)[1]["length"])

    def meta(self, vid: str) -> dict:
        """What the writer recorded with the video (e.g. duration, path)."""
        return dict(self._lookup(vid)[1].get("meta", {}))

    def _lookup(self, vid: str) -> tuple[str, dict]:
        if vid not in self._index:
            raise KeyError(f"{vid!r} is not in the feature store {self.root}")
        return self._index[vid]

    def _shard_array(self, shard: str) -> np.ndarray:
        if shard not in self._arrays:
            path = self.root / f"{shard}.npy"
            try:
                arr = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise InputError(f"{path}: unreadable shard ({e})") from None
            if arr.dtype != self.dtype or arr.ndim != 2 or arr.shape[1] != self.dim:
                raise InputError(
                    f"{path}: shard holds {arr.dtype} {arr.shape}, manifest says {self.dtype} (*, {self.dim})"
                )
            self._arrays[shard] = arr
        return self._arrays[shard]

    def __getitem__(self, vid: str) -> np.ndarray:
        """Features of one video (T, dim) float32, read from its shard without loading the others."""
        shard, entry = self._lookup(vid)
        arr = self._shard_array(shard)
        start, length = int(entry["offset"]), int(entry["length"])
        if start + length > arr.shape[0]:
            raise InputError(
                f"{vid}: rows {start}:{start + length} lie outside {shard}.npy ({arr.shape[0]} rows)"
            )
        rows = np.asarray(arr[start : start + length])
        if _checksum(rows) != entry["sha256"]:
            raise InputError(f"{vid}: checksum mismatch in {self.root / shard}.npy (corrupted features)")
        return rows.astype(np.float32)
