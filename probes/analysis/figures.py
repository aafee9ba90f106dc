"""Plotly builders for the paper's figures; every number they draw comes from :mod:`probes.stats`
or :mod:`probes.analysis.tables`, so the notebooks only choose what to show.

Conventions:

* **Logit-scaled axes.** Plotly has no logit axis type, so accuracies are plotted at their log
  odds and the ticks are labelled with accuracies (:func:`logit_ticks`); this is what the paper
  means by "axes are logit-scaled". Hover text shows the accuracy itself.
* **Trace names are stable** (``"models"``, ``"not worse than best"``, ``"fit"``,
  ``"bootstrap band"``, ``"y = x"``, ...), and every figure records what it shows in
  ``layout.meta`` (``{"figure": "fig2_left", ...}``), so tests and readers can find a trace
  without depending on colours or order.
* **Nothing raises for thin data.** A table with fewer than 3 models gets points without a
  regression line, and a figure with nothing to draw is :func:`empty_figure` with a title that
  says why; the report must render whatever the store holds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from probes import stats
from probes.analysis.tables import (
    complete_block,
    dataset_label,
    dataset_order,
    model_label,
    setting_label,
)

__all__ = [
    "BLUE",
    "GRAY",
    "GREEN",
    "empty_figure",
    "fig_convergence",
    "fig_data_size",
    "fig_mean_log_odds",
    "fig_ours_vs_paper",
    "fig_public_vs_retrained",
    "fig_setting_pairs",
    "fig_setting_scatter_by_dataset",
    "fig_settings_bars",
    "fig_settings_study",
    "fig_size_correlation",
    "fig_step_budgets",
    "fig_transfer_vs_imagenet",
    "fig_tsne",
    "logit_ticks",
    "show",
]

PLOTLY_MIME = "application/vnd.plotly.v1+json"
TEMPLATE = "plotly_white"
BLUE = "#1f77b4"
GREEN = "#2ca02c"
GRAY = "#7f7f7f"
BAND = "rgba(31, 119, 180, 0.18)"
#: Colours per setting, shared by every figure so a setting looks the same everywhere.
SETTING_COLORS: dict[str, str] = {
    "logreg": "#1f77b4",
    "svm": "#17becf",
    "logreg_aug": "#9467bd",
    "finetune": "#ff7f0e",
    "scratch": "#2ca02c",
}
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
)
#: Candidate tick accuracies for logit axes, dense near 0 and 1 where log odds stretch.
_TICKS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95,
    0.98, 0.99, 0.995, 0.998, 0.999,
)


_PLOTLYJS_SHOWN = False


def show(fig: go.Figure) -> None:
    """Display ``fig`` in a notebook as the plotly MIME bundle, an HTML rendering and a text
    fallback.

    * ``application/vnd.plotly.v1+json`` is what JupyterLab and VS Code draw natively, what the
      tests inspect, and what :mod:`featurestore_app.report` turns into its pages.
    * ``text/html`` (a div drawn by ``Plotly.newPlot``) is what plain
      ``jupyter nbconvert --execute --to html`` shows; the first figure of a kernel carries
      plotly.js inline (no CDN, so the page works offline), later ones reuse it. The report
      regenerates this part without plotly.js, which it ships once per report.

    The bundle is built here rather than through ``fig.show()``: plotly's renderer module
    imports nbformat and with it a jsonschema URI grammar that takes 1.5-3 s to import in every
    kernel, and its default renderer adds a CDN MathJax tag to every figure.
    """
    import json

    from IPython.display import display

    global _PLOTLYJS_SHOWN
    title = (fig.layout.title.text or "figure") if fig.layout.title else "figure"
    spec = json.loads(pio.to_json(fig, validate=False, remove_uids=False))
    html = pio.to_html(spec, include_plotlyjs=not _PLOTLYJS_SHOWN, include_mathjax=False,
                       full_html=False, default_width="100%",
                       default_height=(spec.get("layout") or {}).get("height") or 525,
                       config={"responsive": True, "displaylogo": False}, validate=False)
    _PLOTLYJS_SHOWN = True
    bundle = {PLOTLY_MIME: spec, "text/html": html, "text/plain": f"<plotly figure: {title}>"}
    display(bundle, raw=True)


def _color(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def _pct(p: float) -> str:
    """Accuracy as a compact percent label (0.999 -> '99.9%', 0.5 -> '50%', 0.725 -> '72.5%')."""
    return f"{100.0 * p:.3f}".rstrip("0").rstrip(".") + "%"


def _nice_step(span: float, target: int) -> float:
    """A 1 / 2 / 2.5 / 5 x 10^k step giving about ``target`` intervals over ``span``."""
    raw = span / max(target, 1)
    base = 10.0 ** math.floor(math.log10(raw))
    return base * next((m for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * base >= raw), 10.0)


def logit_ticks(lo: float, hi: float, max_ticks: int = 7) -> tuple[list[float], list[str]]:
    """Tick positions (log odds) and labels (accuracies) for a logit axis spanning the
    accuracies ``lo``..``hi``.

    Over a narrow range (up to 3 units of log odds) evenly spaced round accuracies (72%, 74%,
    ... for the paper's ImageNet range); over a wider one, round values spaced roughly evenly
    in log odds (50%, 80%, 90%, 95%, 99%, ...), since that is how the axis stretches them. At
    most ``max_ticks``, thinned evenly, and at least two.
    """
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    if hi - lo < 1e-9:
        lo, hi = max(lo - 0.005, 1e-4), min(hi + 0.005, 1 - 1e-4)
    if float(stats.logit(hi) - stats.logit(lo)) > 3.0:  # wide: log-odds-spaced candidates
        ticks = [t for t in _TICKS if lo <= t <= hi]
    else:
        step = _nice_step(hi - lo, 5)
        first = math.ceil(lo / step - 1e-9) * step
        count = int((hi - first) / step + 1e-9) + 1
        ticks = [t for t in (round(first + i * step, 10) for i in range(count)) if 0 < t < 1]
    if len(ticks) < 2:
        ticks = [lo, hi]
    if len(ticks) > max_ticks:  # keep the candidates nearest to evenly spaced log odds
        pos = np.asarray(stats.logit(np.asarray(ticks)), dtype=float)
        targets = np.linspace(pos[0], pos[-1], max_ticks)
        keep = np.unique([int(np.argmin(np.abs(pos - t))) for t in targets])
        ticks = [ticks[i] for i in keep]
    return [float(stats.logit(t)) for t in ticks], [_pct(t) for t in ticks]


def _logit_axis(fig: go.Figure, axis: str, accuracies: Any, title: str | None = None,
                row: int | None = None, col: int | None = None) -> None:
    """Label axis ``"x"`` or ``"y"`` of one subplot with accuracy ticks at log-odds positions
    (at most 5 in a subplot of a grid, whose labels would otherwise collide, 7 otherwise)."""
    values = np.asarray(accuracies, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    vals, text = logit_ticks(float(values.min()), float(values.max()),
                             max_ticks=5 if row is not None else 7)
    update = fig.update_xaxes if axis == "x" else fig.update_yaxes
    kwargs: dict[str, Any] = {"tickvals": vals, "ticktext": text}
    if title is not None:
        kwargs["title_text"] = title
    update(row=row, col=col, **kwargs)


def empty_figure(title: str, message: str, meta: Mapping[str, Any] | None = None) -> go.Figure:
    """A figure with no data whose title and centred note say why: the report renders it where
    the store (and the paper) have nothing to show, instead of silently leaving a gap."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper",
                       showarrow=False, font={"size": 14})
    fig.update_layout(title=title, template=TEMPLATE, xaxis={"visible": False},
                      yaxis={"visible": False}, height=320,
                      meta={"empty": True, **dict(meta or {})})
    return fig


