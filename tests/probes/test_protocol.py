"""run_protocol: path on train -> pick on val -> refit on train+val -> score test."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from probes import metrics
from probes.errors import ProbeInputError
from probes.linear.logistic import LogisticProbe
from probes.linear.protocol import ProtocolResult, run_protocol
from probes.linear.svm import SVMProbe


def split(n_features: int = 20, n_classes: int = 4, seed: int = 0) -> tuple[np.ndarray, ...]:
    X, y = make_classification(900, n_features, n_informative=min(10, n_features),
                               n_classes=n_classes, n_clusters_per_class=1, class_sep=0.8,
                               random_state=seed)
    X = np.maximum(X, 0).astype(np.float32)  # non-negative, ReLU-like
    labels = np.array([10, 20, 30, 40, 50])[y]  # arbitrary (non 0..C-1) labels
    return X[:400], labels[:400], X[400:600], labels[400:600], X[600:], labels[600:]


LAMS = np.logspace(-3, 4, 12)


@pytest.mark.parametrize("metric", ["top1", "mean_per_class"])
def test_logreg_protocol(metric: str) -> None:
    Xtr, ytr, Xva, yva, Xte, yte = split()
    res = run_protocol("logreg", Xtr, ytr, Xva, yva, Xte, yte, metric=metric, device="cpu",
                       lambdas=LAMS)
    assert isinstance(res, ProtocolResult)
    assert (res.solver, res.metric, res.param_name) == ("logreg", metric, "lambda")
    assert res.best_param in LAMS
    assert [c["param"] for c in res.curve] == pytest.approx(list(LAMS))
    assert (res.n_train, res.n_test) == (600, 300)
    assert res.test_predictions.shape == (300,)
    assert set(np.unique(res.test_predictions)) <= {10, 20, 30, 40}
    assert res.test_metric == pytest.approx(metrics.score(metric, yte, res.test_predictions))
    assert set(res.timings) == {"path_s", "refit_s", "total_s"}
    assert res.timings["total_s"] >= res.timings["path_s"] + res.timings["refit_s"] - 1e-6
    assert res.device == "cpu"
    # the val pick, independently: the best of cold sklearn fits on train, scored on val
    # (ties -> larger lambda); allow a different pick only if its val score is as good
    ref_val = [LogisticRegression(C=1 / (2 * lam), tol=1e-6, max_iter=5000)
               .fit(Xtr, ytr).predict(Xva) for lam in LAMS]
    ref_scores = np.array([metrics.score(metric, yva, p) for p in ref_val])
    i = int(np.flatnonzero(LAMS == res.best_param)[0])
    assert ref_scores[i] >= ref_scores.max() - 1 / 200 - 1e-9
    # the refit equals a direct fit on train+val at the chosen lambda (sklearn, C = 1/2lam)
    ref = LogisticRegression(C=1 / (2 * res.best_param), tol=1e-8, max_iter=10_000).fit(
        np.concatenate([Xtr, Xva]), np.concatenate([ytr, yva]))
    assert abs(res.test_metric - metrics.score(metric, yte, ref.predict(Xte))) <= 0.0034


def test_svm_protocol_default_grid() -> None:
    Xtr, ytr, Xva, yva, Xte, yte = split()
    Xtr, Xva, Xte = Xtr + 0.01, Xva + 0.01, Xte + 0.01  # no all-zero rows
    res = run_protocol("svm", Xtr, ytr, Xva, yva, Xte, yte, device="cpu")
    assert (res.solver, res.param_name) == ("svm", "C")
    assert len(res.curve) == 26
    direct = SVMProbe(C=res.best_param).fit(np.concatenate([Xtr, Xva]),
                                            np.concatenate([ytr, yva]))
    assert np.mean(direct.predict(Xte) == res.test_predictions) >= 0.99
    assert res.test_metric == pytest.approx(metrics.top1(yte, res.test_predictions))


def test_refit_with_fewer_train_rows_than_features_and_multilabel() -> None:
    """N_train < D (the path's basis spans only the train rows and is extended by the val
    rows for the refit) and VOC-style labels."""
    rng = np.random.default_rng(0)
    n, d, k, n_test = 150, 200, 3, 300
    W = rng.normal(size=(d, k))
    X = np.maximum(rng.normal(size=(2 * n + n_test, d)), 0).astype(np.float32)
    Y = ((X - X.mean(0)) @ W + rng.normal(scale=3.0, size=(len(X), k)) > 0).astype(np.int64)
    res = run_protocol("logreg", X[:n], Y[:n], X[n:2 * n], Y[n:2 * n], X[2 * n:], Y[2 * n:],
                       metric="voc11_map", lambdas=np.logspace(-1, 3, 6))
    assert res.test_predictions.shape == (n_test, k)
    assert res.test_predictions.dtype.kind == "f"
    assert res.test_metric == pytest.approx(metrics.voc11_map(Y[2 * n:], res.test_predictions))
    # the refit (warm-started, from a fresh basis) solves the same problem as a direct fit
    lam = res.best_param
    direct = LogisticProbe(lam=lam, tol=1e-7).fit(X[:2 * n], Y[:2 * n])
    w = np.linalg.lstsq(np.c_[X[2 * n:], np.ones(n_test)], res.test_predictions, rcond=None)[0]
    Xtv, Ytv = X[:2 * n].astype(np.float64), Y[:2 * n]

    def objective(coef: np.ndarray, b: np.ndarray) -> float:
        z = Xtv @ coef + b
        return float(np.logaddexp(0, z).sum() - (Ytv * z).sum() + lam * (coef**2).sum())

    f_res = objective(w[:-1], w[-1])  # coef/bias recovered from the test scores (exact)
    assert f_res == pytest.approx(objective(direct.coef_.T, direct.intercept_), rel=1e-3)
    agree = np.mean((res.test_predictions > 0) == (direct.decision_function(X[2 * n:]) > 0))
    assert agree >= 0.98


def test_refit_when_val_has_a_class_unseen_in_train() -> None:
    Xtr, ytr, Xva, yva, Xte, yte = split()
    yva = yva.copy()
    yva[:30] = 50  # a class the path never saw: the refit must learn it too
    res = run_protocol("logreg", Xtr, ytr, Xva, yva, Xte, yte, lambdas=LAMS)
    direct = LogisticProbe(lam=res.best_param).fit(np.concatenate([Xtr, Xva]),
                                                   np.concatenate([ytr, yva]))
    assert 50 in direct.classes_
    assert np.mean(direct.predict(Xte) == res.test_predictions) >= 0.99


def test_bad_inputs() -> None:
    Xtr, ytr, Xva, yva, Xte, yte = split()
    with pytest.raises(ProbeInputError, match="solver"):
        run_protocol("knn", Xtr, ytr, Xva, yva, Xte, yte)  # type: ignore[arg-type]
    with pytest.raises(ProbeInputError, match="unknown metric"):
        run_protocol("logreg", Xtr, ytr, Xva, yva, Xte, yte, metric="top5")
    with pytest.raises(ProbeInputError, match="0 sample"):
        run_protocol("logreg", Xtr, ytr, Xva, yva, Xte[:0], yte[:0], lambdas=[1.0])
    with pytest.raises(ProbeInputError, match="1 class"):
        run_protocol("svm", Xtr, np.full(len(ytr), 3), Xva, yva, Xte, yte, Cs=[1.0])


def test_huge_feature_scale_svm_scores_as_unscaled_logreg_refuses() -> None:
    """Features x1e30 through the whole protocol: the SVM (scale invariant by its
    normalisation) picks the same C and scores what the unscaled features score; logistic
    regression refuses with one clear error instead of LinAlgError."""
    Xtr, ytr, Xva, yva, Xte, yte = split()
    Xtr, Xva, Xte = Xtr + 0.01, Xva + 0.01, Xte + 0.01  # no all-zero rows
    s = np.float32(1e30)
    ref = run_protocol("svm", Xtr, ytr, Xva, yva, Xte, yte, device="cpu")
    big = run_protocol("svm", Xtr * s, ytr, Xva * s, yva, Xte * s, yte, device="cpu")
    assert ref.test_metric > 0.5  # well above chance (4 classes)
    assert big.best_param == ref.best_param
    assert big.test_metric == pytest.approx(ref.test_metric, abs=1 / 300 + 1e-9)
    with pytest.raises(ProbeInputError, match="too large for the float32 solver"):
        run_protocol("logreg", Xtr * s, ytr, Xva * s, yva, Xte * s, yte, device="cpu",
                     lambdas=LAMS)
