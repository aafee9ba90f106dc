"""scikit-learn plumbing shared by :class:`~probes.linear.logistic.LogisticProbe` and
:class:`~probes.linear.svm.SVMProbe`, and the generic warm-started regularisation path.

The estimators differ only in the loss, in how the hyperparameter maps to the solver's
mean-scaled L2 coefficient ``alpha`` and in the SVM's per-example L2 normalisation, so
everything else (validation, label encoding, multi-label handling, prediction, the path)
lives here once.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from featurestore.device import resolve_device
from probes import metrics as M
from probes.errors import ProbeInputError
from probes.linear.basis import Basis, make_basis
from probes.linear.feature_scale import (
    Features,
    check_feature_scale,
    check_tensor_features,
    l2_normalise_np,
    l2_normalise_t,
)
from probes.linear.lbfgs import LBFGSMemory, SolveInfo, solve
from probes.linear.losses import Loss
from probes.linear.problem import make_problem, zero_objective
from probes.linear.threads import cpu_serial
from probes.linear.val_split import Mode, ValScorer, check_grid, check_metric, validate_val

__all__ = ["CurvePoint", "LinearProbeBase", "PathResult", "fit_path", "refit_train_val"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Absolute floor of the stopping rule, as a fraction of the objective at ``theta = 0``:
#: on (nearly) separable data the loss tends to 0 and a purely relative rule would chase it.
_FLOOR = 1e-2


def _as_tensor(x: np.ndarray | torch.Tensor, device: torch.device,
               dtype: torch.dtype) -> torch.Tensor:
    """Move an array to ``device``/``dtype``; zero-copy when it already matches."""
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    x = np.ascontiguousarray(x)
    if not x.flags.writeable:  # torch cannot wrap read-only memory (e.g. a memmap)
        x = x.copy()
    return torch.as_tensor(x, dtype=dtype, device=device)


class LinearProbeBase(ClassifierMixin, BaseEstimator):
    """Base class: subclasses set ``_normalise`` and implement ``_alpha`` / ``_make_loss``."""

    _normalise: bool = False

    # ---- subclass hooks -------------------------------------------------------------
    def _alpha(self, n: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _make_loss(self, mode: Mode, targets: torch.Tensor) -> Loss:  # pragma: no cover
        raise NotImplementedError

    # ---- validation -----------------------------------------------------------------
    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _check_params(self) -> None:
        if self.dtype not in _DTYPES:
            raise ProbeInputError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")
        if not (self.tol > 0):
            raise ProbeInputError(f"tol must be > 0, got {self.tol!r}")
        if int(self.max_iter) < 1:
            raise ProbeInputError(f"max_iter must be >= 1, got {self.max_iter!r}")

    def _validate_xy(self, X: Any, y: Any) -> tuple[Features, np.ndarray, Mode]:
        """Validate and encode; every problem surfaces as :class:`ProbeInputError`.

        ``X`` may be a torch tensor (e.g. features read straight into GPU memory by
        ``FeatureStore.load_tensor``): it is checked where it lives, never copied to the host.
        """
        try:
            if isinstance(X, torch.Tensor):
                X = check_tensor_features(X, "X")
                y = np.asarray(y)
                if y.shape[0] != X.shape[0]:
                    raise ProbeInputError(
                        "Found input variables with inconsistent numbers of samples: "
                        f"[{X.shape[0]}, {y.shape[0]}]")
                self.n_features_in_ = int(X.shape[1])
                self.__dict__.pop("feature_names_in_", None)
            else:
                X, y = validate_data(
                    self, X, y, dtype=[np.float32, np.float64], multi_output=True,
                    ensure_min_samples=1,
                )
            if y.ndim == 2 and y.shape[1] == 1:
                warnings.warn(
                    "A column-vector y was passed when a 1d array was expected; using y.ravel().",
                    DataConversionWarning,
                    stacklevel=3,
                )
                y = y.ravel()
            check_classification_targets(y)
        except ProbeInputError:
            raise
        except ValueError as exc:  # mirror sklearn's wording (its checks match on it)
            raise ProbeInputError(str(exc)) from exc
        kind = type_of_target(y)
        if kind == "multilabel-indicator":
            y_int = np.asarray(y).astype(np.int64)
            bad = np.flatnonzero(y_int.min(axis=0) == y_int.max(axis=0))
            if bad.size:
                raise ProbeInputError(
                    f"multi-label target column(s) {bad.tolist()} contain only 1 class "
                    "(all 0 or all 1); each one-vs-rest head needs both"
                )
            self.classes_ = np.arange(y_int.shape[1])
            return X, y_int, "multilabel"
        if y.ndim != 1:
            raise ProbeInputError(f"unsupported target of type {kind!r} and shape {y.shape}")
        classes, y_enc = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ProbeInputError(
                f"y contains only 1 class ({classes[0]!r}); a classifier needs at least 2 "
                "classes to train"
            )
        self.classes_ = classes
        return X, y_enc, "binary" if len(classes) == 2 else "multiclass"

    def _targets_tensor(self, mode: Mode, y_enc: np.ndarray, device: torch.device,
                        dtype: torch.dtype) -> torch.Tensor:
        """0/1 target matrix: one-hot (multiclass), [N, 1] (binary) or as given."""
        if mode == "multiclass":
            idx = torch.as_tensor(y_enc, device=device)
            return torch.nn.functional.one_hot(idx, len(self.classes_)).to(dtype)
        if mode == "binary":
            return torch.as_tensor(y_enc.reshape(-1, 1), dtype=dtype, device=device)
        return torch.as_tensor(y_enc, dtype=dtype, device=device)

    # ---- fitting ----------------------------------------------------------------------
    def _check_scale(self, X: Features, n_rows: int, what: str = "features") -> None:
        """Refuse features the solver's dtype cannot handle (see
        :mod:`probes.linear.feature_scale`); normalised features only need to be
        representable, raw ones need finite second moments over ``n_rows`` rows."""
        check_feature_scale(X, self.dtype, _DTYPES[self.dtype], n_rows,
                            squares=not self._normalise, what=what)

    def _features_tensor(self, X: Features, device: torch.device) -> torch.Tensor:
        xt = _as_tensor(X, device, _DTYPES[self.dtype])
        return l2_normalise_t(xt) if self._normalise else xt

    def _prepare(self, X: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor, Mode]:
        self._check_params()
        X, y_enc, mode = self._validate_xy(X, y)
        self._check_scale(X, X.shape[0])
        device = resolve_device(self.device)
        xt = self._features_tensor(X, device)
        targets = self._targets_tensor(mode, y_enc, device, xt.dtype)
        self.mode_ = mode
        self.device_ = str(device)
        return xt, targets, mode

    def _set_solution(self, basis: Basis, theta: torch.Tensor, info: SolveInfo) -> None:
        coef, intercept = basis.to_original(theta)
        self.coef_ = coef.T.double().cpu().numpy()
        self.intercept_ = intercept.double().cpu().numpy()
        self.n_iter_ = info.n_iter
        self.grad_norm_ = info.grad_norm
        self.converged_ = info.converged
        self.objective_ = info.objective

    def fit(self, X: Any, y: Any) -> LinearProbeBase:
        """Fit on ``X [N, D]`` and labels ``y [N]`` (or a 0/1 multi-label matrix ``[N, C]``).

        Raises :class:`~probes.errors.ProbeInputError` for NaN/inf features, mismatched
        lengths, a single class or an empty split.
        """
        with cpu_serial():
            return self._fit(X, y)

    def _fit(self, X: Any, y: Any) -> LinearProbeBase:
        warm = None
        if getattr(self, "warm_start", False) and hasattr(self, "coef_"):
            warm = (self.coef_, self.intercept_, self.n_features_in_, self.classes_)
        xt, targets, mode = self._prepare(X, y)
        basis = make_basis(xt)
        del xt
        theta0 = None
        n_out = targets.shape[1]
        if (warm is not None and warm[2] == self.n_features_in_
                and np.array_equal(warm[3], self.classes_) and warm[0].shape[0] == n_out):
            coef = torch.as_tensor(warm[0].T, dtype=basis.feats.dtype, device=basis.feats.device)
            b = torch.as_tensor(warm[1], dtype=basis.feats.dtype, device=basis.feats.device)
            theta0 = basis.from_original(coef, b)
        self._fit_basis(basis, targets, theta0)
        return self

    def _fit_basis(self, basis: Basis, targets: torch.Tensor,
                   theta0: torch.Tensor | None) -> None:
        """Solve on prepared (centred, rotated) features; ``theta0=None`` starts at zero and
        follows the regularisation path down to the penalty (:func:`continuation`)."""
        loss = self._make_loss(self.mode_, targets)
        n_out = targets.shape[1]
        f_floor = _FLOOR * zero_objective(basis, loss, n_out)
        if theta0 is None:
            theta0 = torch.zeros(basis.feats.shape[1] + 1, n_out, dtype=basis.feats.dtype,
                                 device=basis.feats.device)
            stages = continuation(self._alpha(basis.n), basis, loss)
        else:
            stages = [self._alpha(basis.n)]
        prob = make_problem(basis, loss, theta0)
        memory = LBFGSMemory()
        n_iter = 0
        for alpha in stages:
            info = solve(prob, memory, alpha, self.tol, f_floor,
                         max_iter=int(self.max_iter) - n_iter)
            n_iter += info.n_iter
        info.n_iter = n_iter
        self._set_solution(basis, prob.theta, info)

    def _encode_known(self, y: np.ndarray, device: torch.device,
                      dtype: torch.dtype) -> torch.Tensor | None:
        """Targets tensor for labels ``y`` under the fitted ``classes_``; None if ``y`` has
        a label the model does not know (or the wrong shape)."""
        if self.mode_ == "multilabel":
            if y.ndim != 2 or y.shape[1] != len(self.classes_) or not np.isin(y, (0, 1)).all():
                return None
            return self._targets_tensor("multilabel", y.astype(np.int64), device, dtype)
        if y.ndim != 1 or not np.isin(y, self.classes_).all():
            return None
        return self._targets_tensor(self.mode_, np.searchsorted(self.classes_, y), device, dtype)

    # ---- prediction ---------------------------------------------------------------------
    def _check_X(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        try:
            X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        except ValueError as exc:
            raise ProbeInputError(str(exc)) from exc
        X = np.asarray(X, dtype=np.float64)
        return l2_normalise_np(X) if self._normalise else X

    def decision_function(self, X: Any) -> np.ndarray:
        """Scores: ``[N]`` for binary problems (positive = ``classes_[1]``), else ``[N, C]``.

        Computed in float64 NumPy on the CPU: prediction is cheap next to fitting, and this
        keeps per-row results independent of the batch (scikit-learn's invariance checks).
        """
        X = self._check_X(X)
        scores = X @ self.coef_.T + self.intercept_
        return scores.ravel() if self.mode_ == "binary" else scores

    def predict(self, X: Any) -> np.ndarray:
        """Labels ``[N]`` (from ``classes_``), or a 0/1 indicator ``[N, C]`` for multi-label."""
        scores = self.decision_function(X)
        if self.mode_ == "multilabel":
            return (scores > 0).astype(np.int64)
        if self.mode_ == "binary":
            return self.classes_[(scores > 0).astype(np.int64)]
        return self.classes_[scores.argmax(axis=1)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Top-1 accuracy (single-label) or VOC 2007 11-point mAP (multi-label)."""
        if sample_weight is not None:
            return float(super().score(X, y, sample_weight=sample_weight))
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] > 1:
            return M.voc11_map(y, self.decision_function(X))
        return M.top1(y.ravel(), self.predict(X))


