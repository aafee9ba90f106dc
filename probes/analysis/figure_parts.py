"""The parts every figure of :mod:`probes.analysis.figures` is built from: colours, the
notebook display (:func:`show`), logit-scaled axes and their ticks, the empty figure, and the
shared point, band and diagonal traces (the conventions are in :mod:`probes.analysis.figures`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from probes import stats
from probes.analysis.names import model_label

__all__ = [
    "BAND",
    "BLUE",
    "GRAY",
    "GREEN",
    "PLOTLY_MIME",
    "SETTING_COLORS",
    "TEMPLATE",
    "empty_figure",
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


def _diagonal(lo: float, hi: float, show_legend: bool) -> go.Scatter:
    return go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                      line={"color": GRAY, "dash": "dash", "width": 1}, hoverinfo="skip",
                      showlegend=show_legend, legendgroup="y = x")
