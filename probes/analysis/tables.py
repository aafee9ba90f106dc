"""Results as the paper's tables: the store's results (or the paper's) as model x dataset frames.

The notebooks and :mod:`probes.analysis.figures` never read the results table directly; they go
through this module, which does the bookkeeping a figure should not have to think about:

* **Wide tables.** :func:`wide_tables` turns result rows into one model x dataset DataFrame of
  test metrics per setting (``logreg``, ``svm``, ``logreg_aug``, ``finetune``, ``scratch``), the
  layout :mod:`probes.stats` takes. Re-runs of a (ckpt, dataset, setting, variant) keep the most
  recent row, and only the default variant ``""`` enters the tables (data-size subsets are
  :func:`data_size_frame`'s business).
* **Fallback to the paper.** :func:`results_tables` takes each of the paper's three settings from
  the store when the store has any row for it, and otherwise from the paper's Table 6, so every
  figure renders on a fresh machine. ``ResultTables.source`` says which, setting by setting; two
  settings are only ever compared within one source (:meth:`ResultTables.comparable`), because a
  store checkpoint and a paper model are different networks even when they share a name.
* **Names.** Store datasets use short names (``cars``, ``aircraft``, ``pets``); the paper uses
  ``stanford_cars``, ``fgvc_aircraft``, ``oxford_pets``. Tables here always use the *store*
  names, so a store table and a paper table line up column for column. Store checkpoints map to
  the paper's models through the checkpoint registry's ``extra["paper_model"]`` (the ``paper16``
  preset), else by name (``inception_v4`` or a timm tag like ``inception_v4.tf_in1k``).
* **Exact 0 / 1.** A store result can be a perfect (or zero) score on a small test set, which has
  infinite log odds. Such values are moved half an example inside (``0.5 / n_test``, the usual
  continuity correction) so the logit statistics stay finite; no paper value is affected.

ImageNet top-1 comes from the result row (``imagenet_top1``), else from the checkpoint registry,
else, for checkpoints that map to a paper model, from Table 3's *public* checkpoint column (a
store checkpoint is a public checkpoint, not the authors' retrained model). Paper tables use
Table 3's *retrained* column, the x-axis of all of the paper's main results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from featurestore.results import schema
from probes import stats
from probes.analysis import paper

__all__ = [
    "PAPER_SETTINGS",
    "SETTINGS",
    "SETTING_LABELS",
    "STORE_DATASETS",
    "Panel",
    "ResultTables",
    "complete_block",
    "convergence_frame",
    "convergence_speedup",
    "convergence_summary",
    "correlation_by_panel",
    "correlation_table",
    "data_size_frame",
    "dataset_label",
    "dataset_order",
    "green_per_dataset",
    "significance_all",
    "significance_frame",
    "styled_table",
    "settings_studies_frame",
    "settings_study_frame",
    "study_tsne",
    "settings_study_summary",
    "imagenet_top1_for_store",
    "load_results",
    "model_label",
    "ours_vs_paper",
    "paper_dataset_for",
    "paper_model_for",
    "paper_tables",
    "parse_variant",
    "results_tables",
    "setting_comparison",
    "panel_n_train",
    "setting_label",
    "size_correlation_frame",
    "small_vs_large",
    "settings_summary",
    "store_dataset_for",
    "step_budget_frame",
    "store_entries",
    "tsne_frame",
    "tsne_panels",
    "checkpoint_mapping",
    "wide_tables",
]

#: Settings of the results table, in display order (see :mod:`featurestore.results`).
SETTINGS: tuple[str, ...] = ("logreg", "svm", "logreg_aug", "finetune", "scratch")

#: Store setting -> the paper's Table 6 setting (the paper prints no table for SVM / augmentation).
PAPER_SETTINGS: dict[str, str] = {
    "logreg": "logistic_regression",
    "finetune": "fine_tuned",
    "scratch": "from_scratch",
}

SETTING_LABELS: dict[str, str] = {
    "logreg": "Logistic regression",
    "svm": "SVM",
    "logreg_aug": "Logistic regression + augmentation",
    "finetune": "Fine-tuned",
    "scratch": "Trained from random initialization",
}

#: Store dataset name -> the paper's dataset key (:data:`probes.analysis.paper.DATASETS`).
STORE_DATASETS: dict[str, str] = {
    "food101": "food101",
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "birdsnap": "birdsnap",
    "sun397": "sun397",
    "cars": "stanford_cars",
    "aircraft": "fgvc_aircraft",
    "voc2007": "voc2007",
    "dtd": "dtd",
    "pets": "oxford_pets",
    "caltech101": "caltech101",
    "flowers102": "flowers102",
}
_PAPER_TO_STORE = {v: k for k, v in STORE_DATASETS.items()}

_RESULT_COLUMNS = ["result_id", "created", "ckpt", "dataset", "setting", "variant", "metric",
                   "test_metric", "n_test", "imagenet_top1"]
#: Smallest clip when a row does not say how many test examples it had.
_DEFAULT_EPS = 1e-4


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------


def paper_dataset_for(dataset: str) -> str | None:
    """The paper's key for a store dataset name (or for a paper key itself), else None."""
    if dataset in STORE_DATASETS:
        return STORE_DATASETS[dataset]
    return dataset if dataset in paper.DATASET_NAMES else None


