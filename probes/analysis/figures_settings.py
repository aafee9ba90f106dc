"""Figures comparing settings and recipes: Figure 6's bars, setting-vs-setting scatters,
settings studies (Figures 3, 5, 12, 14, 15), t-SNE per checkpoint (Figure 4) and ours vs the
paper."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probes import stats
from probes.analysis.figure_parts import (
    GRAY,
    SETTING_COLORS,
    TEMPLATE,
    _color,
    _diagonal,
    _grid,
    _logit_axis,
    empty_figure,
)
from probes.analysis.names import dataset_label, dataset_order, model_label, setting_label

__all__ = [
    "fig_ours_vs_paper",
    "fig_setting_pairs",
    "fig_setting_scatter_by_dataset",
    "fig_settings_bars",
    "fig_settings_study",
    "fig_tsne",
]


def _sota_values(previous_sota: pd.DataFrame | None) -> pd.Series:
    """Table 4's previous state of the art as fractions by store dataset name: the first
    numeric column named like ``previous``/``sota``; percent values (> 1) are divided by 100."""
    from probes.analysis.tables import store_dataset_for

    if previous_sota is None or previous_sota.empty or "dataset" not in previous_sota.columns:
        return pd.Series(dtype=float)
    names = [c for c in previous_sota.columns
             if any(w in c.lower() for w in ("previous", "sota", "state"))]
    names.sort(key=lambda c: c != "sota_acc")  # data/paper/table4.csv's accuracy column
    for c in names:
        values = pd.to_numeric(previous_sota[c], errors="coerce")
        if values.notna().any():
            values = values / 100.0 if values.max() > 1.0 else values
            return pd.Series(values.to_numpy(), index=previous_sota["dataset"].map(
                store_dataset_for)).dropna()
    return pd.Series(dtype=float)


def fig_settings_bars(summary: pd.DataFrame, tables: Mapping[str, pd.DataFrame],
                      title: str, previous_sota: pd.DataFrame | None = None) -> go.Figure:
    """Figure 6: per dataset, one bar per setting at the mean accuracy across models with its
    standard error (:func:`probes.analysis.tables.settings_summary`), and the individual models as
    points over their bar; with ``previous_sota`` (Table 4, ``data/paper/table4.csv``) a dashed
    marker per dataset at the previous state of the art ("previous state of the art" trace)."""
    meta = {"figure": "fig6", "settings": list(tables)}
    if summary.empty or summary["n"].sum() == 0:
        return empty_figure(title, "no results in any setting", meta)
    datasets = dataset_order(summary["dataset"])
    labels = [dataset_label(d) for d in datasets]
    fig = go.Figure()
    for setting in tables:
        s = summary[summary["setting"] == setting].set_index("dataset").reindex(datasets)
        color = SETTING_COLORS.get(setting, GRAY)
        fig.add_trace(go.Bar(
            x=labels, y=s["mean"], name=setting_label(setting), marker_color=color,
            opacity=0.75, offsetgroup=setting, legendgroup=setting,
            error_y={"type": "data", "array": s["se"].fillna(0).to_numpy(), "visible": True},
            customdata=s["n"].to_numpy(),
            hovertemplate="%{x}<br>mean %{y:.1%} over %{customdata} models<extra></extra>",
        ))
        long = tables[setting].reindex(columns=datasets).stack().rename("acc").reset_index()
        fig.add_trace(go.Scatter(
            x=[dataset_label(d) for d in long["dataset"]], y=long["acc"], mode="markers",
            name=f"{setting_label(setting)}: models", offsetgroup=setting, legendgroup=setting,
            showlegend=False, marker={"color": "black", "size": 4, "opacity": 0.6},
            text=[model_label(m) for m in long["model"]],
            hovertemplate="%{text}<br>%{x}: %{y:.1%}<extra></extra>",
        ))
    sota = _sota_values(previous_sota).reindex(datasets).dropna()
    if not sota.empty:
        fig.add_trace(go.Scatter(
            x=[dataset_label(d) for d in sota.index], y=sota.to_numpy(), mode="markers",
            name="previous state of the art",
            marker={"symbol": "line-ew-open", "size": 36, "color": "black",
                    "line": {"width": 2, "dash": "dash"}},
            hovertemplate="%{x}: previous state of the art %{y:.1%}<extra></extra>",
        ))
    fig.update_layout(title=title, template=TEMPLATE, barmode="group", scattermode="group",
                      height=480, meta=meta,
                      yaxis={"title": "accuracy", "tickformat": ".0%"},
                      xaxis={"tickangle": -30},
                      legend={"orientation": "h", "y": -0.3})
    return fig


def fig_setting_scatter_by_dataset(
    table_x: pd.DataFrame, table_y: pd.DataFrame, setting_x: str, setting_y: str, title: str,
    cols: int = 4,
) -> go.Figure:
    """Figure 7: per dataset, each model's accuracy in ``setting_y`` against ``setting_x``
    (logit axes, dashed y = x), coloured by model. Points above the line favour ``setting_y``."""
    a, b = table_x.align(table_y, join="inner")
    datasets = [d for d in a.columns if (a[d].notna() & b[d].notna()).any()]
    meta = {"figure": "fig7", "x": setting_x, "y": setting_y, "datasets": datasets}
    if not datasets:
        return empty_figure(title, f"no model has both {setting_label(setting_x)} and "
                            f"{setting_label(setting_y)} results on a common dataset", meta)
    rows, ncols = _grid(len(datasets), cols)
    fig = make_subplots(rows=rows, cols=ncols, subplot_titles=[dataset_label(d) for d in datasets],
                        horizontal_spacing=0.06, vertical_spacing=0.12 if rows > 1 else 0.2)
    colors = {m: _color(i) for i, m in enumerate(a.index)}
    shown: set[str] = set()
    for i, d in enumerate(datasets):
        r, c = i // ncols + 1, i % ncols + 1
        ok = a[d].notna() & b[d].notna()
        xs, ys = a.loc[ok, d], b.loc[ok, d]
        both = pd.concat([xs, ys])
        lo, hi = float(stats.logit(both.min())), float(stats.logit(both.max()))
        pad = 0.1 * max(hi - lo, 0.2)
        fig.add_trace(_diagonal(lo - pad, hi + pad, i == 0), row=r, col=c)
        for m in xs.index:
            fig.add_trace(go.Scatter(
                x=[float(stats.logit(xs[m]))], y=[float(stats.logit(ys[m]))], mode="markers",
                marker={"color": colors[m], "size": 8}, name=model_label(m), legendgroup=m,
                showlegend=m not in shown, customdata=[[xs[m], ys[m]]],
                hovertemplate=(f"{model_label(m)}<br>{setting_label(setting_x)} "
                               "%{customdata[0]:.1%}<br>"
                               f"{setting_label(setting_y)} %{{customdata[1]:.1%}}<extra></extra>"),
            ), row=r, col=c)
            shown.add(m)
        _logit_axis(fig, "x", both, row=r, col=c)
        _logit_axis(fig, "y", both, row=r, col=c)
    fig.update_xaxes(title_text=setting_label(setting_x, short=True), row=rows)
    fig.update_yaxes(title_text=setting_label(setting_y, short=True), col=1)
    fig.update_layout(title=title, template=TEMPLATE, height=260 * rows + 140, meta=meta)
    return fig


def fig_setting_pairs(tables: Mapping[str, pd.DataFrame], pairs: Sequence[tuple[str, str]],
                      title: str) -> go.Figure:
    """Figure 17: one panel per pair of settings (x, y), every (model, dataset) cell both have
    as a point on logit axes, coloured by dataset, with y = x dashed."""
    usable = [(p, q) for p, q in pairs if p in tables and q in tables]
    meta = {"figure": "fig17", "pairs": [list(u) for u in usable]}
    if not usable:
        return empty_figure(title, "fewer than two settings have results", meta)
    rows, ncols = _grid(len(usable), 3)
    fig = make_subplots(rows=rows, cols=ncols, horizontal_spacing=0.08,
                        vertical_spacing=0.15 if rows > 1 else 0.2,
                        subplot_titles=[f"{setting_label(q, short=True)} vs "
                                        f"{setting_label(p, short=True)}" for p, q in usable])
    datasets: list[str] = []
    for pair in usable:
        for setting in pair:
            datasets += [d for d in tables[setting].columns if d not in datasets]
    colors = {d: _color(i) for i, d in enumerate(datasets)}
    shown: set[str] = set()
    for i, (p, q) in enumerate(usable):
        r, c = i // ncols + 1, i % ncols + 1
        a, b = tables[p].align(tables[q], join="inner")
        cells = pd.DataFrame({"x": a.stack(), "y": b.stack()}).dropna().reset_index()
        if cells.empty:
            continue
        both = pd.concat([cells["x"], cells["y"]])
        lo, hi = float(stats.logit(both.min())), float(stats.logit(both.max()))
        fig.add_trace(_diagonal(lo, hi, i == 0), row=r, col=c)
        for d, g in cells.groupby("dataset", sort=False):
            fig.add_trace(go.Scatter(
                x=stats.logit(g["x"]).to_numpy(), y=stats.logit(g["y"]).to_numpy(),
                mode="markers", marker={"color": colors[d], "size": 6}, name=dataset_label(d),
                legendgroup=d, showlegend=d not in shown,
                text=[model_label(m) for m in g["model"]],
                customdata=np.column_stack([g["x"], g["y"]]),
                hovertemplate=(f"%{{text}} on {dataset_label(d)}<br>{setting_label(p)} "
                               "%{customdata[0]:.1%}<br>"
                               f"{setting_label(q)} %{{customdata[1]:.1%}}<extra></extra>"),
            ), row=r, col=c)
            shown.add(d)
        _logit_axis(fig, "x", both, title=setting_label(p, short=True), row=r, col=c)
        _logit_axis(fig, "y", both, title=setting_label(q, short=True), row=r, col=c)
    fig.update_layout(title=title, template=TEMPLATE, height=380 * rows + 100, meta=meta)
    return fig


def fig_tsne(frames: Mapping[str, pd.DataFrame], title: str, cols: int = 2) -> go.Figure:
    """Figure 4: one t-SNE panel per checkpoint (:func:`probes.analysis.tables.tsne_frame`), points
    coloured by class, the same class -> colour mapping in every panel."""
    meta = {"figure": "fig4", "ckpts": list(frames)}
    if not frames:
        return empty_figure(title, "no features in the store", meta)
    rows, ncols = _grid(len(frames), cols)
    fig = make_subplots(rows=rows, cols=ncols, subplot_titles=list(frames),
                        horizontal_spacing=0.05, vertical_spacing=0.1 if rows > 1 else 0.2)
    names = sorted({(int(lab), n) for f in frames.values() for lab, n in
                    zip(f["label"], f["class_name"], strict=True)})
    colors = {lab: _color(i) for i, (lab, _) in enumerate(names)}
    shown: set[int] = set()
    for i, (ckpt, f) in enumerate(frames.items()):
        r, c = i // ncols + 1, i % ncols + 1
        for lab, g in f.groupby("label", sort=True):
            fig.add_trace(go.Scatter(
                x=g["x"], y=g["y"], mode="markers", name=str(g["class_name"].iloc[0]),
                legendgroup=str(lab), showlegend=int(lab) not in shown,
                marker={"color": colors[int(lab)], "size": 5},
                hovertemplate=f"{g['class_name'].iloc[0]}<extra>{ckpt}</extra>",
            ), row=r, col=c)
            shown.add(int(lab))
        fig.update_xaxes(showticklabels=False, row=r, col=c)
        fig.update_yaxes(showticklabels=False, row=r, col=c)
    fig.update_layout(title=title, template=TEMPLATE, height=420 * rows + 80, meta=meta)
    return fig


def fig_ours_vs_paper(frame: pd.DataFrame, title: str) -> go.Figure:
    """Store results against the paper's Table 6 number for the same network, dataset and
    setting (:func:`probes.analysis.tables.ours_vs_paper`), logit axes, coloured by setting, y = x
    dashed. Rows without a paper counterpart are not drawn (the table lists them)."""
    meta = {"figure": "ours_vs_paper"}
    both = frame.dropna(subset=["paper"]) if not frame.empty else frame
    both = both[both["ours"].between(0, 1, inclusive="neither")] if not both.empty else both
    if both.empty:
        why = ("the store has no results" if frame.empty else
               "no store result is for one of the paper's 16 networks on one of its 12 datasets "
               "in one of its 3 settings")
        return empty_figure(title, why, meta)
    values = pd.concat([both["ours"], both["paper"]])
    lo, hi = float(stats.logit(values.min())), float(stats.logit(values.max()))
    pad = 0.1 * max(hi - lo, 0.2)
    fig = go.Figure(_diagonal(lo - pad, hi + pad, True))
    for setting, g in both.groupby("setting", sort=False):
        fig.add_trace(go.Scatter(
            x=stats.logit(g["paper"]).to_numpy(), y=stats.logit(g["ours"]).to_numpy(),
            mode="markers", name=setting_label(str(setting)),
            marker={"color": SETTING_COLORS.get(str(setting), GRAY), "size": 9},
            text=[f"{c} ({model_label(m)}) on {dataset_label(d)}"
                  for c, m, d in zip(g["ckpt"], g["paper_model"], g["dataset"], strict=True)],
            customdata=np.column_stack([g["paper"], g["ours"]]),
            hovertemplate=("%{text}<br>paper %{customdata[0]:.1%}<br>ours %{customdata[1]:.1%}"
                           "<extra></extra>"),
        ))
    _logit_axis(fig, "x", values, title="paper (Table 6)")
    _logit_axis(fig, "y", values, title="ours (store)")
    # equal scales, so distance from the diagonal reads the same along both axes
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    fig.update_layout(title=title, template=TEMPLATE, height=560, meta=meta)
    return fig


def fig_settings_study(frame: pd.DataFrame, summary: pd.DataFrame, title: str) -> go.Figure:
    """A settings study (Figures 3 / 5 generalised): one panel per setting (logistic regression,
    fine-tuning), recipes along x, each dataset's log odds as a point and the mean log odds
    over the shared datasets as a black diamond with Morey standard errors
    (:func:`probes.analysis.tables.settings_study_summary`); an inset per panel shows each
    recipe's ImageNet top-1 (recipes without a known value are left out of it).

    ``frame`` is :func:`probes.analysis.tables.settings_study_frame`'s output.
    """
    meta: dict[str, Any] = {"figure": "settings_study"}
    if frame.empty:
        return empty_figure(title, "no results in the store for this study's checkpoints "
                            "(extract and probe/fine-tune its members first)", meta)
    settings = [s for s in ("logreg", "finetune") if s in set(frame["setting"])] + sorted(
        set(frame["setting"]) - {"logreg", "finetune"})
    meta.update(study=str(frame["study"].iloc[0]), settings=settings)
    recipes = list(dict.fromkeys(frame["recipe"]))
    fig = make_subplots(rows=1, cols=len(settings), horizontal_spacing=0.1,
                        subplot_titles=[setting_label(s) for s in settings],
                        insets=[{"cell": (1, i + 1), "l": 0.62, "b": 0.68, "w": 0.36, "h": 0.3}
                                for i in range(len(settings))])
    datasets = dataset_order(frame["dataset"])
    n_axes = len(settings)
    for i, setting in enumerate(settings, start=1):
        g = frame[frame["setting"] == setting]
        for j, d in enumerate(datasets):
            gd = g[g["dataset"] == d]
            if gd.empty:
                continue
            fig.add_trace(go.Scatter(
                x=gd["recipe"], y=gd["log_odds"], mode="markers", name=dataset_label(d),
                legendgroup=d, showlegend=i == 1, marker={"color": _color(j), "size": 8},
                customdata=np.stack([gd["test_metric"], gd["ckpt"]], axis=1),
                hovertemplate=("%{x}: %{customdata[0]:.1%} (%{customdata[1]})<extra>"
                               + dataset_label(d) + "</extra>")), row=1, col=i)
        s = summary[summary["setting"] == setting]
        if not s.empty:
            fig.add_trace(go.Scatter(
                x=s["recipe"], y=s["mean_log_odds"], mode="markers", name="mean log odds",
                legendgroup="mean", showlegend=i == 1,
                marker={"color": "black", "symbol": "diamond", "size": 11},
                error_y={"type": "data", "array": s["se"].fillna(0).to_numpy()}),
                row=1, col=i)
        top = g.drop_duplicates("ckpt").dropna(subset=["imagenet_top1"])
        if not top.empty:
            k = n_axes + i  # the inset's axes follow the panels' axes
            fig.add_trace(go.Bar(
                x=top["recipe"], y=top["imagenet_top1"].astype(float), name="ImageNet top-1",
                legendgroup="top1", showlegend=i == 1, marker={"color": GRAY},
                xaxis=f"x{k}", yaxis=f"y{k}",
                hovertemplate="%{x}: ImageNet top-1 %{y:.1%}<extra></extra>"))
            lo = float(top["imagenet_top1"].min())
            fig.layout[f"yaxis{k}"].update(tickformat=".0%", range=[max(0.0, lo - 0.05),
                                           float(top["imagenet_top1"].max()) + 0.01],
                                           title={"text": "ImageNet", "font": {"size": 9}})
            fig.layout[f"xaxis{k}"].update(showticklabels=False,
                                           categoryorder="array", categoryarray=recipes)
        fig.update_xaxes(categoryorder="array", categoryarray=recipes, row=1, col=i)
    fig.update_yaxes(title_text="log odds (per dataset) / mean", col=1)
    fig.update_layout(title=title, template=TEMPLATE, height=460, meta=meta,
                      legend={"orientation": "h", "y": -0.25})
    return fig
