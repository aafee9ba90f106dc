"""Two models on one dataset (Appendix A.1.1): the exact McNemar test, the permutation test,
and which models are not significantly worse than the best."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "Metric",
    "label_correctness",
    "mcnemar_exact",
    "not_worse_than_best",
    "not_worse_than_best_permutation",
    "permutation_test",
    "significance_vs_best",
]


Metric = Callable[[np.ndarray, np.ndarray], float]


# Permutation masks are drawn in blocks of this many permutations, so memory stays bounded
# (block x cells bits) while the work stays vectorised.
_PERMUTATION_BLOCK = 1000


def mcnemar_exact(correct_a: Any, correct_b: Any) -> float:
    """Two-sided exact McNemar p-value: are two models' predictions equally likely to be correct?

    Only discordant items (one model right, the other wrong) carry information; under the null
    each is equally likely to favour either model, so their split is Binomial(d, 1/2)
    (``scipy.stats.binomtest``). This is exactly the paper's permutation test for top-1 accuracy
    (Appendix A.1.1). Inputs are boolean arrays of any shape, compared cell by cell: for
    multi-label VOC 2007 pass the [N, C] per-(example, label) correctness of thresholded
    predictions, the paper's "accuracy of predictions across labels" (footnote 2).
    Returns 1.0 when there are no discordant items.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b differ in shape: {a.shape} vs {b.shape}")
    a_only = int(np.count_nonzero(a & ~b))
    b_only = int(np.count_nonzero(b & ~a))
    if a_only + b_only == 0:
        return 1.0
    return float(stats.binomtest(a_only, a_only + b_only, 0.5, alternative="two-sided").pvalue)


def _resolve_metric(metric: str | Metric) -> tuple[str | None, Metric | None]:
    """(fast-path name, callable). Named linear metrics get a vectorised fast path; other names are
    looked up in :mod:`probes.metrics`."""
    if callable(metric):
        return None, metric
    if metric in ("top1", "mean_per_class", "label_accuracy"):
        return metric, None
    from probes import metrics as _metrics  # lazily: probes.metrics is not needed otherwise

    def _named(y_true: np.ndarray, pred: np.ndarray) -> float:
        return float(_metrics.score(metric, y_true, pred))

    return None, _named


def _linear_weights(name: str, y: np.ndarray) -> np.ndarray:
    """Per-item weights w such that metric(pred) = sum_i w_i * [pred_i == y_i].

    top1 and label_accuracy weight every item (cell) 1/N; mean per-class accuracy weights an item
    of class c by 1/(K * n_c), K = number of classes present in y. Linearity is what lets a swap
    of item i simply flip the sign of its term in the accuracy difference.
    """
    flat = y.reshape(-1)
    if name in ("top1", "label_accuracy"):
        return np.full(flat.shape, 1.0 / flat.size)
    classes, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    return 1.0 / (len(classes) * counts[inverse])


def _swap_masks(rng: np.random.Generator, n: int, size: int) -> Iterable[np.ndarray]:
    """Blocks of boolean swap masks, shape (block, size); one row per permutation.

    Random bytes unpacked to bits: much cheaper than drawing uniforms, and identical for the fast
    and generic paths so that both give the same p-value for the same seed.
    """
    nbytes = (size + 7) // 8
    done = 0
    while done < n:
        block = min(_PERMUTATION_BLOCK, n - done)
        raw = rng.integers(0, 256, size=(block, nbytes), dtype=np.uint8)
        yield np.unpackbits(raw, axis=1, count=size).astype(bool)
        done += block