def store_dataset_for(paper_key: str) -> str:
    """The store's name for one of the paper's dataset keys (unknown keys pass through)."""
    return _PAPER_TO_STORE.get(paper_key, paper_key)


def _checkpoint_registry() -> Mapping[str, Any]:
    """The checkpoint registry (presets included), imported on first use: it loads no torch, but
    plain table transforms need none of it."""
    from featurestore.checkpoints import REGISTRY

    return REGISTRY


def paper_model_for(ckpt: str) -> str | None:
    """The paper model (Table 3 key) a store checkpoint is an instance of, if any.

    Registry entries say so in ``extra["paper_model"]``; otherwise a checkpoint named like a
    paper model (``inception_v4``, or a timm name with a pretrained tag, ``inception_v4.tf_in1k``)
    is that model.
    """
    info = _checkpoint_registry().get(ckpt)
    if info is not None:
        key = (info.extra or {}).get("paper_model")
        if key:
            return str(key)
    for candidate in (ckpt, ckpt.split(".", 1)[0]):
        if candidate in paper.MODEL_NAMES:
            return candidate
    return None


def dataset_label(dataset: str) -> str:
    """Display name: the paper's spelling for the paper's datasets, else the store name."""
    key = paper_dataset_for(dataset)
    return paper.DATASET_NAMES[key] if key else dataset


def model_label(model: str) -> str:
    """Display name: the paper's spelling for a paper model key, else the name itself."""
    return paper.MODEL_NAMES.get(model, model)


#: Setting names short enough for subplot titles, axis labels and legend entries.
SHORT_SETTING_LABELS: dict[str, str] = {
    "logreg": "Logistic regression",
    "svm": "SVM",
    "logreg_aug": "Logistic + augmentation",
    "finetune": "Fine-tuned",
    "scratch": "From scratch",
}


def setting_label(setting: str, short: bool = False) -> str:
    """The paper's name for a setting (``short``: a compact form for panel titles)."""
    labels = SHORT_SETTING_LABELS if short else SETTING_LABELS
    return labels.get(setting, setting)


def dataset_order(datasets: Iterable[str]) -> list[str]:
    """Paper order (Table 1) for the paper's datasets, then the others alphabetically."""
    rank = {store_dataset_for(k): i for i, k in enumerate(paper.DATASETS)}
    return sorted(set(datasets), key=lambda d: (rank.get(d, len(rank)), d))


# --------------------------------------------------------------------------------------------------
# Reading results
# --------------------------------------------------------------------------------------------------


def load_results(store_url: str | None) -> pd.DataFrame:
    """The store's results table as a DataFrame, every row parsed through the results schema
    (:mod:`featurestore.results.schema`); empty (with the standard columns) when ``store_url``
    is None, so the paper's figures render on a fresh machine.

    A URL that names no store raises (:class:`featurestore.errors.StoreLocationError`): a
    mistyped ``--store`` must not quietly turn into a report of the paper's numbers alone. The
    store is opened read-only: rendering a report must never create or modify a store.
    """
    empty = pd.DataFrame(columns=_RESULT_COLUMNS)
    if store_url is None:
        return empty
    from featurestore.store import FeatureStore

    df = FeatureStore(store_url, read_only=True).results.frame()
    if df.empty:
        return empty
    df = df.copy()
    df["variant"] = df.get("variant", pd.Series("", index=df.index)).fillna("").astype(str)
    return df


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


