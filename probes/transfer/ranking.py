"""Rank checkpoints by each estimator and check the ranking against measured transfer.

Conventions follow the paper (Kornblith et al., Section 3): accuracies are analysed as log odds.
Per dataset, a rank correlation does not care (the logit is monotone); pooled over datasets it
does, so the pooled comparison averages *log odds* of the measured accuracy over datasets per
checkpoint, exactly as the paper's "average transfer accuracy" (its Figure 2), and averages the
estimator after standardising it within each dataset (its scale is dataset-specific: LogME of
a 10-class and of a 100-class task are not comparable; accuracy-like estimators are taken in log
odds first). Only checkpoints with both values on every dataset enter the pooled correlation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from probes.stats import logit
from probes.transfer.entries import ACCURACIES, Estimate

#: The measured settings an estimate is checked against (results-table ``setting``).
MEASURED: tuple[str, ...] = ("logreg", "finetune")
#: Exact 0/1 accuracies (tiny test sets) are clipped to this before the log odds.
LOGIT_EPS = 1e-4
POOLED = "pooled"


def measured_frame(results: pd.DataFrame, settings: Sequence[str] = MEASURED) -> pd.DataFrame:
    """Latest default-variant row per (ckpt, dataset, setting): ``test_metric`` and the job's
    seconds (``timings.total_s`` when recorded)."""
    cols = ["ckpt", "dataset", "setting", "test_metric", "seconds"]
    if results.empty:
        return pd.DataFrame(columns=cols)
    df = results[results["setting"].isin(list(settings))].copy()
    if "variant" in df:
        df = df[df["variant"].fillna("") == ""]
    if "created" in df:
        df = df.sort_values("created", kind="stable")
    df = df.drop_duplicates(["ckpt", "dataset", "setting"], keep="last")

    def seconds(t: object) -> float:
        if isinstance(t, dict):
            for k in ("total_s", "seconds", "train_s"):
                if isinstance(t.get(k), int | float):
                    return float(t[k])
        return float("nan")

    df["seconds"] = df["timings"].map(seconds) if "timings" in df else float("nan")
    return df[cols].reset_index(drop=True)


def rank_table(
    estimates: Sequence[Estimate], measured: pd.DataFrame, estimators: Sequence[str],
    settings: Sequence[str] = MEASURED,
) -> pd.DataFrame:
    """One row per (dataset, checkpoint): each estimator's score, rank (1 = best within the
    dataset) and seconds, then each measured setting's test metric, rank and seconds."""
    pairs = sorted({(e.dataset, e.ckpt) for e in estimates})
    table = pd.DataFrame(pairs, columns=["dataset", "ckpt"])
    by = {(e.dataset, e.ckpt, e.estimator): e for e in estimates}
    for name in estimators:
        table[name] = [by[d, c, name].score if (d, c, name) in by else None for d, c in pairs]
        table[f"{name}_seconds"] = [by[d, c, name].seconds if (d, c, name) in by else None
                                    for d, c in pairs]
    for s in settings:
        m = measured[measured["setting"] == s].set_index(["dataset", "ckpt"])
        table[s] = [m["test_metric"].get((d, c)) for d, c in pairs]
        table[f"{s}_seconds"] = [m["seconds"].get((d, c)) for d, c in pairs]
    for col in [*estimators, *settings]:
        table[col] = pd.to_numeric(table[col], errors="coerce")
        table[f"{col}_rank"] = (table.groupby("dataset")[col]
                                .rank(ascending=False, method="min").astype("Int64"))
    return table


def _corr(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    out = {"n": int(len(a)), "kendall_tau": np.nan, "kendall_p": np.nan,
           "spearman_rho": np.nan, "spearman_p": np.nan}
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kt = sps.kendalltau(a, b)
        sr = sps.spearmanr(a, b)
    out.update(kendall_tau=float(kt.statistic), kendall_p=float(kt.pvalue),
               spearman_rho=float(sr.statistic), spearman_p=float(sr.pvalue))
    return out


def _standardised(table: pd.DataFrame, col: str, is_accuracy: bool) -> pd.Series:
    v = table[col].astype(float)
    if is_accuracy:
        v = pd.Series(logit(v.to_numpy(), eps=LOGIT_EPS), index=v.index)
    g = v.groupby(table["dataset"])
    sd = g.transform(lambda s: s.std(ddof=0))
    return (v - g.transform("mean")) / sd.where(sd > 0)


def correlations(
    table: pd.DataFrame, estimators: Sequence[str], settings: Sequence[str] = MEASURED
) -> pd.DataFrame:
    """Kendall tau and Spearman rho (scipy.stats) between every estimator and every measured
    setting: per dataset, and pooled over datasets (see the module docstring)."""
    rows = []
    for e in estimators:
        z = _standardised(table, e, e in ACCURACIES)
        for s in settings:
            for d, sub in table.groupby("dataset"):
                rows.append({"scope": d, "estimator": e, "setting": s,
                             **_corr(sub[e].to_numpy(float), sub[s].to_numpy(float))})
            lo = pd.Series(logit(table[s].astype(float).to_numpy(), eps=LOGIT_EPS)
                           if table[s].notna().any() else np.nan, index=table.index)
            wide_e = z.groupby([table["ckpt"], table["dataset"]]).first().unstack()
            wide_m = lo.groupby([table["ckpt"], table["dataset"]]).first().unstack()
            ok = wide_e.notna().all(1) & wide_m.notna().all(1)
            rows.append({"scope": POOLED, "estimator": e, "setting": s,
                         **_corr(wide_e[ok].mean(1).to_numpy(float),
                                 wide_m[ok].mean(1).to_numpy(float))})
    return pd.DataFrame(rows, columns=["scope", "estimator", "setting", "n", "kendall_tau",
                                       "kendall_p", "spearman_rho", "spearman_p"])
