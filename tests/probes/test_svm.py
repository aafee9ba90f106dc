"""SVMProbe / svm_path against scikit-learn's LinearSVC (squared hinge, one-vs-rest).

LinearSVC penalises its intercept (it is the weight of a constant feature
``intercept_scaling``); ours is unpenalised. With ``intercept_scaling=100`` the bias penalty
``0.5 * (b / 100)^2`` is negligible, so both solve the same problem, and both solutions are
scored with one independent NumPy implementation of our objective.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_classification
from sklearn.svm import LinearSVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from probes.errors import ProbeInputError
from probes.linear.svm import DEFAULT_CS, SVMProbe, svm_path


def l2n(X: np.ndarray) -> np.ndarray:
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def svm_objective(coef: np.ndarray, b: np.ndarray, X: np.ndarray, Ypm: np.ndarray,
                  C: float) -> float:
    """sum_k 0.5 ||w_k||^2 + C sum_i max(0, 1 - y_ik (x_i w_k + b_k))^2 on normalised X."""
    margins = np.maximum(0.0, 1.0 - Ypm * (l2n(X) @ coef.T + b))
    return float(0.5 * (coef**2).sum() + C * (margins**2).sum())


def reference(X: np.ndarray, y: np.ndarray, C: float) -> LinearSVC:
    return LinearSVC(C=C, loss="squared_hinge", tol=1e-8, max_iter=200_000,
                     intercept_scaling=100.0).fit(l2n(X), y)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, ...]:
    X, y = load_digits(return_X_y=True)
    X = X + 1.0  # no all-zero rows (their L2 normalisation is undefined)
    return X[:1000], y[:1000], X[1000:], y[1000:]


@pytest.mark.parametrize("C", [0.01, 1.0, 30.0])
def test_matches_linearsvc_multiclass(digits, C: float) -> None:
    Xtr, ytr, Xte, yte = digits
    ours = SVMProbe(C=C, device="cpu").fit(Xtr, ytr)
    ref = reference(Xtr, ytr, C)
    assert ours.coef_.shape == ref.coef_.shape == (10, 64)
    # the probe normalises inside predict: raw features in, same accuracy as on l2n(X)
    assert abs(ours.score(Xte, yte) - ref.score(l2n(Xte), yte)) <= 0.003
    Ypm = np.where(ytr[:, None] == np.arange(10)[None, :], 1.0, -1.0)
    f_ours = svm_objective(ours.coef_, ours.intercept_, Xtr, Ypm, C)
    f_ref = svm_objective(ref.coef_, ref.intercept_, Xtr, Ypm, C)
    assert f_ours == pytest.approx(f_ref, rel=1e-3)
    assert ours.converged_


def test_matches_linearsvc_binary_with_string_labels() -> None:
    X, y = make_classification(600, 30, n_informative=10, random_state=1)
    y = np.where(y == 1, "pos", "neg")
    C = 1.0
    ours = SVMProbe(C=C).fit(X[:400], y[:400])
    ref = reference(X[:400], y[:400], C)
    assert list(ours.classes_) == ["neg", "pos"] and ours.coef_.shape == (1, 30)
    assert ours.decision_function(X[400:]).shape == (200,)
    assert abs(ours.score(X[400:], y[400:]) - ref.score(l2n(X[400:]), y[400:])) <= 0.003
    Ypm = np.where(y[:400] == "pos", 1.0, -1.0)[:, None]
    f_ours = svm_objective(ours.coef_, ours.intercept_, X[:400], Ypm, C)
    f_ref = svm_objective(ref.coef_, ref.intercept_, X[:400], Ypm, C)
    assert f_ours == pytest.approx(f_ref, rel=1e-3)


def test_scale_invariance_from_normalisation(digits) -> None:
    Xtr, ytr, Xte, _ = digits
    a = SVMProbe(C=1.0).fit(Xtr, ytr)
    b = SVMProbe(C=1.0).fit(Xtr * np.linspace(1, 50, len(Xtr))[:, None], ytr)
    np.testing.assert_allclose(a.decision_function(Xte), b.decision_function(Xte * 7.0),
                               atol=1e-3)


def test_multilabel(digits) -> None:
    Xtr, ytr, Xte, yte = digits
    Ytr = np.stack([ytr % 2 == 0, ytr >= 5], axis=1).astype(int)
    Yte = np.stack([yte % 2 == 0, yte >= 5], axis=1).astype(int)
    ours = SVMProbe(C=1.0).fit(Xtr, Ytr)
    for k in range(2):  # one independent squared-hinge problem per column
        ref = reference(Xtr, Ytr[:, k], 1.0)
        Ypm = (2.0 * Ytr[:, k:k + 1] - 1.0)
        f_ours = svm_objective(ours.coef_[k:k + 1], ours.intercept_[k:k + 1], Xtr, Ypm, 1.0)
        f_ref = svm_objective(ref.coef_, ref.intercept_, Xtr, Ypm, 1.0)
        assert f_ours == pytest.approx(f_ref, rel=1e-3)
    assert 0.5 < ours.score(Xte, Yte) <= 1.0  # VOC 11-point mAP of the scores


def test_path(digits) -> None:
    Xtr, ytr, Xva, yva = digits[0][:700], digits[1][:700], digits[0][700:], digits[1][700:]
    path = svm_path(Xtr, ytr, Xva, yva, device="cpu")
    assert len(path.curve) == 26
    np.testing.assert_allclose(path.params, DEFAULT_CS)
    assert all(c["converged"] for c in path.curve)
    vals = path.val_metric
    # ties go to the strongest regularisation: the smallest C among the maxima
    assert path.best_param == DEFAULT_CS[np.flatnonzero(vals == vals.max()).min()]
    for i in (5, 20):  # warm-started points equal cold LinearSVC fits (<= 1 of 300 flips)
        ref = reference(Xtr, ytr, DEFAULT_CS[i])
        assert abs(vals[i] - ref.score(l2n(Xva), yva)) <= 1 / 300 + 1e-9
    assert path.estimator.C == path.best_param


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.array([[np.nan, 1.0], [0.0, 1.0]]), [0, 1], "NaN"),
        (np.array([[np.inf, 1.0], [0.0, 1.0]]), [0, 1], "infinity"),
        (np.ones((3, 2)), [0, 1], "inconsistent numbers of samples"),
        (np.ones((5, 2)), ["a"] * 5, "1 class"),
        (np.zeros((0, 2)), [], "0 sample"),
    ],
)
def test_bad_input_raises_probe_input_error(X, y, match: str) -> None:
    with pytest.raises(ProbeInputError, match=match):
        SVMProbe().fit(X, y)
    with pytest.raises(ProbeInputError):
        SVMProbe(C=0.0).fit(np.eye(3), [0, 1, 1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(digits) -> None:
    Xtr, ytr, Xte, _ = digits
    a = SVMProbe(C=1.0, device="cpu").fit(Xtr, ytr)
    b = SVMProbe(C=1.0, device="cuda").fit(Xtr, ytr)
    np.testing.assert_allclose(a.decision_function(Xte), b.decision_function(Xte), atol=1e-3)


# scikit-learn's own estimator checks; we skip none (see tests/test_logistic.py). Besides
# the array-API check, scikit-learn itself skips the predict_proba checks: like LinearSVC,
# the SVM has no predict_proba.
@parametrize_with_checks([SVMProbe(device="cpu")])
def test_sklearn_estimator_checks(estimator, check) -> None:
    check(estimator)


@pytest.mark.parametrize("scale", [1e30, 1e-30, 1e300])
def test_extreme_feature_scale_gives_the_unscaled_model(digits, scale: float) -> None:
    """Per-row L2 normalisation makes the SVM scale invariant, so features x1e30 (whose
    squares overflow float32) or x1e-30 (whose squares underflow) must give the model of
    the unscaled features, not chance. 1e300 is beyond float32 and must be refused."""
    Xtr, ytr, Xte, yte = digits
    Xtr32, Xte32 = Xtr.astype(np.float32), Xte.astype(np.float32)
    ref = SVMProbe(C=1.0, device="cpu").fit(Xtr32, ytr)
    if scale > float(np.finfo(np.float32).max):
        with pytest.raises(ProbeInputError, match="beyond the range of float32"):
            SVMProbe(C=1.0, device="cpu").fit(Xtr * scale, ytr)
        return
    big = SVMProbe(C=1.0, device="cpu").fit((Xtr * scale).astype(np.float32), ytr)
    assert big.score(Xte * scale, yte) == pytest.approx(ref.score(Xte32, yte), abs=0.003)
    assert ref.score(Xte32, yte) > 0.9
    np.testing.assert_allclose(big.decision_function(Xte * scale), ref.decision_function(Xte32),
                               atol=1e-3)


def test_extreme_feature_scale_in_the_path(digits) -> None:
    Xtr, ytr, Xte, yte = digits
    s = np.float32(1e30)
    ref = svm_path(Xtr[:700], ytr[:700], Xtr[700:], ytr[700:], Cs=[0.1, 1.0, 10.0],
                   device="cpu")
    big = svm_path(Xtr[:700] * s, ytr[:700], Xtr[700:] * s, ytr[700:], Cs=[0.1, 1.0, 10.0],
                   device="cpu")
    assert big.best_param == ref.best_param
    np.testing.assert_allclose(big.val_metric, ref.val_metric, atol=0.004)
