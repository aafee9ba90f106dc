"""``featurestore probe | sweep | results``: linear probes on cached features and the
results table."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from featurestore.store import DEFAULT_URL
from featurestore_app.cli.common import (
    DeviceOpt,
    ForceOpt,
    JsonOpt,
    QuietOpt,
    SchedulerOpt,
    StoreOpt,
    err,
    out,
    print_json,
    require_writable,
)
from featurestore_app.console import new_table, print_table


def probe(
    ckpt: Annotated[str, typer.Option("--ckpt")],
    dataset: Annotated[str, typer.Option("--dataset")],
    solver: Annotated[str, typer.Option("--solver", help="logreg | svm")] = "logreg",
    store: StoreOpt = DEFAULT_URL,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
    examples_per_class: Annotated[
        int | None,
        typer.Option("--examples-per-class", "-k",
                     help="Data-size study: K train examples per class (same subset as finetune)."),
    ] = None,
    subset_seed: Annotated[int, typer.Option("--subset-seed")] = 0,
    subset_seeds: Annotated[str | None, typer.Option(
        "--subset-seeds", metavar="S1,S2,...",
        help="With -k: one probe per seeded subset (e.g. 0,1,2, the paper's three; Figure 9's "
             "error bars are the standard error over them). Replaces --subset-seed.")] = None,
    exclude_duplicates: Annotated[str | None, typer.Option(
        "--exclude-duplicates", metavar="PAIRS.csv",
        help="Score on the test set without the test images this `featurestore duplicates` "
             "file names (Appendix H); the row's variant is dedup=<sha>,excluded=<n>.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit one probe on a store entry (path on val, refit on train+val, score test)."""
    from featurestore.device import resolve_device
    from featurestore.results import Subset
    from featurestore.store import FeatureStore
    from probes.linear.sweep import run_probe
    from probes.subsets import per_class_subset

    resolve_device(device)  # a missing GPU fails now, as one line, before any work
    fs = FeatureStore(store, create=False)  # a mistyped --store is an error, never a new store
    require_writable(fs)  # before the protocol runs, not when its result is written
    subset, index = None, None
    if subset_seeds is not None and (examples_per_class is None or exclude_duplicates):
        raise typer.BadParameter("needs --examples-per-class/-k and no --exclude-duplicates",
                                 param_hint="--subset-seeds")
    if examples_per_class is not None and subset_seeds is not None:
        from probes.subsets import parse_subset_seeds

        seeds = parse_subset_seeds(subset_seeds)
        _, y_train = fs.load(ckpt, dataset, "train")
        outcomes = [run_probe(fs, ckpt, dataset, solver, device=device, force=force,
                              train_index=per_class_subset(y_train, examples_per_class, s),
                              subset=Subset(examples_per_class, s)) for s in seeds]
        for o in outcomes:
            _report(o)
        _print_outcomes(outcomes, as_json)
        return
    if examples_per_class is not None:
        _, y_train = fs.load(ckpt, dataset, "train")
        index = per_class_subset(y_train, examples_per_class, subset_seed)
        subset = Subset(examples_per_class, subset_seed)
    dedup = {}
    if exclude_duplicates is not None:
        from pathlib import Path

        from probes.analysis.duplicates import deduplicate_test

        if subset is not None:
            raise typer.BadParameter("not combined with --examples-per-class",
                                     param_hint="--exclude-duplicates")
        ex = deduplicate_test(Path(exclude_duplicates), dataset, fs.load_ids(ckpt, dataset, "test"))
        dedup = {"variant": ex.variant, "test_index": ex.index,
                 "extra": ex.extra(Path(exclude_duplicates))}
    o = run_probe(fs, ckpt, dataset, solver, device=device, force=force, train_index=index,
                  subset=subset, **dedup)
    _report(o)
    _print_outcomes([o], as_json)


def _report(o: Any) -> None:
    """One stderr line per outcome that needs a word: why it was skipped, or a best value at
    the edge of its grid (the optimum may lie beyond; the row carries ``grid_edge``)."""
    if o.status == "skipped":
        err.print(f"{o.ckpt}/{o.dataset}/{o.solver}: skipped: {o.reason}",
                  markup=False, highlight=False)
    elif o.status == "failed":  # a sweep's damaged entry: its reason names the entry and chunk
        err.print(f"error: {o.reason}", markup=False, highlight=False)
    elif o.grid_edge:
        end = "smallest" if o.grid_edge == "low" else "largest"
        err.print(f"warning: {o.ckpt}/{o.dataset}/{o.solver}: best {o.param_name}="
                  f"{o.best_param:g} is the {end} value of its grid; the optimum may lie "
                  "beyond it (result row flagged grid_edge)", markup=False, highlight=False)


