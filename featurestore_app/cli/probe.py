"""``featurestore probe | sweep | results``: linear probes on cached features and the
results table."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from featurestore.store import DEFAULT_URL
from featurestore_app.cli.common import DeviceOpt, ForceOpt, SchedulerOpt, StoreOpt, err, out


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
) -> None:
    """Fit one probe on a store entry (path on val, refit on train+val, score test)."""
    from featurestore.store import FeatureStore
    from probes.linear.sweep import run_probe
    from probes.subsets import per_class_subset, variant_string

    fs = FeatureStore(store)
    variant, index = "", None
    if examples_per_class is not None:
        _, y_train = fs.load(ckpt, dataset, "train")
        index = per_class_subset(y_train, examples_per_class, subset_seed)
        variant = variant_string(examples_per_class, subset_seed)
    o = run_probe(fs, ckpt, dataset, solver, device=device, force=force, variant=variant,
                  train_index=index)
    _print_outcomes([o])


def _print_outcomes(outcomes: list) -> None:
    t = Table(title="probes")
    for c in ("checkpoint", "dataset", "solver", "status", "metric", "test", "seconds"):
        t.add_column(c)
    for o in outcomes:
        t.add_row(o.ckpt, o.dataset, o.solver, o.status, o.metric or "-",
                  f"{100 * o.test_metric:.2f}%" if o.test_metric is not None else "-",
                  f"{o.seconds:.1f}")
    out.print(t)


def sweep(
    ckpt: Annotated[list[str] | None, typer.Option("--ckpt")] = None,
    dataset: Annotated[list[str] | None, typer.Option("--dataset")] = None,
    solver: Annotated[list[str] | None, typer.Option("--solver")] = None,
    store: StoreOpt = DEFAULT_URL,
    device: DeviceOpt = "auto",
    force: ForceOpt = False,
    scheduler: SchedulerOpt = None,
) -> None:
    """Probe every complete entry x solver; results append to the store's table."""
    from featurestore.checkpoints import expand_checkpoints
    from featurestore.datasets import expand_datasets
    from featurestore.store import FeatureStore
    from probes.linear.sweep import sweep as run_sweep

    ckpts = expand_checkpoints(ckpt) if ckpt else None
    datasets = expand_datasets(dataset) if dataset else None

    def report(o: Any) -> None:
        err.print(f"{o.ckpt}/{o.dataset}/{o.solver}: {o.status}", markup=False, highlight=False)

    if scheduler:
        from featurestore_app.distributed import dask_client, sweep_distributed

        with dask_client(scheduler) as client:
            outcomes = sweep_distributed(client, store, ckpts, datasets, solver or ["logreg"],
                                         device=device, force=force, on_result=report)
    else:
        outcomes = run_sweep(FeatureStore(store), ckpts, datasets, solver or ["logreg"],
                             device=device, force=force, on_result=report)
    _print_outcomes(outcomes)


def results(
    store: StoreOpt = DEFAULT_URL,
    as_json: Annotated[bool, typer.Option("--json")] = False,
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
    t = Table(title=f"{store}: {len(df)} results")
    for c in ("checkpoint", "dataset", "setting", "variant", "metric", "test", "hyperparameters",
              "n_train"):
        t.add_column(c)
    for _, r in df.iterrows():
        hp = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in (r.get("hyperparams") or {}).items())
        t.add_row(r["ckpt"], r["dataset"], r["setting"], r.get("variant") or "", r["metric"],
                  f"{100 * r['test_metric']:.2f}%", hp, str(r.get("n_train", "")))
    out.print(t)


