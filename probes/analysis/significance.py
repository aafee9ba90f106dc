"""Per-example significance per dataset: the green cells of Table 6 and points of Figure 2 (left).

The tests read each result's stored test predictions and the dataset's test labels from the
store (read-only), then apply the paper's two-model test per metric (Appendix A.1.1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from probes import stats
from probes.analysis.names import SETTINGS, dataset_label
from probes.analysis.wide import _latest

__all__ = [
    "SIGNIFICANCE_COLUMNS",
    "SIGNIFICANCE_TESTS",
    "green_per_dataset",
    "significance_all",
    "significance_frame",
    "styled_table",
]


def _test_labels(store: Any, entries: Sequence[Any], dataset: str,
                 n: int) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Test labels (and VOC's difficult mask, None elsewhere) of ``dataset`` from any complete
    entry of it with ``n`` test examples.

    Every checkpoint's entry of a dataset holds the same test split, so any one will do; fine-tune
    rows of a checkpoint that was never extracted still find their labels this way.
    """
    for info in entries:
        if info.dataset == dataset and info.splits.get("test") == n:
            y = store.load(info.ckpt, dataset, "test")[1]
            return y, store.load_difficult(info.ckpt, dataset, "test")
    return None


#: Columns of :func:`significance_frame`.
SIGNIFICANCE_COLUMNS = ["setting", "dataset", "ckpt", "result_id", "metric", "test_metric",
                        "test", "p_vs_best", "best", "not_worse_than_best", "note"]


#: The paper's two-model test per metric (Appendix A.1.1 and its footnote 2).
SIGNIFICANCE_TESTS = {
    "top1": "exact McNemar (per example)",
    "mean_per_class": "permutation test (per example)",
    "voc11_map": "exact McNemar (per image and label, difficult excluded)",
}


def _decision_threshold(row: Any) -> float:
    """Where a multi-label row's stored scores switch from 'absent' to 'present': linear probes
    on cached features store decision values (0), networks trained on images store sigmoid
    scores (0.5)."""
    features = getattr(row, "features", None)
    kind = features.get("kind") if isinstance(features, dict) else None
    if kind is None:
        kind = "cached" if row.setting in ("logreg", "svm") else "images"
    return 0.0 if kind == "cached" else 0.5


def _pair_test(
    metric: str, preds: Mapping[str, np.ndarray], y: np.ndarray, difficult: np.ndarray | None,
    thresholds: Mapping[str, float], n_permutations: int,
) -> tuple[Callable[[str, str], float], dict[str, float] | None]:
    """The paper's two-model test for ``metric`` as ``test(a, b) -> p``, and the quantity it
    tests per model where that is not the metric itself (VOC: label accuracy), else None."""
    if metric == "mean_per_class":
        return (lambda a, b: stats.permutation_test(preds[a], preds[b], y, "mean_per_class",
                                                    n=n_permutations)), None
    if metric == "top1":
        correct = {m: p == y for m, p in preds.items()}
        tie_break = None
    else:  # voc11_map: accuracy of the thresholded predictions across labels (footnote 2)
        correct = {m: stats.label_correctness(p, y, thresholds[m], difficult)
                   for m, p in preds.items()}
        tie_break = {m: float(c.mean()) for m, c in correct.items()}
    return (lambda a, b: stats.mcnemar_exact(correct[a], correct[b])), tie_break


