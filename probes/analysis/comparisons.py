"""Table 2 and the settings comparisons (Sections 4.1-4.5) over :class:`ResultTables`.

Correlations between ImageNet top-1 and transfer accuracy per setting and panel, their split by
training-set size (Section 4.3, Figure 16), and setting-vs-setting summaries (Figure 6,
Sections 4.2 / 4.5). Pure transforms: the tables come from :mod:`probes.analysis.wide`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from probes import stats
from probes.analysis import paper
from probes.analysis.names import paper_dataset_for, setting_label
from probes.analysis.wide import Panel, ResultTables, _latest, complete_block

__all__ = [
    "SMALL_DATASET",
    "correlation_by_panel",
    "correlation_table",
    "panel_n_train",
    "setting_comparison",
    "settings_summary",
    "size_correlation_frame",
    "small_vs_large",
]


def correlation_table(rt: ResultTables, settings: Sequence[str] | None = None) -> pd.DataFrame:
    """Table 2: per setting, r / r^2 / rho / p between logit ImageNet top-1 and mean logit
    transfer accuracy, on the complete block of models with a known top-1.

    Settings with fewer than 3 usable models get NaN statistics and a ``note`` saying why,
    rather than an exception, so the notebook shows every setting.
    """
    rows = [_correlation_row(setting, rt.source[setting], rt.top1_for(setting),
                             rt.tables[setting])
            for setting in settings or list(rt.tables)]
    return pd.DataFrame(rows)[_CORRELATION_COLUMNS].set_index("setting")


_CORRELATION_COLUMNS = ["setting", "label", "source", "n", "datasets", "r2", "r", "rho", "p",
                        "p_rho", "note"]


def _correlation_row(setting: str, source: str, top1: pd.Series, table: pd.DataFrame
                     ) -> dict[str, Any]:
    """One row of Table 2: the complete block of ``table``'s models with a known top-1 and
    their correlation; NaN statistics and a ``note`` when there are too few models."""
    top1 = top1.dropna()
    block = complete_block(table.loc[[m for m in table.index if m in top1.index]])
    row: dict[str, Any] = {"setting": setting, "label": setting_label(setting),
                           "source": source, "datasets": block.shape[1]}
    try:
        row.update(stats.transfer_correlation(top1, block))
        row["note"] = ""
    except ValueError as exc:
        row.update(r=np.nan, r2=np.nan, rho=np.nan, p=np.nan, p_rho=np.nan,
                   n=float(block.shape[0]), note=str(exc))
    return row


def correlation_by_panel(rt: ResultTables) -> pd.DataFrame:
    """Table 2 for every :meth:`ResultTables.panels` entry: the paper's three settings always,
    the store's settings beside them (columns ``setting`` and ``source`` say which)."""
    rows = [_correlation_row(p.setting, p.source, p.top1, p.table) for p in rt.panels()]
    return pd.DataFrame(rows, columns=_CORRELATION_COLUMNS)


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
