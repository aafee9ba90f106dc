"""``featurestore duplicates`` and ``probe --exclude-duplicates`` through the installed command:
planted byte-identical copies are found (within a dataset and across two), the pairs file is
written, errors are one line, and a deduplicated probe scores exactly the kept test rows."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from featurestore.store import FeatureStore
from tests.conftest import FAST_CKPT, write_imagefolder

FEATURESTORE = str(Path(sys.executable).with_name("featurestore"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
#: byte-identical copies have identical features; different noise images never come this close
EXACT = "0.9999"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FEATURESTORE, *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=300)


def one_error_line(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def _extract(dataset: str, root: Path, store: Path, cwd: Path) -> None:
    p = run_cli("extract", "--ckpt", FAST_CKPT, "--weights", "random", "--dataset", dataset,
                "--data-root", str(root), "--store", str(store), "--no-progress",
                "--workers", "0", cwd=cwd)
    assert p.returncode == 0, p.stderr


def _write_caltech(root: Path) -> Path:
    """A tiny Caltech-101 layout (2 classes x 32 distinct noise images; the loader needs > 30)."""
    from PIL import Image

    rng = np.random.default_rng(7)
    for c in ("ant", "bee"):
        d = root / "101_ObjectCategories" / c
        d.mkdir(parents=True)
        for i in range(32):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                d / f"image_{i + 1:04d}.jpg")
    return root


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A store with caltech101 and imagefolder entries written by the real command; the
    imagefolder's test split holds byte copies of two of its own train images and of one
    caltech101 train image, its train split a copy of one caltech101 val image."""
    base = tmp_path_factory.mktemp("dups_cli")
    store = base / "store.zarr"
    cal = _write_caltech(base / "caltech")
    _extract("caltech101", cal, store, base)
    fs = FeatureStore(str(store), read_only=True)
    cal_train = fs.load_ids(FAST_CKPT, "caltech101", "train")
    cal_val = fs.load_ids(FAST_CKPT, "caltech101", "val")
    images = write_imagefolder(base / "images", classes=2, train=6, test=3, seed=3)
    within = {"test/class_0/dup_a.jpg": "train/class_0/img_000.jpg",
              "test/class_1/dup_b.jpg": "train/class_1/img_004.jpg"}
    across = {"test/class_0/dup_c.jpg": cal_train[5],
              "train/class_1/dup_d.jpg": cal_val[0]}
    for copy, src in within.items():
        shutil.copy(images / src, images / copy)
    for copy, src in across.items():
        shutil.copy(cal / src, images / copy)
    _extract("imagefolder", images, store, base)
    # one `duplicates` run within the imagefolder: its output is checked by
    # test_within_a_dataset_finds_the_planted_test_copies, its pairs file read by the probe test
    pairs = base / "within.csv"
    found = run_cli("duplicates", "--ckpt", FAST_CKPT, "--dataset", "imagefolder", "--store",
                    str(store), "--threshold", EXACT, "--out", str(pairs), "--device", "cpu",
                    cwd=base)
    return {"base": base, "store": store, "within": within, "across": across,
            "pairs": pairs, "found": found}


