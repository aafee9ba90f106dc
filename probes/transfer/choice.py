"""The data of the report page "Choosing a checkpoint": every estimator on every dataset the
store holds enough checkpoints of, beside the measured transfer it predicts.

Three tidy frames, written by ``featurestore report`` as ``data/<id>.csv`` (source ``store``):

* ``transfer_scatter``: one row per (dataset, checkpoint, estimator, measured setting): the
  estimate and its rank within the dataset, the measured test metric, its log odds (the paper's
  convention for accuracies) and its rank. An estimate with nothing measured yet keeps one row
  with an empty setting, so no estimate is dropped from the data.
* ``transfer_correlations``: Kendall tau and Spearman rho of each estimator against each measured
  setting, per dataset and ``pooled`` (:func:`probes.transfer.ranking.correlations`, the numbers
  ``featurestore rank`` prints).
* ``transfer_timing``: one row per (dataset, checkpoint, method): seconds to compute each
  estimator (from features already in memory) and seconds of the probe / fine-tune job it
  predicts (the job's recorded ``timings``), which is the saving a user buys with an estimate.

A dataset enters only with at least ``min_ckpts`` checkpoints: a ranking of fewer says nothing
(a rank correlation of two points is always +-1). An entry that cannot be read (damaged chunks)
is left out and named in :attr:`ChoiceData.skipped`, so one bad entry never sinks the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from featurestore.errors import FeatureStoreError
from probes.errors import ProbeInputError
from probes.stats import logit
from probes.transfer.entries import ESTIMATORS, Estimate, estimate_entry
from probes.transfer.ranking import LOGIT_EPS, MEASURED, correlations, measured_frame, rank_table

__all__ = ["MIN_CKPTS", "SCATTER_COLUMNS", "TIMING_COLUMNS", "CORRELATION_COLUMNS",
           "ChoiceData", "choice_data"]

#: Fewest checkpoints of a dataset for its ranking to be shown.
MIN_CKPTS = 3
SCATTER_COLUMNS = ["source", "dataset", "ckpt", "estimator", "score", "score_rank", "setting",
                   "test_metric", "test_log_odds", "measured_rank"]
CORRELATION_COLUMNS = ["source", "scope", "estimator", "setting", "n", "kendall_tau",
                       "kendall_p", "spearman_rho", "spearman_p"]
TIMING_COLUMNS = ["source", "dataset", "ckpt", "kind", "method", "seconds"]


@dataclass
class ChoiceData:
    """The page's frames, the datasets they cover and what was left out (and why)."""

    scatter: pd.DataFrame
    correlations: pd.DataFrame
    timing: pd.DataFrame
    datasets: list[str] = field(default_factory=list)
    #: datasets with fewer than ``min_ckpts`` complete entries: dataset -> checkpoints
    too_few: dict[str, int] = field(default_factory=dict)
    #: "ckpt/dataset: reason" for entries that could not be read
    skipped: list[str] = field(default_factory=list)

    def frames(self) -> dict[str, pd.DataFrame]:
        """The report's data ids and frames."""
        return {"transfer_scatter": self.scatter, "transfer_correlations": self.correlations,
                "transfer_timing": self.timing}


def _empty() -> ChoiceData:
    return ChoiceData(pd.DataFrame(columns=SCATTER_COLUMNS),
                      pd.DataFrame(columns=CORRELATION_COLUMNS),
                      pd.DataFrame(columns=TIMING_COLUMNS))


def _scatter(table: pd.DataFrame, estimators: Sequence[str]) -> pd.DataFrame:
    rows = []
    for _, r in table.iterrows():
        for e in estimators:
            if pd.isna(r[e]):
                continue
            base = {"source": "store", "dataset": r["dataset"], "ckpt": r["ckpt"],
                    "estimator": e, "score": float(r[e]), "score_rank": r[f"{e}_rank"]}
            measured = [s for s in MEASURED if pd.notna(r[s])]
            for s in measured:
                acc = float(r[s])
                rows.append({**base, "setting": s, "test_metric": acc,
                             "test_log_odds": float(logit(np.array([acc]), eps=LOGIT_EPS)[0]),
                             "measured_rank": r[f"{s}_rank"]})
            if not measured:
                rows.append({**base, "setting": None, "test_metric": np.nan,
                             "test_log_odds": np.nan, "measured_rank": pd.NA})
    return pd.DataFrame(rows, columns=SCATTER_COLUMNS)


def _timing(estimates: Sequence[Estimate], measured: pd.DataFrame,
            entries: set[tuple[str, str]]) -> pd.DataFrame:
    rows = [{"source": "store", "dataset": e.dataset, "ckpt": e.ckpt, "kind": "estimator",
             "method": e.estimator, "seconds": e.seconds}
            for e in estimates if e.score is not None]
    for _, m in measured.iterrows():
        if (m["ckpt"], m["dataset"]) in entries and pd.notna(m["seconds"]):
            rows.append({"source": "store", "dataset": m["dataset"], "ckpt": m["ckpt"],
                         "kind": "probe", "method": m["setting"], "seconds": float(m["seconds"])})
    return pd.DataFrame(rows, columns=TIMING_COLUMNS)


def choice_data(
    store_url: str | None,
    estimators: Sequence[str] = ESTIMATORS,
    *,
    min_ckpts: int = MIN_CKPTS,
    device: str = "auto",
) -> ChoiceData:
    """Run ``estimators`` on every complete entry of the datasets with at least ``min_ckpts``
    checkpoints in the store at ``store_url`` and set them beside its logreg / fine-tune
    results (module docstring). Empty frames (with their columns) when nothing qualifies or
    ``store_url`` is None."""
    if store_url is None:
        return _empty()
    from featurestore.store import FeatureStore

    fs = FeatureStore(store_url, read_only=True)
    by_dataset: dict[str, list[str]] = {}
    for e in fs.entries():
        by_dataset.setdefault(e.dataset, []).append(e.ckpt)
    out = _empty()
    out.too_few = {d: len(c) for d, c in sorted(by_dataset.items()) if len(c) < min_ckpts}
    estimates: list[Estimate] = []
    entries: set[tuple[str, str]] = set()
    for dataset, ckpts in sorted(by_dataset.items()):
        if len(ckpts) < min_ckpts:
            continue
        found = []
        for ckpt in sorted(ckpts):
            try:
                found += estimate_entry(fs, ckpt, dataset, estimators, device=device)
            except (FeatureStoreError, ProbeInputError) as err:
                out.skipped.append(f"{ckpt}/{dataset}: {err}")
                continue
            entries.add((ckpt, dataset))
        if len({e.ckpt for e in found}) >= min_ckpts:
            estimates += found
            out.datasets.append(dataset)
        else:
            entries -= {(c, dataset) for c in ckpts}
    if not estimates:
        return out
    names = list(dict.fromkeys(e.estimator for e in estimates if e.score is not None))
    measured = measured_frame(fs.results.frame())
    table = rank_table(estimates, measured, names)
    corr = correlations(table, names)
    corr.insert(0, "source", "store")
    out.scatter = _scatter(table, names)
    out.correlations = corr[CORRELATION_COLUMNS]
    out.timing = _timing(estimates, measured, entries)
    return out
