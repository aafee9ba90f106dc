"""Near-duplicate search: the blocked kNN against a brute-force float64 reference, the store
path against images that really are copies, and the pairs file round trip."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from probes.analysis.duplicates import (
    DEFAULT_THRESHOLD,
    ArrayRows,
    blocked_topk,
    brute_force_pairs,
    deduplicate_test,
    excluded_test_ids,
    file_sha256,
    find_duplicates,
    read_pairs,
    search_pairs,
    write_pairs,
)
from probes.errors import ProbeInputError


def _planted(seed: int, nq: int = 157, nr: int = 203, d: int = 24) -> tuple[np.ndarray, ...]:
    """Random features with a few queries planted as noisy copies of reference rows."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(nr, d)).astype(np.float32)
    query = rng.normal(size=(nq, d)).astype(np.float32)
    planted = rng.choice(nq, 12, replace=False)
    query[planted] = 3.0 * ref[rng.choice(nr, 12)] + 0.05 * rng.normal(size=(12, d))
    return query, ref


@pytest.mark.parametrize("block_rows", [5, 16, 64, 1000])
@pytest.mark.parametrize("threshold", [0.3, 0.9])
def test_blocked_search_equals_brute_force(block_rows: int, threshold: float) -> None:
    query, ref = _planted(block_rows)
    got = search_pairs(ArrayRows(query), ArrayRows(ref), threshold, k=3, block_rows=block_rows,
                       device="cpu")
    want = brute_force_pairs(query, ref, threshold, k=3)
    assert [(q, r) for q, r, _ in got] == [(q, r) for q, r, _ in want]
    np.testing.assert_allclose([s for *_, s in got], [s for *_, s in want], atol=1e-5)
    assert len(want) >= 12  # the planted copies at least: the comparison is not vacuous


def test_topk_is_exact_and_sorted_across_block_boundaries() -> None:
    query, ref = _planted(1, nq=40, nr=50)
    sims, index = blocked_topk(ArrayRows(query), ArrayRows(ref), k=60, block_rows=9,
                               device="cpu")
    assert sims.shape == (40, 50)  # k is capped at the reference size
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    full = unit(query.astype(np.float64)) @ unit(ref.astype(np.float64)).T
    np.testing.assert_allclose(sims, np.take_along_axis(full, index, 1), atol=1e-5)
    np.testing.assert_allclose(sims, -np.sort(-full, axis=1), atol=1e-5)
    assert all(sorted(row) == list(range(50)) for row in index.tolist())


def _crops() -> dict[str, Image.Image]:
    """Twelve different photographs: a 2 x 3 grid of 213-px crops of each of the two photos
    scikit-learn ships (no download). Measured with efficientnet_lite0, two different crops are
    at most 0.82 cosine-similar, below the default threshold."""
    from sklearn.datasets import load_sample_image

    out = {}
    for name in ("china", "flower"):
        im = Image.fromarray(load_sample_image(f"{name}.jpg"))
        for r in range(2):
            for c in range(3):
                out[f"{name}{r}{c}"] = im.crop((c * 213, r * 213, c * 213 + 213, r * 213 + 213))
    return out


def _copy(im: Image.Image, scale: float, quality: int) -> Image.Image:
    """``im`` resized by ``scale`` and re-encoded as JPEG: what a scraped duplicate looks like."""
    big = im.resize((int(im.width * scale), int(im.height * scale)), Image.BILINEAR)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def write_copies_folder(root: Path) -> dict[str, str]:
    """An imagefolder (train/val/test given) whose test split holds resized and re-encoded
    copies of two train images and one val image beside four new photographs; returns
    test id -> the id of the image it copies."""
    crops = _crops()
    where = {"00": "train", "01": "train", "02": "train", "10": "val", "11": "test",
             "12": "test"}
    for name, im in crops.items():
        cls, split = name[:-2], where[name[-2:]]
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        im.save(root / split / cls / f"{name}.png")
    truth = {}
    for i, (src, scale, quality) in enumerate([("train/china/china00.png", 1.7, 85),
                                               ("val/flower/flower10.png", 2.0, 90),
                                               ("train/flower/flower02.png", 1.5, 90)]):
        copy = f"test/{src.split('/')[1]}/copy{i}.jpg"
        _copy(Image.open(root / src).convert("RGB"), scale, quality).save(root / copy,
                                                                           quality=95)
        truth[copy] = src
    return truth


