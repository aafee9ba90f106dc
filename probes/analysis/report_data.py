"""The tidy data behind every figure and table of the report, one DataFrame per id.

``featurestore report`` writes each as ``<out>/data/<id>.csv`` beside the HTML, so every number a
page draws can be checked, re-plotted or diffed without the notebooks. Ids follow the paper
(``figure2``, ``figure8``, ``table2``, ``section4_3``, ``settings_study``: every settings study
with members in the store); the page "Choosing a checkpoint" adds
``transfer_scatter``, ``transfer_correlations`` and ``transfer_timing``
(:mod:`probes.transfer.choice`, store only). Every frame has a ``source`` column:

* ``store``: computed from the store's results table. Rows that come from one result carry its
  ``result_id``, ``ckpt``, ``dataset``, ``setting`` and ``n_train`` (the examples the scored
  model was trained on).
  Per-result frames (``figure2``, ``table6``, ...) also say whether the cell is not
  significantly worse than the dataset's best checkpoint (``not_worse_than_best``,
  ``p_vs_best``, ``significance_test``: :func:`probes.analysis.tables.significance_frame`).
* ``paper``: the paper's published numbers (``data/paper``). ``ckpt`` then holds the paper's
  network key (``inception_v4``), ``n_train`` Table 1's train+val size.

Both sources sit side by side (never merged, never swapped): a store holding only some settings
adds its rows to the paper's, exactly as the figures add the store's panels beside the paper's
(:meth:`probes.analysis.tables.ResultTables.panels`). An id whose figure has no data from either
source is still written, with its columns and no rows, so a reader can tell "nothing" from
"missing file". ``table4`` (the previous state of the art) is written when ``data/paper`` holds
``table4.csv``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from featurestore import paperdata
from probes import stats
from probes.analysis import paper
from probes.analysis import tables as T

__all__ = ["CELL_COLUMNS", "cells", "figure_data", "mean_log_odds", "previous_sota",
           "public_vs_retrained", "write_figure_data"]

#: Columns of a per-result (per model x dataset x setting) frame.
CELL_COLUMNS = ["source", "setting", "ckpt", "dataset", "n_train", "metric", "test_metric",
                "imagenet_top1", "paper_model", "result_id"]
#: Per-dataset significance of a store cell against the dataset's best checkpoint
#: (:func:`probes.analysis.tables.significance_frame`); empty for the paper's rows, which come
#: without per-example predictions.
SIGNIFICANCE_COLUMNS = ["best_on_dataset", "not_worse_than_best", "p_vs_best",
                        "significance_test"]


def _paper_metric(dataset: str) -> str:
    rows = {r["dataset"]: r for r in paperdata.read_rows("table1.csv")}
    key = T.paper_dataset_for(dataset)
    return rows[key]["metric"] if key in rows else ""


def cells(rt: T.ResultTables) -> pd.DataFrame:
    """One row per (source, setting, model, dataset) of the main tables (default variant)."""
    frames = []
    top1_paper = rt.top1["paper"]
    for setting, table in T.paper_tables().items():
        long = table.stack().rename("test_metric").reset_index()
        long = long.rename(columns={"model": "ckpt"})
        long["source"], long["setting"] = "paper", setting
        long["n_train"] = [paper.TRAIN_SIZE.get(T.paper_dataset_for(d) or d, np.nan)
                           for d in long["dataset"]]
        long["metric"] = [_paper_metric(d) for d in long["dataset"]]
        long["imagenet_top1"] = long["ckpt"].map(top1_paper)
        long["paper_model"], long["result_id"] = long["ckpt"], None
        frames.append(long)
    results = rt.results
    if not results.empty:
        rows = T._latest(results[results["variant"] == ""]).copy()
        rows["source"] = "store"
        rows["imagenet_top1"] = rows["ckpt"].map(rt.top1["store"])
        rows["paper_model"] = rows["ckpt"].map(lambda c: T.paper_model_for(str(c)))
        for col in CELL_COLUMNS:
            if col not in rows.columns:
                rows[col] = np.nan
        frames.append(rows[CELL_COLUMNS])
    out = pd.concat([f[CELL_COLUMNS] for f in frames], ignore_index=True)
    out["test_metric"] = out["test_metric"].astype(float)
    sig = T.significance_all(rt.store_url, results)
    sig = sig.rename(columns={"best": "best_on_dataset", "test": "significance_test"})
    return out.merge(sig[["result_id", *SIGNIFICANCE_COLUMNS]], on="result_id", how="left")


def mean_log_odds(rt: T.ResultTables, settings: list[str] | None = None) -> pd.DataFrame:
    """Figure 1 / Figure 2 (right): per panel and model, mean log odds over the panel's complete
    block, Morey's standard error and whether it is not significantly below the best."""
    rows = []
    for p in rt.panels(settings):
        t1 = p.top1.dropna()
        block = T.complete_block(p.table.loc[[m for m in p.table.index if m in t1.index]])
        if block.empty:
            continue
        mean = stats.mean_logit(block)
        ok = block.shape[0] >= 2 and block.shape[1] >= 2
        se = stats.morey_se(block) if ok else pd.Series(np.nan, index=block.index)
        green = stats.not_worse_than_best_across_datasets(block) if ok else set()
        for m in block.index:
            rows.append({"source": p.source, "setting": p.setting, "ckpt": m,
                         "imagenet_top1": float(t1[m]), "mean_log_odds": float(mean[m]),
                         "se": float(se[m]), "not_worse_than_best": m in green,
                         "datasets": block.shape[1]})
    return pd.DataFrame(rows, columns=["source", "setting", "ckpt", "imagenet_top1",
                                       "mean_log_odds", "se", "not_worse_than_best", "datasets"])