def _grid(n: int, cols: int) -> tuple[int, int]:
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def _band_traces(xs: np.ndarray, lo: np.ndarray, hi: np.ndarray, fit: np.ndarray,
                 show_legend: bool, group: str = "fit") -> list[go.Scatter]:
    """The blue regression line and its shaded bootstrap band (Figure 2, left)."""
    return [
        go.Scatter(x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([hi, lo[::-1]]),
                   fill="toself", fillcolor=BAND, line={"width": 0}, hoverinfo="skip",
                   name="bootstrap band", legendgroup=group + "band", showlegend=show_legend),
        go.Scatter(x=xs, y=fit, mode="lines", line={"color": BLUE}, name="fit",
                   legendgroup=group, showlegend=show_legend, hoverinfo="skip"),
    ]


def _point_traces(x: pd.Series, y: pd.Series, green: set[str] | None, y_is_accuracy: bool,
                  show_legend: bool, error: pd.Series | None = None) -> list[go.Scatter]:
    """Model points in log odds, split into green (not significantly worse than the best) and
    gray; with ``green=None`` all points are blue (no test was possible)."""
    groups: list[tuple[str, list[str], str]]
    models = list(x.index)
    if green is None:
        groups = [("models", models, BLUE)]
    else:
        groups = [("not worse than best", [m for m in models if m in green], GREEN),
                  ("models", [m for m in models if m not in green], GRAY)]
    traces = []
    for name, members, color in groups:
        if not members:
            continue
        xs, ys = x.loc[members], y.loc[members]
        custom = np.column_stack([stats.inv_logit(xs), ys])
        hover = ("%{text}<br>ImageNet top-1 %{customdata[0]:.1%}<br>"
                 + ("transfer %{customdata[1]:.1%}" if y_is_accuracy
                    else "mean log odds %{customdata[1]:.3f}") + "<extra></extra>")
        err = None
        if error is not None:
            err = {"type": "data", "array": error.loc[members].to_numpy(), "visible": True,
                   "color": color}
        traces.append(go.Scatter(
            x=xs.to_numpy(), y=(stats.logit(ys) if y_is_accuracy else ys).to_numpy(),
            mode="markers", marker={"color": color, "size": 8}, name=name,
            legendgroup=name, showlegend=show_legend, text=[model_label(m) for m in members],
            customdata=custom, hovertemplate=hover, error_y=err,
        ))
    return traces


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


