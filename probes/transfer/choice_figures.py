"""Figures of the report page "Choosing a checkpoint", drawn from the frames of
:mod:`probes.transfer.choice` (so the page draws exactly what ``data/<id>.csv`` holds).

* :func:`fig_estimate_vs_measured`: per dataset, one panel per estimator: each checkpoint's
  estimate (x) against its measured accuracy in log odds (y, labelled in accuracy), one colour per
  measured setting, with Kendall's tau in the panel title. A good estimator orders the points
  from bottom left to top right.
* :func:`fig_timing`: seconds per method (estimators and the probe / fine-tune they predict),
  one bar per method and dataset (median over checkpoints), on a log axis: the saving is
  usually orders of magnitude.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probes.analysis.figure_parts import TEMPLATE, _color, _logit_axis, empty_figure
from probes.analysis.names import dataset_label, setting_label

__all__ = ["fig_estimate_vs_measured", "fig_timing"]


def fig_estimate_vs_measured(scatter: pd.DataFrame, correlations: pd.DataFrame, dataset: str,
                             cols: int = 3) -> go.Figure:
    """Estimate vs measured transfer for ``dataset`` (module docstring)."""
    sub = scatter[(scatter["dataset"] == dataset) & scatter["setting"].notna()]
    title = f"Estimate vs measured transfer: {dataset_label(dataset)}"
    estimators = list(dict.fromkeys(sub["estimator"]))
    meta = {"figure": "transfer_scatter", "dataset": dataset, "estimators": estimators}
    if sub.empty:
        return empty_figure(title, "no logistic-regression or fine-tune results for these "
                            "checkpoints yet: run `featurestore sweep` to check the estimates",
                            meta)
    corr = correlations[correlations["scope"] == dataset].set_index(["estimator", "setting"])
    settings = list(dict.fromkeys(sub["setting"]))
    first = settings[0]

    def panel_title(e: str) -> str:
        tau = corr["kendall_tau"].get((e, first), np.nan)
        return f"{e} (tau {tau:+.2f} vs {first})" if np.isfinite(tau) else e

    ncols = max(1, min(cols, len(estimators)))
    rows = -(-len(estimators) // ncols)
    fig = make_subplots(rows=rows, cols=ncols, subplot_titles=[panel_title(e) for e in estimators],
                        horizontal_spacing=0.08, vertical_spacing=0.16 if rows > 1 else 0.2)
    shown: set[str] = set()
    for i, e in enumerate(estimators):
        r, c = i // ncols + 1, i % ncols + 1
        pe = sub[sub["estimator"] == e]
        for j, s in enumerate(settings):
            ps = pe[pe["setting"] == s]
            fig.add_trace(go.Scatter(
                x=ps["score"].astype(float), y=ps["test_log_odds"].astype(float),
                mode="markers", marker={"color": _color(j), "size": 9},
                name=setting_label(s), legendgroup=s, showlegend=s not in shown,
                text=ps["ckpt"], customdata=ps["test_metric"].astype(float),
                hovertemplate=("%{text}<br>" + e + " %{x:.4g}<br>" + setting_label(s)
                               + " %{customdata:.1%}<extra></extra>"),
            ), row=r, col=c)
            shown.add(s)
        fig.update_xaxes(title_text=e, row=r, col=c)
        _logit_axis(fig, "y", pe["test_metric"], row=r, col=c)
    fig.update_yaxes(title_text="measured accuracy", col=1)
    fig.update_layout(title=title, template=TEMPLATE, height=300 * rows + 140, meta=meta)
    return fig


def fig_timing(timing: pd.DataFrame) -> go.Figure:
    """Median seconds per method and dataset on a log axis (module docstring)."""
    title = "Time to estimate vs time to measure"
    meta = {"figure": "transfer_timing"}
    t = timing[timing["seconds"].astype(float) > 0]
    if t.empty:
        return empty_figure(title, "no timings to show", meta)
    med = (t.groupby(["dataset", "kind", "method"], sort=False)["seconds"].median()
           .reset_index())
    methods = list(dict.fromkeys(med.sort_values("kind", kind="stable")["method"]))
    meta["methods"] = methods
    fig = go.Figure()
    for i, d in enumerate(dict.fromkeys(med["dataset"])):
        md = med[med["dataset"] == d].set_index("method")
        fig.add_trace(go.Bar(
            x=methods, y=[float(md["seconds"].get(m, np.nan)) for m in methods],
            name=dataset_label(str(d)), marker_color=_color(i),
            hovertemplate="%{x}: %{y:.3g} s<extra>" + dataset_label(str(d)) + "</extra>",
        ))
    fig.update_yaxes(type="log", title_text="seconds (median over checkpoints)")
    fig.update_layout(title=title, template=TEMPLATE, barmode="group", height=420, meta=meta)
    return fig
