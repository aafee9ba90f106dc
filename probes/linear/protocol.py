"""The paper's linear-probe protocol, end to end (Appendix A.4 / G.1).

1. Regularisation path on the train split, scored on the val split (warm-started).
2. Pick the best hyperparameter on val (ties go to the strongest regularisation).
3. Refit on train+val (concatenated) at that value, warm-started from the path's solution.
4. Score the test split and keep every per-example test prediction, so paired statistics
   (McNemar, permutation tests in :mod:`probes.stats`) can be computed later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from probes import metrics as M
from probes.errors import ProbeInputError
from probes.linear.estimators import CurvePoint, refit_train_val
from probes.linear.logistic import logistic_path
from probes.linear.svm import svm_path

__all__ = ["ProtocolResult", "run_protocol"]

Solver = Literal["logreg", "svm"]


@dataclass
class ProtocolResult:
    """Everything one protocol run produced.

    ``curve`` holds one dict per grid value (``param``, ``val_metric``, ``n_iter``,
    ``grad_norm``, ``converged``) in grid order. ``test_predictions`` are class labels
    ``[n_test]`` for single-label data and float scores ``[n_test, C]`` for multi-label.
    ``n_train`` counts what the final model was fit on: train+val, or train alone without
    the refit.
    """

    solver: str
    metric: str
    param_name: str
    best_param: float
    curve: list[CurvePoint]
    test_metric: float
    test_predictions: np.ndarray
    n_train: int
    n_test: int
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"


def run_protocol(
    solver: Solver,
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_val: ArrayLike,
    y_val: ArrayLike,
    X_test: ArrayLike,
    y_test: ArrayLike,
    metric: str = "top1",
    device: str = "auto",
    lambdas: ArrayLike | None = None,
    Cs: ArrayLike | None = None,
    *,
    path_tol: float = 1e-4,
    tol: float = 1e-5,
    refit: bool = True,
    val_ignore: ArrayLike | None = None,
    test_ignore: ArrayLike | None = None,
) -> ProtocolResult:
    """Run path -> pick on val -> refit on train+val -> score test.

    ``refit=False`` (the data-size study, Figure 9 / Appendix A.2) fits the chosen value on
    the train split alone, warm-started from the path, and never adds val to the training data.

    ``solver="logreg"`` uses :func:`probes.linear.logistic.logistic_path` over ``lambdas``
    (default: the paper's 45 values 1e-6..1e5); ``solver="svm"`` uses
    :func:`probes.linear.svm.svm_path` over ``Cs`` (default: 26 values 1e-3..1e2). ``metric`` is
    a key of :data:`probes.metrics.METRICS`; ``voc11_map`` expects ``[N, C]`` 0/1 labels.

    ``path_tol`` and ``tol`` are the relative objective accuracies (see
    :class:`probes.linear.logistic.LogisticProbe`) of the path's points, which only have to rank
    the hyperparameters, and of the final refit, whose predictions are reported.

    ``val_ignore`` / ``test_ignore`` (``[N, C]`` masks, ``voc11_map`` only) leave those label
    entries out of the val selection and the test score: VOC 2007's *difficult* objects, which
    the devkit counts neither as positives nor as negatives.
    """
    if solver not in ("logreg", "svm"):
        raise ProbeInputError(f"solver must be 'logreg' or 'svm', got {solver!r}")
    if metric not in M.METRICS:
        raise ProbeInputError(f"unknown metric {metric!r}; choose from {sorted(M.METRICS)}")
    t0 = time.perf_counter()
    if solver == "logreg":
        path = logistic_path(X_train, y_train, X_val, y_val, lambdas=lambdas, metric=metric,
                             device=device, tol=path_tol, keep_state=True,
                             val_ignore=val_ignore)
    else:
        path = svm_path(X_train, y_train, X_val, y_val, Cs=Cs, metric=metric, device=device,
                        tol=path_tol, keep_state=True, val_ignore=val_ignore)
    t1 = time.perf_counter()

    path.estimator.set_params(tol=tol)
    if refit:
        est = refit_train_val(path, X_train, y_train, X_val, y_val)
    else:
        est = path.estimator.set_params(warm_start=True).fit(X_train, y_train)
    t2 = time.perf_counter()

    y_test_arr = np.asarray(y_test)
    if est.mode_ == "multilabel":
        preds = est.decision_function(X_test)
    else:
        preds = est.predict(X_test)
    test_metric = M.score(metric, y_test_arr, preds, ignore=test_ignore)
    t3 = time.perf_counter()
    return ProtocolResult(
        solver=solver,
        metric=metric,
        param_name=path.param_name,
        best_param=path.best_param,
        curve=path.curve,
        test_metric=float(test_metric),
        test_predictions=preds,
        n_train=int(np.shape(X_train)[0] + (np.shape(X_val)[0] if refit else 0)),
        n_test=int(preds.shape[0]),
        timings={"path_s": t1 - t0, "refit_s": t2 - t1, "total_s": t3 - t0},
        device=est.device_,
    )
