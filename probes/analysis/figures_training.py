"""Figures of training: convergence curves and step budgets (Figure 8) and data size
(Figure 9)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from probes import stats
from probes.analysis.figure_parts import (
    GRAY,
    SETTING_COLORS,
    TEMPLATE,
    _grid,
    _logit_axis,
    empty_figure,
)
from probes.analysis.names import dataset_label, dataset_order, setting_label

__all__ = [
    "fig_convergence",
    "fig_data_size",
    "fig_step_budgets",
]


#: Line dashes by checkpoint (colour is the setting's): the training figures' second channel.
_DASHES = ("solid", "dot", "dash", "dashdot", "longdash")


def _dataset_panels(datasets: list[str], cols: int) -> tuple[go.Figure, int, int]:
    """One subplot per dataset, ``cols`` to a row: ``(figure, rows, cols)``."""
    rows, ncols = _grid(len(datasets), cols)
    fig = make_subplots(rows=rows, cols=ncols, subplot_titles=[dataset_label(d) for d in datasets],
                        horizontal_spacing=0.06, vertical_spacing=0.12 if rows > 1 else 0.2)
    return fig, rows, ncols


def _line_style(setting: str, ckpt: str, ckpts: list[str]) -> dict[str, str]:
    """The setting's colour and the checkpoint's dash."""
    return {"color": SETTING_COLORS.get(setting, GRAY),
            "dash": _DASHES[ckpts.index(ckpt) % len(_DASHES)]}


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
    fig, rows, ncols = _dataset_panels(datasets, cols)
    shown: set[str] = set()
    ckpts = sorted(set(curves["ckpt"]))
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
                line=_line_style(setting, ckpt, ckpts),
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
    fig, rows, ncols = _dataset_panels(datasets, cols)
    shown: set[str] = set()
    ckpts = sorted(set(frame["ckpt"]))
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
                line=_line_style(setting, ckpt, ckpts),
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
    fig, rows, ncols = _dataset_panels(datasets, cols)
    shown: set[str] = set()
    ckpts = sorted(set(frame["ckpt"]))
    for i, d in enumerate(datasets):
        r, c = i // ncols + 1, i % ncols + 1
        for (setting, ckpt), g in frame[frame["dataset"] == d].groupby(["setting", "ckpt"]):
            g = g.sort_values("k")
            name = f"{setting_label(setting, short=True)} · {ckpt}"
            fig.add_trace(go.Scatter(
                x=g["k"], y=g["mean"], mode="lines+markers", name=name, legendgroup=name,
                showlegend=name not in shown,
                line=_line_style(setting, ckpt, ckpts),
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
