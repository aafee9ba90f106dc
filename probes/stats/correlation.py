"""ImageNet accuracy vs transfer accuracy (Table 2, Figure 2, Appendix D) and the comparison of
two dependent correlations (Appendix B)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from probes.stats.logits import _check_table, logit, mean_logit

__all__ = [
    "bootstrap_band",
    "dependent_correlations_test",
    "fisher_z",
    "per_dataset_correlation",
    "transfer_correlation",
]


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