def _diagonal(lo: float, hi: float, show_legend: bool) -> go.Scatter:
    return go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                      line={"color": GRAY, "dash": "dash", "width": 1}, hoverinfo="skip",
                      showlegend=show_legend, legendgroup="y = x")


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


def fig_convergence(curves: pd.DataFrame, summary: pd.DataFrame, title: str,
                    cols: int = 4) -> go.Figure:
    """Figure 8: validation accuracy against training steps (log x, logit y) per dataset,
    one line per (setting, checkpoint); a hollow marker at the step where the run first reaches
    90% of its maximum odds (:func:`probes.analysis.tables.convergence_summary`)."""
    meta = {"figure": "fig8"}
    if curves.empty:
        return empty_figure(
            title, "no per-step accuracy in the store (fine-tune / from-scratch rows with "
            "curve_steps); the paper's tables have none either", meta)
    datasets = dataset_order(curves["dataset"])
    meta["datasets"] = datasets
    rows, ncols = _grid(len(datasets), cols)
    fig = make_subplots(rows=rows, cols=ncols, subplot_titles=[dataset_label(d) for d in datasets],
                        horizontal_spacing=0.06, vertical_spacing=0.12 if rows > 1 else 0.2)
    shown: set[str] = set()
    ckpts = sorted(set(curves["ckpt"]))
    dashes = ["solid", "dot", "dash", "dashdot", "longdash"]
    for i, d in enumerate(datasets):
        r, c = i // ncols + 1, i % ncols + 1
        sub = curves[curves["dataset"] == d]
        for (setting, ckpt, variant), g in sub.groupby(["setting", "ckpt", "variant"]):
            g = g.sort_values("step")
            name = f"{setting_label(setting, short=True)} · {ckpt}"
            name += f" ({variant})" if variant else ""
            acc = g["val_metric"].clip(1e-6, 1 - 1e-6)
            fig.add_trace(go.Scatter(
                x=g["step"], y=stats.logit(acc), mode="lines+markers", name=name,
                legendgroup=name, showlegend=name not in shown,
                line={"color": SETTING_COLORS.get(setting, GRAY),
                      "dash": dashes[ckpts.index(ckpt) % len(dashes)]},
                customdata=g["val_metric"],
                hovertemplate="step %{x}<br>val %{customdata:.1%}<extra>" + name + "</extra>",
            ), row=r, col=c)
            shown.add(name)
            hit = summary[(summary["dataset"] == d) & (summary["setting"] == setting)
                          & (summary["ckpt"] == ckpt) & (summary["variant"] == variant)]
            if not hit.empty:
                step = float(hit["steps_to_threshold"].iloc[0])
                at = acc[g["step"] == step]
                fig.add_trace(go.Scatter(
                    x=[step], y=stats.logit(at.iloc[:1]), mode="markers",
                    name="90% of max odds", legendgroup="threshold",
                    showlegend="threshold" not in shown,
                    marker={"symbol": "circle-open", "size": 14, "color": "black"},
                    hovertemplate="reaches 90% of max odds at step %{x}<extra></extra>",
                ), row=r, col=c)
                shown.add("threshold")
        fig.update_xaxes(type="log", dtick="D2", row=r, col=c)
        _logit_axis(fig, "y", sub["val_metric"].clip(1e-6, 1 - 1e-6), row=r, col=c)
    fig.update_xaxes(title_text="training steps", row=rows)
    fig.update_yaxes(title_text="validation accuracy", col=1)
    fig.update_layout(title=title, template=TEMPLATE, height=280 * rows + 220, meta=meta,
                      legend={"orientation": "h", "y": -0.25})
    return fig


