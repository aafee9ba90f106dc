"""Two models across datasets (Sections 3, 4.2, 4.5, Appendix B): paired tests on logit
accuracies, dataset by dataset or over all of them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from probes.stats.logits import _check_table, logit, mean_logit

__all__ = [
    "not_worse_than_best_across_datasets",
    "paired_t_across_datasets",
    "wilcoxon_per_dataset",
]


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