def previous_sota() -> pd.DataFrame:
    """Table 4's previous state of the art per dataset (``data/paper/table4.csv``), empty when
    the file is not there. Read as printed; the columns are whatever the file declares."""
    try:
        path = paperdata.table_path("table4.csv")
    except FileNotFoundError:
        return pd.DataFrame()
    return pd.read_csv(path, comment="#")


def _with_source(df: pd.DataFrame, source: str) -> pd.DataFrame:
    out = df.copy()
    out.insert(0, "source", source)
    return out


def _figure9(results: pd.DataFrame) -> pd.DataFrame:
    cols = ["source", "result_id", "setting", "ckpt", "dataset", "n_train", "k", "subset_seed",
            "test_metric", "mean", "se", "n_subsets"]
    if results.empty:
        return pd.DataFrame(columns=cols)
    from featurestore.results import schema

    parsed = results["variant"].map(lambda v: schema.Subset.parse(None, str(v)))
    rows = T._latest(results[parsed.notna()]).copy()
    if rows.empty:
        return pd.DataFrame(columns=cols)
    subsets = rows["variant"].map(lambda v: schema.Subset.parse(None, str(v)))
    rows["k"] = subsets.map(lambda s: s.k)
    rows["subset_seed"] = subsets.map(lambda s: s.subset_seed)
    rows["source"] = "store"
    agg = T.data_size_frame(results)[["ckpt", "dataset", "setting", "k", "mean", "se",
                                      "n_subsets"]]
    return rows.merge(agg, on=["ckpt", "dataset", "setting", "k"], how="left")[cols]


def _figure10(cell: pd.DataFrame) -> pd.DataFrame:
    """Logistic regression on the store's (public) checkpoints, and the paper's retrained value
    of the same network and dataset beside each, where the paper has one."""
    store = cell[(cell["source"] == "store") & (cell["setting"] == "logreg")]
    wanted = {(m, d) for m, d in zip(store["paper_model"], store["dataset"], strict=True) if m}
    ref = cell[(cell["source"] == "paper") & (cell["setting"] == "logreg")]
    ref = ref[[(m, d) in wanted for m, d in zip(ref["ckpt"], ref["dataset"], strict=True)]]
    return pd.concat([store, ref], ignore_index=True)


def public_vs_retrained(rt: T.ResultTables, cell: pd.DataFrame) -> pd.DataFrame:
    """Per paper network with a store checkpoint: mean log odds of logistic regression on the
    public checkpoint (store) and on the retrained model (paper) over their common datasets."""
    cols = ["source", "ckpt", "paper_model", "mean_log_odds", "datasets"]
    store = cell[(cell["source"] == "store") & (cell["setting"] == "logreg")
                 & cell["paper_model"].notna()]
    rows = []
    ref = T.paper_tables()["logreg"]
    for (ckpt, model), g in store.groupby(["ckpt", "paper_model"]):
        common = [d for d in g["dataset"] if d in ref.columns and model in ref.index]
        if not common:
            continue
        ours = g.set_index("dataset").loc[common, "test_metric"].clip(1e-6, 1 - 1e-6)
        rows.append({"source": "store", "ckpt": ckpt, "paper_model": model,
                     "mean_log_odds": float(np.mean(stats.logit(ours))), "datasets": len(common)})
        rows.append({"source": "paper", "ckpt": model, "paper_model": model,
                     "mean_log_odds": float(np.mean(stats.logit(ref.loc[model, common]))),
                     "datasets": len(common)})
    return pd.DataFrame(rows, columns=cols)


