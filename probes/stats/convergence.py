"""Convergence speed (Section 4.6, Figure 8): steps to a fraction of the maximum odds, and the
geometric mean the paper averages step counts with."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from probes.stats.logits import logit

__all__ = [
    "geometric_mean",
    "steps_to_fraction_of_max_odds",
]


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
