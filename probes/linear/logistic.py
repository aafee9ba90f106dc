"""L2-regularised logistic regression probe (the paper's Appendix A.4).

Objective, for weights ``W [D, C]`` and an unpenalised bias ``b``::

    sum_i loss(x_i W + b, y_i)  +  lam * ||W||_F^2

with the softmax cross-entropy for single-label data (multinomial; one sigmoid head when
there are only two classes, as scikit-learn does) and one-vs-rest sigmoid heads with the
same penalty for multi-label ``[N, C]`` 0/1 targets (PASCAL VOC 2007). The penalty sits on
the *sum* of per-example losses, as in the paper, so ``lam`` is comparable across dataset
sizes only through ``lam / N``.

Mapping to scikit-learn: ``LogisticRegression`` minimises ``C * sum_i loss + 0.5 ||W||^2``;
dividing by ``C`` gives ``sum_i loss + ||W||^2 / (2 C)``, hence **C = 1 / (2 * lam)**.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from probes.errors import ProbeInputError
from probes.linear.estimators import LinearProbeBase, Mode, PathResult, fit_path
from probes.linear.losses import Loss, MultinomialLoss, SigmoidLoss

__all__ = ["DEFAULT_LAMBDAS", "LogisticProbe", "logistic_path"]

#: The paper's grid: 45 log-spaced values from 1e-6 to 1e5.
DEFAULT_LAMBDAS: np.ndarray = np.logspace(-6, 5, 45)


def _alpha(lam: float, n: int) -> float:
    # the solver minimises the mean-scaled objective loss/N + (alpha/2)||W||^2
    return 2.0 * float(lam) / n


class LogisticProbe(LinearProbeBase):
    """Multinomial logistic regression with penalty ``lam * ||W||^2`` on the summed loss.

    Equivalent to ``sklearn.linear_model.LogisticRegression(C=1 / (2 * lam))`` (bias not
    penalised, as with scikit-learn's lbfgs solver). Solved by a preconditioned L-BFGS in
    torch on the features' device (see :mod:`probes.linear.lbfgs`): ``device="auto"`` picks CUDA
    when available, else CPU; ``dtype="float32"`` by default.

    Multi-label ``y`` (an ``[N, C]`` 0/1 matrix): one-vs-rest sigmoid heads with the same
    penalty; ``decision_function`` returns the ``[N, C]`` scores, ``predict_proba`` the
    per-class probabilities, ``predict`` the 0/1 matrix ``scores > 0`` and ``score`` the
    VOC 2007 11-point mAP of the scores.

    Parameters
    ----------
    lam : float
        L2 strength on the sum of per-example losses.
    tol : float
        Relative objective accuracy: stop when the L-BFGS estimate of ``f - f*`` (the
        quasi-Newton decrement) is below ``tol * max(|f|, 0.01 f(0))`` of the mean-scaled
        objective ``f``. Unlike a gradient-norm threshold it does not depend on the scale of
        the features; the floor ``0.01 f(0)`` stops chasing a loss that tends to 0 on
        separable data. The estimate can be optimistic by a small factor on ill-conditioned
        problems: the default 1e-5 leaves the objective within ~1e-4 of the optimum
        (relative), the paths use 1e-4 (their points only rank hyperparameters).
    max_iter : int
        L-BFGS iteration cap (each iteration is two matrix products over the features).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    dtype : {"float32", "float64"}
    warm_start : bool
        Start from the previous ``coef_``/``intercept_`` when refitting on data with the
        same features and classes.

    Attributes
    ----------
    classes_, coef_ ``[C or 1, D]``, intercept_ ``[C or 1]``, n_features_in_, n_iter_,
    grad_norm_ (final max-abs gradient of the mean-scaled objective), converged_,
    objective_ (final mean-scaled objective), device_.
    """

    def __init__(
        self,
        lam: float = 1.0,
        *,
        tol: float = 1e-5,
        max_iter: int = 1000,
        device: str = "auto",
        dtype: str = "float32",
        warm_start: bool = False,
    ) -> None:
        self.lam = lam
        self.tol = tol
        self.max_iter = max_iter
        self.device = device
        self.dtype = dtype
        self.warm_start = warm_start

    def _check_params(self) -> None:
        super()._check_params()
        if not (np.isfinite(self.lam) and self.lam > 0):
            raise ProbeInputError(f"lam must be finite and > 0, got {self.lam!r}")

    def _alpha(self, n: int) -> float:
        return _alpha(self.lam, n)

    def _make_loss(self, mode: Mode, targets: torch.Tensor) -> Loss:
        if mode == "multiclass":
            return MultinomialLoss(targets)
        return SigmoidLoss(targets)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``[N, C]`` (softmax, or ``[1 - p, p]`` when binary); for
        multi-label, the independent per-class sigmoid probabilities ``[N, C]``."""
        scores = self.decision_function(X)
        if self.mode_ == "binary":
            p = 1.0 / (1.0 + np.exp(-scores))
            return np.stack([1.0 - p, p], axis=1)
        if self.mode_ == "multilabel":
            return 1.0 / (1.0 + np.exp(-scores))
        z = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Natural log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


def logistic_path(
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_val: ArrayLike,
    y_val: ArrayLike,
    lambdas: ArrayLike | None = DEFAULT_LAMBDAS,
    metric: str = "top1",
    device: str = "auto",
    *,
    tol: float = 1e-4,
    max_iter: int = 1000,
    dtype: str = "float32",
    keep_state: bool = False,
    val_ignore: ArrayLike | None = None,
) -> PathResult:
    """The paper's path: fit at every ``lam`` (default ``np.logspace(-6, 5, 45)``; ``None``
    means the same) on the train split with warm starts, score ``metric`` on the val split.

    Traversal: from the strongest regularisation (largest ``lam``) to the weakest, each
    problem warm-started from the previous solution and keeping the L-BFGS curvature
    memory. Why this order: at ``lam = 1e5`` the solution is nearly ``W = 0`` and the
    problem is well conditioned, so the path starts where the zero initialisation is
    already right; every weaker (worse conditioned) problem then starts from the
    neighbouring solution, which differs only by the change in ``lam``. Going the other way
    would start with the hardest, nearly unregularised problem from scratch. Every grid
    point is solved (none skipped).

    Returns a :class:`~probes.linear.estimators.PathResult`: the whole curve (``lam``, val metric,
    iterations, final gradient norm, converged flag) in grid order, the best ``lam``
    (highest val metric; ties go to the larger ``lam``) and a fitted
    :class:`LogisticProbe` at it (trained on the train split). ``tol`` is the relative
    objective accuracy of every point (see :class:`LogisticProbe`); ``keep_state`` keeps
    the rotated features for a fast refit by :func:`probes.linear.estimators.refit_train_val`.
    """
    grid = DEFAULT_LAMBDAS if lambdas is None else np.asarray(lambdas, dtype=np.float64)
    template = LogisticProbe(tol=tol, max_iter=max_iter, device=device, dtype=dtype)
    return fit_path(template, "lambda", "lam", grid, X_train, y_train, X_val, y_val, metric,
                    _alpha, keep_state,
                    val_ignore=None if val_ignore is None else np.asarray(val_ignore))
