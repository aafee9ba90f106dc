"""The paper's twelve dataset loaders, each against a tiny fixture in its exact distributed format
(tests/fixtures_datasets.py): splits, label mapping, metric, reading, root and missing-file errors.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from featurestore.datasets import PRESETS, REGISTRY, get_dataset
from featurestore.errors import DatasetRootError, MissingImagesError
from tests.fixtures_datasets import (
    VOC_CLASSES,
    WRITERS,
    Fixture,
    write_caltech101,
    write_flowers102,
)

NAMES = list(WRITERS)
OFFICIAL_VAL = {"aircraft", "voc2007", "dtd", "flowers102"}
METRICS = {
    "food101": "top1", "cifar10": "top1", "cifar100": "top1", "birdsnap": "top1",
    "sun397": "top1", "cars": "top1", "aircraft": "mean_per_class", "voc2007": "voc11_map",
    "dtd": "top1", "pets": "mean_per_class", "caltech101": "mean_per_class",
    "flowers102": "mean_per_class",
}  # fmt: skip

#: What each loader must ask for when its root is empty, as paths under --data-root (written
#: here from the datasets' documentation, independently of the loaders).
EXPECTED_FILES = {
    "food101": ["food-101/meta/classes.txt", "food-101/meta/train.txt", "food-101/meta/test.txt",
                "food-101/images"],
    "cifar10": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
    + ["cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta"],
    "cifar100": ["cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta"],
    "birdsnap": ["species.txt", "images.txt", "test_images.txt", "download/images"],
    "sun397": ["SUN397/ClassName.txt", "Partitions/Training_01.txt", "Partitions/Testing_01.txt"],
    "cars": ["devkit/cars_meta.mat", "devkit/cars_train_annos.mat",
             "cars_test_annos_withlabels.mat", "cars_train", "cars_test"],
    "aircraft": ["data/images", "data/variants.txt", "data/images_variant_train.txt",
                 "data/images_variant_val.txt", "data/images_variant_test.txt"],
    "voc2007": ["VOCdevkit/VOC2007/JPEGImages"]
    + [f"VOCdevkit/VOC2007/ImageSets/Main/{c}_{s}.txt"
       for s in ("train", "val", "test") for c in VOC_CLASSES],
    "dtd": ["images", "labels/train1.txt", "labels/val1.txt", "labels/test1.txt"],
    "pets": ["images", "annotations/trainval.txt", "annotations/test.txt"],
    "caltech101": ["101_ObjectCategories"],
    "flowers102": ["jpg", "imagelabels.mat", "setid.mat"],
}


def _expected_holdout(n: int, fraction: float = 0.2) -> int:
    """Validation rows a class of ``n`` training rows gives (the documented stratified rule)."""
    if n <= 1:
        return 0
    return min(max(int(round(fraction * n)), 1), n - 1)


def _label_of(ds, labels: np.ndarray) -> object:
    if ds.multilabel:
        return {ds.label_names[c] for c in np.flatnonzero(labels)}
    return ds.label_names[int(labels)]


@pytest.fixture(params=NAMES)
def fixture(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Fixture]:
    name = request.param
    return name, WRITERS[name](tmp_path / name)


def test_registry_and_preset() -> None:
    assert PRESETS["paper12"] == NAMES  # Table 1's order
    for name in NAMES:
        cls = REGISTRY[name]
        assert cls.name == name and cls.metric == METRICS[name]
        assert cls.multilabel is (name == "voc2007")


def test_loader_reads_fixture(fixture: tuple[str, Fixture]) -> None:
    name, fx = fixture
    ds = get_dataset(name, fx.root)
    assert ds.metric == fx.metric
    assert ds.label_names == fx.label_names and ds.num_classes == len(fx.label_names)

    splits = {s: ds.split(s) for s in ("train", "val", "test", "trainval")}
    for s, n in fx.counts.items():
        assert len(splits[s]) == n, (s, len(splits[s]), n)
    assert splits["trainval"].ids == splits["train"].ids + splits["val"].ids
    sets = {s: set(splits[s].ids) for s in ("train", "val", "test")}
    assert all(len(sets[s]) == len(splits[s]) for s in sets)  # no duplicates
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"]
                or sets["val"] & sets["test"])
    if name != "caltech101":  # caltech's fixture holds more images than the protocol tests on
        assert sets["train"] | sets["val"] | sets["test"] == set(fx.labels)

    for s in ("train", "val", "test"):
        sp = splits[s]
        if ds.multilabel:
            assert sp.labels.dtype == np.uint8 and sp.labels.shape == (len(sp), ds.num_classes)
        else:
            assert sp.labels.dtype == np.int64 and sp.labels.shape == (len(sp),)
        for sid, y in zip(sp.ids, sp.labels, strict=True):
            assert _label_of(ds, y) == fx.labels[sid], (s, sid)

    if name not in OFFICIAL_VAL:  # seeded, class-stratified 20% of the official train split
        per_class = Counter(splits["trainval"].labels.tolist())
        val_per_class = Counter(splits["val"].labels.tolist())
        assert {c: val_per_class.get(c, 0) for c in per_class} == {
            c: _expected_holdout(n) for c, n in per_class.items()
        }

    im = ds.read(fx.probe_id)
    assert im.mode == "RGB" and im.size == fx.probe_size

    prov = ds.provenance()
    json.dumps(prov)
    assert prov["counts"] == {s: len(splits[s]) for s in ("train", "val", "test")}
    assert prov["skipped_missing"] == [] and prov["split_rule"] and prov["seed"] == 0
    assert prov["val_split"].startswith("official" if name in OFFICIAL_VAL else "stratified 20%")

    again = get_dataset(name, fx.root)  # deterministic: a fresh loader gives the same splits
    for s in ("train", "val", "test"):
        assert again.split(s).ids == splits[s].ids
        np.testing.assert_array_equal(again.split(s).labels, splits[s].labels)

    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers get a pickled copy
    assert clone.read(fx.probe_id).size == fx.probe_size


@pytest.mark.parametrize("name", NAMES)
def test_empty_root_lists_expected_files(name: str, tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DatasetRootError) as err:
        get_dataset(name, root).split("train")
    msg = str(err.value)
    assert str(root) in msg
    expected, _, missing = msg.partition("missing:")
    for path in EXPECTED_FILES[name]:
        assert path in expected, path
        assert path in missing, path
    with pytest.raises(DatasetRootError, match="--data-root"):
        get_dataset(name).split("train")


def test_partial_root_names_exactly_the_missing_files(tmp_path: Path) -> None:
    """The common VOC mistake: the test tar not unpacked. The error names the 20 test lists."""
    fx = WRITERS["voc2007"](tmp_path / "voc")
    main = fx.root / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main"
    for c in VOC_CLASSES:
        (main / f"{c}_test.txt").unlink()
    with pytest.raises(DatasetRootError) as err:
        get_dataset("voc2007", fx.root).split("test")
    missing = str(err.value).split("missing:", 1)[1].split("(")[0]
    listed = {m.strip() for m in missing.split(",") if m.strip()}
    assert listed == {f"VOCdevkit/VOC2007/ImageSets/Main/{c}_test.txt" for c in VOC_CLASSES}


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("cifar10", "cifar100",
                                                                 "caltech101")])
def test_missing_images_raise_or_are_skipped(name: str, tmp_path: Path) -> None:
    fx = WRITERS[name](tmp_path / name)
    full = get_dataset(name, fx.root)
    full_splits = {s: full.split(s) for s in ("train", "val", "test")}
    gone = set(fx.deletable)
    assert gone <= set(fx.labels) and len(gone) >= 2
    for sid in gone:
        (fx.root / fx.prefix / sid).unlink()

    with pytest.raises(MissingImagesError) as err:
        get_dataset(name, fx.root).split("train")
    msg = str(err.value)
    assert f"{len(gone)} of {len(fx.labels)} images" in msg and "allow_missing" in msg
    assert any(g in msg for g in gone)

    ds = get_dataset(name, fx.root, allow_missing=True)
    assert set(ds.split("trainval").ids) | set(ds.split("test").ids) == set(fx.labels) - gone
    assert sorted(ds.skipped) == sorted(gone)
    assert sorted(ds.provenance()["skipped_missing"]) == sorted(gone)
    for s in ("train", "val", "test"):  # the holdout is drawn before skipping: nothing moves
        assert ds.split(s).ids == [i for i in full_splits[s].ids if i not in gone]


def test_real_flowers_style_missing_ids_are_recorded(tmp_path: Path) -> None:
    """Like shared/datasets/flowers102: setid.mat names images whose JPEGs are absent."""
    fx = write_flowers102(tmp_path / "f")
    for i in (3, 7, 29):
        (fx.root / "jpg" / f"image_{i:05d}.jpg").unlink()
    with pytest.raises(MissingImagesError, match="3 of 30 images"):
        get_dataset("flowers102", fx.root).split("test")
    ds = get_dataset("flowers102", fx.root, allow_missing=True)
    assert ds.skipped == []  # filled when the split files are read (lazily, on first use)
    ds.split("train")
    assert sorted(ds.skipped) == [f"jpg/image_{i:05d}.jpg" for i in (3, 7, 29)]
    assert sum(len(ds.split(s)) for s in ("train", "val", "test")) == 27


def test_torchvision_download_layouts_are_accepted(tmp_path: Path) -> None:
    """A root prepared by torchvision (dataset in its own sub-folder) works like a hand-made one."""
    fx = write_flowers102(tmp_path / "tv", subdir="flowers-102")
    ds = get_dataset("flowers102", fx.root)
    assert len(ds.split("test")) == 18 and ds.provenance()["data_dir"].endswith("flowers-102")
    food = WRITERS["food101"](tmp_path / "food")
    assert len(get_dataset("food101", food.root / "food-101").split("test")) == 6
    (fx.root / "flowers-102" / "setid.mat").unlink()  # half-copied: advice about that folder
    with pytest.raises(DatasetRootError) as err:
        get_dataset("flowers102", fx.root).split("test")
    assert str(err.value).split("missing:", 1)[1].split(" (")[0].strip() == "flowers-102/setid.mat"


def _fake_torchvision(monkeypatch: pytest.MonkeyPatch, **classes: type) -> None:
    """Stand-ins for torchvision dataset classes (importing the real package takes seconds)."""
    tv = types.ModuleType("torchvision")
    tvd = types.ModuleType("torchvision.datasets")
    for name, cls in classes.items():
        setattr(tvd, name, cls)
    tv.datasets = tvd  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", tvd)


def test_download_failure_is_one_root_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Offline:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("Temporary failure in name resolution")

    _fake_torchvision(monkeypatch, Flowers102=Offline)
    with pytest.raises(DatasetRootError) as err:
        get_dataset("flowers102", tmp_path / "new", download=True).split("train")
    msg = str(err.value)
    assert "torchvision could not download" in msg and "name resolution" in msg
    assert "imagelabels.mat" in msg and "setid.mat" in msg
    with pytest.raises(DatasetRootError, match="no automatic download"):
        get_dataset("birdsnap", tmp_path / "birds", download=True).split("train")


def test_download_into_torchvision_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """download=True calls torchvision with the root, then finds what it unpacked (dtd/dtd/)."""
    calls: list[tuple[str, bool]] = []

    class FakeDTD:
        def __init__(self, root: str, download: bool = False, **kwargs: object) -> None:
            calls.append((root, download))
            WRITERS["dtd"](Path(root) / "dtd")  # writes <root>/dtd/dtd/..., torchvision's layout

    _fake_torchvision(monkeypatch, DTD=FakeDTD)
    root = tmp_path / "data"
    ds = get_dataset("dtd", root, download=True)
    assert len(ds.split("test")) == 6 and calls == [(str(root), True)]
    get_dataset("dtd", root, download=True).split("train")  # present now: no second download
    assert len(calls) == 1


def test_voc_difficult_entries(tmp_path: Path) -> None:
    fx = WRITERS["voc2007"](tmp_path / "voc")
    ds = get_dataset("voc2007", fx.root)
    for s in ("train", "val", "test", "trainval"):
        mask = ds.difficult_mask(s)
        sp = ds.split(s)
        assert mask.shape == sp.labels.shape and mask.dtype == np.uint8
        for sid, row, y in zip(sp.ids, mask, sp.labels, strict=True):
            assert {VOC_CLASSES[c] for c in np.flatnonzero(row)} == fx.difficult[sid]
            assert not (row & y).any()  # a difficult entry is never a positive label
    assert sum(len(v) for v in fx.difficult.values()) > 0


def test_cifar_read_returns_the_stored_pixels(tmp_path: Path) -> None:
    fx = WRITERS["cifar10"](tmp_path / "c10")
    ds = get_dataset("cifar10", fx.root)
    for sid in ("data_batch_2:3", "test_batch:4"):
        px = np.asarray(ds.read(sid))
        label = ds.label_names.index(fx.labels[sid])
        assert px.shape == (32, 32, 3)
        assert (px[..., 0] == label).all() and (px[..., 1] == int(sid.split(":")[1])).all()
        assert (px[..., 2] == 7).all()
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._pixels == {}  # the decoded batches are not shipped to workers
    assert np.array_equal(np.asarray(clone.read("data_batch_5:0")),
                          np.asarray(ds.read("data_batch_5:0")))


def test_caltech_protocol(tmp_path: Path) -> None:
    fx = write_caltech101(tmp_path / "cal")
    ds = get_dataset("caltech101", fx.root)
    trainval, val, test = ds.split("trainval"), ds.split("val"), ds.split("test")
    assert Counter(trainval.labels.tolist()) == {0: 30, 1: 30, 2: 30}
    assert Counter(val.labels.tolist()) == {0: 6, 1: 6, 2: 6}
    assert Counter(test.labels.tolist()) == {0: 3, 1: 1, 2: 2}
    assert all(Path(i).name.startswith("image_") for i in trainval.ids + test.ids)

    other = get_dataset("caltech101", fx.root, seed=1)
    assert set(other.split("test").ids) != set(test.ids)
    # One class's draw does not depend on the others: remove a class, the rest stay put.
    shutil.rmtree(fx.root / "101_ObjectCategories" / "Faces_easy")
    fewer = get_dataset("caltech101", fx.root)
    assert [i for i in test.ids if "Faces_easy" not in i] == fewer.split("test").ids
