"""Figures of transfer accuracy against ImageNet accuracy: Figures 1-2 (per dataset and mean
log odds), Figure 16 (correlation against training-set size) and public vs retrained
checkpoints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probes import stats
from probes.analysis.figure_parts import (
    BLUE,
    GRAY,
    SETTING_COLORS,
    TEMPLATE,
    _band_traces,
    _diagonal,
    _grid,
    _logit_axis,
    _point_traces,
    empty_figure,
)
from probes.analysis.names import dataset_label, model_label, setting_label
from probes.analysis.wide import complete_block

__all__ = [
    "fig_mean_log_odds",
    "fig_public_vs_retrained",
    "fig_size_correlation",
    "fig_transfer_vs_imagenet",
]


def fig_transfer_vs_imagenet(
    table: pd.DataFrame,
    imagenet_top1: pd.Series,
    title: str,
    green: Mapping[str, set[str]] | None = None,
    n_boot: int = 10_000,
    seed: int = 0,
    cols: int = 4,
) -> go.Figure:
    """Figure 2, left: per dataset, transfer accuracy against ImageNet top-1 (both logit axes)
    with the OLS line and its 95% bootstrap band (:func:`probes.stats.bootstrap_band`).

    ``green`` maps a dataset to the models not significantly worse than the best on it (from
    per-example predictions, :func:`probes.analysis.tables.green_per_dataset`); datasets not in it
    get uncoloured (blue) points, since no test was possible. Models without a top-1 are left out.
    """
    top1 = imagenet_top1.dropna()
    table = table.loc[[m for m in table.index if m in top1.index]]
    datasets = [d for d in table.columns if table[d].notna().any()]
    meta = {"figure": "fig2_left", "datasets": datasets}
    if not datasets:
        return empty_figure(title, "no model with both an ImageNet top-1 and a result", meta)
    rows, ncols = _grid(len(datasets), cols)
    fig = make_subplots(rows=rows, cols=ncols, subplot_titles=[dataset_label(d) for d in datasets],
                        horizontal_spacing=0.06, vertical_spacing=0.12 if rows > 1 else 0.2)
    legend_done: set[str] = set()
    for i, d in enumerate(datasets):
        r, c = i // ncols + 1, i % ncols + 1
        col = table[d].dropna()
        x = pd.Series(stats.logit(top1.loc[col.index].astype(float)), index=col.index)
        y_extent = [col.to_numpy()]  # ticks must cover the band too, not just the points
        if len(col) >= 3 and x.nunique() > 1:
            band = stats.bootstrap_band(top1, col.to_frame(), n=n_boot, seed=seed)
            y_extent.append(stats.inv_logit(band[["lo", "hi"]].to_numpy().ravel()))
            for t in _band_traces(band["x"].to_numpy(), band["lo"].to_numpy(),
                                  band["hi"].to_numpy(), band["fit"].to_numpy(),
                                  "fit" not in legend_done):
                fig.add_trace(t, row=r, col=c)
            legend_done.add("fit")
        g = None if green is None or d not in green else green[d]
        for t in _point_traces(x, col, g, True, False):
            t.showlegend = t.name not in legend_done
            legend_done.add(str(t.name))
            fig.add_trace(t, row=r, col=c)
        _logit_axis(fig, "x", top1.loc[col.index], row=r, col=c)
        _logit_axis(fig, "y", np.concatenate(y_extent), row=r, col=c)
    fig.update_layout(title=title, template=TEMPLATE, height=260 * rows + 120, meta=meta,
                      legend={"orientation": "h", "y": -0.08})
    fig.update_xaxes(title_text="ImageNet top-1", row=rows)
    fig.update_yaxes(title_text="transfer accuracy", col=1)
    return fig


def fig_mean_log_odds(
    panels: Sequence[tuple[str, pd.DataFrame, pd.Series]],
    title: str,
    n_boot: int = 10_000,
    seed: int = 0,
) -> go.Figure:
    """Figure 1 / Figure 2, right: per panel (title, complete table, top-1), mean log odds
    across datasets against logit ImageNet top-1, with Morey-corrected standard errors, the
    regression line and bootstrap band, and green for the models whose mean log odds is not
    significantly below the best (paired t-test across datasets,
    :func:`probes.stats.not_worse_than_best_across_datasets`).

    Each table is cut to the complete block (:func:`probes.analysis.tables.complete_block`) of the
    models that have a top-1, since means over different datasets are not comparable. Error bars
    need 2 models and 2 datasets, the green test 2 datasets, the line 3 models; each is left out
    when impossible.
    """
    usable = []
    for name, table, top1 in panels:
        t1 = top1.dropna()
        block = complete_block(table.loc[[m for m in table.index if m in t1.index]])
        if not block.empty:
            usable.append((name, block, t1))
    meta = {"figure": "fig2_right", "panels": [u[0] for u in usable]}
    if not usable:
        return empty_figure(title, "no complete model x dataset block with ImageNet top-1", meta)
    fig = make_subplots(rows=1, cols=len(usable), subplot_titles=[u[0] for u in usable],
                        horizontal_spacing=0.08)
    legend_done: set[str] = set()
    for i, (_, block, t1) in enumerate(usable, start=1):
        y = stats.mean_logit(block)
        x = pd.Series(stats.logit(t1.loc[block.index].astype(float)), index=block.index)
        se = stats.morey_se(block) if block.shape[0] >= 2 and block.shape[1] >= 2 else None
        green = (stats.not_worse_than_best_across_datasets(block)
                 if block.shape[1] >= 2 and block.shape[0] >= 2 else None)
        if block.shape[0] >= 3 and x.nunique() > 1:
            band = stats.bootstrap_band(t1, block, n=n_boot, seed=seed)
            for t in _band_traces(band["x"].to_numpy(), band["lo"].to_numpy(),
                                  band["hi"].to_numpy(), band["fit"].to_numpy(),
                                  "fit" not in legend_done):
                fig.add_trace(t, row=1, col=i)
            legend_done.add("fit")
        for t in _point_traces(x, y, green, False, False, error=se):
            t.showlegend = t.name not in legend_done
            legend_done.add(str(t.name))
            fig.add_trace(t, row=1, col=i)
        _logit_axis(fig, "x", t1.loc[block.index], title="ImageNet top-1", row=1, col=i)
    fig.update_yaxes(title_text="average log odds (across datasets)", col=1)
    fig.update_layout(title=title, template=TEMPLATE, height=420, meta=meta,
                      legend={"orientation": "h", "y": -0.2})
    return fig


def fig_size_correlation(frame: pd.DataFrame, fit: pd.DataFrame, title: str) -> go.Figure:
    """Figure 16: per dataset, Fisher z of the correlation between ImageNet top-1 and transfer
    accuracy (:func:`probes.analysis.tables.size_correlation_frame`) against training-set size
    (log x), one panel per (setting, source); r and p of log size vs z in each panel's title."""
    meta: dict[str, Any] = {"figure": "fig16"}
    if frame.empty:
        return empty_figure(title, "no setting with 3 models on a dataset", meta)
    keys = list(dict.fromkeys(zip(frame["source"], frame["setting"], strict=True)))
    meta["panels"] = [list(k) for k in keys]
    titles = []
    for source, setting in keys:
        f = fit[(fit["source"] == source) & (fit["setting"] == setting)]
        note = ""
        if not f.empty and np.isfinite(f["r"].iloc[0]):
            note = f"<br>r = {f['r'].iloc[0]:.2f}, p = {f['p'].iloc[0]:.2g}"
        titles.append(f"{setting_label(setting, short=True)} ({source}){note}")
    rows, ncols = _grid(len(keys), 3)
    fig = make_subplots(rows=rows, cols=ncols, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=0.18 if rows > 1 else 0.2)
    for i, (source, setting) in enumerate(keys):
        r, c = i // ncols + 1, i % ncols + 1
        g = frame[(frame["source"] == source) & (frame["setting"] == setting)]
        fig.add_trace(go.Scatter(
            x=g["n_train"], y=g["fisher_z"], mode="markers+text", name="datasets",
            showlegend=i == 0, text=[dataset_label(d) for d in g["dataset"]],
            textposition="top center", marker={"color": SETTING_COLORS.get(setting, GRAY)},
            customdata=g["r"], hovertemplate="%{text}: r = %{customdata:.2f}<extra></extra>",
        ), row=r, col=c)
        fig.update_xaxes(type="log", row=r, col=c)
    fig.update_xaxes(title_text="training-set size", row=rows)
    fig.update_yaxes(title_text="Fisher z of r(ImageNet, transfer)", col=1)
    fig.update_layout(title=title, template=TEMPLATE, height=360 * rows + 120, meta=meta)
    return fig


