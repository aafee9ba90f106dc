"""Linear SVM probe (the paper's Appendix G.1).

One-vs-rest **squared hinge** (scikit-learn ``LinearSVC``'s default loss), per class ``k``::

    0.5 * ||w_k||^2  +  C * sum_i max(0, 1 - y_ik (x_i . w_k + b_k))^2,   y_ik in {-1, +1}

on per-example L2-normalised features (the probe normalises inside ``fit`` and
``predict``, as the paper did). Squared hinge rather than hinge because it is
differentiable, so the objective is smooth enough for L-BFGS with an exact line search
(the hinge would need a non-smooth or dual solver).

The bias ``b_k`` is **not** penalised. ``LinearSVC`` instead appends a constant feature
``intercept_scaling`` and penalises its weight, i.e. adds ``0.5 * (b / intercept_scaling)^2``;
with ``intercept_scaling`` large the two problems coincide.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from probes.errors import ProbeInputError
from probes.linear.estimators import LinearProbeBase, Mode, PathResult, fit_path
from probes.linear.losses import Loss, SquaredHingeLoss

__all__ = ["DEFAULT_CS", "SVMProbe", "svm_path"]

#: The paper's grid: 26 log-spaced values from 1e-3 to 1e2.
DEFAULT_CS: np.ndarray = np.logspace(-3, 2, 26)


def _alpha(c: float, n: int) -> float:
    # dividing the objective by C * N: mean squared hinge + ||w||^2 / (2 C N)
    return 1.0 / (float(c) * n)


class SVMProbe(LinearProbeBase):
    """One-vs-rest linear SVM with squared hinge loss on L2-normalised features.

    Each class's problem is independent; the solver advances all of them together (shared
    matrix products, per-class step lengths; see :mod:`probes.linear.lbfgs`) in torch on the
    features' device (``device="auto"``: CUDA when available, else CPU), float32 by default.
    Two classes give a single head (positive class ``classes_[1]``), like ``LinearSVC``.
    Multi-label ``[N, C]`` 0/1 targets give one head per column; ``score`` is then the VOC
    2007 11-point mAP of ``decision_function``.

    Parameters
    ----------
    C : float
        Inverse regularisation strength, as in ``LinearSVC``.
    tol, max_iter, device, dtype, warm_start
        As for :class:`probes.linear.logistic.LogisticProbe`; ``tol`` applies to each class's
        problem separately (a class that has converged stops costing anything).
    """

    _normalise = True

    def __init__(
        self,
        C: float = 1.0,
        *,
        tol: float = 1e-5,
        max_iter: int = 1000,
        device: str = "auto",
        dtype: str = "float32",
        warm_start: bool = False,
    ) -> None:
        self.C = C
        self.tol = tol
        self.max_iter = max_iter
        self.device = device
        self.dtype = dtype
        self.warm_start = warm_start

    def _check_params(self) -> None:
        super()._check_params()
        if not (np.isfinite(self.C) and self.C > 0):
            raise ProbeInputError(f"C must be finite and > 0, got {self.C!r}")

    def _alpha(self, n: int) -> float:
        return _alpha(self.C, n)

    def _make_loss(self, mode: Mode, targets: torch.Tensor) -> Loss:
        return SquaredHingeLoss(2 * targets - 1)


def svm_path(
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_val: ArrayLike,
    y_val: ArrayLike,
    Cs: ArrayLike | None = DEFAULT_CS,
    metric: str = "top1",
    device: str = "auto",
    *,
    tol: float = 1e-4,
    max_iter: int = 1000,
    dtype: str = "float32",
    keep_state: bool = False,
    val_ignore: ArrayLike | None = None,
) -> PathResult:
    """Fit at every ``C`` (default ``np.logspace(-3, 2, 26)``; ``None`` means the same) on
    train with warm starts, from the smallest ``C`` (strongest regularisation, where
    ``w = 0`` is nearly right) upwards, keeping the L-BFGS memory; score ``metric`` on val.
    Every point is solved.

    Returns a :class:`~probes.linear.estimators.PathResult` (curve in grid order, best ``C`` with
    ties going to the smaller ``C``, and a fitted :class:`SVMProbe` at it);
    ``keep_state`` as in :func:`probes.linear.logistic.logistic_path`.
    """
    grid = DEFAULT_CS if Cs is None else np.asarray(Cs, dtype=np.float64)
    template = SVMProbe(tol=tol, max_iter=max_iter, device=device, dtype=dtype)
    return fit_path(template, "C", "C", grid, X_train, y_train, X_val, y_val, metric, _alpha,
                    keep_state,
                    val_ignore=None if val_ignore is None else np.asarray(val_ignore))