def _table1(rt: T.ResultTables) -> pd.DataFrame:
    t1 = _with_source(pd.read_csv(paperdata.table_path("table1.csv"), comment="#"), "paper")
    t1["dataset"] = t1["dataset"].map(T.store_dataset_for)
    res = rt.results
    if res.empty:
        return t1
    rows = T._latest(res[res["variant"] == ""])
    n_test = rows["n_test"] if "n_test" in rows.columns else pd.Series(np.nan, rows.index)
    store = (rows.assign(n_test=pd.to_numeric(n_test, errors="coerce"),
                         n_train=pd.to_numeric(rows["n_train"], errors="coerce"))
             .groupby("dataset").agg(train=("n_train", "max"), test=("n_test", "max"),
                                     metric=("metric", "first"))
             .reset_index())
    store.insert(0, "source", "store")
    return pd.concat([t1, store], ignore_index=True)


def _table3(rt: T.ResultTables) -> pd.DataFrame:
    t3 = _with_source(paper.load_table3().reset_index().rename(columns={"model": "ckpt"}),
                      "paper")
    if rt.results.empty:
        return t3
    mapping = T.checkpoint_mapping(rt.results).reset_index()
    mapping.insert(0, "source", "store")
    return pd.concat([t3, mapping], ignore_index=True)


def _cells_of(cell: pd.DataFrame, settings: list[str], sources: tuple[str, ...] = (
        "paper", "store")) -> pd.DataFrame:
    return cell[cell["setting"].isin(settings) & cell["source"].isin(sources)].reset_index(
        drop=True)


def figure_data(store_url: str | None,
                study_file: str | None = None) -> dict[str, pd.DataFrame]:
    """Every figure's and table's tidy data (module docs), keyed by id, for ``store_url``.

    ``settings_study`` holds every settings study with members in the store: the built-in
    ones (timm's ResNet-50 recipes) and those of ``study_file``
    (:func:`featurestore.checkpoints.families.report_studies`)."""
    from featurestore.checkpoints.families import report_studies

    results = T.load_results(store_url)
    rt = T.results_tables(store_url, results)
    cell = cells(rt)
    fisher, fisher_fit = T.size_correlation_frame(rt)
    sota = previous_sota()
    sizes = T.settings_summary  # per source, below
    fig6 = [_with_source(sizes(tabs), src) for src, tabs in rt.by_source().items()]
    curves = T.convergence_frame(results)
    builders: dict[str, Callable[[], pd.DataFrame]] = {
        "table1": lambda: _table1(rt),
        "table2": lambda: T.correlation_by_panel(rt),
        "table3": lambda: _table3(rt),
        "table6": lambda: _cells_of(cell, ["logreg", "finetune", "scratch"]),
        "figure1": lambda: mean_log_odds(rt, ["logreg", "finetune"]),
        "figure2": lambda: cell,
        "figure2_right": lambda: mean_log_odds(rt),
        "figure6": lambda: pd.concat(fig6, ignore_index=True),
        "figure7": lambda: _cells_of(cell, ["finetune", "scratch"]),
        "figure8": lambda: _with_source(T.step_budget_frame(results), "store"),
        "figure8_val_curve": lambda: _with_source(curves, "store"),
        "figure9": lambda: _figure9(results),
        "figure10": lambda: _figure10(cell),
        "figure11": lambda: public_vs_retrained(rt, cell),
        "figure16": lambda: fisher.merge(fisher_fit.rename(columns={"r": "r_size",
                                                                    "p": "p_size"}),
                                         on=["source", "setting"], how="left"),
        "figure17": lambda: cell,
        "figure18": lambda: _cells_of(cell, ["logreg", "svm", "logreg_aug", "finetune"],
                                      ("store",)),
        "section4_3": lambda: T.small_vs_large(rt),
        "settings_study": lambda: T.settings_studies_frame(results, report_studies(study_file)),
    }
    out = {key: build() for key, build in builders.items()}
    # "Choosing a checkpoint": transferability estimates beside measured transfer (imported
    # here: the estimators import torch, which the other frames do not need)
    from probes.transfer.choice import choice_data

    out |= choice_data(store_url).frames()
    if not sota.empty:
        out["table4"] = _with_source(sota, "paper")
    return out


def write_figure_data(store_url: str | None, folder: str,
                      study_file: str | None = None) -> dict[str, str]:
    """Write :func:`figure_data` as ``<folder>/<id>.csv``; returns id -> path."""
    from pathlib import Path

    from featurestore.results import ResultsTable

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for key, frame in figure_data(store_url, study_file).items():
        path = root / f"{key}.csv"
        ResultsTable.to_csv_frame(frame).to_csv(path, index=False)
        written[key] = str(path)
    return written