def fig_data_size(frame: pd.DataFrame, title: str, cols: int = 4) -> go.Figure:
    """Figure 9: accuracy against examples per class (log x) per dataset, one line per
    (setting, checkpoint), error bars = standard error over the subsets
    (:func:`probes.analysis.tables.data_size_frame`)."""
    meta = {"figure": "fig9"}
    if frame.empty:
        return empty_figure(
            title, "no data-size results in the store (rows with variant 'k=K,subset_seed=S'); "
            "the paper prints no table for Figure 9", meta)
    datasets = dataset_order(frame["dataset"])
    meta["datasets"] = datasets
    rows, ncols = _grid(len(datasets), cols)
    fig = make_subplots(rows=rows, cols=ncols, subplot_titles=[dataset_label(d) for d in datasets],
                        horizontal_spacing=0.06, vertical_spacing=0.12 if rows > 1 else 0.2)
    shown: set[str] = set()
    ckpts = sorted(set(frame["ckpt"]))
    dashes = ["solid", "dot", "dash", "dashdot", "longdash"]
    for i, d in enumerate(datasets):
        r, c = i // ncols + 1, i % ncols + 1
        for (setting, ckpt), g in frame[frame["dataset"] == d].groupby(["setting", "ckpt"]):
            g = g.sort_values("k")
            name = f"{setting_label(setting, short=True)} · {ckpt}"
            fig.add_trace(go.Scatter(
                x=g["k"], y=g["mean"], mode="lines+markers", name=name, legendgroup=name,
                showlegend=name not in shown,
                line={"color": SETTING_COLORS.get(setting, GRAY),
                      "dash": dashes[ckpts.index(ckpt) % len(dashes)]},
                error_y={"type": "data", "array": g["se"].fillna(0).to_numpy(), "visible": True},
                customdata=g["n_subsets"],
                hovertemplate=("%{x} per class: %{y:.1%} (%{customdata} subsets)<extra>"
                               + name + "</extra>"),
            ), row=r, col=c)
            shown.add(name)
        ks = sorted(set(frame.loc[frame["dataset"] == d, "k"]))
        fig.update_xaxes(type="log", tickvals=ks, ticktext=[str(k) for k in ks], row=r, col=c)
        fig.update_yaxes(tickformat=".0%", row=r, col=c)
    fig.update_xaxes(title_text="examples per class", row=rows)
    fig.update_yaxes(title_text="test accuracy", col=1)
    fig.update_layout(title=title, template=TEMPLATE, height=280 * rows + 220, meta=meta,
                      legend={"orientation": "h", "y": -0.25})
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


