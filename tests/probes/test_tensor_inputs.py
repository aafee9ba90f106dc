"""Probes fitted on torch tensors (what ``FeatureStore.load_tensor`` returns, straight into GPU
memory on CUDA) give the numbers of the NumPy route and refuse bad input the same way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probes.errors import ProbeInputError
from probes.linear.logistic import LogisticProbe, logistic_path
from probes.linear.protocol import run_protocol
from probes.linear.svm import svm_path


def _data(seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (4, 12))
    y = rng.integers(0, 4, 300)
    x = (centres[y] + rng.normal(0, 1.5, (300, 12))).astype(np.float32)
    return x[:200], y[:200], x[200:250], y[200:250], x[250:], y[250:]


def test_paths_on_tensors_match_the_numpy_route() -> None:
    xtr, ytr, xva, yva, _, _ = _data()
    grid = np.logspace(-3, 3, 7)
    a = logistic_path(xtr, ytr, xva, yva, lambdas=grid, device="cpu")
    b = logistic_path(torch.from_numpy(xtr), ytr, torch.from_numpy(xva), yva, lambdas=grid,
                      device="cpu")
    np.testing.assert_array_equal(a.val_metric, b.val_metric)
    np.testing.assert_array_equal(a.n_iter, b.n_iter)
    np.testing.assert_array_equal(a.estimator.coef_, b.estimator.coef_)
    s1 = svm_path(xtr, ytr, xva, yva, Cs=[0.1, 1.0], device="cpu")
    s2 = svm_path(torch.from_numpy(xtr), ytr, torch.from_numpy(xva), yva, Cs=[0.1, 1.0],
                  device="cpu")
    np.testing.assert_array_equal(s1.estimator.coef_, s2.estimator.coef_)


def test_protocol_with_tensor_train_and_val_and_numpy_test() -> None:
    """run_probe's CUDA route: train/val tensors, the test split scored from NumPy; the refit
    (train + val) stacks the tensors."""
    xtr, ytr, xva, yva, xte, yte = _data(1)
    ref = run_protocol("logreg", xtr, ytr, xva, yva, xte, yte, device="cpu")
    got = run_protocol("logreg", torch.from_numpy(xtr), ytr, torch.from_numpy(xva), yva, xte, yte,
                       device="cpu")
    assert (got.best_param, got.test_metric) == (ref.best_param, ref.test_metric)
    np.testing.assert_array_equal(got.test_predictions, ref.test_predictions)


@pytest.mark.parametrize("bad, message", [
    (torch.full((20, 3), float("nan")), "NaN or infinity"),
    (torch.ones(20), "2D feature matrix"),
    (torch.ones(20, 3, dtype=torch.int64), "floating-point"),
    (torch.ones(0, 3), "0 sample"),
])
def test_bad_tensors_are_refused_like_arrays(bad: torch.Tensor, message: str) -> None:
    y = np.arange(bad.shape[0]) % 2
    with pytest.raises(ProbeInputError, match=message):
        LogisticProbe(device="cpu").fit(bad, y)


def test_tensor_val_split_is_checked_against_the_train_split() -> None:
    xtr, ytr, xva, yva, _, _ = _data()
    with pytest.raises(ProbeInputError, match="X_val: X has 5 features"):
        logistic_path(xtr, ytr, torch.ones(50, 5), yva, lambdas=[1.0], device="cpu")
    with pytest.raises(ProbeInputError, match="inconsistent numbers of samples"):
        LogisticProbe(device="cpu").fit(torch.from_numpy(xtr), ytr[:-1])
