"""The store as the ecosystem expects it: a split opens natively in xarray (every array names its
dimensions), ``FeatureStore.open`` carries label names and a dict provenance, chunks are sized
from each split's N (no split padded to a full 1024-row chunk on disk), ``entries()`` reports the
entry's size, and entries written before any of that still read and repair byte-identically.

Every test starts from an entry the real extraction wrote (a tiny timm model, random weights).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import featurestore.extract as extract_mod
from featurestore.datasets import get_dataset
from featurestore.extract import extract_entry
from featurestore.store import FeatureStore
from featurestore.store.writer import chunk_rows_for
from tests.conftest import FAST_CKPT, write_imagefolder

SPLITS = {"train": 18, "val": 6, "test": 12}  # write_imagefolder's defaults, 20% val
ENTRY = f"{FAST_CKPT}/imagefolder"
FS = str(Path(os.environ.get("VIRTUAL_ENV", ".venv")) / "bin" / "featurestore")
if not Path(FS).exists():
    FS = shutil.which("featurestore") or "featurestore"


def _extract(store: Path, images: Path, **kw: object) -> FeatureStore:
    fs = FeatureStore(str(store))
    kw = {"weights": "random", "batch_size": 1, "chunk_batches": 16, "num_workers": 0,
          "progress": False, **kw}
    extract_entry(fs, FAST_CKPT, get_dataset("imagefolder", images), **kw)
    return fs


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(images, store) of one extraction with logits (batch 1, at most 16 rows a chunk: train's
    18 rows are two chunks of 9); never modified by a test."""
    base = tmp_path_factory.mktemp("native")
    images = write_imagefolder(base / "images")
    _extract(base / "clean.zarr", images, with_logits=True)
    return images, base / "clean.zarr"


@pytest.fixture
def store(clean: tuple[Path, Path], tmp_path: Path) -> Path:
    dst = tmp_path / "s.zarr"
    shutil.copytree(clean[1], dst)
    return dst


def _array_meta(store: Path) -> dict[str, dict]:
    """``split/array`` -> the array's zarr.json, for every array of the entry."""
    return {f"{p.parent.parent.name}/{p.parent.name}": json.loads(p.read_text())
            for p in sorted((store / ENTRY).glob("*/*/zarr.json"))}


def _chunk_files(store: Path) -> dict[str, int]:
    """Every chunk object of the entry and its size on disk."""
    return {str(p.relative_to(store)): p.stat().st_size
            for p in (store / ENTRY).rglob("*")
            if p.is_file() and "c" in p.relative_to(store / ENTRY).parts[2:]}


def test_every_split_opens_natively_in_xarray(clean: tuple[Path, Path]) -> None:
    _, path = clean
    meta = _array_meta(path)
    assert {k.split("/")[1] for k in meta} == {"features", "labels", "ids", "done", "logits"}
    for name, m in meta.items():  # every array names its dimensions (Zarr v3 metadata)
        assert m["dimension_names"], name
    fs = FeatureStore(str(path), read_only=True)
    for split, n in SPLITS.items():
        ds = xr.open_zarr(path / ENTRY / split, consolidated=False)
        assert ds.sizes["sample"] == n
        assert ds.features.dims == ("sample", "feature")
        assert ds.labels.dims == ("sample",) and ds.ids.dims == ("sample",)
        assert ds.done.dims == ("chunk",) and ds.done.values.all()
        assert ds.logits.dims == ("sample", "source_class")
        X, y = fs.load(FAST_CKPT, "imagefolder", split)
        np.testing.assert_array_equal(ds.features.values, X)
        np.testing.assert_array_equal(ds.labels.values, y)
        assert [str(i) for i in ds.ids.values] == fs.load_ids(FAST_CKPT, "imagefolder", split)
        np.testing.assert_array_equal(ds.logits.values,
                                      fs.load_logits(FAST_CKPT, "imagefolder", split))


def test_open_has_label_names_coordinate_and_dict_provenance(clean: tuple[Path, Path]) -> None:
    images, path = clean
    fs = FeatureStore(str(path), read_only=True)
    xds = fs.open(FAST_CKPT, "imagefolder")
    dataset = get_dataset("imagefolder", images)
    assert list(xds.label_name.values) == dataset.label_names == ["class_0", "class_1", "class_2"]
    prov = xds.attrs["provenance"]
    assert isinstance(prov, dict) and prov == fs.provenance(FAST_CKPT, "imagefolder")
    assert prov["dataset"]["counts"] == SPLITS
    test = xds.sel(sample=(xds.split == "test").values)
    names = test.label_name[test.labels].values  # each sample's class name
    assert list(names) == [dataset.label_names[c] for c in dataset.split("test").labels]


