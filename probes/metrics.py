"""The paper's evaluation metrics (Section 3 / Table 1), as fractions in [0, 1].

- ``top1``: plain accuracy (most datasets).
- ``mean_per_class``: mean over the classes present in ``y_true`` of per-class recall (FGVC
  Aircraft, Oxford-IIIT Pets, Caltech-101, Oxford 102 Flowers); equals scikit-learn's
  ``balanced_accuracy_score``.
- ``voc11_map``: PASCAL VOC 2007 11-point interpolated average precision, averaged over
  classes (VOC 2007 classification). Entries flagged *difficult* are left out of both the
  positives and the negatives, as the VOC devkit does (``ignore``: the loader's
  ``VOC2007.difficult_mask(split)``); scoring them as negatives lowers the AP.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from probes.errors import ProbeInputError

__all__ = ["METRICS", "mean_per_class", "score", "top1", "voc11_ap", "voc11_map"]


def _labels_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    if yt.ndim != 1 or yp.ndim != 1:
        raise ProbeInputError(
            f"expected 1-D label arrays, got shapes {yt.shape} and {yp.shape}"
        )
    if yt.shape[0] != yp.shape[0]:
        raise ProbeInputError(
            f"y_true has {yt.shape[0]} labels but y_pred has {yp.shape[0]}"
        )
    if yt.shape[0] == 0:
        raise ProbeInputError("cannot score an empty split (0 examples)")
    return yt, yp


def top1(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of examples whose predicted label equals the true label."""
    yt, yp = _labels_pair(y_true, y_pred)
    return float(np.mean(yt == yp))


def mean_per_class(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean over the classes present in ``y_true`` of the per-class recall.

    Classes that only appear in ``y_pred`` do not get a term of their own (they only count
    as errors of the true classes), exactly like ``balanced_accuracy_score``.
    """
    yt, yp = _labels_pair(y_true, y_pred)
    classes, inverse = np.unique(yt, return_inverse=True)
    correct = np.bincount(inverse, weights=(yt == yp).astype(np.float64), minlength=len(classes))
    counts = np.bincount(inverse, minlength=len(classes))
    return float(np.mean(correct / counts))


def voc11_ap(y_true: ArrayLike, scores: ArrayLike, ignore: ArrayLike | None = None) -> float:
    """PASCAL VOC 2007 11-point interpolated AP for one class.

    ``ignore`` (bool ``[N]``) drops those examples before ranking (the devkit's difficult).

    Rank examples by decreasing score (stable for ties, like the devkit's ``sort``), compute
    precision/recall after each rank, and average over recall thresholds
    ``t in {0, 0.1, ..., 1}`` the maximum precision at recall ``>= t`` (0 if unreachable).
    """
    yt = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if ignore is not None:
        keep = ~np.asarray(ignore).astype(bool).ravel()
        yt, s = yt[keep], s[keep]
    npos = int(yt.sum())
    if npos == 0:
        raise ProbeInputError("average precision is undefined for a class with no positives")
    order = np.argsort(-s, kind="stable")
    tp = np.cumsum(yt[order])
    fp = np.cumsum(~yt[order])
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, 1)
    ap = 0.0
    for t in np.linspace(0.0, 1.0, 11):
        mask = rec >= t - 1e-12
        ap += float(prec[mask].max()) if mask.any() else 0.0
    return ap / 11.0


def voc11_map(y_true: ArrayLike, scores: ArrayLike, ignore: ArrayLike | None = None) -> float:
    """Mean over classes of :func:`voc11_ap`; ``y_true`` is an ``[N, C]`` 0/1 matrix.

    ``ignore`` (``[N, C]``, nonzero = difficult) leaves those (image, class) entries out of that
    class's AP, neither positive nor negative.

    Classes without any positive example in ``y_true`` are skipped (their AP is undefined);
    VOC 2007's test split has positives for all 20 classes.
    """
    yt = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if yt.ndim != 2 or s.ndim != 2:
        raise ProbeInputError(
            f"voc11_map needs [N, C] labels and scores, got shapes {yt.shape} and {s.shape}"
        )
    if yt.shape != s.shape:
        raise ProbeInputError(f"labels {yt.shape} and scores {s.shape} differ in shape")
    if yt.shape[0] == 0:
        raise ProbeInputError("cannot score an empty split (0 examples)")
    if not np.all(np.isfinite(s)):
        raise ProbeInputError("scores contain NaN or inf")
    if not np.isin(yt, (0, 1)).all():
        raise ProbeInputError("multi-label targets must be a 0/1 matrix")
    ig = np.zeros(yt.shape, dtype=bool) if ignore is None else np.asarray(ignore).astype(bool)
    if ig.shape != yt.shape:
        raise ProbeInputError(f"ignore mask {ig.shape} and labels {yt.shape} differ in shape")
    present = np.flatnonzero((yt.astype(bool) & ~ig).sum(axis=0) > 0)
    if present.size == 0:
        raise ProbeInputError("no class has a positive example; mAP is undefined")
    return float(np.mean([voc11_ap(yt[:, k], s[:, k], ig[:, k]) for k in present]))


METRICS: dict[str, Callable[[ArrayLike, ArrayLike], float]] = {
    "top1": top1,
    "mean_per_class": mean_per_class,
    "voc11_map": voc11_map,
}


def score(metric_name: str, y_true: ArrayLike, pred_or_scores: ArrayLike,
          ignore: ArrayLike | None = None) -> float:
    """Evaluate ``METRICS[metric_name]``.

    For ``top1`` and ``mean_per_class``, ``pred_or_scores`` may be labels ``[N]`` or scores
    ``[N, C]``; scores are turned into labels by ``argmax`` (column ``j`` is class ``j``).
    ``voc11_map`` needs scores ``[N, C]`` and takes the ``ignore`` mask of difficult entries.
    """
    if metric_name not in METRICS:
        raise ProbeInputError(f"unknown metric {metric_name!r}; choose from {sorted(METRICS)}")
    if ignore is not None:
        if metric_name != "voc11_map":
            raise ProbeInputError(f"metric {metric_name!r} has no ignore mask (voc11_map does)")
        return voc11_map(y_true, pred_or_scores, ignore)
    p = np.asarray(pred_or_scores)
    if metric_name != "voc11_map" and p.ndim == 2:
        if p.shape[0] == 0:
            raise ProbeInputError("cannot score an empty split (0 examples)")
        p = p.argmax(axis=1)
    return METRICS[metric_name](y_true, p)
