"""Data size (Figure 9) and convergence (Figure 8): variants and training curves as frames.

Pure transforms of a results frame: data-size subsets (variant ``k=K,subset_seed=S``)
averaged over seeds, the val curves of fine-tuning runs, step-budget families, and Section
4.6's steps-to-threshold summary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from featurestore.results import schema
from probes import stats
from probes.analysis.wide import _latest

__all__ = [
    "convergence_frame",
    "convergence_speedup",
    "convergence_summary",
    "data_size_frame",
    "parse_variant",
    "step_budget_frame",
]


def parse_variant(variant: str) -> dict[str, str]:
    """``"k=10,subset_seed=0"`` -> ``{"k": "10", "subset_seed": "0"}``; ``{}`` when the variant
    is not a list of ``name=value`` parts (:func:`featurestore.results.schema.parse_variant`)."""
    return schema.parse_variant(variant)


def data_size_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Figure 9's points: rows with variant ``k=K,subset_seed=S`` averaged over subset seeds.

    One row per (ckpt, dataset, setting, k): ``mean`` test metric, ``se`` (SD / sqrt(seeds), the
    paper's "standard error over 3 subsets"; NaN for one seed), ``n_subsets`` and ``n_train``
    (the largest training-set size among the subsets: k x classes, as no setting refits on val).
    """
    cols = ["ckpt", "dataset", "setting", "k", "mean", "se", "n_subsets", "n_train"]
    if results.empty:
        return pd.DataFrame(columns=cols)
    parsed = results["variant"].map(lambda v: schema.Subset.parse(None, str(v)))
    keep = parsed.notna()
    if not keep.any():
        return pd.DataFrame(columns=cols)
    df = _latest(results[keep]).copy()
    df["k"] = df["variant"].map(lambda v: schema.Subset.parse(None, str(v)).k)
    df["value"] = df["test_metric"].astype(float)
    n_train = df["n_train"] if "n_train" in df.columns else pd.Series(np.nan, index=df.index)
    df["n_train"] = pd.to_numeric(n_train, errors="coerce")
    agg = (
        df.groupby(["ckpt", "dataset", "setting", "k"])
        .agg(mean=("value", "mean"), sd=("value", lambda s: s.std(ddof=1)),
             n_subsets=("value", "count"), n_train=("n_train", "max"))
        .reset_index()
    )
    agg["se"] = agg["sd"] / np.sqrt(agg["n_subsets"])
    return agg[cols].sort_values(["dataset", "setting", "ckpt", "k"]).reset_index(drop=True)


def convergence_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Figure 8's data: every (step, val_metric) point of every row that recorded
    ``curve_steps`` (fine-tune and from-scratch jobs), one row per point.

    Curves are read through :func:`featurestore.results.schema.parse_curve_steps`, so the
    canonical ``[[step, metric], ...]`` pairs and the dicts of older rows both count.
    """
    cols = ["ckpt", "dataset", "setting", "variant", "step", "val_metric", "n_train"]
    if results.empty or "curve_steps" not in results.columns:
        return pd.DataFrame(columns=cols)
    points = []
    for r in _latest(results).itertuples():
        n_train = getattr(r, "n_train", None)
        for step, value in schema.parse_curve_steps(getattr(r, "curve_steps", None)):
            points.append({"ckpt": r.ckpt, "dataset": r.dataset, "setting": r.setting,
                           "variant": r.variant, "step": step, "val_metric": value,
                           "n_train": n_train})
    return pd.DataFrame(points, columns=cols)


def step_budget_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Figure 8 as the paper made it: one point per independent run of a step-budget family
    (``featurestore finetune --steps A,B,...``), its test metric against its budget.

    One row per latest result of a family: ``ckpt``, ``dataset``, ``setting``, ``family``,
    ``steps`` (the budget), ``test_metric``, ``n_train``, ``result_id``. Rows of a data-size
    subset or without a family (a single run) are not Figure 8's.
    """
    cols = ["result_id", "ckpt", "dataset", "setting", "variant", "family", "steps",
            "test_metric", "n_train", "metric"]
    if results.empty or "family" not in results.columns:
        return pd.DataFrame(columns=cols)
    df = _latest(results)
    df = df[df["family"].map(lambda f: isinstance(f, str) and f.startswith("step_budgets:"))]
    if df.empty:
        return pd.DataFrame(columns=cols)
    df = df.copy()
    budget = df["step_budget"] if "step_budget" in df.columns else pd.Series(np.nan, df.index)
    from_hp = df["hyperparams"].map(lambda h: (h or {}).get("steps") if isinstance(h, dict)
                                    else None)
    df["steps"] = pd.to_numeric(budget, errors="coerce").fillna(
        pd.to_numeric(from_hp, errors="coerce"))
    df["test_metric"] = df["test_metric"].astype(float)
    return (df[cols].sort_values(["dataset", "setting", "ckpt", "family", "steps"])
            .reset_index(drop=True))


def convergence_summary(curves: pd.DataFrame, fraction: float = 0.9) -> pd.DataFrame:
    """Section 4.6: per run, the steps needed to reach ``fraction`` of its maximum odds correct
    (:func:`probes.stats.steps_to_fraction_of_max_odds`), plus the run's best metric.

    Metrics of exactly 0 or 1 are clipped to 1e-6 inside (0, 1): odds are only compared within
    a run, so the clip only matters for a run that reaches a perfect score, where it keeps the
    first perfect step as the answer.
    """
    cols = ["ckpt", "dataset", "setting", "variant", "steps_to_threshold", "best", "n_points"]
    if curves.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (ckpt, dataset, setting, variant), g in curves.groupby(
        ["ckpt", "dataset", "setting", "variant"], sort=True
    ):
        curve = pd.Series(g["val_metric"].clip(1e-6, 1 - 1e-6).to_numpy(), index=g["step"])
        rows.append({
            "ckpt": ckpt, "dataset": dataset, "setting": setting, "variant": variant,
            "steps_to_threshold": stats.steps_to_fraction_of_max_odds(curve, fraction),
            "best": float(g["val_metric"].max()),
            "n_points": len(g),
        })
    return pd.DataFrame(rows, columns=cols)


def convergence_speedup(summary: pd.DataFrame) -> pd.DataFrame:
    """Per setting, the geometric mean over runs of the steps to threshold (Section 4.6 averages
    this way because step counts span orders of magnitude); ``speedup`` is each setting's
    geometric mean relative to ``scratch`` when present (the paper's 17-fold figure)."""
    rows = []
    for setting, g in summary.groupby("setting"):
        steps = g["steps_to_threshold"].astype(float)
        steps = steps[steps > 0]
        rows.append({"setting": setting, "runs": len(g),
                     "geometric_mean_steps": stats.geometric_mean(steps) if len(steps) else np.nan})
    out = pd.DataFrame(rows, columns=["setting", "runs", "geometric_mean_steps"])
    out = out.set_index("setting")
    if "scratch" in out.index:
        out["speedup_vs_scratch"] = out.loc["scratch", "geometric_mean_steps"] / out[
            "geometric_mean_steps"
        ]
    return out