def results_tables(store_url: str | None, results: pd.DataFrame | None = None) -> ResultTables:
    """The store's results as wide tables, each of the paper's settings falling back to Table 6
    when the store has no row for it (see the module docs). ``results``: the store's frame when
    the caller has already loaded it (:func:`load_results`), so it is read once."""
    results = load_results(store_url) if results is None else results
    store = wide_tables(results)
    fallback = paper_tables()
    tables: dict[str, pd.DataFrame] = {}
    source: dict[str, str] = {}
    for setting in SETTINGS:
        if setting in store:
            tables[setting], source[setting] = store[setting], "store"
        elif setting in fallback:
            tables[setting], source[setting] = fallback[setting], "paper"
    for setting in store:  # settings outside SETTINGS, should a job ever write one
        if setting not in tables:
            tables[setting], source[setting] = store[setting], "store"
    top1 = {
        "store": imagenet_top1_for_store(results),
        "paper": paper.imagenet_top1("retrained"),
    }
    return ResultTables(tables, source, top1, results, store_url)


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


# --------------------------------------------------------------------------------------------------
# Table 2 and the settings comparisons (Sections 4.1-4.5)
# --------------------------------------------------------------------------------------------------


def correlation_table(rt: ResultTables, settings: Sequence[str] | None = None) -> pd.DataFrame:
    """Table 2: per setting, r / r^2 / rho / p between logit ImageNet top-1 and mean logit
    transfer accuracy, on the complete block of models with a known top-1.

    Settings with fewer than 3 usable models get NaN statistics and a ``note`` saying why,
    rather than an exception, so the notebook shows every setting.
    """
    rows = []
    for setting in settings or list(rt.tables):
        top1 = rt.top1_for(setting).dropna()
        table = rt.tables[setting]
        block = complete_block(table.loc[[m for m in table.index if m in top1.index]])
        row: dict[str, Any] = {
            "setting": setting,
            "label": setting_label(setting),
            "source": rt.source[setting],
            "datasets": block.shape[1],
        }
        try:
            row.update(stats.transfer_correlation(top1, block))
            row["note"] = ""
        except ValueError as exc:
            row.update(r=np.nan, r2=np.nan, rho=np.nan, p=np.nan, p_rho=np.nan,
                       n=float(block.shape[0]), note=str(exc))
        rows.append(row)
    cols = ["setting", "label", "source", "n", "datasets", "r2", "r", "rho", "p", "p_rho", "note"]
    return pd.DataFrame(rows)[cols].set_index("setting")


def correlation_by_panel(rt: ResultTables) -> pd.DataFrame:
    """Table 2 for every :meth:`ResultTables.panels` entry: the paper's three settings always,
    the store's settings beside them (columns ``setting`` and ``source`` say which)."""
    rows = []
    for p in rt.panels():
        top1 = p.top1.dropna()
        block = complete_block(p.table.loc[[m for m in p.table.index if m in top1.index]])
        row: dict[str, Any] = {"setting": p.setting, "label": setting_label(p.setting),
                               "source": p.source, "datasets": block.shape[1]}
        try:
            row.update(stats.transfer_correlation(top1, block))
            row["note"] = ""
        except ValueError as exc:
            row.update(r=np.nan, r2=np.nan, rho=np.nan, p=np.nan, p_rho=np.nan,
                       n=float(block.shape[0]), note=str(exc))
        rows.append(row)
    cols = ["setting", "label", "source", "n", "datasets", "r2", "r", "rho", "p", "p_rho", "note"]
    return pd.DataFrame(rows, columns=cols)


#: Section 4.3's split: datasets with fewer training examples than this are "small".
SMALL_DATASET = 10_000