# --------------------------------------------------------------------------------------
# Regularisation path
# --------------------------------------------------------------------------------------


def continuation(alpha: float, basis: Basis, loss: Loss, step: float = 10.0) -> list[float]:
    """Penalty strengths a cold fit solves in turn, each warm-starting the next: a decade
    at a time from the data's largest curvature down to ``alpha`` (just ``[alpha]`` when
    ``alpha`` is stronger).

    Why: with a weak penalty on separable data (N < D, or few examples per class) many
    models reach a training loss near 0, and a cold solve lands on one the regularisation
    path never visits. Its first, preconditioned step fits the training set along the
    directions of least variance, after which the objective is within the stopping rule's
    absolute floor of the optimum. Measured on the benchmark's N=2,000, D=2,048, 102-class
    problem at lam=1e-6: a cold solve stopped after one iteration, "converged", with 8% val
    top-1 where the path's model at the same lambda gets 50%. Following the path keeps the
    fit on the same branch as :func:`fit_path`, at the cost of a few iterations per decade.
    """
    top = float(basis.var.max()) * loss.scale if basis.var.numel() else 0.0
    stages = [alpha]
    while 0.0 < stages[-1] * step <= top:  # 0: an alpha that underflowed would never climb
        stages.append(stages[-1] * step)
    return stages[::-1]


