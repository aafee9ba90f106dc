"""The regularisation path's val split: checks before the path runs, and the scorer of
each grid point.

Everything about the val split is checked before the first solve (a path of 45 solves
should not fail at the end on a mistyped metric or a wrongly shaped ``y_val``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import numpy as np
import torch
from sklearn.utils.validation import validate_data

from probes import metrics as M
from probes.errors import ProbeInputError
from probes.linear.basis import Basis
from probes.linear.feature_scale import Features, check_tensor_features
from probes.linear.problem import affine
from probes.linear.threads import Threads

#: What the targets are: class labels (2 or more classes) or a 0/1 label matrix.
Mode = Literal["multiclass", "binary", "multilabel"]


class _FittedProbe(Protocol):
    """What the val checks need of the estimator (``LinearProbeBase``, which calls them): its
    fitted classes and its feature-scale check. A protocol, so the estimator module imports this
    one and not the other way round."""

    classes_: np.ndarray
    n_features_in_: int

    def _check_scale(self, X: Features, n_rows: int, what: str = "features") -> None: ...

__all__ = ["ValScorer", "check_grid", "check_metric", "validate_val"]


def check_metric(metric: str, mode: Mode) -> None:
    """Refuse a metric that is unknown or does not fit the target (mAP needs 0/1 labels)."""
    if metric not in M.METRICS:
        raise ProbeInputError(f"unknown metric {metric!r}; choose from {sorted(M.METRICS)}")
    if (metric == "voc11_map") != (mode == "multilabel"):
        raise ProbeInputError(
            f"metric {metric!r} does not fit a {mode} target: use 'voc11_map' for 0/1 "
            "label matrices and 'top1' or 'mean_per_class' for class labels"
        )


def check_grid(params: Sequence[float] | np.ndarray, param_name: str) -> np.ndarray:
    """The grid as a flat float64 array; refuses an empty, non-finite or non-positive one."""
    grid = np.asarray(params, dtype=np.float64).ravel()
    if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise ProbeInputError(f"{param_name} grid must be non-empty, finite and > 0")
    return grid


def validate_val(est: _FittedProbe, X_val: Any, y_val: Any, mode: Mode, n_train: int
                  ) -> tuple[Features, np.ndarray]:
    """Check the val split against the estimator fitted to the train split's shape (a torch
    tensor is checked on its device and stays there)."""
    if isinstance(X_val, torch.Tensor):
        Xv: Features = check_tensor_features(X_val, "X_val")
        if Xv.shape[1] != est.n_features_in_:
            raise ProbeInputError(f"X_val: X has {Xv.shape[1]} features, but the probe was "
                                  f"fitted with {est.n_features_in_} features")
    else:
        try:
            Xv = validate_data(est, X_val, reset=False, dtype=[np.float32, np.float64])
        except ValueError as exc:
            raise ProbeInputError(f"X_val: {exc}") from exc
    yv = np.asarray(y_val)
    if yv.shape[0] != Xv.shape[0]:
        raise ProbeInputError(
            f"X_val has {Xv.shape[0]} rows but y_val has {yv.shape[0]} labels"
        )
    n_classes = len(est.classes_)
    if mode == "multilabel" and (yv.ndim != 2 or yv.shape[1] != n_classes):
        raise ProbeInputError(f"y_val must be a 0/1 matrix with {n_classes} columns")
    # the refit on train+val takes second moments over both splits
    est._check_scale(Xv, n_train + Xv.shape[0], what="X_val features")
    return Xv, yv


class ValScorer:
    """The val metric of parameters in the path's basis.

    The val features are rotated into the basis once, so each grid point is scored straight
    from ``theta`` with one product: no mapping back to the original features per point.
    """

    def __init__(self, basis: Basis, x_val: torch.Tensor, y_val: np.ndarray, mode: Mode,
                 classes: np.ndarray, metric: str, ignore: np.ndarray | None = None) -> None:
        """``ignore`` (``[N, C]``, multi-label only) is the val split's mask of entries the
        metric leaves out (VOC's *difficult*), so the path is selected as the test is scored."""
        self.threads = Threads(x_val.device)
        with self.threads.gemm(2.0 * x_val.numel() * basis.vecs.shape[1]):
            self.x_rot = basis.rotate(x_val)
        self.y, self.mode, self.classes = y_val, mode, classes
        self.metric_fn = M.METRICS[metric]
        if ignore is not None:
            if mode != "multilabel" or np.shape(ignore) != np.shape(y_val):
                raise ProbeInputError(f"val ignore mask {np.shape(ignore)} needs a multi-label "
                                      f"y_val of the same shape, got {np.shape(y_val)}")
            self.metric_fn = functools.partial(M.voc11_map, ignore=np.asarray(ignore))

    def __call__(self, theta: torch.Tensor) -> float:
        scores = affine(self.x_rot, theta, self.threads,
                        2.0 * self.x_rot.numel() * theta.shape[1])
        if self.mode == "multilabel":
            return float(self.metric_fn(self.y, scores.double().cpu().numpy()))
        idx = (scores[:, 0] > 0).long() if self.mode == "binary" else scores.argmax(dim=1)
        return float(self.metric_fn(self.y, self.classes[idx.cpu().numpy()]))
