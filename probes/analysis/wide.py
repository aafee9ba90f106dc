"""Wide tables and panels: result rows as one model x dataset frame of test metrics per setting.

Pure transforms of a results frame (:func:`probes.analysis.store_reads.load_results` reads one
from a store). Re-runs of a (ckpt, dataset, setting, variant) keep the most recent row, and only
the default variant ``""`` enters the tables. Exact 0 / 1 scores are moved half an example
inside (``0.5 / n_test``) so the logit statistics stay finite. :class:`ResultTables` holds each
setting from the store or, as fallback, from the paper's Table 6
(see :mod:`probes.analysis.tables`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from probes import stats
from probes.analysis import paper
from probes.analysis.names import (
    PAPER_SETTINGS,
    SETTINGS,
    _checkpoint_registry,
    dataset_order,
    paper_dataset_for,
    paper_model_for,
    setting_label,
    store_dataset_for,
)

__all__ = [
    "Panel",
    "ResultTables",
    "checkpoint_mapping",
    "complete_block",
    "imagenet_top1_for_store",
    "ours_vs_paper",
    "paper_tables",
    "wide_tables",
]


#: Smallest clip when a row does not say how many test examples it had.
_DEFAULT_EPS = 1e-4


def _latest(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (ckpt, dataset, setting, variant): the most recently created."""
    if results.empty:
        return results
    order = [c for c in ("created", "result_id") if c in results.columns]
    df = results.sort_values(order, kind="stable") if order else results
    return df.drop_duplicates(subset=["ckpt", "dataset", "setting", "variant"], keep="last")


def _clipped_metric(df: pd.DataFrame) -> pd.Series:
    """Test metric moved half an example inside (0, 1) where it sits on 0 or 1 (module docs)."""
    n = pd.to_numeric(df.get("n_test", pd.Series(np.nan, index=df.index)), errors="coerce")
    eps = (0.5 / n).where(n > 0, _DEFAULT_EPS).clip(upper=0.25)
    value = df["test_metric"].astype(float)
    return value.clip(lower=eps, upper=1.0 - eps)


def wide_tables(results: pd.DataFrame, variant: str = "") -> dict[str, pd.DataFrame]:
    """Per setting, a ckpt x dataset table of test metrics (fractions) for one ``variant``.

    Settings without rows are absent. Cells a checkpoint has not been run on are NaN; use
    :func:`complete_block` before statistics that average across datasets.
    """
    if results.empty:
        return {}
    df = _latest(results[results["variant"].fillna("") == variant])
    out: dict[str, pd.DataFrame] = {}
    for setting in [s for s in SETTINGS if s in set(df["setting"])] + sorted(
        set(df["setting"]) - set(SETTINGS)
    ):
        rows = df[df["setting"] == setting]
        table = (
            rows.assign(value=_clipped_metric(rows))
            .pivot(index="ckpt", columns="dataset", values="value")
            .astype(float)
        )
        table = table[dataset_order(table.columns)].sort_index()
        table.index.name, table.columns.name = "model", "dataset"
        out[setting] = table
    return out


def imagenet_top1_for_store(results: pd.DataFrame) -> pd.Series:
    """ImageNet top-1 (fraction) of every checkpoint in ``results``; NaN where unknown.

    Row value first (what the job recorded), then the registry, then Table 3's public-checkpoint
    column for checkpoints that map to a paper model (module docs say why public).
    """
    ckpts = sorted(set(results["ckpt"])) if not results.empty else []
    if not ckpts:  # no registry import (it pulls in torch) when there is nothing to look up
        return pd.Series(dtype=float, name="imagenet_top1")
    public = paper.imagenet_top1("public")
    registry = _checkpoint_registry()
    values: dict[str, float] = {}
    for ckpt in ckpts:
        value = np.nan
        if "imagenet_top1" in results.columns:
            known = pd.to_numeric(
                results.loc[results["ckpt"] == ckpt, "imagenet_top1"], errors="coerce"
            ).dropna()
            if not known.empty:
                value = float(known.iloc[-1])
        if np.isnan(value) and ckpt in registry and registry[ckpt].imagenet_top1 is not None:
            value = float(registry[ckpt].imagenet_top1)
        if np.isnan(value):
            key = paper_model_for(ckpt)
            if key is not None and key in public.index:
                value = float(public[key])
        values[ckpt] = value
    return pd.Series(values, name="imagenet_top1", dtype=float)