@dataclass
class _PathState:
    """Solver objects of a path, kept so the refit on train+val can reuse them."""

    basis: Basis
    targets: torch.Tensor
    x_train: torch.Tensor
    x_val: torch.Tensor
    val_rot: torch.Tensor
    theta: torch.Tensor


class CurvePoint(TypedDict):
    """One grid point of a path's validation curve."""

    param: float
    val_metric: float
    n_iter: int
    grad_norm: float
    converged: bool


@dataclass
class PathResult:
    """Validation curve of a warm-started regularisation path.

    Arrays follow the order of the grid as passed in (not the traversal order). ``estimator``
    is a fitted probe holding the solution at ``best_param`` (trained on the train split
    only); use it as a warm start for the refit on train+val.
    """

    param_name: str
    metric: str
    params: np.ndarray
    val_metric: np.ndarray
    n_iter: np.ndarray
    grad_norm: np.ndarray
    converged: np.ndarray
    best_param: float
    best_index: int
    estimator: LinearProbeBase
    time_s: float
    order: np.ndarray = field(repr=False)  # traversal order (indices into params)
    state: _PathState | None = field(default=None, repr=False)  # see fit_path(keep_state)

    @property
    def curve(self) -> list[CurvePoint]:
        """One dict per grid point: param, val_metric, n_iter, grad_norm, converged."""
        return [
            CurvePoint(param=float(p), val_metric=float(v), n_iter=int(i), grad_norm=float(g),
                       converged=bool(c))
            for p, v, i, g, c in zip(
                self.params, self.val_metric, self.n_iter, self.grad_norm, self.converged,
                strict=True,
            )
        ]