def test_chunks_are_sized_from_each_split(clean: tuple[Path, Path]) -> None:
    _, path = clean
    meta = _array_meta(path)
    rows = {s: meta[f"{s}/features"]["chunk_grid"]["configuration"]["chunk_shape"][0]
            for s in SPLITS}
    assert rows == {"train": 9, "val": 6, "test": 12}  # not 16 (= batch 1 x 16), not padded
    d = meta["train/features"]["shape"][1]
    files = _chunk_files(path)
    for split, n in SPLITS.items():  # no padding row on disk: N x D floats + 4-byte crc32c
        feats = [s for k, s in files.items() if f"/{split}/features/" in k]
        assert sum(feats) == n * d * 4 + 4 * len(feats)


@pytest.mark.parametrize("batch", [1, 4, 64])
def test_chunk_rows_keep_whole_batches_and_pad_under_a_batch(batch: int) -> None:
    max_rows = batch * 16
    for n in [1, batch, max_rows - 1, max_rows, max_rows + 1, *range(1, 20 * max_rows, 97)]:
        rows = chunk_rows_for(n, batch, max_rows)
        k = -(-n // rows)
        assert 1 <= rows <= max_rows
        # one chunk of exactly n rows, or chunks of whole batches (same batches on resume)
        assert rows == n or rows % batch == 0
        assert k * rows - n < k * batch  # padding under one batch per chunk


def test_entries_report_the_size_of_the_chunks(store: Path) -> None:
    fs = FeatureStore(str(store), read_only=True)
    [info] = fs.entries()
    assert info.nbytes == sum(_chunk_files(store).values())
    [walked] = fs.entries(sizes=True)
    assert info.nbytes < walked.nbytes < info.nbytes + 64 * 1024  # + metadata files only
    assert json.loads(_cli("ls", "--store", str(store), "--json").stdout)[0]["nbytes"] > 0


def _strip_dimension_names(store: Path, arrays: tuple[str, ...]) -> None:
    """Make the entry's ``arrays`` what the writer produced before they named dimensions."""
    for split in SPLITS:
        for a in arrays:
            p = store / ENTRY / split / a / "zarr.json"
            m = json.loads(p.read_text())
            m.pop("dimension_names", None)
            p.write_text(json.dumps(m))


def test_entries_written_before_dimension_names_still_read(store: Path) -> None:
    fs = FeatureStore(str(store), read_only=True)
    want = {s: fs.load(FAST_CKPT, "imagefolder", s) for s in SPLITS}
    ids = fs.load_ids(FAST_CKPT, "imagefolder", "test")
    _strip_dimension_names(store, ("ids", "done"))  # the previous writer named only the others
    with pytest.raises(KeyError, match="dimension_names"):  # why the names matter
        xr.open_zarr(store / ENTRY / "train", consolidated=False)
    _strip_dimension_names(store, ("features", "labels", "logits"))
    fs = FeatureStore(str(store), read_only=True)
    assert zarr.open_array(store / ENTRY / "train" / "features").metadata.dimension_names is None
    for s, (X, y) in want.items():
        got = fs.load(FAST_CKPT, "imagefolder", s)
        np.testing.assert_array_equal(got[0], X)
        np.testing.assert_array_equal(got[1], y)
    assert fs.load_ids(FAST_CKPT, "imagefolder", "test") == ids
    xds = fs.open(FAST_CKPT, "imagefolder", "train")
    np.testing.assert_array_equal(xds.features.values, want["train"][0])
    assert list(xds.label_name.values) == ["class_0", "class_1", "class_2"]


def _entry_files(store: Path) -> dict[str, bytes]:
    base = store / ENTRY  # all but the group attributes (timings and dates differ per run)
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file() and p != base / "zarr.json"}


def test_entry_chunked_the_old_way_repairs_byte_identically(
    clean: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, _ = clean
    # the previous rule: every split in chunks of batch_size x chunk_batches rows, padded
    monkeypatch.setattr(extract_mod, "chunk_rows_for", lambda n, batch, max_rows: max_rows)
    old, reference = tmp_path / "old.zarr", tmp_path / "reference.zarr"
    _extract(old, images)
    _extract(reference, images)
    monkeypatch.undo()
    assert _array_meta(old)["val/features"]["chunk_grid"]["configuration"]["chunk_shape"][0] == 16
    (old / ENTRY / "train" / "features" / "c" / "1" / "0").unlink()
    (old / ENTRY / "val" / "labels" / "c" / "0").write_bytes(b"bad")
    fs = FeatureStore(str(old))
    report = extract_entry(fs, FAST_CKPT, get_dataset("imagefolder", images), weights="random",
                           batch_size=1, num_workers=0, progress=False, repair=True)
    assert report.status == "repaired" and report.n_images == 2 + 6  # train rows 16-17, val
    assert _entry_files(old) == _entry_files(reference)


def _cli(*args: str, columns: int = 200, check: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": str(columns)}
    p = subprocess.run([FS, *args], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    return p


def test_verify_table_never_cuts_names(store: Path) -> None:
    long = "a_checkpoint_name_longer_than_the_terminal"
    shutil.copytree(store / FAST_CKPT, store / long)
    out = _cli("verify", "--store", str(store), columns=30).stdout
    assert long in out and FAST_CKPT in out  # whole, on one line each
    assert "verified" in out
