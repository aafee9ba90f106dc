"""The analysis's reads of a feature store: its results table and its entries, read-only.

Everything else in :mod:`probes.analysis` transforms frames; the functions here are the ones that
open a store (rendering a report must never create or modify one), so the pure transforms can
be used and tested without any store. ``store_url=None`` means no store: empty frames, so the
paper's figures render on a fresh machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from probes.analysis import paper
from probes.analysis.embeddings import tsne_frame
from probes.analysis.names import SETTINGS
from probes.analysis.wide import (
    ResultTables,
    imagenet_top1_for_store,
    paper_tables,
    wide_tables,
)

__all__ = [
    "load_results",
    "results_tables",
    "store_entries",
    "study_tsne",
    "tsne_panels",
]


_RESULT_COLUMNS = ["result_id", "created", "ckpt", "dataset", "setting", "variant", "metric",
                   "test_metric", "n_test", "imagenet_top1"]


def load_results(store_url: str | None) -> pd.DataFrame:
    """The store's results table as a DataFrame, every row parsed through the results schema
    (:mod:`featurestore.results.schema`); empty (with the standard columns) when ``store_url``
    is None, so the paper's figures render on a fresh machine.

    A URL that names no store raises (:class:`featurestore.errors.StoreLocationError`): a
    mistyped ``--store`` must not quietly turn into a report of the paper's numbers alone. The
    store is opened read-only: rendering a report must never create or modify a store.
    """
    empty = pd.DataFrame(columns=_RESULT_COLUMNS)
    if store_url is None:
        return empty
    from featurestore.store import FeatureStore

    df = FeatureStore(store_url, read_only=True).results.frame()
    if df.empty:
        return empty
    df = df.copy()
    df["variant"] = df.get("variant", pd.Series("", index=df.index)).fillna("").astype(str)
    return df


def results_tables(store_url: str | None, results: pd.DataFrame | None = None) -> ResultTables:
    """The store's results as wide tables, each of the paper's settings falling back to Table 6
    when the store has no row for it (see the module docs). ``results``: the store's frame when
    the caller has already loaded it (:func:`load_results`), so it is read once."""
    results = load_results(store_url) if results is None else results
    store = wide_tables(results)
    fallback = paper_tables()
    tables: dict[str, pd.DataFrame] = {}
    source: dict[str, str] = {}
    for setting in SETTINGS:
        if setting in store:
            tables[setting], source[setting] = store[setting], "store"
        elif setting in fallback:
            tables[setting], source[setting] = fallback[setting], "paper"
    for setting in store:  # settings outside SETTINGS, should a job ever write one
        if setting not in tables:
            tables[setting], source[setting] = store[setting], "store"
    top1 = {
        "store": imagenet_top1_for_store(results),
        "paper": paper.imagenet_top1("retrained"),
    }
    return ResultTables(tables, source, top1, results, store_url)


def store_entries(store_url: str | None) -> list[Any]:
    """Complete entries of the store (:class:`featurestore.store.EntryInfo`); ``[]`` when there
    is no store at ``store_url`` (a fresh machine), which is not an error for a report."""
    if store_url is None:
        return []
    from featurestore.errors import EntryNotFoundError
    from featurestore.store import FeatureStore

    try:
        return FeatureStore(store_url, read_only=True).entries()
    except (EntryNotFoundError, FileNotFoundError):
        return []


def tsne_panels(
    store_url: str | None,
    dataset: str | None = None,
    ckpts: Sequence[str] | None = None,
    split: str = "test",
    n_classes: int = 10,
    max_panels: int = 4,
    seed: int = 0,
) -> tuple[str | None, dict[str, pd.DataFrame]]:
    """Figure 4's data straight from the store: a :func:`tsne_frame` of ``split`` per checkpoint
    of one dataset, the same classes in every panel.

    ``dataset`` defaults to Oxford 102 Flowers (the paper's choice) when the store has it, else
    the single-label dataset with the most checkpoints; ``ckpts`` defaults to that dataset's
    first ``max_panels`` checkpoints. Returns ``(dataset, {ckpt: frame})``; ``(None, {})`` when
    the store has no usable entry.
    """
    entries = [e for e in store_entries(store_url) if split in e.splits or split == "trainval"]
    single = [e for e in entries if not (e.provenance.get("dataset") or {}).get("multilabel")]
    if not single:
        return None, {}
    by_dataset: dict[str, list[str]] = {}
    for e in single:
        by_dataset.setdefault(e.dataset, []).append(e.ckpt)
    if dataset is None:
        dataset = "flowers102" if "flowers102" in by_dataset else max(
            sorted(by_dataset), key=lambda d: len(by_dataset[d])
        )
    if dataset not in by_dataset:
        return dataset, {}
    chosen = list(ckpts) if ckpts is not None else by_dataset[dataset][:max_panels]
    from featurestore.store import FeatureStore

    store = FeatureStore(str(store_url), read_only=True)
    frames: dict[str, pd.DataFrame] = {}
    classes: np.ndarray | None = None
    for ckpt in chosen:
        x, y = store.load(ckpt, dataset, split)
        if classes is None:
            classes = np.unique(y)[:n_classes]
        names = (store.provenance(ckpt, dataset).get("dataset") or {}).get("label_names")
        frames[ckpt] = tsne_frame(x, y, names, classes=classes, seed=seed)
    return dataset, frames


def study_tsne(store_url: str | None, study: Any, split: str = "test", n_classes: int = 10,
               seed: int = 0) -> tuple[str | None, dict[str, pd.DataFrame]]:
    """Figure 4 per recipe of a settings study: :func:`tsne_panels` of the study's members on
    the dataset most of them were extracted on (Oxford 102 Flowers, the paper's choice, when
    it ties), keyed by recipe. ``(None, {})`` when fewer than two members have an entry."""
    single = [e for e in store_entries(store_url) if e.ckpt in set(study.ckpts)
              and split in e.splits
              and not (e.provenance.get("dataset") or {}).get("multilabel")]
    by_dataset: dict[str, list[str]] = {}
    for e in single:
        by_dataset.setdefault(e.dataset, []).append(e.ckpt)
    if not by_dataset:
        return None, {}
    dataset = max(sorted(by_dataset), key=lambda d: (len(by_dataset[d]), d == "flowers102"))
    members = [c for c in study.ckpts if c in by_dataset[dataset]]
    if len(members) < 2:
        return None, {}
    found, frames = tsne_panels(store_url, dataset, members, split=split, n_classes=n_classes,
                                seed=seed)
    return found, {study.recipe_of(c): f for c, f in frames.items()}