@cpu_serial()  # a @contextmanager also decorates: each call runs on one CPU thread
def fit_path(
    template: LinearProbeBase,
    param_name: str,
    est_param: str,
    params: Sequence[float] | np.ndarray,
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    metric: str,
    strength: Callable[[float, int], float],
    keep_state: bool = False,
    val_ignore: np.ndarray | None = None,
) -> PathResult:
    """Solve ``template`` at every value in ``params`` with warm starts; score on val.

    ``param_name`` names the hyperparameter in the result ("lambda", "C"); ``est_param`` is
    the estimator's parameter it sets ("lam", "C").

    ``strength(param, n)`` returns the solver's ``alpha``; the path visits the grid from the
    largest ``alpha`` (strongest regularisation) to the smallest. Why that order: the
    strongest problem is well conditioned and its solution is close to the zero start, and
    each weaker, worse-conditioned problem then starts from a slightly over-regularised
    solution plus the curvature memory built so far; the opposite order would begin with
    the hardest (nearly unregularised) problem from scratch. Every grid point is solved;
    nothing is skipped.

    Best parameter: highest validation metric; ties go to the strongest regularisation
    (the first one met on the traversal), the simplest model among equals. The leading point
    is re-solved to a tenth of ``tol`` before it is chosen (the estimators' default 1e-5 for
    the paths' 1e-4), and the next leader if its metric dropped, so the metric reported at
    the best parameter is that of a converged model, not of the luckiest inexact one (see
    :func:`_walk_path`).

    ``keep_state`` keeps the rotated train and val features (on the device) in the result,
    so that :func:`refit_train_val` can skip the refit's eigen-decomposition and rotation;
    off by default because it holds a copy of the features in memory. ``val_ignore`` is the
    val split's mask of label entries the metric leaves out (VOC's *difficult*).
    """
    t0 = time.perf_counter()
    est = template
    params = check_grid(params, param_name)
    xt, targets, mode = est._prepare(X_train, y_train)
    check_metric(metric, mode)
    Xv, yv = validate_val(est, X_val, y_val, mode, xt.shape[0])
    basis = make_basis(xt)
    xv = est._features_tensor(Xv, xt.device)
    scorer = ValScorer(basis, xv, yv, mode, est.classes_, metric, val_ignore)
    loss = est._make_loss(mode, targets)
    n_out = targets.shape[1]
    alphas = np.array([strength(p, basis.n) for p in params])
    walk = _walk_path(basis, loss, n_out, alphas, scorer, est.tol, int(est.max_iter))
    best_i = walk.best_index
    est.set_params(**{est_param: float(params[best_i])})
    est._set_solution(basis, walk.best_theta, walk.best_info)
    state = None
    if keep_state:
        state = _PathState(basis=basis, targets=targets, x_train=xt, x_val=xv,
                           val_rot=scorer.x_rot, theta=walk.best_theta)
    return PathResult(
        param_name=param_name, metric=metric, params=params, val_metric=walk.val,
        n_iter=walk.n_iter, grad_norm=walk.grad_norm, converged=walk.converged,
        best_param=float(params[best_i]), best_index=best_i, estimator=est,
        time_s=time.perf_counter() - t0, order=walk.order, state=state,
    )


