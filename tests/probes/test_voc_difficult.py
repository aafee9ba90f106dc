"""VOC 2007 *difficult* objects through extraction and the linear probes.

The devkit leaves difficult (image, class) entries out of both positives and negatives; the
store keeps the mask beside the labels and the probe's val selection and test score use it.
Everything here starts from the VOC fixture files through a real extraction and a real probe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures_datasets import VOC_CLASSES, write_voc2007

PX = 32


def _devkit_ap(truth: np.ndarray, scores: np.ndarray, difficult: np.ndarray) -> float:
    """VOC2007 ``VOCevalcls`` 11-point AP written out from the devkit's MATLAB, independently
    of :mod:`probes.metrics`: difficult entries are dropped, then ranked by score."""
    keep = difficult == 0
    gt, sc = truth[keep] > 0, scores[keep]
    order = np.argsort(-sc, kind="stable")
    tp = np.cumsum(gt[order]).astype(float)
    fp = np.cumsum(~gt[order]).astype(float)
    rec, prec = tp / gt.sum(), tp / (tp + fp)
    ap = 0.0
    for t in np.arange(0, 1.1, 0.1):
        p = prec[rec >= t - 1e-12]
        ap += (p.max() if p.size else 0.0) / 11
    return ap


def _devkit_map(truth: np.ndarray, scores: np.ndarray, difficult: np.ndarray) -> float:
    present = [c for c in range(truth.shape[1]) if (truth[:, c] * (1 - difficult[:, c])).any()]
    return float(np.mean([_devkit_ap(truth[:, c], scores[:, c], difficult[:, c])
                          for c in present]))


@pytest.fixture(scope="module")
def voc_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object]:
    """The VOC fixture extracted with a random-weight test_resnet, then probed (logreg)."""
    from featurestore.checkpoints import load_checkpoint
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore
    from probes.linear.sweep import run_probe

    tmp = tmp_path_factory.mktemp("voc")
    fx = write_voc2007(tmp / "voc", {"train": 24, "val": 12, "test": 16})
    url = str(tmp / "s.zarr")
    fs = FeatureStore(url)
    loaded = load_checkpoint("test_resnet", "random", seed=0)
    loaded.data_config["input_size"] = (3, PX, PX)
    extract_entry(fs, loaded, get_dataset("voc2007", fx.root), device="cpu", num_workers=0,
                  progress=False, batch_size=8, chunk_batches=1)
    assert run_probe(fs, "test_resnet", "voc2007", "logreg", device="cpu").status == "done"
    return url, fx


def _fixture_masks(fx: object, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and difficult mask straight from the fixture's flag files (what it wrote)."""
    labels = np.array([[c in fx.labels[i] for c in VOC_CLASSES] for i in ids], dtype=np.uint8)
    difficult = np.array([[c in fx.difficult[i] for c in VOC_CLASSES] for i in ids],
                         dtype=np.uint8)
    return labels, difficult


def test_extraction_stores_the_difficult_mask_beside_the_labels(voc_store) -> None:
    from featurestore.store import FeatureStore
    from featurestore.store.integrity import check_entry

    url, fx = voc_store
    fs = FeatureStore(url, read_only=True)
    for split in ("train", "val", "test"):
        ids = fs.load_ids("test_resnet", "voc2007", split)
        labels, difficult = _fixture_masks(fx, ids)
        _, y = fs.load("test_resnet", "voc2007", split)
        stored = fs.load_difficult("test_resnet", "voc2007", split)
        assert stored is not None and stored.dtype == np.uint8
        np.testing.assert_array_equal(y, labels)
        np.testing.assert_array_equal(stored, difficult)
        arr = fs.root[f"test_resnet/voc2007/{split}/difficult"]
        lab = fs.root[f"test_resnet/voc2007/{split}/labels"]
        assert arr.chunks == lab.chunks and arr.shape == lab.shape
    assert fs.load_difficult("test_resnet", "voc2007", "trainval").shape == (36, 20)
    check = check_entry(fs.root, "test_resnet", "voc2007")
    assert check.ok and check.integrity == "verified"  # the mask's chunks are checksummed too


def test_probe_test_metric_is_the_devkit_map_ignoring_difficult(voc_store) -> None:
    from featurestore.store import FeatureStore

    url, fx = voc_store
    fs = FeatureStore(url, read_only=True)
    (row,) = fs.results.rows()
    preds = fs.results.predictions(row.result_id)
    labels, difficult = _fixture_masks(fx, fs.load_ids("test_resnet", "voc2007", "test"))
    assert difficult.any()
    want = _devkit_map(labels, preds, difficult)
    assert row.metric == "voc11_map"
    assert row.test_metric == pytest.approx(want, abs=1e-9)
    # counting difficult entries as negatives gives another number on this fixture
    assert _devkit_map(labels, preds, np.zeros_like(difficult)) != pytest.approx(want)


def test_val_selection_scores_with_the_val_mask(voc_store) -> None:
    """The stored val curve is the path scored with the fixture's own difficult mask on val,
    and differs from the path that counts difficult entries as negatives."""
    from featurestore.store import FeatureStore
    from probes.linear.logistic import logistic_path

    url, fx = voc_store
    fs = FeatureStore(url, read_only=True)
    (row,) = fs.results.rows()
    X_tr, y_tr = fs.load("test_resnet", "voc2007", "train")
    X_va, _ = fs.load("test_resnet", "voc2007", "val")
    labels, difficult = _fixture_masks(fx, fs.load_ids("test_resnet", "voc2007", "val"))
    stored = [p["val_metric"] for p in row.val_curve]

    def curve(mask: np.ndarray | None) -> list[float]:
        path = logistic_path(X_tr, y_tr, X_va, labels, metric="voc11_map", device="cpu",
                             val_ignore=mask)
        return [p["val_metric"] for p in path.curve]

    assert stored == pytest.approx(curve(difficult), abs=1e-12)
    assert stored != pytest.approx(curve(None), abs=1e-6)


def test_entries_without_a_mask_still_read(tmp_path: Path) -> None:
    """Single-label entries have no mask: load_difficult says None and probes score as before."""
    from featurestore.checkpoints import load_checkpoint
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore

    fs = FeatureStore(str(tmp_path / "s.zarr"))
    loaded = load_checkpoint("test_resnet", "random", seed=0)
    loaded.data_config["input_size"] = (3, 16, 16)
    from tests.fixtures_datasets import write_dtd

    fx = write_dtd(tmp_path / "dtd")
    extract_entry(fs, loaded, get_dataset("dtd", fx.root), device="cpu", num_workers=0,
                  progress=False)
    assert fs.load_difficult("test_resnet", "dtd", "test") is None
    assert not (Path(fs.local_root) / "test_resnet/dtd/test/difficult").exists()