def panel_n_train(panel: Panel, results: pd.DataFrame) -> pd.Series:
    """Training-set size per dataset of a panel: Table 1's train+val for the paper, the store
    rows' ``n_train`` (largest over the panel's checkpoints) for the store."""
    if panel.source == "paper":
        return pd.Series({d: float(paper.TRAIN_SIZE.get(paper_dataset_for(d) or d, np.nan))
                          for d in panel.table.columns}, dtype=float)
    if results.empty or "n_train" not in results.columns:
        return pd.Series(np.nan, index=panel.table.columns, dtype=float)
    rows = _latest(results[(results["setting"] == panel.setting) & (results["variant"] == "")])
    sizes = pd.to_numeric(rows["n_train"], errors="coerce").groupby(rows["dataset"]).max()
    return sizes.reindex(panel.table.columns).astype(float)


def size_correlation_frame(rt: ResultTables) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figure 16 / Appendix D: per panel and dataset, Pearson r between logit ImageNet top-1 and
    logit accuracy over the models (3 or more), its Fisher z, and the training-set size; and per
    panel the r and two-sided p between log training-set size and Fisher z over datasets (the
    paper: p = 0.0002 from scratch, nothing significant with transfer)."""
    from scipy import stats as sps

    points, fits = [], []
    for p in rt.panels():
        top1 = p.top1.dropna()
        table = p.table.loc[[m for m in p.table.index if m in top1.index]]
        sizes = panel_n_train(p, rt.results)
        for d in table.columns:
            col = table[d].dropna()
            if len(col) < 3 or top1.loc[col.index].nunique() < 2 or col.nunique() < 2:
                continue
            r = float(stats.per_dataset_correlation(top1.loc[col.index], col.to_frame())[d])
            points.append({"source": p.source, "setting": p.setting, "dataset": d,
                           "n_train": sizes.get(d, np.nan), "n_models": len(col), "r": r,
                           "fisher_z": float(stats.fisher_z(np.clip(r, -0.999999, 0.999999)))})
        mine = [q for q in points if q["source"] == p.source and q["setting"] == p.setting
                and np.isfinite(q["n_train"]) and q["n_train"] > 0]
        fit = {"source": p.source, "setting": p.setting, "datasets": len(mine), "r": np.nan,
               "p": np.nan}
        if len(mine) >= 3 and len({q["n_train"] for q in mine}) > 1:
            res = sps.pearsonr(np.log([q["n_train"] for q in mine]),
                               [q["fisher_z"] for q in mine])
            fit.update(r=float(res.statistic), p=float(res.pvalue))
        fits.append(fit)
    cols = ["source", "setting", "dataset", "n_train", "n_models", "r", "fisher_z"]
    return (pd.DataFrame(points, columns=cols),
            pd.DataFrame(fits, columns=["source", "setting", "datasets", "r", "p"]))


def small_vs_large(rt: ResultTables, threshold: int = SMALL_DATASET) -> pd.DataFrame:
    """Section 4.3: Table 2's correlation computed separately over the datasets with fewer than
    ``threshold`` training examples and over the rest (the paper, from scratch: r = 0.29 over
    its 7 small datasets, 0.86 over the 5 large), for every panel."""
    rows = []
    for p in rt.panels():
        top1 = p.top1.dropna()
        sizes = panel_n_train(p, rt.results)
        table = p.table.loc[[m for m in p.table.index if m in top1.index]]
        for group, keep in (("small", sizes < threshold), ("large", sizes >= threshold)):
            cols = [d for d in table.columns if bool(keep.get(d, False))]
            block = complete_block(table[cols]) if cols else table[cols]
            row: dict[str, Any] = {"source": p.source, "setting": p.setting, "group": group,
                                   "datasets": block.shape[1], "n": block.shape[0],
                                   "r": np.nan, "p": np.nan, "note": ""}
            try:
                res = stats.transfer_correlation(top1, block)
                row.update(r=res["r"], p=res["p"], n=res["n"])
            except (ValueError, KeyError) as exc:
                row["note"] = str(exc) or "no datasets"
            rows.append(row)
    return pd.DataFrame(rows, columns=["source", "setting", "group", "datasets", "n", "r", "p",
                                       "note"])


def settings_summary(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Figure 6's bars: per (setting, dataset), mean accuracy across models, its standard error
    across models (SD / sqrt(n); NaN for one model) and the number of models."""
    rows = []
    for setting, table in tables.items():
        for dataset in table.columns:
            values = table[dataset].dropna().astype(float)
            n = len(values)
            rows.append({
                "setting": setting,
                "dataset": dataset,
                "mean": float(values.mean()) if n else np.nan,
                "se": float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
                "n": n,
            })
    return pd.DataFrame(rows, columns=["setting", "dataset", "mean", "se", "n"])


