"""The single-copy read path (featurestore.store.chunkio) against Zarr's own reads of the same
arrays, and its checks of each chunk's crc32c."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from featurestore.errors import DamagedEntryError
from featurestore.store import FeatureStore, SplitPlan, chunkio


def _write(fs: FeatureStore, splits: dict[str, tuple[np.ndarray, np.ndarray]],
           chunk_rows: int = 7) -> None:
    plans = [SplitPlan(name, len(X), X.shape[1], chunk_rows, y.shape[1:])
             for name, (X, y) in splits.items()]
    with fs.writing("ck", "ds") as w:
        w.begin(plans, {}, {})
        for name, (X, y) in splits.items():
            w.write_split(name, X, y, [f"{name}{i}" for i in range(len(X))])
        w.finish({})


@pytest.fixture
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {"train": (rng.standard_normal((30, 5), dtype=np.float32),
                      rng.integers(0, 9, 30).astype(np.int32)),
            "val": (rng.standard_normal((11, 5), dtype=np.float32),
                    rng.integers(0, 9, 11).astype(np.int32))}


def test_store_reads_take_fast_path_and_match_zarr(tmp_path: Path, data) -> None:
    fs = FeatureStore(str(tmp_path / "s.zarr"))
    _write(fs, data)  # 30 rows in chunks of 7: a partial last chunk
    for name in ("features", "labels"):
        assert chunkio.fast_path_ok(fs.root[f"ck/ds/train/{name}"])
    X, y = fs.load("ck", "ds", "train")
    np.testing.assert_array_equal(X, data["train"][0])
    np.testing.assert_array_equal(y, data["train"][1])
    np.testing.assert_array_equal(X, fs.root["ck/ds/train/features"][...])
    Xtv, ytv = fs.load("ck", "ds", "trainval")  # stacked into one array, no concatenate copy
    np.testing.assert_array_equal(Xtv, np.concatenate([data["train"][0], data["val"][0]]))
    np.testing.assert_array_equal(ytv, np.concatenate([data["train"][1], data["val"][1]]))


def test_multilabel_uint8_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 3), dtype=np.float32)
    Y = (rng.random((20, 4)) > 0.5).astype(np.uint8)
    fs = FeatureStore(str(tmp_path / "s.zarr"))
    _write(fs, {"train": (X, Y)}, chunk_rows=6)
    assert chunkio.fast_path_ok(fs.root["ck/ds/train/labels"])
    np.testing.assert_array_equal(fs.load("ck", "ds", "train")[1], Y)


def test_memory_store_uses_zarr_and_agrees(data) -> None:
    fs = FeatureStore("memory://chunkio-agree.zarr")
    assert fs.local_root is None
    _write(fs, data)
    X, y = fs.load("ck", "ds", "trainval")
    np.testing.assert_array_equal(X, np.concatenate([data["train"][0], data["val"][0]]))


def test_compressed_arrays_fall_back_to_zarr(tmp_path: Path) -> None:
    """An array written with a compressor (older entries, other writers) is read by Zarr."""
    a = zarr.create_array(tmp_path / "c.zarr", shape=(25, 4), chunks=(10, 4), dtype="float32")
    a[...] = np.arange(100, dtype=np.float32).reshape(25, 4)
    assert not chunkio.fast_path_ok(a)  # zarr's default codecs include zstd
    b = zarr.create_array(tmp_path / "b.zarr", shape=(25, 4), chunks=(5, 2), dtype="float32",
                          compressors=None)
    assert not chunkio.fast_path_ok(b)  # chunked along columns: rows are not contiguous


def test_missing_and_short_chunks_of_unchecksummed_array_are_refused(tmp_path: Path) -> None:
    """An array without checksums (written before them): a missing features chunk is damage,
    not the fill value, and a short chunk file is refused naming array and chunk."""
    path = tmp_path / "u.zarr" / "features"
    a = zarr.create_array(path, shape=(25, 4), chunks=(10, 4), dtype="float32",
                          compressors=None, fill_value=-1.0)
    a[:10] = 1.0  # chunk 0 written; chunks 1 and 2 never written
    a[20:] = 3.0
    assert chunkio.fast_path_ok(a)
    with pytest.raises(DamagedEntryError, match=r"^damaged chunk x/features chunk 1: chunk miss"):
        chunkio.read_rows(a, path, name="x/features")
    a[10:20] = 2.0
    np.testing.assert_array_equal(chunkio.read_rows(a, path), a[...])
    key = a.metadata.encode_chunk_key((2, 0))
    (path / key).write_bytes((path / key).read_bytes()[:8])  # edge chunks are stored full size
    with pytest.raises(DamagedEntryError, match="x/features chunk 2: wrong size"):
        chunkio.read_rows(a, path, name="x/features")
    with pytest.raises(ValueError, match="C-contiguous"):
        chunkio.read_rows(a, path, out=np.empty((25, 4), np.float64))


def test_unchecksummed_labels_may_miss_chunks(tmp_path: Path) -> None:
    """Zarr skipped all-zero chunks before writes forced them, so old label arrays read a missing
    chunk as the fill value (their entries are flagged unverified)."""
    path = tmp_path / "u.zarr" / "labels"
    a = zarr.create_array(path, shape=(20,), chunks=(10,), dtype="int32", compressors=None)
    a[:10] = 0  # all fill value: never written by Zarr's default config
    a[10:] = 5
    assert not (path / a.metadata.encode_chunk_key((0,))).exists()
    np.testing.assert_array_equal(chunkio.read_rows(a, path, name="ck/ds/train/labels"), a[...])


def test_loaded_arrays_are_page_aligned_and_serial_equals_threaded(tmp_path: Path, data) -> None:
    """Page alignment avoids the 4K-aliasing slow copy (chunkio docstring); serial and pooled
    reads must give identical arrays."""
    fs = FeatureStore(str(tmp_path / "s.zarr"))
    _write(fs, data)
    X, y = fs.load("ck", "ds", "trainval")
    assert X.ctypes.data % 4096 == 0 and y.ctypes.data % 4096 == 0
    assert X.flags.c_contiguous and X.flags.writeable
    arr = fs.root["ck/ds/train/features"]
    local = fs.local_root / "ck/ds/train/features"
    np.testing.assert_array_equal(chunkio.read_rows(arr, local, parallel=False),
                                  chunkio.read_rows(arr, local, parallel=True))
    e = chunkio.empty_aligned((0, 5), np.float32)
    assert e.shape == (0, 5)


def test_entry_with_compressed_labels_still_loads(tmp_path: Path, data) -> None:
    """Entries written before labels were stored uncompressed mix both paths in one load."""
    fs = FeatureStore(str(tmp_path / "s.zarr"))
    _write(fs, data)
    labels = tmp_path / "s.zarr" / "ck" / "ds" / "train" / "labels"
    zarr.create_array(labels, data=zarr.open_array(labels)[...], chunks=(7,),
                      overwrite=True)  # zarr's default codecs: zstd
    assert not chunkio.fast_path_ok(fs.root["ck/ds/train/labels"])
    X, ytv = fs.load("ck", "ds", "trainval")
    np.testing.assert_array_equal(ytv, np.concatenate([data["train"][1], data["val"][1]]))
    np.testing.assert_array_equal(fs.load("ck", "ds", "train")[1], data["train"][1])


def test_fast_path_checks_crc32c_of_every_chunk_including_the_edge(tmp_path: Path, data) -> None:
    """A flipped bit anywhere in a chunk file (edge chunks are stored padded to full size, and
    the CRC covers the padding too) is refused; verify=False reads it, accepting the risk."""
    fs = FeatureStore(str(tmp_path / "s.zarr"))
    _write(fs, data)  # train: chunks 0-3 full, chunk 4 holds rows 28-29 of 7
    arr = fs.root["ck/ds/train/features"]
    local = fs.local_root / "ck/ds/train/features"
    edge = local / "c" / "4" / "0"
    assert edge.stat().st_size == 7 * 5 * 4 + 4
    for byte in (3, 7 * 5 * 4 - 1):  # a real row, then the padding
        raw = edge.read_bytes()
        edge.write_bytes(raw[:byte] + bytes([raw[byte] ^ 0x10]) + raw[byte + 1:])
        with pytest.raises(DamagedEntryError, match="ck/ds/train/features chunk 4: checksum"):
            chunkio.read_rows(arr, local, name="ck/ds/train/features")
        with pytest.raises(DamagedEntryError, match="chunk 4: checksum mismatch"):
            fs.load("ck", "ds", "trainval")
        edge.write_bytes(raw)
    raw = edge.read_bytes()
    edge.write_bytes(raw[:3] + bytes([raw[3] ^ 0x10]) + raw[4:])
    X = chunkio.read_rows(arr, local, verify=False)
    assert (X[28:] != data["train"][0][28:]).sum() == 1  # exactly the flipped value
    edge.write_bytes(raw + b"x")  # a longer file is refused as well
    with pytest.raises(DamagedEntryError, match="wrong size"):
        chunkio.read_rows(arr, local, name="ck/ds/train/features")