def _outcome_record(o: Any) -> dict[str, Any]:
    return {"ckpt": o.ckpt, "dataset": o.dataset, "solver": o.solver, "status": o.status,
            "reason": o.reason or None, "metric": o.metric, "test_metric": o.test_metric,
            "param_name": o.param_name, "best_param": o.best_param, "grid_edge": o.grid_edge,
            "result_id": o.result_id, "seconds": o.seconds}


def _print_outcomes(outcomes: list, as_json: bool = False) -> None:
    if as_json:
        print_json([_outcome_record(o) for o in outcomes])
        return
    t = new_table("probes")
    for c in ("checkpoint", "dataset", "solver", "status", "metric", "test", "best", "seconds"):
        t.add_column(c, no_wrap=True,
                     justify="right" if c in ("test", "best", "seconds") else "left")
    for o in outcomes:
        best = "-"
        if o.best_param is not None:
            best = f"{o.param_name}={o.best_param:.3g}" + (" (grid edge)" if o.grid_edge else "")
        t.add_row(o.ckpt, o.dataset, o.solver, o.status, o.metric or "-",
                  f"{100 * o.test_metric:.2f}%" if o.test_metric is not None else "-",
                  best, f"{o.seconds:.1f}")
    print_table(out, t)


def sweep(
    ckpt: Annotated[list[str] | None, typer.Option("--ckpt")] = None,
    dataset: Annotated[list[str] | None, typer.Option("--dataset")] = None,
    solver: Annotated[list[str] | None, typer.Option("--solver")] = None,
    store: StoreOpt = DEFAULT_URL,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
    scheduler: SchedulerOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Probe every complete entry x solver; results append to the store's table."""
    if scheduler:  # before any work: a missing extra is one line naming the pip install
        from featurestore.extras import require_extra

        require_extra("distributed", "featurestore sweep --scheduler")
    from featurestore.checkpoints import expand_checkpoints
    from featurestore.datasets import expand_datasets
    from featurestore.store import FeatureStore
    from probes.linear.sweep import select_entries
    from probes.linear.sweep import sweep as run_sweep

    ckpts = expand_checkpoints(ckpt) if ckpt else None
    datasets = expand_datasets(dataset) if dataset else None

    def report(o: Any) -> None:
        if not quiet and o.status not in ("skipped", "failed"):
            err.print(f"{o.ckpt}/{o.dataset}/{o.solver}: {o.status}", markup=False,
                      highlight=False)
        _report(o)  # skip reasons and grid-edge warnings print even with --quiet

    if scheduler:
        from featurestore_app.distributed import dask_client, sweep_distributed

        # names that match nothing fail here, naming what exists, before a cluster starts
        select_entries(FeatureStore(store, read_only=True, create=False), ckpts, datasets)
        with dask_client(scheduler) as client:
            outcomes = sweep_distributed(client, store, ckpts, datasets, solver or ["logreg"],
                                         device=device, force=force, on_result=report)
    else:
        from featurestore.device import resolve_device

        resolve_device(device)
        fs = FeatureStore(store, create=False)
        require_writable(fs)
        outcomes = run_sweep(fs, ckpts, datasets, solver or ["logreg"],
                             device=device, force=force, on_result=report)
    _print_outcomes(outcomes, as_json)
    if any(o.status == "failed" for o in outcomes):  # the others are probed and recorded
        raise typer.Exit(1)


def results(
    store: StoreOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv")] = False,
) -> None:
    """Print the results table (probes, fine-tuning, from scratch)."""
    from featurestore.results import ResultsTable
    from featurestore.store import FeatureStore

    df = FeatureStore(store, read_only=True).results.frame()
    if as_json:
        sys.stdout.write(df.to_json(orient="records") + "\n")
        return
    if as_csv:
        sys.stdout.write(ResultsTable.to_csv_frame(df).to_csv(index=False))
        return
    t = new_table(f"{store}: {len(df)} results")
    for c in ("checkpoint", "dataset", "setting", "variant", "metric", "test"):
        t.add_column(c, no_wrap=True, justify="right" if c == "test" else "left")
    t.add_column("hyperparameters", overflow="fold")
    t.add_column("n_train", no_wrap=True, justify="right")
    for _, r in df.iterrows():
        hp = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in (r.get("hyperparams") or {}).items())
        edge = r.get("grid_edge")
        if isinstance(edge, str) and edge:
            hp += f" [yellow](grid edge: {edge})[/yellow]"
        n_train = r.get("n_train")
        t.add_row(r["ckpt"], r["dataset"], r["setting"], r.get("variant") or "", r["metric"],
                  f"{100 * r['test_metric']:.2f}%", hp,
                  "" if n_train is None or n_train != n_train else str(int(n_train)))
    print_table(out, t)