def setting_comparison(table_a: pd.DataFrame, table_b: pd.DataFrame) -> dict[str, Any]:
    """Sections 4.2 / 4.5: how often setting a beats b over common (model, dataset) cells, and
    the per-dataset Wilcoxon signed-rank test across models (None when fewer than 2 models, or
    when scipy cannot test, e.g. all differences zero)."""
    a, b = table_a.align(table_b, join="inner")
    mask = a.notna() & b.notna()
    wins = int(((a > b) & mask).to_numpy().sum())
    ties = int(((a == b) & mask).to_numpy().sum())
    block_a, block_b = complete_block(a), complete_block(b)
    block_a, block_b = block_a.align(block_b, join="inner")
    wilcoxon: pd.DataFrame | None = None
    if block_a.shape[0] >= 2 and block_a.shape[1] >= 1:
        try:
            wilcoxon = stats.wilcoxon_per_dataset(block_a, block_b)
        except ValueError:
            wilcoxon = None
    return {"pairs": int(mask.to_numpy().sum()), "a_better": wins, "ties": ties,
            "wilcoxon": wilcoxon}


# --------------------------------------------------------------------------------------------------
# Per-example significance per dataset (green points of Figure 2, left)
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Data size (Figure 9) and convergence (Figure 8)
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Ours vs paper (notebook 05) and t-SNE (Figure 4)
# --------------------------------------------------------------------------------------------------


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


