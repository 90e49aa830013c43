"""tempovl.io: atomic writes; a full disk is one clear error and leaves nothing half-written (issue 13)."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest

from tempovl.errors import StorageError
from tempovl.io import atomic_open, write_json


def test_a_full_disk_names_the_path_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "manifest.json"
    write_json(target, {"version": 1})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(json, "dump", full)
    with pytest.raises(StorageError, match=r"manifest.json: cannot write: No space left on device .*free"):
        write_json(target, {"version": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"version": 1}  # the old content, whole
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temporary left behind


def test_a_full_disk_while_saving_a_checkpoint_or_a_shard(tmp_path, monkeypatch):
    from tempovl.engine import checkpoint as ck

    state = {"w": __import__("torch").zeros(2)}
    monkeypatch.setattr(
        ck, "save_file", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EDQUOT, "quota"))
    )
    with pytest.raises(StorageError, match="ckpt-0000003"):
        ck.save_checkpoint(tmp_path, 3, state, {}, {"step": 3})
    assert not any(p.name.startswith("ckpt-") for p in tmp_path.iterdir())
    with pytest.raises(StorageError, match="shard.npy"), atomic_open(tmp_path / "shard.npy", "wb") as f:
        np.save(f, np.zeros(3))
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.glob("*shard*")) == []


def test_other_os_errors_pass_through(tmp_path):
    with pytest.raises(PermissionError), atomic_open(tmp_path / "x.txt") as f:
        f.write("x")
        raise PermissionError(errno.EACCES, "denied")
