"""Probe jobs over store entries: one (checkpoint, dataset, solver) -> one results-table row.

``run_probe`` reads an entry's train/val/test features, runs the paper's protocol
(:func:`probes.linear.protocol.run_protocol`: hyperparameter path on train -> val, refit on train+val,
score test) and appends the row with its per-example test predictions. ``sweep`` does that for every
complete entry that matches, skipping combinations already in the table unless ``force``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from featurestore.datasets.base import ids_digest
from featurestore.store import FeatureStore

SOLVERS = ("logreg", "svm")


@dataclass
class ProbeOutcome:
    ckpt: str
    dataset: str
    solver: str
    status: str  # "done" | "skipped"
    test_metric: float | None = None
    metric: str | None = None
    result_id: str | None = None
    seconds: float = 0.0


def _check_solver(solver: str) -> None:
    if solver not in SOLVERS:
        from probes.errors import ProbeInputError

        raise ProbeInputError(f"unknown solver {solver!r} (one of {', '.join(SOLVERS)})")


def run_probe(
    store: FeatureStore,
    ckpt: str,
    dataset: str,
    solver: str = "logreg",
    *,
    device: str = "auto",
    force: bool = False,
    variant: str = "",
    train_index: np.ndarray | None = None,
) -> ProbeOutcome:
    """Run the protocol for one entry and append the result (unless already there).

    ``train_index`` restricts the training split to those rows (the data-size study; pass the same
    ``variant`` string that fine-tuning uses, e.g. ``"k=10,subset_seed=0"``).
    """
    from probes.linear.protocol import run_protocol

    _check_solver(solver)
    table = store.results
    if not force and table.exists(ckpt, dataset, solver, variant):
        return ProbeOutcome(ckpt, dataset, solver, "skipped")
    info = store.entry(ckpt, dataset)
    metric = info.provenance.get("dataset", {}).get("metric", "top1")
    t0 = time.perf_counter()
    X_tr, y_tr = store.load(ckpt, dataset, "train")
    X_va, y_va = store.load(ckpt, dataset, "val")
    X_te, y_te = store.load(ckpt, dataset, "test")
    if train_index is not None:
        X_tr, y_tr = X_tr[train_index], y_tr[train_index]
    res = run_protocol(solver, X_tr, y_tr, X_va, y_va, X_te, y_te, metric=metric, device=device)
    ckpt_prov = info.provenance.get("checkpoint", {})
    row: dict[str, Any] = {
        "ckpt": ckpt,
        "dataset": dataset,
        "setting": solver,
        "variant": variant,
        "metric": res.metric,
        "test_metric": float(res.test_metric),
        "param_name": res.param_name,
        "best_param": float(res.best_param),
        "hyperparams": {res.param_name: float(res.best_param)},
        "val_curve": res.curve,
        "n_train": int(res.n_train),
        "imagenet_top1": ckpt_prov.get("imagenet_top1"),
        "weights_sha256": ckpt_prov.get("weights_sha256"),
        "device": res.device,
        "timings": res.timings,
        "test_ids_sha256": ids_digest(store.load_ids(ckpt, dataset, "test")),
    }
    rid = table.append(row, res.test_predictions)
    return ProbeOutcome(ckpt, dataset, solver, "done", float(res.test_metric), res.metric, rid,
                        time.perf_counter() - t0)


def sweep(
    store: FeatureStore,
    ckpts: Iterable[str] | None = None,
    datasets: Iterable[str] | None = None,
    solvers: Iterable[str] = ("logreg",),
    *,
    device: str = "auto",
    force: bool = False,
    on_result: Callable[[ProbeOutcome], None] | None = None,
) -> list[ProbeOutcome]:
    """Every complete entry x solver (filtered by ``ckpts`` / ``datasets``)."""
    solvers = list(solvers)
    for s in solvers:
        _check_solver(s)
    want_c = set(ckpts) if ckpts else None
    want_d = set(datasets) if datasets else None
    out = []
    for e in store.entries():
        if (want_c and e.ckpt not in want_c) or (want_d and e.dataset not in want_d):
            continue
        for s in solvers:
            o = run_probe(store, e.ckpt, e.dataset, s, device=device, force=force)
            out.append(o)
            if on_result:
                on_result(o)
    return out