def fig_public_vs_retrained(frame: pd.DataFrame, title: str) -> go.Figure:
    """Figure 11: per paper network, mean log odds of logistic regression on the store's public
    checkpoint (y) against the paper's retrained model (x) over the same datasets
    (:func:`probes.analysis.report_data.public_vs_retrained`); y = x dashed."""
    meta: dict[str, Any] = {"figure": "fig11"}
    if frame.empty:
        return empty_figure(title, "no store checkpoint of one of the paper's networks", meta)
    wide = frame.pivot_table(index="paper_model", columns="source", values="mean_log_odds")
    wide = wide.dropna()
    ckpts = frame[frame["source"] == "store"].groupby("paper_model")["ckpt"].first()
    values = pd.concat([wide["paper"], wide["store"]])
    lo, hi = float(values.min()), float(values.max())
    pad = 0.1 * max(hi - lo, 0.2)
    fig = go.Figure(_diagonal(lo - pad, hi + pad, True))
    fig.add_trace(go.Scatter(
        x=wide["paper"], y=wide["store"], mode="markers+text", name="networks",
        text=[model_label(m) for m in wide.index], textposition="top center",
        customdata=[ckpts.get(m, m) for m in wide.index],
        hovertemplate="%{text} (%{customdata})<br>retrained %{x:.3f}<br>public %{y:.3f}"
                      "<extra></extra>",
        marker={"color": BLUE, "size": 9},
    ))
    fig.update_layout(title=title, template=TEMPLATE, height=520, meta=meta,
                      xaxis={"title": "retrained (paper): mean log odds"},
                      yaxis={"title": "public checkpoint (store): mean log odds"})
    return fig