def paper_tables() -> dict[str, pd.DataFrame]:
    """Table 6 as store-named tables: settings ``logreg``/``finetune``/``scratch``, columns are
    store dataset names, rows are the paper's model keys (paper order)."""
    out = {}
    for setting, paper_setting in PAPER_SETTINGS.items():
        table = paper.load_table6(paper_setting).rename(columns=store_dataset_for)
        table.index.name, table.columns.name = "model", "dataset"
        out[setting] = table
    return out


@dataclass(frozen=True)
class Panel:
    """One setting's model x dataset table from one source, with the matching ImageNet top-1
    (the paper's retrained models for ``"paper"``, each checkpoint's own for ``"store"``)."""

    setting: str
    source: str
    table: pd.DataFrame
    top1: pd.Series

    @property
    def label(self) -> str:
        return f"{setting_label(self.setting, short=True)} ({self.source})"


@dataclass
class ResultTables:
    """Model x dataset tables per setting, each from the store or (fallback) the paper.

    ``source[setting]`` is ``"store"`` or ``"paper"``; ``top1`` maps each source to its ImageNet
    top-1 Series (indexed like that source's tables; a store checkpoint and a paper model may
    share a name, so the two are never merged); ``results`` is the raw results frame.
    """

    tables: dict[str, pd.DataFrame]
    source: dict[str, str]
    top1: dict[str, pd.Series]
    results: pd.DataFrame = field(repr=False)
    store_url: str | None = None

    @property
    def imagenet_top1(self) -> pd.Series:
        """Top-1 of the store's checkpoints when the store has results, else the paper's."""
        return self.top1["store"] if "store" in self.source.values() else self.top1["paper"]

    @property
    def has_store_results(self) -> bool:
        return "store" in self.source.values()

    def top1_for(self, setting: str) -> pd.Series:
        """ImageNet top-1 matching ``setting``'s table (the store's or the paper's)."""
        return self.top1[self.source[setting]]

    def comparable(self, settings: Sequence[str]) -> tuple[dict[str, pd.DataFrame], str]:
        """Tables for ``settings`` from a single source, for side-by-side comparisons.

        The store when it has at least two of the wanted settings (those it lacks are left
        out), else the paper (settings the paper lacks are left out). Returns (tables, source).
        """
        from_store = [s for s in settings if self.source.get(s) == "store"]
        if len(from_store) >= 2 or (len(from_store) == len(settings) and from_store):
            return {s: self.tables[s] for s in from_store}, "store"
        fallback = paper_tables()
        return {s: fallback[s] for s in settings if s in fallback}, "paper"

    @property
    def store_tables(self) -> dict[str, pd.DataFrame]:
        """The settings the store has results for (its own checkpoints, its own top-1)."""
        return {s: t for s, t in self.tables.items() if self.source[s] == "store"}

    def panels(self, settings: Sequence[str] | None = None) -> list[Panel]:
        """One :class:`Panel` per (source, setting) that has data: the paper's Table 6 for each
        of its three settings, *always*, then the store's for each setting it has results for.

        A figure built from these states its source panel by panel and never swaps one for the
        other: a store holding only some settings adds panels beside the paper's, and the two are
        never merged (their x-axes differ: the paper's retrained top-1 vs each store
        checkpoint's own top-1).
        """
        wanted = list(settings) if settings is not None else list(SETTINGS) + [
            s for s in self.tables if s not in SETTINGS]
        fallback = paper_tables()
        out = [Panel(s, "paper", fallback[s], self.top1["paper"]) for s in wanted
               if s in fallback]
        out += [Panel(s, "store", self.tables[s], self.top1["store"]) for s in wanted
                if self.source.get(s) == "store"]
        return out

    def by_source(self) -> dict[str, dict[str, pd.DataFrame]]:
        """``{"paper": Table 6 tables, "store": the store's tables}`` (``"store"`` only when the
        store has results), for comparisons made within one source."""
        out = {"paper": paper_tables()}
        if self.store_tables:
            out["store"] = self.store_tables
        return out

    def describe(self) -> pd.DataFrame:
        """One row per setting: its source, the size of its table, and the models that have no
        ImageNet top-1 (they drop out of every figure against ImageNet accuracy)."""
        return pd.DataFrame(
            [
                {
                    "setting": s,
                    "label": setting_label(s),
                    "source": self.source[s],
                    "models": t.shape[0],
                    "datasets": t.shape[1],
                    "cells": int(t.notna().to_numpy().sum()),
                    "without_imagenet_top1": ", ".join(
                        str(m) for m in t.index if pd.isna(self.top1_for(s).get(m, np.nan))
                    ),
                }
                for s, t in self.tables.items()
            ]
        ).set_index("setting")