@dataclass
class _Walk:
    """What one traversal of the grid found (arrays in grid order)."""

    order: np.ndarray
    val: np.ndarray
    n_iter: np.ndarray
    grad_norm: np.ndarray
    converged: np.ndarray
    best_index: int
    best_theta: torch.Tensor
    best_info: SolveInfo


#: The best grid point is re-solved to ``tol * POLISH_TOL`` before it is chosen (the path's
#: 1e-4 becomes the estimators' default 1e-5); None takes the path's points as they are.
POLISH_TOL: float | None = 1e-1
#: Solutions kept during a walk as warm starts for that re-solve (the best val metrics).
KEEP_BEST = 4


def _walk_path(basis: Basis, loss: Loss, n_out: int, alphas: np.ndarray, scorer: ValScorer,
               tol: float, max_iter: int) -> _Walk:
    """Solve at every ``alpha`` from the largest down, each warm-started from the previous
    solution with the L-BFGS memory kept, and score each on val; then polish the winner.

    Why polish: every point of the walk is solved to ``tol`` only, and the val metric of an
    inexact solution can be one example off that of the converged model. Taking the maximum
    over 45 such points favours the one whose rounding happened to help, so the reported best
    would be the luckiest, not the best (measured: a 240-row entry whose path picked a lambda
    with 52.5% val top-1 where the converged model gets 51.25%). So the leading point is
    re-solved to ``tol * POLISH_TOL`` and re-scored, and the next leader with it, until the
    leader is a polished point; usually one or two extra solves of a few iterations.
    """
    f_floor = _FLOOR * zero_objective(basis, loss, n_out)
    theta0 = torch.zeros(basis.feats.shape[1] + 1, n_out, dtype=basis.feats.dtype,
                         device=basis.feats.device)
    prob = make_problem(basis, loss, theta0)
    memory = LBFGSMemory()
    order = np.argsort(-alphas, kind="stable")
    k = alphas.size
    val = np.full(k, np.nan)
    n_iter = np.zeros(k, dtype=np.int64)
    gnorm = np.full(k, np.nan)
    conv = np.zeros(k, dtype=bool)
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)  # traversal position: ties go to the stronger regularisation
    infos: dict[int, SolveInfo] = {}
    kept: dict[int, torch.Tensor] = {}

    def key(i: int) -> tuple[float, int]:
        return (val[i], -rank[i])

    def record(i: int, info: SolveInfo, n_prev: int = 0) -> None:
        info = dataclasses.replace(info, n_iter=n_prev + info.n_iter)  # walk + polish
        val[i] = scorer(prob.theta)
        n_iter[i], gnorm[i], conv[i] = info.n_iter, info.grad_norm, info.converged
        infos[i] = info
        if len(kept) >= KEEP_BEST and i not in kept:
            worst = min(kept, key=key)
            if key(worst) >= key(i):
                return
            del kept[worst]
        kept[i] = prob.theta.clone()

    for i in order:
        if prob.since_refresh >= 50:
            prob.refresh()  # re-derive logits exactly; incremental updates drift in float32
        record(int(i), solve(prob, memory, float(alphas[i]), tol, f_floor, max_iter=max_iter))
    polished: set[int] = set()
    while (best_i := max(range(k), key=key)) not in polished and POLISH_TOL is not None:
        # warm start: its own solution when kept, else the kept one nearest in alpha
        start = best_i if best_i in kept else min(
            kept, key=lambda j: abs(np.log(alphas[j] / alphas[best_i])))
        prob.theta = kept[start].clone()
        prob.refresh()
        info = solve(prob, memory, float(alphas[best_i]), tol * POLISH_TOL, f_floor,
                     max_iter=max_iter)
        record(best_i, info, int(n_iter[best_i]))
        polished.add(best_i)
    return _Walk(order=order, val=val, n_iter=n_iter, grad_norm=gnorm, converged=conv,
                 best_index=best_i, best_theta=kept[best_i], best_info=infos[best_i])