def _pairs(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_within_a_dataset_finds_the_planted_test_copies(planted: dict) -> None:
    out, p = planted["pairs"], planted["found"]
    assert p.returncode == 0, p.stderr
    rows = _pairs(out)
    got = {r["query_id"]: r["match_id"] for r in rows}
    # a copy's source may have been drawn into val (imagefolder holds 20% of train out)
    assert got == planted["within"]
    assert {r["query_split"] for r in rows} == {"test"}
    assert {r["match_split"] for r in rows} <= {"train", "val"}
    assert all(float(r["similarity"]) >= 0.9999 for r in rows)
    assert "2 pairs" in p.stdout and str(out.name) in p.stdout


def test_against_another_dataset_counts_every_split(planted: dict) -> None:
    base, store = planted["base"], str(planted["store"])
    out = base / "across.csv"
    p = run_cli("duplicates", "--ckpt", FAST_CKPT, "--dataset", "imagefolder", "--against",
                "caltech101", "--store", store, "--threshold", EXACT, "--out", str(out),
                "--json", "--device", "cpu", cwd=base)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    rows = _pairs(out)
    assert {r["query_id"]: r["match_id"] for r in rows} == planted["across"]
    assert {r["match_dataset"] for r in rows} == {"caltech101"}
    assert summary["match_splits"] == ["train", "val"]
    fs = FeatureStore(str(store), read_only=True)
    n = {s: len(fs.load_ids(FAST_CKPT, "imagefolder", s)) for s in ("train", "val", "test")}
    dup_split = {s: sum(r["query_split"] == s for r in rows) for s in n}
    assert summary["counts"] == {
        s: {"n": n[s], "duplicates": dup_split[s],
            "percent": pytest.approx(100 * dup_split[s] / n[s])} for s in n}
    assert sum(dup_split.values()) == 2 and summary["out"] == str(out)


@pytest.mark.parametrize(("args", "needle"), [
    (["--dataset", "cifar10"], "no entry test_convnext/cifar10"),
    (["--dataset", "imagefolder", "--split", "nosuch"], "has no split 'nosuch'"),
])
def test_errors_are_one_line(planted: dict, args: list[str], needle: str) -> None:
    base, store = planted["base"], str(planted["store"])
    out = base / "never.csv"
    p = run_cli("duplicates", "--ckpt", FAST_CKPT, *args, "--store", store, "--out", str(out),
                cwd=base)
    assert needle in one_error_line(p)
    assert not out.exists()


def test_usage_errors_and_missing_store(planted: dict) -> None:
    base = planted["base"]
    p = run_cli("duplicates", "--ckpt", FAST_CKPT, "--dataset", "imagefolder", "--store",
                str(planted["store"]), "--threshold", "2", cwd=base)
    assert p.returncode == 2 and "--threshold" in p.stderr
    p = run_cli("duplicates", "--ckpt", FAST_CKPT, "--dataset", "imagefolder", "--store",
                str(base / "typo.zarr"), cwd=base)
    one_error_line(p)
    assert not (base / "typo.zarr").exists()


@pytest.mark.slow  # three probes through the installed command
def test_probe_excluding_duplicates_scores_the_kept_test_rows(planted: dict) -> None:
    base, store, pairs = planted["base"], str(planted["store"]), planted["pairs"]
    assert planted["found"].returncode == 0, planted["found"].stderr
    probe = ["probe", "--ckpt", FAST_CKPT, "--dataset", "imagefolder", "--store", store,
             "--device", "cpu"]
    assert run_cli(*probe, cwd=base).returncode == 0
    p = run_cli(*probe, "--exclude-duplicates", str(pairs), cwd=base)
    assert p.returncode == 0, p.stderr

    fs = FeatureStore(store, read_only=True)
    rows = {r["variant"]: r for r in fs.results.frame().to_dict("records")
            if r["dataset"] == "imagefolder" and r["setting"] == "logreg"}
    sha = hashlib.sha256(pairs.read_bytes()).hexdigest()
    full, dedup = rows[""], rows[f"dedup={sha[:12]},excluded=2"]
    test_ids = fs.load_ids(FAST_CKPT, "imagefolder", "test")
    _, y_test = fs.load(FAST_CKPT, "imagefolder", "test")
    kept = np.array([t not in planted["within"] for t in test_ids])
    assert dedup["n_test"] == full["n_test"] - 2 == kept.sum()
    assert dedup["excluded_test"] == 2 and dedup["duplicates_sha256"] == sha
    # the same model (same train+val) scored on the kept rows only: by hand from the full
    # run's stored predictions, and from the deduplicated run's own predictions
    full_pred = fs.results.predictions(full["result_id"])
    assert dedup["test_metric"] == pytest.approx(np.mean(full_pred[kept] == y_test[kept]))
    dedup_pred = fs.results.predictions(dedup["result_id"])
    np.testing.assert_array_equal(dedup_pred, full_pred[kept])

    # a pairs file from another split of the dataset is refused, naming the problem
    bad = base / "bad_pairs.csv"
    bad.write_text(pairs.read_text().replace("dup_a.jpg", "not_in_test.jpg"))
    p = run_cli(*probe, "--exclude-duplicates", str(bad), cwd=base)
    assert "does not hold" in one_error_line(p)