def permutation_test(
    pred_a: Any,
    pred_b: Any,
    y: Any,
    metric: str | Metric = "mean_per_class",
    n: int = 10_000,
    seed: int = 0,
) -> float:
    """Two-sided permutation p-value for the difference in ``metric`` between two models.

    Appendix A.1.1: each permutation exchanges the two models' predictions on a random subset of
    items, and the p-value is the share of permutations whose |difference| is at least the
    observed one. We report ``(1 + k) / (1 + n)`` (Phipson & Smyth 2010) rather than ``k / n`` so
    that a Monte Carlo p-value is never 0; the two differ by < 1e-4 at n = 10,000.

    Items: for 1-D predictions (class labels, shape [N]) an item is an example. For 2-D
    predictions (shape [N, C], multi-label VOC 2007) an item is one (example, label) cell: the
    swap happens independently per cell, our reading of footnote 2 ("we considered the accuracy of
    predictions across labels"). With ``metric="label_accuracy"`` (binary [N, C] predictions vs a
    multi-hot ``y``) this is the per-cell accuracy test the paper describes; a callable such as
    11-point mAP on [N, C] scores also works, but then mixing cells of two models only makes
    sense if their scores are on a common (e.g. probability) scale, and it is not vectorised.

    ``metric`` is ``"top1"``, ``"mean_per_class"``, ``"label_accuracy"`` (vectorised: these are
    weighted sums of per-item correctness, so only discordant items matter and a swap flips the
    sign of an item's contribution), another name known to ``probes.metrics.score``, or any
    callable ``(y_true, pred) -> float`` (evaluated once per permutation).
    """
    a = np.asarray(pred_a)
    b = np.asarray(pred_b)
    y_arr = np.asarray(y)
    if a.shape != b.shape:
        raise ValueError(f"pred_a and pred_b differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (1, 2) or a.shape[0] != y_arr.shape[0]:
        raise ValueError("predictions must be [N] or [N, C] arrays matching y on the first axis")
    if n < 1:
        raise ValueError("n must be positive")
    fast, func = _resolve_metric(metric)
    rng = np.random.default_rng(seed)
    size = a.size

    if fast is not None:
        if fast == "label_accuracy":
            if a.shape != y_arr.shape:
                raise ValueError("label_accuracy needs predictions shaped like the multi-hot y")
        elif a.ndim != 1 or y_arr.ndim != 1:
            raise ValueError(f"{fast!r} needs 1-D class-label predictions and labels")
        w = _linear_weights(fast, y_arr)
        contrib = w * (
            (a.reshape(-1) == y_arr.reshape(-1)).astype(float)
            - (b.reshape(-1) == y_arr.reshape(-1)).astype(float)
        )
        observed = float(contrib.sum())
        active = np.flatnonzero(contrib)  # only discordant items change under a swap
        d = contrib[active]
        exceed = 0
        for masks in _swap_masks(rng, n, size):
            swapped = masks[:, active].astype(float) @ d
            diffs = observed - 2.0 * swapped
            exceed += int(np.count_nonzero(np.abs(diffs) >= abs(observed) - _tol(observed)))
        return (1 + exceed) / (1 + n)

    assert func is not None
    observed = float(func(y_arr, a)) - float(func(y_arr, b))
    exceed = 0
    fa, fb = a.reshape(-1), b.reshape(-1)
    for masks in _swap_masks(rng, n, size):
        for mask in masks:
            pa = np.where(mask, fb, fa).reshape(a.shape)
            pb = np.where(mask, fa, fb).reshape(a.shape)
            diff = float(func(y_arr, pa)) - float(func(y_arr, pb))
            exceed += abs(diff) >= abs(observed) - _tol(observed)
    return (1 + exceed) / (1 + n)


def _tol(observed: float) -> float:
    """Slack for 'at least as extreme': the same difference summed in another order can differ in
    the last bits, and a permutation equal to the observed one must count."""
    return 1e-9 * max(1.0, abs(observed))


def not_worse_than_best(correct: Mapping[str, Any], alpha: float = 0.05) -> set[str]:
    """Models whose accuracy is not significantly below the best model's (exact McNemar).

    The green points / bold cells of Figure 2 and Table 6: the best model (highest share of
    correct items) plus every model with McNemar p > ``alpha`` against it. ``correct`` maps model
    name to its boolean per-item correctness on the same test items (any shape; see
    :func:`mcnemar_exact` for VOC).
    """
    if not correct:
        raise ValueError("correct is empty")
    arrays = {m: np.asarray(c, dtype=bool) for m, c in correct.items()}
    best = max(arrays, key=lambda m: float(arrays[m].mean()))
    return {best} | {
        m for m, c in arrays.items() if m != best and mcnemar_exact(arrays[best], c) > alpha
    }


def not_worse_than_best_permutation(
    predictions: Mapping[str, Any],
    y: Any,
    metric: str | Metric = "mean_per_class",
    alpha: float = 0.05,
    n: int = 10_000,
    seed: int = 0,
) -> set[str]:
    """As :func:`not_worse_than_best`, for metrics that need the permutation test (mean per-class
    accuracy, label accuracy, mAP): best by ``metric``, then :func:`permutation_test` against it."""
    if not predictions:
        raise ValueError("predictions is empty")
    y_arr = np.asarray(y)
    preds = {m: np.asarray(p) for m, p in predictions.items()}
    fast, func = _resolve_metric(metric)

    def score(p: np.ndarray) -> float:
        if func is not None:
            return float(func(y_arr, p))
        w = _linear_weights(str(fast), y_arr)
        return float((w * (p.reshape(-1) == y_arr.reshape(-1))).sum())

    best = max(preds, key=lambda m: score(preds[m]))
    return {best} | {
        m
        for m, p in preds.items()
        if m != best and permutation_test(preds[best], p, y_arr, metric, n=n, seed=seed) > alpha
    }


def label_correctness(scores: Any, y: Any, threshold: float, ignore: Any = None) -> np.ndarray:
    """Per-(example, label) correctness of multi-label scores thresholded at ``threshold``, as a
    1-D boolean array over the cells that count.

    Footnote 2 of the paper: for VOC 2007 the two-model test uses "the accuracy of predictions
    across labels", so each (image, class) cell is an item of the exact McNemar test. Cells
    flagged in ``ignore`` (the devkit's *difficult* objects, which VOC's mAP leaves out of
    positives and negatives alike) are dropped here too, so the test and the metric it backs
    judge the same cells. ``threshold`` is each model's decision boundary: 0 for the linear
    probes' decision values, 0.5 for a network's sigmoid scores.
    """
    s = np.asarray(scores, dtype=float)
    truth = np.asarray(y) > 0
    if s.shape != truth.shape or s.ndim != 2:
        raise ValueError(f"scores {s.shape} and multi-hot labels {truth.shape} must be one [N, C]")
    keep = np.ones(s.shape, dtype=bool) if ignore is None else ~np.asarray(ignore).astype(bool)
    if keep.shape != s.shape:
        raise ValueError(f"ignore mask {keep.shape} and scores {s.shape} differ in shape")
    return ((s > threshold) == truth)[keep]


def significance_vs_best(
    scores: Mapping[str, float],
    test: Callable[[str, str], float],
    alpha: float = 0.05,
    tie_break: Mapping[str, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per model: ``best``, ``p`` (its test against the best; NaN for the best itself) and
    ``not_worse`` (the best, a model whose p > ``alpha``, or one that scores at least as well
    as the best on the tested quantity ``tie_break``).

    ``scores`` are the metric the table shows (the best is its argmax); ``test(best, m)`` is the
    paper's two-model test for that metric. ``tie_break`` matters only where the test runs on
    another quantity than the metric (VOC: mAP in the table, label accuracy in the test): a model
    at least as accurate as the best there is not *worse*, whatever the two-sided p says.
    """
    if not scores:
        raise ValueError("scores is empty")
    best = max(scores, key=lambda m: (scores[m], m))
    out: dict[str, dict[str, Any]] = {}
    for m in scores:
        if m == best:
            out[m] = {"best": True, "p": float("nan"), "not_worse": True}
            continue
        p = float(test(best, m))
        at_least = tie_break is not None and tie_break[m] >= tie_break[best]
        out[m] = {"best": False, "p": p, "not_worse": bool(p > alpha or at_least)}
    return out
