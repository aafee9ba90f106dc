"""The paper's Tables 1, 2, 3, 4 and 6 and Appendix D, formatted for the report's pages.

``data/<id>.csv`` (:mod:`probes.analysis.report_data`) holds the tidy rows behind each table;
this module lays the same numbers out the way the paper prints them (percent, one row per model
or dataset) as pandas Stylers, which a notebook renders as HTML. Each :class:`PrintedTable` says
its ``source`` (``paper`` or ``store``) and its caption names where the numbers come from, so a
reader never has to guess whether a row was measured here or transcribed from the paper. The
paper's and the store's versions of a table are separate tables, never merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from featurestore import paperdata
from probes.analysis import paper
from probes.analysis import tables as T

__all__ = ["PrintedTable", "appendix_d", "table1", "table2", "table3", "table4", "table6"]


@dataclass(frozen=True)
class PrintedTable:
    """One rendered table: its report id (``table6``), source, caption and data."""

    id: str
    source: str
    caption: str
    frame: pd.DataFrame
    styler: Any

    def _repr_html_(self) -> str:  # a notebook displaying the object shows the table
        return str(self.styler.to_html())


def _styled(frame: pd.DataFrame, caption: str, formats: dict[str, str] | None = None) -> Any:
    styler = frame.style.format(formats or {}, na_rep="–").set_caption(caption)
    return styler.set_table_styles([{"selector": "caption",
                                     "props": "caption-side: top; text-align: left;"}])


def table1(rt: T.ResultTables) -> list[PrintedTable]:
    """Table 1, the datasets: the paper's (transcribed) and the store's, as its result rows
    record them (training examples, test examples, metric, number of results)."""
    ref = pd.read_csv(paperdata.table_path("table1.csv"), comment="#")
    ref = ref.rename(columns={"name": "Dataset", "classes": "Classes", "train": "Size (train)",
                              "test": "Size (test)", "metric": "Metric"})
    ref = ref.set_index("Dataset")[["Classes", "Size (train)", "Size (test)", "Metric"]]
    cap = "Table 1: datasets (source: paper, data/paper/table1.csv)"
    out = [PrintedTable("table1", "paper", cap, ref,
                        _styled(ref, cap, {"Size (train)": "{:,}", "Size (test)": "{:,}"}))]
    res = rt.results
    if not res.empty:
        rows = T._latest(res[res["variant"] == ""])
        n_test = rows["n_test"] if "n_test" in rows.columns else pd.Series(np.nan, rows.index)
        n_train = rows["n_train"] if "n_train" in rows.columns else pd.Series(np.nan, rows.index)
        store = (rows.assign(n_test=pd.to_numeric(n_test, errors="coerce"),
                             n_train=pd.to_numeric(n_train, errors="coerce"))
                 .groupby("dataset")
                 .agg(train=("n_train", "max"), test=("n_test", "max"),
                      metric=("metric", "first"), results=("ckpt", "size")))
        store = store.loc[T.dataset_order(store.index)]
        store.index = [T.dataset_label(d) for d in store.index]
        store.index.name = "Dataset"
        store.columns = ["Size (train+val)", "Size (test)", "Metric", "Results"]
        cap = ("Table 1: datasets as the store's results saw them (source: store; train+val "
               "is the largest n_train of a default-variant row)")
        out.append(PrintedTable("table1", "store", cap, store,
                                _styled(store, cap, {"Size (train+val)": "{:,.0f}",
                                                     "Size (test)": "{:,.0f}"})))
    return out


def table2(rt: T.ResultTables) -> list[PrintedTable]:
    """Table 2: correlation of logit ImageNet top-1 with mean log odds, per panel (the paper's
    three settings from Table 6, the store's settings beside them)."""
    df = T.correlation_by_panel(rt)
    out = []
    for source, g in df.groupby("source", sort=False):
        frame = g.set_index("label")[["n", "datasets", "r2", "r", "rho", "p", "note"]]
        frame.index.name = "Setting"
        cap = (f"Table 2: correlation between ImageNet top-1 and mean transfer log odds "
               f"(source: {source}; " + ("Table 6 and Table 3's retrained top-1)"
                                         if source == "paper" else "the store's results)"))
        out.append(PrintedTable("table2", str(source), cap, frame, _styled(
            frame, cap, {"n": "{:.0f}", "r2": "{:.2f}", "r": "{:.2f}", "rho": "{:.2f}",
                         "p": "{:.1e}"})))
    return out


def table3(rt: T.ResultTables) -> list[PrintedTable]:
    """Table 3: the paper's 16 networks (top-1 as printed, public, retrained), and the store's
    checkpoints with the paper network each maps to and the top-1 the figures use."""
    ref = paper.load_table3()
    ref = ref.rename(columns={"name": "Model", "parameters_m": "Parameters (M)",
                              "features": "Features", "image_size": "Image size",
                              "top1_paper": "Top-1 (paper)", "top1_public": "Top-1 (public)",
                              "top1_retrained": "Top-1 (retrained)"}).set_index("Model")
    cap = "Table 3: ImageNet networks (source: paper, data/paper/table3.csv)"
    out = [PrintedTable("table3", "paper", cap, ref, _styled(ref, cap))]
    if not rt.results.empty:
        m = T.checkpoint_mapping(rt.results)
        m = m.assign(imagenet_top1=m["imagenet_top1"] * 100.0,
                     paper_model=m["paper_model"].map(
                         lambda k: T.model_label(k) if isinstance(k, str) else None))
        m.columns = ["Paper network", "ImageNet top-1 (%)"]
        cap = ("Table 3: the store's checkpoints (source: store; top-1 from the result row, "
               "the registry, or Table 3's public column)")
        out.append(PrintedTable("table3", "store", cap, m,
                                _styled(m, cap, {"ImageNet top-1 (%)": "{:.1f}"})))
    return out


def table4() -> list[PrintedTable]:
    """Table 4: the previous state of the art beside the paper's best, per dataset."""
    from probes.analysis.report_data import previous_sota

    sota = previous_sota()
    if sota.empty:
        return []
    cols = [c for c in ("printed_name", "sota_acc", "sota_method", "best_acc", "best_model",
                        "best_setting") if c in sota.columns]
    frame = sota[cols].rename(columns={"printed_name": "Dataset", "sota_acc": "Previous SOTA",
                                       "sota_method": "Method", "best_acc": "Paper's best",
                                       "best_model": "Network", "best_setting": "Setting"})
    frame = frame.set_index("Dataset")
    if "Network" in frame.columns:
        frame["Network"] = frame["Network"].map(
            lambda k: T.model_label(k) if isinstance(k, str) else k)
    cap = "Table 4: previous state of the art vs the paper's best (source: paper, table4.csv)"
    return [PrintedTable("table4", "paper", cap, frame, _styled(frame, cap))]


def table6(rt: T.ResultTables, significance: pd.DataFrame | None = None) -> list[PrintedTable]:
    """Table 6 per setting: the paper's (as printed) and the store's, whose cells are green
    where the checkpoint is not significantly worse than the best on that dataset (bold) by
    the paper's test for the metric (:func:`probes.analysis.tables.significance_frame`).
    ``significance``: that frame for every setting, when the caller has it already."""
    out = []
    for setting, table in T.paper_tables().items():
        shown = table.rename(index=T.model_label)
        cap = (f"Table 6: {T.setting_label(setting)} (source: paper, Appendix I; no "
               "per-example predictions, so no significance colouring)")
        out.append(PrintedTable("table6", "paper", cap, table,
                                T.styled_table(shown, None, caption=cap)))
    if rt.store_tables and significance is None:
        significance = T.significance_all(rt.store_url, rt.results)
    for setting, table in rt.store_tables.items():
        sig = (significance[significance["setting"] == setting]
               if significance is not None else None)
        cap = (f"Table 6: {T.setting_label(setting)} (source: store; bold: best per dataset, "
               "green: not significantly worse than it, p > 0.05, by exact McNemar for top-1, "
               "a permutation test for mean per-class accuracy and McNemar on label accuracy "
               "for VOC 2007)")
        out.append(PrintedTable("table6", "store", cap, table,
                                T.styled_table(table, sig, caption=cap)))
    return out


def appendix_d(rt: T.ResultTables) -> list[PrintedTable]:
    """Appendix D / Figure 16 as tables: per panel, each dataset's training-set size, the
    correlation r across models between logit ImageNet top-1 and logit accuracy and its Fisher
    z; and per panel the correlation (r, p) between log size and z (the paper: p = 0.0002 from
    scratch, nothing significant with transfer)."""
    points, fits = T.size_correlation_frame(rt)
    out = []
    for (source, setting), g in points.groupby(["source", "setting"], sort=False):
        fit = fits[(fits["source"] == source) & (fits["setting"] == setting)]
        r, p = (float(fit["r"].iloc[0]), float(fit["p"].iloc[0])) if len(fit) else (np.nan,
                                                                                     np.nan)
        frame = g.sort_values("n_train").assign(dataset=lambda d: d["dataset"].map(
            T.dataset_label)).set_index("dataset")[["n_train", "n_models", "r", "fisher_z"]]
        frame.index.name, frame.columns = "Dataset", ["Train size", "Models", "r", "Fisher z"]
        cap = (f"Appendix D: {T.setting_label(setting)} (source: {source}); log size vs "
               f"Fisher z over {len(frame)} datasets: r = {r:.2f}, p = {p:.2g}")
        out.append(PrintedTable("appendix_d", str(source), cap, frame, _styled(
            frame, cap, {"Train size": "{:,.0f}", "r": "{:.2f}", "Fisher z": "{:.2f}"})))
    return out