def complete_block(table: pd.DataFrame) -> pd.DataFrame:
    """The largest-looking complete sub-table: greedily drop the model or dataset with the
    highest share of missing cells until none is missing.

    Averages across datasets are only comparable across models over the same datasets
    (:func:`probes.stats.mean_logit` refuses NaN), so a partially filled store table must be cut
    to a complete block first; dropping the emptiest row or column first keeps most cells.
    """
    t = table.copy()
    while not t.empty and t.isna().to_numpy().any():
        rows, cols = t.isna().mean(axis=1), t.isna().mean(axis=0)
        if rows.max() >= cols.max():
            t = t.drop(index=rows.idxmax())
        else:
            t = t.drop(columns=cols.idxmax())
    return t


def checkpoint_mapping(results: pd.DataFrame) -> pd.DataFrame:
    """Each checkpoint in ``results``: the paper model it maps to (if any) and the ImageNet
    top-1 the figures use for it (:func:`imagenet_top1_for_store`)."""
    top1 = imagenet_top1_for_store(results)
    return pd.DataFrame(
        {"paper_model": [paper_model_for(c) for c in top1.index], "imagenet_top1": top1},
        index=pd.Index(top1.index, name="ckpt"),
    )


def ours_vs_paper(results: pd.DataFrame) -> pd.DataFrame:
    """Every latest result row beside the paper's Table 6 number for the same network, dataset
    and setting where the paper has one (``paper`` NaN otherwise).

    ``diff`` is ours - paper in accuracy points (fractions); ``diff_log_odds`` the same in logit
    units, the scale on which the paper compares models.
    """
    cols = ["ckpt", "paper_model", "dataset", "paper_dataset", "setting", "variant", "metric",
            "ours", "paper", "diff", "diff_log_odds"]
    if results.empty:
        return pd.DataFrame(columns=cols)
    tables = {s: paper.load_table6(p) for s, p in PAPER_SETTINGS.items()}
    rows = []
    for r in _latest(results).itertuples():
        model, ds = paper_model_for(str(r.ckpt)), paper_dataset_for(str(r.dataset))
        value = np.nan
        if r.variant == "" and r.setting in tables and model and ds:
            t = tables[r.setting]
            if model in t.index and ds in t.columns:
                value = float(t.loc[model, ds])
        ours = float(r.test_metric)
        rows.append({"ckpt": r.ckpt, "paper_model": model, "dataset": r.dataset,
                     "paper_dataset": ds, "setting": r.setting, "variant": r.variant,
                     "metric": r.metric, "ours": ours, "paper": value})
    df = pd.DataFrame(rows, columns=cols[:-2])
    df["diff"] = df["ours"] - df["paper"]
    inside = df["ours"].between(0, 1, inclusive="neither") & df["paper"].notna()
    df["diff_log_odds"] = np.nan
    df.loc[inside, "diff_log_odds"] = stats.logit(df.loc[inside, "ours"]) - stats.logit(
        df.loc[inside, "paper"]
    )
    return df[cols]
