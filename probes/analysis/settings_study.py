"""Settings studies (Figures 3, 5, 12, 14, 15 generalised; featurestore.checkpoints.families).

One study is a family of checkpoints that differ in one training setting (a recipe each); these
transforms put its members' results side by side in log odds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from probes import stats
from probes.analysis.wide import _clipped_metric, _latest, imagenet_top1_for_store

__all__ = [
    "STUDY_SETTINGS",
    "settings_studies_frame",
    "settings_study_frame",
    "settings_study_summary",
]


#: Settings a settings-study figure shows, in panel order (the paper's Figures 3 and 5).
STUDY_SETTINGS = ("logreg", "finetune")


def settings_study_frame(results: pd.DataFrame, study: Any,
                         settings: Sequence[str] = STUDY_SETTINGS) -> pd.DataFrame:
    """One row per (setting, recipe, dataset) of a settings study's members found in the store.

    ``study`` is a :class:`featurestore.checkpoints.families.SettingsStudy`. Columns: ``study``,
    ``setting``, ``recipe``, ``ckpt``, ``dataset``, ``test_metric``, ``log_odds`` (of the metric
    moved half an example inside (0, 1), as in :func:`wide_tables`), ``n_train``,
    ``imagenet_top1`` (the study's value, else the row's) and ``source`` (``store``). Only the
    default variant enters, one row per key (the latest).
    """
    cols = ["study", "setting", "recipe", "ckpt", "dataset", "test_metric", "log_odds",
            "n_train", "imagenet_top1", "source"]
    if results.empty:
        return pd.DataFrame(columns=cols)
    df = _latest(results[(results["variant"].fillna("") == "")
                         & results["ckpt"].isin(study.ckpts)
                         & results["setting"].isin(list(settings))])
    if df.empty:
        return pd.DataFrame(columns=cols)
    top1 = {m.ckpt: m.imagenet_top1 for m in study.members}
    row_top1 = imagenet_top1_for_store(df)
    out = df.assign(
        study=study.name,
        recipe=df["ckpt"].map(study.recipe_of),
        log_odds=stats.logit(_clipped_metric(df).to_numpy()),
        imagenet_top1=[top1.get(c) if top1.get(c) is not None else row_top1.get(c, np.nan)
                       for c in df["ckpt"]],
        source="store",
    )
    if "n_train" not in out.columns:
        out["n_train"] = np.nan
    order = {c: i for i, c in enumerate(study.ckpts)}
    out = out.assign(_o=out["ckpt"].map(order)).sort_values(["setting", "_o", "dataset"])
    return out[cols].reset_index(drop=True)


def settings_study_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean log odds per (setting, recipe) over the datasets *every* recipe of that setting
    has (means over different datasets are not comparable), with ``n_datasets`` and the
    Morey-corrected standard error (NaN below 2 recipes or 2 datasets)."""
    cols = ["setting", "recipe", "ckpt", "mean_log_odds", "se", "n_datasets", "imagenet_top1"]
    parts = []
    for setting, g in frame.groupby("setting", sort=False):
        # the frame's log odds already carry the half-example clipping of exact 0 / 1
        odds = g.pivot(index="ckpt", columns="dataset", values="log_odds").astype(float)
        block = odds.dropna(axis=1)
        if block.empty:
            continue
        clipped = stats.inv_logit(block)
        mean = block.mean(axis=1)
        se = (stats.morey_se(clipped) if clipped.shape[0] >= 2 and clipped.shape[1] >= 2
              else pd.Series(np.nan, index=clipped.index))
        first = g.drop_duplicates("ckpt").set_index("ckpt")
        for ckpt in [c for c in first.index if c in mean.index]:
            parts.append({"setting": setting, "recipe": first.at[ckpt, "recipe"], "ckpt": ckpt,
                          "mean_log_odds": float(mean[ckpt]), "se": float(se[ckpt]),
                          "n_datasets": int(block.shape[1]),
                          "imagenet_top1": first.at[ckpt, "imagenet_top1"]})
    return pd.DataFrame(parts, columns=cols)


def settings_studies_frame(results: pd.DataFrame, studies: Mapping[str, Any],
                           settings: Sequence[str] = STUDY_SETTINGS) -> pd.DataFrame:
    """:func:`settings_study_frame` of every study in ``studies`` (name -> study) that has at
    least two of its members in ``results`` (one recipe compares with nothing), stacked; the
    report's ``data/settings_study.csv``."""
    cols = ["study", "setting", "recipe", "ckpt", "dataset", "test_metric", "log_odds",
            "n_train", "imagenet_top1", "source"]
    frames = []
    for study in studies.values():
        frame = settings_study_frame(results, study, settings)
        if frame["ckpt"].nunique() >= 2:
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
