"""Results as the paper's tables: the store's results (or the paper's) as model x dataset frames.

The notebooks and :mod:`probes.analysis.figures` never read the results table directly; they go
through this module, which does the bookkeeping a figure should not have to think about:

* **Wide tables.** :func:`wide_tables` turns result rows into one model x dataset DataFrame of
  test metrics per setting (``logreg``, ``svm``, ``logreg_aug``, ``finetune``, ``scratch``), the
  layout :mod:`probes.stats` takes. Re-runs of a (ckpt, dataset, setting, variant) keep the most
  recent row, and only the default variant ``""`` enters the tables (data-size subsets are
  :func:`data_size_frame`'s business).
* **Fallback to the paper.** :func:`results_tables` takes each of the paper's three settings from
  the store when the store has any row for it, and otherwise from the paper's Table 6, so every
  figure renders on a fresh machine. ``ResultTables.source`` says which, setting by setting; two
  settings are only ever compared within one source (:meth:`ResultTables.comparable`), because a
  store checkpoint and a paper model are different networks even when they share a name.
* **Names.** Store datasets use short names (``cars``, ``aircraft``, ``pets``); the paper uses
  ``stanford_cars``, ``fgvc_aircraft``, ``oxford_pets``. Tables here always use the *store*
  names, so a store table and a paper table line up column for column. Store checkpoints map to
  the paper's models through the checkpoint registry's ``extra["paper_model"]`` (the ``paper16``
  preset), else by name (``inception_v4`` or a timm tag like ``inception_v4.tf_in1k``).
* **Exact 0 / 1.** A store result can be a perfect (or zero) score on a small test set, which has
  infinite log odds. Such values are moved half an example inside (``0.5 / n_test``, the usual
  continuity correction) so the logit statistics stay finite; no paper value is affected.

ImageNet top-1 comes from the result row (``imagenet_top1``), else from the checkpoint registry,
else, for checkpoints that map to a paper model, from Table 3's *public* checkpoint column (a
store checkpoint is a public checkpoint, not the authors' retrained model). Paper tables use
Table 3's *retrained* column, the x-axis of all of the paper's main results.

The module is the one import of the notebooks and the report; the work lives in modules by
subject, and this one re-exports their public names: :mod:`~probes.analysis.store_reads` (the
only reads of a store), :mod:`~probes.analysis.names` (store vs paper names, labels),
:mod:`~probes.analysis.wide` (wide tables, panels, ours vs paper),
:mod:`~probes.analysis.comparisons` (Table 2, settings comparisons),
:mod:`~probes.analysis.significance` (per-example tests), :mod:`~probes.analysis.curves` (data
size, convergence), :mod:`~probes.analysis.settings_study` and
:mod:`~probes.analysis.embeddings` (t-SNE).
"""

from __future__ import annotations

from probes.analysis.comparisons import (
    SMALL_DATASET,
    correlation_by_panel,
    correlation_table,
    panel_n_train,
    setting_comparison,
    settings_summary,
    size_correlation_frame,
    small_vs_large,
)
from probes.analysis.curves import (
    convergence_frame,
    convergence_speedup,
    convergence_summary,
    data_size_frame,
    parse_variant,
    step_budget_frame,
)
from probes.analysis.embeddings import tsne_frame
from probes.analysis.names import (
    PAPER_SETTINGS,
    SETTING_LABELS,
    SETTINGS,
    SHORT_SETTING_LABELS,
    STORE_DATASETS,
    dataset_label,
    dataset_order,
    model_label,
    paper_dataset_for,
    paper_model_for,
    setting_label,
    store_dataset_for,
)
from probes.analysis.settings_study import (
    STUDY_SETTINGS,
    settings_studies_frame,
    settings_study_frame,
    settings_study_summary,
)
from probes.analysis.significance import (
    SIGNIFICANCE_COLUMNS,
    SIGNIFICANCE_TESTS,
    green_per_dataset,
    significance_all,
    significance_frame,
    styled_table,
)
from probes.analysis.store_reads import (
    load_results,
    results_tables,
    store_entries,
    study_tsne,
    tsne_panels,
)
from probes.analysis.wide import (
    Panel,
    ResultTables,
    checkpoint_mapping,
    complete_block,
    imagenet_top1_for_store,
    ours_vs_paper,
    paper_tables,
    wide_tables,
)
from probes.analysis.wide import _latest as _latest  # the report's and printed tables' row pick

__all__ = [
    "PAPER_SETTINGS",
    "Panel",
    "ResultTables",
    "SETTINGS",
    "SETTING_LABELS",
    "SHORT_SETTING_LABELS",
    "SIGNIFICANCE_COLUMNS",
    "SIGNIFICANCE_TESTS",
    "SMALL_DATASET",
    "STORE_DATASETS",
    "STUDY_SETTINGS",
    "checkpoint_mapping",
    "complete_block",
    "convergence_frame",
    "convergence_speedup",
    "convergence_summary",
    "correlation_by_panel",
    "correlation_table",
    "data_size_frame",
    "dataset_label",
    "dataset_order",
    "green_per_dataset",
    "imagenet_top1_for_store",
    "load_results",
    "model_label",
    "ours_vs_paper",
    "panel_n_train",
    "paper_dataset_for",
    "paper_model_for",
    "paper_tables",
    "parse_variant",
    "results_tables",
    "setting_comparison",
    "setting_label",
    "settings_studies_frame",
    "settings_study_frame",
    "settings_study_summary",
    "settings_summary",
    "significance_all",
    "significance_frame",
    "size_correlation_frame",
    "small_vs_large",
    "step_budget_frame",
    "store_dataset_for",
    "store_entries",
    "study_tsne",
    "styled_table",
    "tsne_frame",
    "tsne_panels",
    "wide_tables",
]
