"""A split as a torch tensor on a device (featurestore.store.device_reads), read from what the real
writer stored: the same numbers as FeatureStore.load, the same refusal of damaged chunks, clear
device errors, and the rule that picks the reader.

Only CPU runs here. The CUDA upload (Zarr GPU buffer -> DLPack) runs in benchmarks/gpu_check.py
on a GPU machine; the tests below check the chunk loop, integrity and decode that it shares, and
the reader decision with cupy absent, nothing more.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from featurestore.errors import DamagedEntryError, DeviceError
from featurestore.extras import MissingExtraError
from featurestore.store import FeatureStore, SplitPlan
from featurestore.store.device_reads import choose_reader, load_tensor

READERS = ("direct", "host", "auto")


@pytest.fixture
def fs(tmp_path: Path) -> FeatureStore:
    """One entry written by EntryWriter: 30 train rows in chunks of 7 (a partial last chunk)."""
    rng = np.random.default_rng(0)
    data = {"train": (rng.standard_normal((30, 5), dtype=np.float32),
                      rng.integers(0, 9, 30).astype(np.int32)),
            "val": (rng.standard_normal((11, 5), dtype=np.float32),
                    rng.integers(0, 9, 11).astype(np.int32)),
            "test": (rng.standard_normal((4, 5), dtype=np.float32),
                     rng.integers(0, 9, 4).astype(np.int32))}
    store = FeatureStore(str(tmp_path / "s.zarr"))
    plans = [SplitPlan(name, len(X), X.shape[1], 7, y.shape[1:]) for name, (X, y) in data.items()]
    with store.writing("ck", "ds") as w:
        w.begin(plans, {}, {})
        for name, (X, y) in data.items():
            w.write_split(name, X, y, [f"{name}{i}" for i in range(len(X))])
        w.finish({})
    return store


def _chunk(fs: FeatureStore, split: str, k: int) -> Path:
    return Path(fs.url) / "ck" / "ds" / split / "features" / "c" / str(k) / "0"


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("split", ["train", "trainval", "test"])
def test_tensor_equals_featurestore_load(fs: FeatureStore, reader: str, split: str) -> None:
    X, y = load_tensor(fs, "ck", "ds", split, "cpu", reader=reader)
    X_ref, y_ref = fs.load("ck", "ds", split)
    assert isinstance(X, torch.Tensor) and X.device.type == "cpu" and X.dtype == torch.float32
    np.testing.assert_array_equal(X.numpy(), X_ref)
    np.testing.assert_array_equal(y, y_ref)
    X2, _ = fs.load_tensor("ck", "ds", split, "cpu", reader=reader)  # the method users find
    assert torch.equal(X, X2)


@pytest.mark.parametrize("reader", READERS)
def test_flipped_bit_raises_damage_naming_the_chunk(fs: FeatureStore, reader: str) -> None:
    path = _chunk(fs, "train", 1)
    data = bytearray(path.read_bytes())
    data[20] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedEntryError, match=r"ck/ds/train/features chunk 1: checksum mismatch"):
        load_tensor(fs, "ck", "ds", "train", "cpu", reader=reader)
    with pytest.raises(DamagedEntryError, match=r"ck/ds/train/features chunk 1"):
        load_tensor(fs, "ck", "ds", "trainval", "cpu", reader=reader)
    # verify=False skips only the comparison: the flipped value comes back, nothing else changes
    X, _ = load_tensor(fs, "ck", "ds", "train", "cpu", reader=reader, verify=False)
    X_ref, _ = fs.load("ck", "ds", "train", verify=False)
    np.testing.assert_array_equal(X.numpy(), X_ref)


@pytest.mark.parametrize("reader", READERS)
def test_missing_or_truncated_chunk_is_damage_even_unverified(fs: FeatureStore,
                                                              reader: str) -> None:
    last = _chunk(fs, "train", 4)  # the partial edge chunk, stored at full size
    last.write_bytes(last.read_bytes()[:-9])
    with pytest.raises(DamagedEntryError, match=r"train/features chunk 4: wrong size"):
        load_tensor(fs, "ck", "ds", "train", "cpu", reader=reader, verify=False)
    _chunk(fs, "val", 0).unlink()
    with pytest.raises(DamagedEntryError, match=r"val/features chunk 0: chunk missing"):
        load_tensor(fs, "ck", "ds", "val", "cpu", reader=reader, verify=False)


def test_device_and_reader_errors_are_clear(fs: FeatureStore) -> None:
    with pytest.raises(DeviceError, match=r"unknown device 'gpu0'"):
        load_tensor(fs, "ck", "ds", "train", "gpu0")
    with pytest.raises(DeviceError, match=r"unknown feature reader 'fast'.*direct"):
        load_tensor(fs, "ck", "ds", "train", "cpu", reader="fast")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match=r"--device cuda requested but CUDA is not avail"):
            load_tensor(fs, "ck", "ds", "train", "cuda")


def test_reader_rule_without_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision only (no CUDA is touched): on CUDA without the ``gpu`` extra ``auto`` takes
    the host reader (pinned copy) and an explicit ``direct`` names the extra to install."""
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError
    cuda = torch.device("cuda")
    assert choose_reader(cuda, "auto") == "host"
    assert choose_reader(cuda, "host") == "host"
    with pytest.raises(MissingExtraError, match=r"pip install 'featurestore\[gpu\]'"):
        choose_reader(cuda, "direct")
    assert choose_reader(cuda, "auto", has_cupy=lambda: True) == "direct"
    cpu = torch.device("cpu")
    assert choose_reader(cpu, "auto", has_cupy=lambda: True) == "host"  # already single-copy
    assert choose_reader(cpu, "direct") == "direct"
