"""Small file helpers shared by every writer: nothing is ever left half-written."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@contextlib.contextmanager
def disk_full_is_said(path: str | os.PathLike) -> Iterator[None]:
    """Turn "no space left" (or a full quota) while writing `path` into one StorageError naming it and
    the free space there, instead of a traceback from whichever library was writing."""
    try:
        yield
    except OSError as e:
        if e.errno not in _FULL:
            raise
        from tempovl.errors import StorageError

        where = Path(path).parent
        try:
            free = f"{shutil.disk_usage(where).free / 2**20:.0f} MiB free there"
        except OSError:
            free = "free space unknown"
        raise StorageError(
            f"{path}: cannot write: {os.strerror(e.errno)} ({free}). Nothing half-written was kept; free "
            "some space and run the command again: finished work is kept and resumes"
        ) from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is fsync'ed and renamed onto `path`.

    If the body raises (or the process dies), `path` is untouched and the temporary file is removed
    (or, after a kill, left with a `.tmp` suffix that no reader looks at).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with disk_full_is_said(path):
            yield tmp_path
            with open(tmp_path, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp_path, path)
        fsync_path(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """`open()` that writes to a temporary file and renames it onto `path` only on success."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent)
        f.write("\n")


def write_jsonl(path: str | os.PathLike, records: list[dict]) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines file; a bad line raises InputError naming file and line."""
    from tempovl.errors import InputError

    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
    return out


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_path(path: Path) -> None:
    """fsync a file or directory (a directory: so that a rename into it is durable); errors ignored."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def exclusive_lock(directory: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold ``directory/.lock`` while the block runs: one writer of a store at a time.

    A second writer fails at once with an InputError naming the holder (pid, host, start, command). The
    lock is the kernel's (``flock``): it goes with the process, so a killed writer leaves no stale lock,
    and its half-written files are cleaned up by the next writer as before."""
    import fcntl
    import socket
    import sys
    import time

    from tempovl.errors import InputError

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    f = open(root / ".lock", "a+", encoding="utf-8")  # noqa: SIM115 (held open for the block)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise InputError(
            f"{root}: this {what} is being written by {holder}; wait for that job to end (or stop it)"
        ) from None
    try:
        f.seek(0)
        f.truncate()
        command = " ".join(sys.argv)[:200]
        f.write(
            f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')} ({command})"
        )
        f.flush()
        yield
    finally:
        f.truncate(0)
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