def refit_train_val(
    path: PathResult, X_train: Any, y_train: Any, X_val: Any, y_val: Any
) -> LinearProbeBase:
    """Refit ``path.estimator`` on train+val at the chosen parameter, warm-started.

    Fast route (the path kept its state and every val label is a training class): extend
    the path's basis with the val rows (:meth:`probes.linear.basis.Basis.extend`), so the refit
    needs no new eigen-decomposition and no new rotation of the train rows, and start from
    the path's solution in the same coordinates. Otherwise fall back to a plain
    warm-started ``fit`` on the concatenated arrays. Both solve the same problem.
    """
    with cpu_serial():
        return _refit_train_val(path, X_train, y_train, X_val, y_val)


def _refit_train_val(
    path: PathResult, X_train: Any, y_train: Any, X_val: Any, y_val: Any
) -> LinearProbeBase:
    est = path.estimator
    st = path.state
    targets_val = None
    if st is not None:
        targets_val = est._encode_known(np.asarray(y_val), st.targets.device, st.targets.dtype)
    if st is None or targets_val is None:
        est.set_params(warm_start=True)
        X_tv = _concat(X_train, X_val, "features")
        y_tv = _concat(y_train, y_val, "labels")
        return est.fit(X_tv, y_tv)
    basis = st.basis.extend(st.x_val, st.val_rot, st.x_train)
    k_new = basis.vecs.shape[1] - st.basis.vecs.shape[1]
    pad = st.theta.new_zeros(k_new, st.theta.shape[1])
    theta0 = torch.cat([st.theta[:-1], pad, st.theta[-1:]], dim=0)
    targets = torch.cat([st.targets, targets_val], dim=0)
    est._fit_basis(basis, targets, theta0)
    return est


def _concat(a: Any, b: Any, what: str) -> Features:
    """Train and val rows stacked; tensors stay tensors (on the train split's device)."""
    tensors = isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor)
    if tensors:
        dev = a.device if isinstance(a, torch.Tensor) else b.device
        a, b = (torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v,
                                device=dev) for v in (a, b))
    else:
        a, b = np.asarray(a), np.asarray(b)
    if a.ndim != b.ndim or a.shape[1:] != b.shape[1:]:
        raise ProbeInputError(
            f"train and val {what} disagree in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return torch.cat([a, b.to(a.dtype)], dim=0) if tensors else np.concatenate([a, b], axis=0)