def significance_frame(
    store_url: str | None,
    results: pd.DataFrame,
    setting: str,
    alpha: float = 0.05,
    n_permutations: int = 10_000,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per (dataset, checkpoint) of one setting's wide table: is it significantly worse than the
    best checkpoint on that dataset? The green cells of Table 6 and points of Figure 2 (left).

    Computed from the per-example test predictions stored with each result, with the paper's
    test per metric (:data:`SIGNIFICANCE_TESTS`): exact McNemar for top-1, the permutation test
    (``n_permutations``) for mean per-class accuracy, and for VOC 2007's 11-point mAP the exact
    McNemar test on the accuracy of the thresholded predictions across labels (footnote 2;
    the devkit's difficult cells left out). The best is the argmax of the table's metric.

    Returns ``(frame, skipped)``: one row per tested cell (:data:`SIGNIFICANCE_COLUMNS`), and per
    dataset that could not be tested the reason (one model only, rows on different test sets
    or metrics, no extracted entry with its test labels). A dataset with one model appears in
    the frame as its own best, with the reason in ``note``.
    """
    empty = pd.DataFrame(columns=SIGNIFICANCE_COLUMNS)
    skipped: dict[str, str] = {}
    if store_url is None or results.empty:
        return empty, skipped
    from featurestore.store import FeatureStore

    rows = _latest(results[(results["setting"] == setting) & (results["variant"] == "")])
    if rows.empty:
        return empty, skipped
    store = FeatureStore(store_url, read_only=True)
    table = store.results
    entries = store.entries()  # listed once: listing walks the store to size every entry
    out: list[dict[str, Any]] = []

    def emit(g: pd.DataFrame, verdict: Mapping[str, Mapping[str, Any]], test: str,
             note: str = "") -> None:
        for r in g.itertuples():
            v = verdict.get(str(r.ckpt), {})
            out.append({"setting": setting, "dataset": r.dataset, "ckpt": r.ckpt,
                        "result_id": r.result_id, "metric": r.metric,
                        "test_metric": float(r.test_metric), "test": test,
                        "p_vs_best": v.get("p", np.nan), "best": v.get("best", False),
                        "not_worse_than_best": v.get("not_worse", False), "note": note})

    for dataset, g in rows.groupby("dataset", sort=False):
        if len(g) < 2:
            skipped[dataset] = "only one model"
            emit(g, {str(g["ckpt"].iloc[0]): {"best": True, "not_worse": True}}, "",
                 "only one model")
            continue
        metrics = set(g["metric"])
        if len(metrics) > 1:
            skipped[dataset] = f"rows disagree on the metric ({sorted(metrics)})"
            continue
        if "test_ids_sha256" in g.columns and g["test_ids_sha256"].astype(str).nunique() > 1:
            skipped[dataset] = "rows were scored on different test sets (test_ids_sha256)"
            continue
        metric = metrics.pop()
        if metric not in SIGNIFICANCE_TESTS:
            skipped[dataset] = f"no per-example test for metric {metric!r}"
            continue
        preds = {str(r.ckpt): table.predictions(str(r.result_id)) for r in g.itertuples()}
        shapes = {p.shape for p in preds.values()}
        want_ndim = 2 if metric == "voc11_map" else 1
        if len(shapes) != 1 or len(next(iter(shapes))) != want_ndim:
            skipped[dataset] = f"predictions are not {want_ndim}-D and of one shape ({shapes})"
            continue
        labels = _test_labels(store, entries, dataset, next(iter(shapes))[0])
        if labels is None or labels[0].ndim != want_ndim:
            skipped[dataset] = "no extracted entry holds this dataset's test labels"
            continue
        y, difficult = labels
        scores = {str(r.ckpt): float(r.test_metric) for r in g.itertuples()}
        thresholds = {str(r.ckpt): _decision_threshold(r) for r in g.itertuples()}
        test, tie_break = _pair_test(metric, preds, y, difficult, thresholds, n_permutations)
        emit(g, stats.significance_vs_best(scores, test, alpha, tie_break),
             SIGNIFICANCE_TESTS[metric])
    frame = pd.DataFrame(out, columns=SIGNIFICANCE_COLUMNS)
    return frame, skipped


def green_per_dataset(
    store_url: str | None,
    results: pd.DataFrame,
    setting: str,
    alpha: float = 0.05,
    n_permutations: int = 10_000,
) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Per dataset, the checkpoints not significantly worse than the best on that dataset
    (:func:`significance_frame`, which says how). Returns ``(green, skipped)``: ``skipped`` maps
    each dataset that could not be tested to the reason; datasets with one model are skipped
    (there is nothing to colour against)."""
    frame, skipped = significance_frame(store_url, results, setting, alpha, n_permutations)
    green: dict[str, set[str]] = {}
    for dataset, g in frame.groupby("dataset", sort=False):
        if dataset not in skipped:
            green[str(dataset)] = {str(c) for c in g.loc[g["not_worse_than_best"], "ckpt"]}
    return green, skipped


def significance_all(store_url: str | None, results: pd.DataFrame,
                     alpha: float = 0.05) -> pd.DataFrame:
    """:func:`significance_frame` for every setting the store has results for, stacked."""
    if results.empty:
        return pd.DataFrame(columns=SIGNIFICANCE_COLUMNS)
    present = set(results["setting"])
    settings = [s for s in SETTINGS if s in present] + sorted(present - set(SETTINGS))
    frames = [significance_frame(store_url, results, s, alpha)[0] for s in settings]
    frames = [f for f in frames if not f.empty]
    return (pd.concat(frames, ignore_index=True) if frames
            else pd.DataFrame(columns=SIGNIFICANCE_COLUMNS))


def styled_table(table: pd.DataFrame, green: pd.DataFrame | None = None,
                 percent: bool = True, caption: str = "") -> Any:
    """A wide model x dataset table as the paper prints Table 6: accuracies in percent, the
    best per dataset in bold and every model not significantly worse than it on a green
    background (``green``: :func:`significance_frame` rows; None for the paper's tables, which
    have no per-example predictions). Returns a pandas Styler (rendered as HTML in a notebook).
    """
    shown = table.rename(columns=dataset_label) * (100.0 if percent else 1.0)
    styles = pd.DataFrame("", index=shown.index, columns=shown.columns)
    if green is not None and not green.empty:
        for r in green.itertuples():
            col = dataset_label(str(r.dataset))
            if r.ckpt not in styles.index or col not in styles.columns:
                continue
            css = "background-color: #c8ecc8;" if r.not_worse_than_best else ""
            if r.best:
                css += "font-weight: bold;"
            styles.loc[r.ckpt, col] = css
    styler = shown.style.apply(lambda _: styles, axis=None).format(
        "{:.1f}" if percent else "{:.3f}", na_rep="–")
    return styler.set_caption(caption) if caption else styler
