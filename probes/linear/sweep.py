"""Probe jobs over store entries: one (checkpoint, dataset, solver) -> one results-table row.

``run_probe`` reads an entry's train/val/test features, runs the paper's protocol
(:func:`probes.linear.protocol.run_protocol`: hyperparameter path on train -> val, refit on
train+val, score test) and appends the row (a :class:`featurestore.results.ResultRow`) with its
per-example test predictions. In the data-size study (a ``subset``) the chosen value is fit on
the subset alone, never refit on val (Figure 9, Appendix A.2), so ``n_train`` is the subset's
size. ``sweep`` does that for every complete entry that matches, skipping combinations already
in the table unless ``force``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from featurestore.datasets.base import ids_digest
from featurestore.device import resolve_device
from featurestore.results import FeatureSource, ResultRow, Subset
from featurestore.store import FeatureStore
from featurestore.store.catalog import EntryInfo

SOLVERS = ("logreg", "svm")


@dataclass
class ProbeOutcome:
    ckpt: str
    dataset: str
    solver: str
    status: str  # "done" | "skipped" | "failed" (a damaged entry in a sweep; ``reason`` says why)
    test_metric: float | None = None
    metric: str | None = None
    result_id: str | None = None
    seconds: float = 0.0
    #: why a ``skipped`` outcome was skipped, in words a user can act on
    reason: str = ""
    #: ``"low"``/``"high"``: the chosen hyperparameter is at that end of its grid
    grid_edge: str | None = None
    param_name: str | None = None
    best_param: float | None = None


#: Status of a sweep's outcome for a damaged entry (see :func:`sweep`).
FAILED = "failed"
#: The reason of a probe skipped because its row exists.
ALREADY_DONE = "already in the results table; --force to recompute"


def grid_edge(curve: list, best_param: float) -> str | None:
    """``"low"``/``"high"`` when ``best_param`` is the smallest/largest value of the grid the
    path searched (the best value may lie beyond it), else ``None``. Grids of fewer than three
    values have no inside, so no edge is reported for them."""
    params = sorted(float(p["param"]) for p in curve if "param" in p)
    if len(params) < 3:
        return None
    if best_param <= params[0]:
        return "low"
    if best_param >= params[-1]:
        return "high"
    return None


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
    subset: Subset | None = None,
    test_index: np.ndarray | None = None,
    extra: dict[str, object] | None = None,
) -> ProbeOutcome:
    """Run the protocol for one entry and append the result (unless already there).

    ``test_index`` keeps only those rows of the test split (``probe --exclude-duplicates``:
    the test set without near-duplicates, Appendix H); ``extra`` adds fields to the row.

    ``subset`` (the data-size study) names the per-class subset and ``train_index`` its rows of
    the training split; the row's variant is then the subset's (``"k=10,subset_seed=0"``, the
    string fine-tuning uses) and the model is not refit on val. Of several concurrent runs of
    one key, one appends and the others report ``skipped``.
    """
    from probes.linear.protocol import run_protocol

    _check_solver(solver)
    if subset is not None:
        variant = subset.variant
    table = store.results
    if not force and table.exists(ckpt, dataset, solver, variant):
        return ProbeOutcome(ckpt, dataset, solver, "skipped", reason=ALREADY_DONE)
    info = store.entry(ckpt, dataset)
    metric = info.provenance.get("dataset", {}).get("metric", "top1")
    t0 = time.perf_counter()
    # a CUDA probe reads train and val straight into GPU memory; the test split is scored in
    # float64 NumPy on the host (LinearProbeBase.decision_function), so it stays there
    on_cuda = resolve_device(device).type == "cuda"

    def load_fit_split(split: str) -> tuple[Any, np.ndarray]:
        if on_cuda:
            return store.load_tensor(ckpt, dataset, split, device)
        return store.load(ckpt, dataset, split)

    X_tr, y_tr = load_fit_split("train")
    X_va, y_va = load_fit_split("val")
    X_te, y_te = store.load(ckpt, dataset, "test")
    test_ids = store.load_ids(ckpt, dataset, "test")
    # VOC 2007's difficult entries, when the entry stores them: out of val selection and test
    d_va = store.load_difficult(ckpt, dataset, "val")
    d_te = store.load_difficult(ckpt, dataset, "test")
    if test_index is not None:  # scored on the kept test rows only
        X_te, y_te = X_te[test_index], y_te[test_index]
        test_ids = [test_ids[i] for i in test_index]
        d_te = None if d_te is None else d_te[test_index]
    if train_index is not None:
        X_tr, y_tr = X_tr[train_index], y_tr[train_index]
        if subset is not None:
            subset = Subset(subset.k, subset.subset_seed, len(train_index),
                            ids_digest([str(i) for i in train_index]))
    res = run_protocol(solver, X_tr, y_tr, X_va, y_va, X_te, y_te, metric=metric, device=device,
                       refit=subset is None and train_index is None,
                       val_ignore=d_va, test_ignore=d_te)
    row = ResultRow(
        ckpt=ckpt, dataset=dataset, setting=solver, variant=variant, metric=res.metric,
        test_metric=float(res.test_metric), param_name=res.param_name,
        best_param=float(res.best_param), hyperparams={res.param_name: float(res.best_param)},
        val_curve=res.curve, n_train=int(res.n_train), subset=subset,
        features=_feature_source(store, info, train_index is not None),
        imagenet_top1=info.provenance.get("checkpoint", {}).get("imagenet_top1"),
        weights_sha256=info.provenance.get("checkpoint", {}).get("weights_sha256"),
        test_ids_sha256=ids_digest(test_ids), extra=dict(extra or {}),
        device=res.device, timings=res.timings,
        grid_edge=grid_edge(res.curve, float(res.best_param)),
    )
    rid = table.append(row, res.test_predictions, force=force)
    if rid is None:  # another run of this key appended first
        return ProbeOutcome(ckpt, dataset, solver, "skipped", seconds=time.perf_counter() - t0,
                            reason="another run of it appended its row first")
    return ProbeOutcome(ckpt, dataset, solver, "done", float(res.test_metric), res.metric, rid,
                        time.perf_counter() - t0, grid_edge=row.grid_edge,
                        param_name=res.param_name, best_param=float(res.best_param))


def _feature_source(store: FeatureStore, info: EntryInfo, subset: bool) -> FeatureSource:
    """The cached features a probe used: the entry, its weights, split ids and extraction."""
    prov = info.provenance
    ids = (prov.get("dataset") or {}).get("ids_sha256") or {}
    splits = ("train", "test") if subset else ("train", "val", "test")
    return FeatureSource(
        kind="cached",
        weights_sha256=(prov.get("checkpoint") or {}).get("weights_sha256"),
        ids_sha256={s: ids[s] for s in splits if isinstance(ids, dict) and s in ids},
        entry=f"{store.url}#{info.ckpt}/{info.dataset}",
        feature_dim=info.feature_dim,
        extraction=dict(prov.get("extraction") or {}),
    )


def select_entries(store: FeatureStore, ckpts: Iterable[str] | None,
                   datasets: Iterable[str] | None) -> list[EntryInfo]:
    """The complete entries a sweep covers. A name with no complete entry, or filters that
    together match nothing, raise :class:`featurestore.errors.EntryNotFoundError` naming what
    the store has: an empty sweep that exits 0 hides a typo."""
    from featurestore.errors import EntryNotFoundError

    entries = store.entries()
    if not entries:
        raise EntryNotFoundError(
            f"no complete entries in store {store.url}; run `featurestore extract` first")
    want_c, want_d = list(ckpts or []), list(datasets or [])
    have_c = sorted({e.ckpt for e in entries})
    have_d = sorted({e.dataset for e in entries})
    for what, want, have in (("checkpoint", want_c, have_c), ("dataset", want_d, have_d)):
        missing = [n for n in want if n not in have]
        if missing:
            raise EntryNotFoundError(
                f"no complete entries for {what} {', '.join(missing)} in store {store.url} "
                f"(it has: {', '.join(have)})")
    chosen = [e for e in entries if (not want_c or e.ckpt in want_c)
              and (not want_d or e.dataset in want_d)]
    if not chosen:
        pairs = ", ".join(f"{e.ckpt}/{e.dataset}" for e in entries)
        raise EntryNotFoundError(
            f"no complete entry is both checkpoint {', '.join(want_c)} and dataset "
            f"{', '.join(want_d)} in store {store.url} (entries: {pairs})")
    return chosen


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
    """Every complete entry x solver (filtered by ``ckpts`` / ``datasets``).

    A damaged entry (a chunk that fails its checksum or is missing) does not stop the sweep:
    it becomes one ``failed`` outcome whose ``reason`` names the chunk, no row is written for
    it, its other solvers are not tried, and the rest of the store is still probed; the
    caller decides what failure means for its exit status.
    """
    from featurestore.errors import DamagedEntryError

    solvers = list(solvers)
    for s in solvers:
        _check_solver(s)
    out = []
    for e in select_entries(store, ckpts, datasets):
        for s in solvers:
            try:
                o = run_probe(store, e.ckpt, e.dataset, s, device=device, force=force)
            except DamagedEntryError as exc:
                o = ProbeOutcome(e.ckpt, e.dataset, s, FAILED, reason=str(exc))
            out.append(o)
            if on_result:
                on_result(o)
            if o.status == FAILED:
                break
    return out