@pytest.fixture(scope="module")
def copies_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """efficientnet_lite0 (real weights) features of :func:`write_copies_folder`, written by
    the real extraction."""
    from featurestore.checkpoints import load_checkpoint
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore

    tmp = tmp_path_factory.mktemp("dups")
    truth = write_copies_folder(tmp / "images")
    url = str(tmp / "store.zarr")
    try:
        loaded = load_checkpoint("efficientnet_lite0", None)
    except Exception as e:  # weights come from an installed package, never the network
        pytest.skip(f"efficientnet_lite0 weights unavailable: {e}")
    extract_entry(FeatureStore(url), loaded, get_dataset("imagefolder", tmp / "images"),
                  device="cpu", num_workers=0, progress=False)
    return url, truth


@pytest.mark.slow  # loads efficientnet_lite0's real weights (~10 s idle, 35 s busy)
def test_real_copies_are_found_exactly_at_the_default_threshold(
    copies_store: tuple[str, dict[str, str]],
) -> None:
    from featurestore.store import FeatureStore

    url, truth = copies_store
    report = find_duplicates(FeatureStore(url, read_only=True), "efficientnet_lite0",
                             "imagefolder", device="cpu")
    found = {p["query_id"]: p["match_id"] for p in report.pairs}
    assert found == truth and len(report.pairs) == len(truth)
    assert all(p["similarity"] >= DEFAULT_THRESHOLD for p in report.pairs)
    assert report.query_splits == ["test"] and report.match_splits == ["train", "val"]
    assert report.counts == {"test": {"n": 7, "duplicates": 3}}
    with pytest.raises(ProbeInputError, match="overlap"):
        find_duplicates(FeatureStore(url, read_only=True), "efficientnet_lite0", "imagefolder",
                        splits=["test", "val"], device="cpu")


def test_pairs_file_round_trip_names_the_test_images(tmp_path: Path) -> None:
    pairs = [
        {"query_dataset": "cifar10", "query_split": "test", "query_id": "7",
         "match_dataset": "imagenet", "match_split": "train", "match_id": "n01/x.jpg",
         "similarity": 0.97, "ckpt": "c", "threshold": 0.9},
        {"query_dataset": "cifar10", "query_split": "train", "query_id": "3",
         "match_dataset": "cifar10", "match_split": "test", "match_id": "8",
         "similarity": 0.95, "ckpt": "c", "threshold": 0.9},
        {"query_dataset": "cifar10", "query_split": "train", "query_id": "4",
         "match_dataset": "imagenet", "match_split": "train", "match_id": "n02/y.jpg",
         "similarity": 0.93, "ckpt": "c", "threshold": 0.9},
    ]
    path = tmp_path / "p.csv"
    write_pairs(pairs, path)
    rows = read_pairs(path)
    assert [float(r["similarity"]) for r in rows] == [0.97, 0.95, 0.93]
    assert excluded_test_ids(rows, "cifar10") == {"7", "8"}
    assert excluded_test_ids(rows, "cifar100") == set()
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ProbeInputError, match="not a duplicates pairs file"):
        read_pairs(tmp_path / "bad.csv")
    with pytest.raises(ProbeInputError, match="does not exist"):
        read_pairs(tmp_path / "missing.csv")


def test_deduplicate_test_keeps_the_other_rows_in_order(tmp_path: Path) -> None:
    pair = {"query_dataset": "cifar10", "query_split": "test", "match_dataset": "imagenet",
            "match_split": "train", "match_id": "n01/x.jpg", "similarity": 0.97, "ckpt": "c",
            "threshold": 0.9}
    path = tmp_path / "p.csv"
    write_pairs([{**pair, "query_id": "7"}, {**pair, "query_id": "9"},
                 {**pair, "query_id": "9", "match_id": "n01/y.jpg"}], path)
    d = deduplicate_test(path, "cifar10", ["5", "7", "8", "9", "10"])
    assert d.index.tolist() == [0, 2, 4] and d.excluded == 2
    assert d.variant == f"dedup={file_sha256(path)[:12]},excluded=2"
    with pytest.raises(ProbeInputError, match="does not hold"):
        deduplicate_test(path, "cifar10", ["5", "7"])  # "9" is not in this test split
    with pytest.raises(ProbeInputError, match="names no image of dataset 'cifar100'"):
        deduplicate_test(path, "cifar100", ["7", "9"])
    with pytest.raises(ProbeInputError, match="nothing would be left"):
        deduplicate_test(path, "cifar10", ["7", "9"])
