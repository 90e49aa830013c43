"""Feature store: round trip, shards, resume, integrity checks, half-written shards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tempovl.data.features.store import FeatureStore, FeatureWriter
from tempovl.errors import InputError


def feats_of(i: int, dim: int = 8) -> np.ndarray:
    rng = np.random.default_rng(i)
    return rng.normal(size=(3 + i, dim)).astype(np.float32)  # T = 3 + i


def write(root, n: int, shard_size: int = 2, dtype: str = "float32", start: int = 0) -> None:
    with FeatureWriter(root, dim=8, dtype=dtype, interval=1.5, extractor="test", shard_size=shard_size) as w:
        for i in range(start, start + n):
            w.add(f"v{i}", feats_of(i), meta={"duration": float(i)})


def test_round_trip_across_shards(tmp_path):
    write(tmp_path, 5, shard_size=2)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["shards"] == ["shard-00000", "shard-00001", "shard-00002"] and manifest["num_videos"] == 5
    store = FeatureStore(tmp_path)
    assert (len(store), store.dim, store.interval, store.extractor, store.dtype) == (
        5,
        8,
        1.5,
        "test",
        np.float32,
    )
    assert store.keys() == [f"v{i}" for i in range(5)] and "v3" in store and "v9" not in store
    for i in range(5):
        out = store[f"v{i}"]
        assert out.dtype == np.float32 and out.shape == (3 + i, 8) and store.num_frames(f"v{i}") == 3 + i
        np.testing.assert_array_equal(out, feats_of(i))
        assert store.meta(f"v{i}") == {"duration": float(i)}
    with pytest.raises(KeyError, match="v9"):
        store["v9"]


def test_float16_storage(tmp_path):
    write(tmp_path, 2, dtype="float16")
    store = FeatureStore(tmp_path)
    assert store.dtype == np.float16 and np.load(tmp_path / "shard-00000.npy").dtype == np.float16
    np.testing.assert_allclose(store["v1"], feats_of(1), rtol=1e-3, atol=1e-3)


def test_resume_appends_and_rejects_other_settings(tmp_path):
    write(tmp_path, 3, shard_size=2)
    write(tmp_path, 2, shard_size=2, start=3)
    store = FeatureStore(tmp_path)
    assert len(store) == 5
    np.testing.assert_array_equal(store["v4"], feats_of(4))
    with pytest.raises(InputError, match="dim=8"):
        FeatureWriter(tmp_path, dim=16, dtype="float32", extractor="test")
    with pytest.raises(InputError, match="extractor='test'"):
        FeatureWriter(tmp_path, dim=8, dtype="float32", extractor="other")
    with (
        FeatureWriter(tmp_path, dim=8, dtype="float32", extractor="test") as w,
        pytest.raises(InputError, match="v0"),
    ):
        w.add("v0", feats_of(0))  # already stored


def test_bad_features_rejected(tmp_path):
    with FeatureWriter(tmp_path, dim=8) as w:
        with pytest.raises(InputError, match=r"v1: features must be \(T >= 1, 8\)"):
            w.add("v1", np.zeros((4, 7)))
        with pytest.raises(InputError, match="v2"):
            w.add("v2", np.zeros(8))
        with pytest.raises(InputError, match="v3: .*NaN"):
            w.add("v3", np.full((2, 8), np.nan))
        with pytest.raises(InputError, match="v4: .*overflow"):
            w.add("v4", np.full((2, 8), 1e6))  # beyond float16
    assert len(FeatureStore(tmp_path)) == 0


def test_checksum_mismatch_detected(tmp_path):
    write(tmp_path, 2, shard_size=2)
    path = tmp_path / "shard-00000.npy"
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # a byte of v1's last row
    path.write_bytes(bytes(data))
    store = FeatureStore(tmp_path)
    np.testing.assert_array_equal(store["v0"], feats_of(0))  # other videos still read
    with pytest.raises(InputError, match="v1: checksum mismatch in .*shard-00000"):
        store["v1"]


def test_wrong_dim_or_dtype_in_shard_rejected(tmp_path):
    write(tmp_path, 1)
    np.save(tmp_path / "shard-00000.npy", np.zeros((3, 9), np.float32))
    with pytest.raises(InputError, match=r"shard-00000.npy: shard holds float32 \(3, 9\)"):
        FeatureStore(tmp_path)["v0"]


def test_missing_or_bad_manifest_names_root(tmp_path):
    with pytest.raises(InputError, match=str(tmp_path)):
        FeatureStore(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="manifest.json: unreadable"):
        FeatureStore(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "tempovl-features"}')
    with pytest.raises(InputError, match="needs keys"):
        FeatureStore(tmp_path)


def test_half_written_shard_is_ignored_and_redone(tmp_path):
    write(tmp_path, 2, shard_size=2)
    # a run died while committing shard 1: data and index written, manifest not yet updated,
    # plus a temporary file from an interrupted atomic write
    np.save(tmp_path / "shard-00001.npy", np.ones((4, 8), np.float32))
    (tmp_path / "shard-00001.json").write_text(
        '{"videos": {"ghost": {"offset": 0, "length": 4, "sha256": "x"}}}'
    )
    (tmp_path / ".shard-00002.npy.abc.tmp").write_bytes(b"partial")
    store = FeatureStore(tmp_path)
    assert len(store) == 2 and "ghost" not in store
    write(tmp_path, 1, start=2)  # resume: leftovers removed, shard 1 rewritten with the real video
    assert not (tmp_path / ".shard-00002.npy.abc.tmp").exists()
    store = FeatureStore(tmp_path)
    assert store.keys() == ["v0", "v1", "v2"]
    np.testing.assert_array_equal(store["v2"], feats_of(2))


def test_writer_commits_added_videos_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError), FeatureWriter(tmp_path, dim=8, dtype="float32", shard_size=10) as w:
        w.add("v0", feats_of(0))
        raise RuntimeError("interrupted")
    np.testing.assert_array_equal(FeatureStore(tmp_path)["v0"], feats_of(0))


def test_a_second_writer_of_one_store_is_refused_until_the_first_closes(tmp_path):
    import os

    first = FeatureWriter(tmp_path / "store", dim=4)
    with pytest.raises(InputError, match=rf"feature store is being written by pid {os.getpid()}"):
        FeatureWriter(tmp_path / "store", dim=4)
    first.add("v", np.ones((2, 4), np.float32))
    first.close()
    with FeatureWriter(tmp_path / "store", dim=4) as again:  # released on close
        assert "v" in again
