"""The logit transform and per-model summaries (Section 3): accuracies are analysed in log odds,
where the paper treats model and dataset effects as additive."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import special

__all__ = [
    "inv_logit",
    "logit",
    "mean_logit",
    "morey_se",
]


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
