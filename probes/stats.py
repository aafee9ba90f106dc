"""The paper's statistics (Kornblith, Shlens & Le, Section 3, Appendix A.1, B, D, Section 4.6).

Conventions used throughout:

* Accuracies are fractions in the open interval (0, 1), never percentages. Every accuracy is
  analysed after the logit transform, because the paper treats model and dataset effects as
  additive in log odds (Section 3): a 1% gain means something different at 50% than at 99%.
* A *table* is a ``pandas.DataFrame`` with one row per model and one column per dataset (the
  layout of the paper's Table 6; see :mod:`probes.analysis.paper`). ImageNet top-1 is a
  ``pandas.Series`` indexed by model.
* Functions that relate ImageNet accuracy to a table align the two on their common models.
* Results with several numbers are plain dicts, so that they drop straight into a DataFrame row.

Every test here is the one the paper names; scipy.stats does the distributional work wherever it
has the test (Pearson, Spearman, binomial, paired t, Wilcoxon, normal tail).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

__all__ = [
    "bootstrap_band",
    "dependent_correlations_test",
    "fisher_z",
    "geometric_mean",
    "inv_logit",
    "label_correctness",
    "logit",
    "mcnemar_exact",
    "mean_logit",
    "morey_se",
    "not_worse_than_best",
    "not_worse_than_best_across_datasets",
    "not_worse_than_best_permutation",
    "paired_t_across_datasets",
    "per_dataset_correlation",
    "permutation_test",
    "significance_vs_best",
    "steps_to_fraction_of_max_odds",
    "transfer_correlation",
    "wilcoxon_per_dataset",
]

Metric = Callable[[np.ndarray, np.ndarray], float]

# Permutation masks are drawn in blocks of this many permutations, so memory stays bounded
# (block x cells bits) while the work stays vectorised.
_PERMUTATION_BLOCK = 1000


# --------------------------------------------------------------------------------------------------
# Logit transform and per-model summaries (Section 3)
# --------------------------------------------------------------------------------------------------


def logit(p: Any, eps: float | None = None) -> Any:
    """Log odds ``log(p / (1 - p))`` of accuracies ``p``; keeps pandas/numpy container types.

    The paper analyses every accuracy on this scale (Section 3). An accuracy of exactly 0 or 1 has
    infinite log odds, and a value above 1 is almost always a percentage passed by mistake, so both
    raise ``ValueError`` unless ``eps`` is given, in which case ``p`` is first clipped to
    ``[eps, 1 - eps]`` (useful for tiny test sets that can be scored perfectly).
    """
    values = np.asarray(p, dtype=float)
    if eps is not None:
        if not 0.0 < eps < 0.5:
            raise ValueError(f"eps must lie in (0, 0.5), got {eps}")
        p = np.clip(p, eps, 1.0 - eps)
    elif np.any((values <= 0.0) | (values >= 1.0)):
        bad = values[(values <= 0.0) | (values >= 1.0)]
        raise ValueError(
            "logit needs accuracies strictly inside (0, 1) as fractions, not percentages; "
            f"got e.g. {bad.flat[0]!r}. Pass eps= to clip exact 0/1 accuracies."
        )
    return special.logit(p)


def inv_logit(x: Any) -> Any:
    """Inverse of :func:`logit` (the logistic sigmoid); used to label logit-scaled axes."""
    return special.expit(x)


def _check_table(table: pd.DataFrame, name: str = "table") -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be a DataFrame (rows = models, columns = datasets)")
    if table.empty:
        raise ValueError(f"{name} is empty")
    if table.isna().to_numpy().any():
        missing = table.columns[table.isna().any()].tolist()
        raise ValueError(
            f"{name} has missing cells (datasets {missing}); averages over different sets of "
            "datasets are not comparable, so select a complete block first (e.g. table.dropna())"
        )
    return table.astype(float)


def mean_logit(table: pd.DataFrame) -> pd.Series:
    """Per-model mean log odds across datasets: the y-axis of Figure 2 (right) and Table 2's input.

    Averaging in logit space is what makes datasets of different difficulty commensurable.
    """
    table = _check_table(table)
    return logit(table).mean(axis=1).rename("mean_logit")


def morey_se(table: pd.DataFrame) -> pd.Series:
    """Per-model standard error of mean log odds with dataset difficulty removed (Morey 2008).

    Section 3: subtract from each logit accuracy the mean over models on that dataset, take the
    standard error (sample SD / sqrt(#datasets)) of these adjusted values across datasets for each
    model, and multiply by ``sqrt(M / (M - 1))`` for ``M`` models. Without the adjustment the error
    bars would mostly show how much harder Aircraft is than CIFAR-10, not how models differ.
    """
    table = _check_table(table)
    n_models, n_datasets = table.shape
    if n_models < 2 or n_datasets < 2:
        raise ValueError("morey_se needs at least 2 models and 2 datasets")
    x = logit(table)
    adjusted = x - x.mean(axis=0)
    se = adjusted.std(axis=1, ddof=1) / np.sqrt(n_datasets)
    return (se * np.sqrt(n_models / (n_models - 1))).rename("morey_se")


# --------------------------------------------------------------------------------------------------
# ImageNet accuracy vs transfer accuracy (Table 2, Figure 2, Appendix D)
# --------------------------------------------------------------------------------------------------


def _align(imagenet_top1: pd.Series, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int]:
    """Logit ImageNet top-1 and mean logit transfer accuracy on the models both inputs have."""
    if not isinstance(imagenet_top1, pd.Series):
        raise TypeError("imagenet_top1 must be a Series indexed by model")
    table = _check_table(table)
    top1 = imagenet_top1.dropna()
    common = [m for m in table.index if m in top1.index]
    if len(common) < 3:
        raise ValueError(
            f"need at least 3 models in common between ImageNet top-1 and the table, got {common}"
        )
    x = np.asarray(logit(top1.loc[common].astype(float)), dtype=float)
    y = mean_logit(table.loc[common]).to_numpy()
    return x, y, len(common)


def transfer_correlation(imagenet_top1: pd.Series, table: pd.DataFrame) -> dict[str, float]:
    """Table 2: correlation of logit ImageNet top-1 with mean logit transfer accuracy.

    Returns ``r`` (Pearson), ``r2``, ``rho`` (Spearman), ``p`` (two-sided p-value for ``r = 0``, the
    one Table 2 reports), ``p_rho`` (same for rho) and ``n`` (number of models used). Models present
    in only one input are dropped; ``n`` says how many remained.
    """
    x, y, n = _align(imagenet_top1, table)
    pearson = stats.pearsonr(x, y)
    spearman = stats.spearmanr(x, y)
    r = float(pearson.statistic)
    return {
        "r": r,
        "r2": r * r,
        "rho": float(spearman.statistic),
        "p": float(pearson.pvalue),
        "p_rho": float(spearman.pvalue),
        "n": float(n),
    }


def bootstrap_band(
    imagenet_top1: pd.Series,
    table: pd.DataFrame,
    n: int = 10_000,
    seed: int = 0,
    grid: Iterable[float] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Least-squares line of mean logit transfer accuracy on logit ImageNet top-1, with the
    percentile bootstrap band that Figure 2 (left) draws around it.

    Models are resampled with replacement ``n`` times; each resample's OLS line is evaluated on
    ``grid`` and the band is the pointwise ``(1 - level)/2`` and ``(1 + level)/2`` percentiles.
    Everything, ``grid`` included, is in logit units (apply :func:`inv_logit` for accuracies);
    the default grid is 101 points spanning the observed ImageNet range. Resamples whose ImageNet
    values are all equal define no line and are skipped.

    Returns a DataFrame with columns ``x``, ``lo``, ``hi`` and ``fit`` (the full-data line).
    """
    if n < 1:
        raise ValueError("n must be positive")
    if not 0.0 < level < 1.0:
        raise ValueError("level must lie in (0, 1)")
    x, y, m = _align(imagenet_top1, table)
    xs = np.linspace(x.min(), x.max(), 101) if grid is None else np.asarray(list(grid), float)

    slope, intercept = np.polyfit(x, y, 1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, m, size=(n, m))
    bx, by = x[idx], y[idx]
    bx_c = bx - bx.mean(axis=1, keepdims=True)
    sxx = np.einsum("ij,ij->i", bx_c, bx_c)
    sxy = np.einsum("ij,ij->i", bx_c, by - by.mean(axis=1, keepdims=True))
    ok = sxx > 1e-12 * max(1.0, float(np.var(x)) * m)
    b = sxy[ok] / sxx[ok]
    a = by.mean(axis=1)[ok] - b * bx.mean(axis=1)[ok]
    lines = a[:, None] + b[:, None] * xs[None, :]
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(lines, [tail, 100.0 - tail], axis=0)
    return pd.DataFrame({"x": xs, "lo": lo, "hi": hi, "fit": intercept + slope * xs})


def per_dataset_correlation(imagenet_top1: pd.Series, table: pd.DataFrame) -> pd.Series:
    """Pearson r between logit ImageNet top-1 and logit accuracy on each dataset separately.

    The y-axis of Figure 16 (Appendix D) before its Fisher z scaling; relating ``fisher_z`` of
    these to log training-set size is the paper's test that ImageNet accuracy predicts
    from-scratch accuracy better on larger datasets.
    """
    _align(imagenet_top1, table)  # validates inputs
    common = [m for m in table.index if m in imagenet_top1.dropna().index]
    x = np.asarray(logit(imagenet_top1.loc[common].astype(float)), dtype=float)
    lt = logit(table.loc[common].astype(float))
    return pd.Series(
        {d: float(stats.pearsonr(x, lt[d].to_numpy()).statistic) for d in table.columns},
        name="r",
    )


# --------------------------------------------------------------------------------------------------
# Two models on one dataset (Appendix A.1.1)
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Across datasets (Sections 3, 4.2, 4.5, Appendix B)
# --------------------------------------------------------------------------------------------------


def _paired_logits(
    a: pd.Series | pd.DataFrame, b: pd.Series | pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    if type(a) is not type(b) or not isinstance(a, pd.Series | pd.DataFrame):
        raise TypeError("compare two Series (one model each) or two DataFrames (model x dataset)")
    if isinstance(a, pd.DataFrame):
        a, b = a.align(b, join="inner")
        a, b = _check_table(a, "table_a"), _check_table(b, "table_b")
    else:
        a, b = a.align(b, join="inner")
        if a.isna().any() or b.isna().any():
            raise ValueError("missing accuracies; compare on the datasets both models have")
    if a.size < 2:
        raise ValueError("need at least 2 paired accuracies")
    return np.asarray(logit(a), float).reshape(-1), np.asarray(logit(b), float).reshape(-1)


def paired_t_across_datasets(
    table_a: pd.Series | pd.DataFrame, table_b: pd.Series | pd.DataFrame
) -> dict[str, float]:
    """Paired t-test on logit accuracies (``scipy.stats.ttest_rel``), the paper's test for a
    difference in average performance across datasets.

    Two Series (one model each, indexed by dataset) give the paper's model-vs-model test, e.g.
    Appendix B's t(11) = 5.6 over 12 datasets. Two DataFrames pair every (model, dataset) cell,
    e.g. Appendix G.1's SVM vs logistic regression over 192 pairs. Inputs are aligned on common
    labels. Returns ``t``, ``p`` (two-sided), ``df`` and ``mean_diff`` (mean logit a - b).
    """
    xa, xb = _paired_logits(table_a, table_b)
    diff = xa - xb
    mean_diff = float(np.mean(diff))
    if float(np.ptp(diff)) <= 1e-12 * max(1.0, abs(mean_diff)):
        # Identical differences on every dataset: no variance, so the t statistic is infinite
        # (p = 0) for a non-zero difference and undefined (p = 1, no evidence) for none. scipy
        # would warn of catastrophic cancellation and return an unreliable value instead.
        return {"t": float(np.sign(mean_diff) * np.inf) if mean_diff else float("nan"),
                "p": 0.0 if mean_diff else 1.0, "df": float(xa.size - 1),
                "mean_diff": mean_diff}
    res = stats.ttest_rel(xa, xb)
    return {
        "t": float(res.statistic),
        "p": float(res.pvalue),
        "df": float(xa.size - 1),
        "mean_diff": float(np.mean(xa - xb)),
    }


def wilcoxon_per_dataset(table_a: pd.DataFrame, table_b: pd.DataFrame) -> pd.DataFrame:
    """For each dataset, Wilcoxon signed-rank test across models of logit(a) vs logit(b).

    Section 4.2's "fine-tuning yielded significantly better results on all datasets except
    Caltech-101 (all p < 0.01, Wilcoxon signed rank test)": the models are the pairs. Differences
    are taken in log odds, consistent with Section 3 (the signed ranks depend on the scale).
    Returns one row per dataset: ``statistic``, ``p`` (two-sided), ``n_models`` and ``a_better``
    (number of models where a beats b).
    """
    table_a, table_b = table_a.align(table_b, join="inner")
    table_a, table_b = _check_table(table_a, "table_a"), _check_table(table_b, "table_b")
    la, lb = logit(table_a), logit(table_b)
    rows = {}
    for d in la.columns:
        res = stats.wilcoxon(la[d].to_numpy(), lb[d].to_numpy())
        rows[d] = {
            "statistic": float(res.statistic),
            "p": float(res.pvalue),
            "n_models": len(la),
            "a_better": int((table_a[d] > table_b[d]).sum()),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def not_worse_than_best_across_datasets(table: pd.DataFrame, alpha: float = 0.05) -> set[str]:
    """Models whose mean log odds is not significantly below the best model's (paired t-test
    across datasets, p > ``alpha``): the green points of Figure 2 (right)."""
    table = _check_table(table)
    best = str(mean_logit(table).idxmax())
    return {best} | {
        str(m)
        for m in table.index
        if m != best and paired_t_across_datasets(table.loc[best], table.loc[m])["p"] > alpha
    }


# --------------------------------------------------------------------------------------------------
# Comparing two dependent correlations (Appendix B)
# --------------------------------------------------------------------------------------------------


def fisher_z(r: Any) -> Any:
    """Fisher's z = artanh(r): makes sample correlations approximately normal with variance
    1 / (n - 3). Used for Figure 16's axis and the dependent-correlation test."""
    return np.arctanh(r)


def dependent_correlations_test(
    r_jk: float,
    r_hm: float,
    r_jh: float,
    r_jm: float,
    r_kh: float,
    r_km: float,
    n: int,
    method: str = "silver2004",
) -> tuple[float, float]:
    """Test r_jk = r_hm for two non-overlapping correlations measured on the same n cases.

    Appendix B compares r(ImageNet top-1, transfer) for retrained models (j, k) with the same for
    public checkpoints (h, m) over the same 16 architectures [62, 16]. The statistic is Dunn &
    Clark's (1969)

        z = (Z_jk - Z_hm) * sqrt(n - 3) / sqrt(2 - 2 c),    Z = artanh(r),

    where c is the asymptotic correlation of Z_jk and Z_hm (Pearson & Filon 1898):

        c = psi / ((1 - a**2) * (1 - b**2)),
        psi = a*b/2 * (r_jh**2 + r_jm**2 + r_kh**2 + r_km**2) + r_jh*r_km + r_jm*r_kh
              - (a*r_jh*r_jm + a*r_kh*r_km + r_jh*r_kh*b + r_jm*r_km*b).

    ``method`` picks (a, b): ``"dunn1969"`` uses (r_jk, r_hm) (numerically the same as
    Raghunathan et al. 1996); ``"steiger1980"`` pools both as (r_jk + r_hm) / 2;
    ``"silver2004"`` (default; the method Silver, Hittner & May 2004 recommend, as implemented by
    cocor [16] and the authors' DEPCOR program) pools both as the back-transformed mean Fisher z,
    tanh((Z_jk + Z_hm) / 2). Returns (z, two-sided normal p).
    """
    corrs = np.array([r_jk, r_hm, r_jh, r_jm, r_kh, r_km], dtype=float)
    if np.any(np.abs(corrs) >= 1.0):
        raise ValueError("correlations must lie strictly inside (-1, 1)")
    if n <= 3:
        raise ValueError("n must exceed 3")
    z_jk, z_hm = float(fisher_z(r_jk)), float(fisher_z(r_hm))
    if method == "dunn1969":
        a, b = r_jk, r_hm
    elif method == "steiger1980":
        a = b = (r_jk + r_hm) / 2.0
    elif method == "silver2004":
        a = b = float(np.tanh((z_jk + z_hm) / 2.0))
    else:
        raise ValueError(f"unknown method {method!r}; use silver2004, steiger1980 or dunn1969")
    psi = (
        0.5 * a * b * (r_jh**2 + r_jm**2 + r_kh**2 + r_km**2)
        + r_jh * r_km
        + r_jm * r_kh
        - (a * r_jh * r_jm + a * r_kh * r_km + r_jh * r_kh * b + r_jm * r_km * b)
    )
    c = psi / ((1.0 - a * a) * (1.0 - b * b))
    z = (z_jk - z_hm) * np.sqrt(n - 3.0) / np.sqrt(2.0 - 2.0 * c)
    return float(z), float(2.0 * stats.norm.sf(abs(z)))


# --------------------------------------------------------------------------------------------------
# Convergence speed (Section 4.6, Figure 8)
# --------------------------------------------------------------------------------------------------


def steps_to_fraction_of_max_odds(curve: Any, fraction: float = 0.9) -> float:
    """First number of steps at which a run reaches ``fraction`` of its maximum odds correct.

    Section 4.6: "the number of ... steps required to reach 90% of the maximum odds of correct
    classification achieved at any number of steps". Odds = acc / (1 - acc); the threshold is
    ``fraction * max(odds)``, i.e. in log odds ``max(logit(acc)) + log(fraction)`` (for 0.9,
    0.105 below the best log odds; e.g. a best accuracy of 90% sets the bar at 89.0%). Figure 8's
    points are independent runs of different lengths, so no interpolation: the answer is the
    smallest sampled step count whose accuracy meets the threshold.

    ``curve``: a Series (index = steps, values = accuracy), a DataFrame with ``steps`` and
    ``accuracy`` columns, or an iterable of (steps, accuracy) pairs. Divide by steps per epoch
    for the paper's epoch figures.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError("fraction must lie in (0, 1]")
    if isinstance(curve, pd.Series):
        steps, acc = curve.index.to_numpy(float), curve.to_numpy(float)
    elif isinstance(curve, pd.DataFrame):
        steps, acc = curve["steps"].to_numpy(float), curve["accuracy"].to_numpy(float)
    else:
        pairs = np.asarray(list(curve), dtype=float)
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise ValueError("curve must be (steps, accuracy) pairs")
        steps, acc = pairs[:, 0], pairs[:, 1]
    if steps.size == 0:
        raise ValueError("curve is empty")
    order = np.argsort(steps, kind="stable")
    steps, log_odds = steps[order], np.asarray(logit(acc[order]), float)
    threshold = log_odds.max() + np.log(fraction)
    return float(steps[np.argmax(log_odds >= threshold - 1e-12)])


def geometric_mean(values: Any) -> float:
    """Geometric mean (``scipy.stats.gmean``), how Section 4.6 averages steps across datasets:
    step counts span orders of magnitude, so the arithmetic mean would be dominated by the
    slowest dataset."""
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.size == 0 or np.any(arr <= 0) or np.any(~np.isfinite(arr)):
        raise ValueError("geometric_mean needs finite positive values")
    return float(stats.gmean(arr))
