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

This module is what the notebooks, the report and the tests import; the figures live in modules
by family and are re-exported here: :mod:`~probes.analysis.figures_imagenet` (against ImageNet
accuracy), :mod:`~probes.analysis.figures_settings` (settings, recipes, t-SNE, ours vs paper),
:mod:`~probes.analysis.figures_training` (convergence, data size), all built from
:mod:`~probes.analysis.figure_parts`.
"""

from __future__ import annotations

from probes.analysis.figure_parts import (
    BAND,
    BLUE,
    GRAY,
    GREEN,
    PLOTLY_MIME,
    SETTING_COLORS,
    TEMPLATE,
    empty_figure,
    logit_ticks,
    show,
)
from probes.analysis.figures_imagenet import (
    fig_mean_log_odds,
    fig_public_vs_retrained,
    fig_size_correlation,
    fig_transfer_vs_imagenet,
)
from probes.analysis.figures_settings import (
    fig_ours_vs_paper,
    fig_setting_pairs,
    fig_setting_scatter_by_dataset,
    fig_settings_bars,
    fig_settings_study,
    fig_tsne,
)
from probes.analysis.figures_training import (
    fig_convergence,
    fig_data_size,
    fig_step_budgets,
)

__all__ = [
    "BAND",
    "BLUE",
    "GRAY",
    "GREEN",
    "PLOTLY_MIME",
    "SETTING_COLORS",
    "TEMPLATE",
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