def tsne_frame(
    features: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str] | None = None,
    classes: Sequence[int] | None = None,
    n_classes: int = 10,
    seed: int = 0,
    perplexity: float = 30.0,
) -> pd.DataFrame:
    """Figure 4: a 2-D t-SNE (scikit-learn) of ``features`` for ``n_classes`` classes.

    ``classes`` defaults to the ``n_classes`` smallest label ids present, so the same classes
    are shown for every checkpoint of a dataset. Perplexity is capped below a third of the
    number of points (t-SNE needs perplexity < n), which only matters for tiny test splits.
    Returns columns ``x``, ``y``, ``label`` and ``class_name``.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError("t-SNE colouring needs single-label data (got multi-label labels)")
    chosen = np.unique(labels)[:n_classes] if classes is None else np.asarray(list(classes))
    mask = np.isin(labels, chosen)
    x = np.asarray(features, dtype=np.float32)[mask]
    if len(x) < 3:
        raise ValueError(f"t-SNE needs at least 3 points of the chosen classes, got {len(x)}")
    perp = float(min(perplexity, max(1.0, (len(x) - 1) / 3.0)))
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed)
    # One OpenMP thread: at Figure 4's size (~600 points) the parallel Barnes-Hut gradient gains
    # nothing and spin-waits badly on a busy machine (measured on 2 cores: 2.8 s with 1 thread,
    # 12-25 s with 2).
    with threadpool_limits(limits=1, user_api="openmp"):
        emb = tsne.fit_transform(x)
    y = labels[mask]
    names = [label_names[i] if label_names is not None and i < len(label_names) else str(i)
             for i in y]
    return pd.DataFrame({"x": emb[:, 0], "y": emb[:, 1], "label": y, "class_name": names})


def store_entries(store_url: str | None) -> list[Any]:
    """Complete entries of the store (:class:`featurestore.store.EntryInfo`); ``[]`` when there
    is no store at ``store_url`` (a fresh machine), which is not an error for a report."""
    if store_url is None:
        return []
    from featurestore.errors import EntryNotFoundError
    from featurestore.store import FeatureStore

    try:
        return FeatureStore(store_url, read_only=True).entries()
    except (EntryNotFoundError, FileNotFoundError):
        return []


def tsne_panels(
    store_url: str | None,
    dataset: str | None = None,
    ckpts: Sequence[str] | None = None,
    split: str = "test",
    n_classes: int = 10,
    max_panels: int = 4,
    seed: int = 0,
) -> tuple[str | None, dict[str, pd.DataFrame]]:
    """Figure 4's data straight from the store: a :func:`tsne_frame` of ``split`` per checkpoint
    of one dataset, the same classes in every panel.

    ``dataset`` defaults to Oxford 102 Flowers (the paper's choice) when the store has it, else
    the single-label dataset with the most checkpoints; ``ckpts`` defaults to that dataset's
    first ``max_panels`` checkpoints. Returns ``(dataset, {ckpt: frame})``; ``(None, {})`` when
    the store has no usable entry.
    """
    entries = [e for e in store_entries(store_url) if split in e.splits or split == "trainval"]
    single = [e for e in entries if not (e.provenance.get("dataset") or {}).get("multilabel")]
    if not single:
        return None, {}
    by_dataset: dict[str, list[str]] = {}
    for e in single:
        by_dataset.setdefault(e.dataset, []).append(e.ckpt)
    if dataset is None:
        dataset = "flowers102" if "flowers102" in by_dataset else max(
            sorted(by_dataset), key=lambda d: len(by_dataset[d])
        )
    if dataset not in by_dataset:
        return dataset, {}
    chosen = list(ckpts) if ckpts is not None else by_dataset[dataset][:max_panels]
    from featurestore.store import FeatureStore

    store = FeatureStore(str(store_url), read_only=True)
    frames: dict[str, pd.DataFrame] = {}
    classes: np.ndarray | None = None
    for ckpt in chosen:
        x, y = store.load(ckpt, dataset, split)
        if classes is None:
            classes = np.unique(y)[:n_classes]
        names = (store.provenance(ckpt, dataset).get("dataset") or {}).get("label_names")
        frames[ckpt] = tsne_frame(x, y, names, classes=classes, seed=seed)
    return dataset, frames


def checkpoint_mapping(results: pd.DataFrame) -> pd.DataFrame:
    """Each checkpoint in ``results``: the paper model it maps to (if any) and the ImageNet
    top-1 the figures use for it (:func:`imagenet_top1_for_store`)."""
    top1 = imagenet_top1_for_store(results)
    return pd.DataFrame(
        {"paper_model": [paper_model_for(c) for c in top1.index], "imagenet_top1": top1},
        index=pd.Index(top1.index, name="ckpt"),
    )


# --------------------------------------------------------------------------------------------------
# Settings studies (Figures 3, 5, 12, 14, 15 generalised; featurestore.checkpoints.families)
# --------------------------------------------------------------------------------------------------

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


def study_tsne(store_url: str | None, study: Any, split: str = "test", n_classes: int = 10,
               seed: int = 0) -> tuple[str | None, dict[str, pd.DataFrame]]:
    """Figure 4 per recipe of a settings study: :func:`tsne_panels` of the study's members on
    the dataset most of them were extracted on (Oxford 102 Flowers, the paper's choice, when
    it ties), keyed by recipe. ``(None, {})`` when fewer than two members have an entry."""
    single = [e for e in store_entries(store_url) if e.ckpt in set(study.ckpts)
              and split in e.splits
              and not (e.provenance.get("dataset") or {}).get("multilabel")]
    by_dataset: dict[str, list[str]] = {}
    for e in single:
        by_dataset.setdefault(e.dataset, []).append(e.ckpt)
    if not by_dataset:
        return None, {}
    dataset = max(sorted(by_dataset), key=lambda d: (len(by_dataset[d]), d == "flowers102"))
    members = [c for c in study.ckpts if c in by_dataset[dataset]]
    if len(members) < 2:
        return None, {}
    found, frames = tsne_panels(store_url, dataset, members, split=split, n_classes=n_classes,
                                seed=seed)
    return found, {study.recipe_of(c): f for c, f in frames.items()}