def fig_step_budgets(frame: pd.DataFrame, title: str, cols: int = 4,
                     fraction: float = 0.9) -> go.Figure:
    """Figure 8 as the paper made it: each point an independent run trained for its own step
    budget (:func:`probes.analysis.tables.step_budget_frame`), test accuracy against the budget
    (log x, logit y), one line per (setting, checkpoint), fine-tuned vs from scratch; a hollow
    marker at the smallest budget reaching ``fraction`` of the maximum odds over budgets
    (:func:`probes.stats.steps_to_fraction_of_max_odds`, Section 4.6)."""
    meta: dict[str, Any] = {"figure": "fig8"}
    if frame.empty:
        return empty_figure(
            title, "no step-budget runs in the store (featurestore finetune --steps "
            "1000,2500,5000,10000, with --init imagenet and --init random); the paper prints "
            "no table for Figure 8", meta)
    datasets = dataset_order(frame["dataset"])
    meta["datasets"] = datasets
    rows, ncols = _grid(len(datasets), cols)
    fig = make_subplots(rows=rows, cols=ncols, subplot_titles=[dataset_label(d) for d in datasets],
                        horizontal_spacing=0.06, vertical_spacing=0.12 if rows > 1 else 0.2)
    shown: set[str] = set()
    ckpts = sorted(set(frame["ckpt"]))
    dashes = ["solid", "dot", "dash", "dashdot", "longdash"]
    for i, d in enumerate(datasets):
        r, c = i // ncols + 1, i % ncols + 1
        sub = frame[frame["dataset"] == d]
        acc_all = sub["test_metric"].astype(float).clip(1e-6, 1 - 1e-6)
        for (setting, ckpt), g in sub.groupby(["setting", "ckpt"]):
            g = g.sort_values("steps")
            name = f"{setting_label(setting, short=True)} · {ckpt}"
            acc = g["test_metric"].astype(float).clip(1e-6, 1 - 1e-6)
            fig.add_trace(go.Scatter(
                x=g["steps"], y=stats.logit(acc), mode="lines+markers", name=name,
                legendgroup=name, showlegend=name not in shown,
                line={"color": SETTING_COLORS.get(setting, GRAY),
                      "dash": dashes[ckpts.index(ckpt) % len(dashes)]},
                customdata=g["test_metric"],
                hovertemplate="%{x} steps<br>test %{customdata:.1%}<extra>" + name + "</extra>",
            ), row=r, col=c)
            shown.add(name)
            step = stats.steps_to_fraction_of_max_odds(
                pd.Series(acc.to_numpy(), index=g["steps"].to_numpy()), fraction)
            at = acc[g["steps"].to_numpy() == step]
            if len(at):
                fig.add_trace(go.Scatter(
                    x=[step], y=stats.logit(at.iloc[:1]), mode="markers",
                    name=f"{fraction:.0%} of max odds", legendgroup="threshold",
                    showlegend="threshold" not in shown,
                    marker={"symbol": "circle-open", "size": 14, "color": "black"},
                    hovertemplate="reaches the threshold at %{x} steps<extra></extra>",
                ), row=r, col=c)
                shown.add("threshold")
        fig.update_xaxes(type="log", row=r, col=c)
        _logit_axis(fig, "y", acc_all, row=r, col=c)
    fig.update_xaxes(title_text="training steps (one run per budget)", row=rows)
    fig.update_yaxes(title_text="test accuracy", col=1)
    fig.update_layout(title=title, template=TEMPLATE, height=280 * rows + 220, meta=meta,
                      legend={"orientation": "h", "y": -0.25})
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
