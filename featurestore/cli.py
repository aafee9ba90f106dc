"""The ``featurestore`` command line.

Library errors (``FeatureStoreError``, ``ProbeInputError``) become one ``error: ...`` line on stderr
and exit status 1; usage errors exit 2 (click's convention).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from featurestore.errors import FeatureStoreError
from featurestore.store import DEFAULT_URL

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Cache penultimate-layer features of ImageNet checkpoints and probe their transfer.",
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

StoreOpt = Annotated[str, typer.Option("--store", help="Store path or fsspec URL.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N]")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Recompute even if already done.")]
SchedulerOpt = Annotated[
    str | None,
    typer.Option("--scheduler", help="dask.distributed scheduler address, or 'local'."),
]


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@app.command()
def extract(
    ckpt: Annotated[list[str], typer.Option("--ckpt", help="Checkpoint name or preset (repeat).")],
    dataset: Annotated[list[str], typer.Option("--dataset", help="Dataset name or preset.")],
    store: StoreOpt = DEFAULT_URL,
    data_root: Annotated[
        Path | None, typer.Option("--data-root", help="Folder the dataset archive unpacks to.")
    ] = None,
    weights: Annotated[
        str | None, typer.Option("--weights", help="'random', or a state dict/.safetensors path.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    device: DeviceOpt = "auto",
    workers: Annotated[int | None, typer.Option("--workers", help="DataLoader workers.")] = None,
    force: ForceOpt = False,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for a busy entry.")] = 0.0,
    allow_missing: Annotated[
        bool, typer.Option("--allow-missing", help="Skip (and record) images absent on disk.")
    ] = False,
    download: Annotated[bool, typer.Option("--download", help="Download where possible.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random weights / splits.")] = 0,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    scheduler: SchedulerOpt = None,
) -> None:
    """Cache penultimate-layer features of every checkpoint x dataset into the store."""
    from featurestore.checkpoints import expand_checkpoints, load_checkpoint, resolve
    from featurestore.datasets import expand_datasets, get_dataset
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore

    ckpts = expand_checkpoints(ckpt)
    infos = [resolve(c) for c in ckpts]  # unknown names fail here, before any work
    datasets = [
        get_dataset(d, data_root, allow_missing=allow_missing, download=download, seed=seed)
        for d in expand_datasets(dataset)
    ]
    fs = FeatureStore(store)
    reports, failures = [], []
    if scheduler:
        from featurestore.distributed import dask_client, extract_distributed

        with dask_client(scheduler) as client:
            done = extract_distributed(
                client, store, [i.name for i in infos], [d.name for d in datasets],
                str(data_root) if data_root else None, weights=weights, batch_size=batch_size,
                device=device, force=force, wait=wait, seed=seed, allow_missing=allow_missing,
            )
        for r in done:
            if isinstance(r, str):
                failures.append(tuple(r.split(": ", 1)[0].split("/", 1)) + (r,))
                err.print(f"error: {r}", markup=False, highlight=False)
            else:
                reports.append(r)
        infos = []  # all done on the cluster
    for info in infos:
        todo = [d for d in datasets if force or not fs.has_complete(info.name, d.name)]
        loaded = load_checkpoint(info.name, weights, seed=seed) if todo else None
        for d in datasets:
            try:
                r = extract_entry(fs, loaded or info.name, d, weights=weights,
                                  batch_size=batch_size, device=device, num_workers=workers,
                                  force=force, wait=wait, progress=progress, seed=seed)
                reports.append(r)
            except FeatureStoreError as e:
                failures.append((info.name, d.name, str(e)))
                err.print(f"error: {info.name}/{d.name}: {e}", markup=False, highlight=False)
    t = Table(title=f"extract -> {store}")
    for c in ("checkpoint", "dataset", "status", "images", "seconds", "images/s"):
        t.add_column(c, justify="right" if c in ("images", "seconds", "images/s") else "left")
    for r in reports:
        t.add_row(r.ckpt, r.dataset, r.status, str(r.n_images), f"{r.seconds:.1f}",
                  f"{r.images_per_s:.1f}")
    for c, d, _ in failures:
        t.add_row(c, d, "[red]failed[/red]", "-", "-", "-")
    out.print(t)
    if failures:
        raise typer.Exit(1)


@app.command("ls")
def ls(
    store: StoreOpt = DEFAULT_URL,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List every entry: checkpoint, dataset, splits, N, D, status, size on disk."""
    from featurestore.store import FeatureStore

    fs = FeatureStore(store, read_only=True)
    entries = fs.entries(include_incomplete=True, sizes=True)
    if as_json:
        out.print_json(json.dumps([e.as_dict() for e in entries]))
        return
    t = Table(title=f"{store}: {len(entries)} entries")
    # names are kept whole where the terminal allows (a checkpoint cut to "efficientnet_l" is
    # useless) and folded, never truncated, where it does not; one split per line keeps the
    # table within 80 columns
    name_width = min(40, max((len(e.ckpt) for e in entries), default=10))
    for c in ("checkpoint", "dataset", "splits", "N", "D", "status", "size"):
        t.add_column(c, justify="right" if c in ("N", "D", "size") else "left", overflow="fold",
                     min_width=name_width if c == "checkpoint" else None)
    for e in entries:
        splits = "\n".join(f"{k}={v}" for k, v in e.splits.items())
        status = e.status if e.complete else f"[yellow]{e.status}[/yellow]"
        t.add_row(e.ckpt, e.dataset, splits, str(sum(e.splits.values())), str(e.feature_dim),
                  status, _human(e.nbytes))
    out.print(t)


@app.command()
def ckpts(
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Known checkpoints and presets, with their ImageNet metadata."""
    from featurestore.checkpoints import PRESETS, REGISTRY

    if as_json:
        out.print_json(json.dumps({"checkpoints": [i.as_dict() for i in REGISTRY.values()],
                                   "presets": PRESETS}))
        return
    t = Table(title="checkpoints (any timm model name works too)")
    for c in ("name", "timm arch", "ImageNet top-1", "input", "features", "available", "notes"):
        t.add_column(c)
    for i in REGISTRY.values():
        top1 = f"{100 * i.imagenet_top1:.1f}%" if i.imagenet_top1 else "-"
        t.add_row(i.name, i.arch, top1, str(i.input_size or "-"), str(i.feature_dim or "-"),
                  "yes" if i.available else "[red]no[/red]", escape(i.notes))
    out.print(t)
    for name, members in PRESETS.items():
        out.print(f"preset [bold]{name}[/bold]: {', '.join(members)}")


@app.command()
def datasets() -> None:
    """Known datasets: metric, multi-label, split rule."""
    from featurestore.datasets import PRESETS, REGISTRY

    t = Table(title="datasets")
    for c in ("name", "metric", "multi-label", "split rule"):
        t.add_column(c)
    for name, cls in REGISTRY.items():
        t.add_row(name, cls.metric, "yes" if cls.multilabel else "no", escape(cls.split_rule))
    out.print(t)
    for name, members in PRESETS.items():
        out.print(f"preset [bold]{name}[/bold]: {', '.join(members)}")


@app.command()
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
    from probes.subsets import per_class_subset, variant_string
    from probes.sweep import run_probe

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


@app.command()
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
    from probes.sweep import sweep as run_sweep

    ckpts = expand_checkpoints(ckpt) if ckpt else None
    datasets = expand_datasets(dataset) if dataset else None

    def report(o: Any) -> None:
        err.print(f"{o.ckpt}/{o.dataset}/{o.solver}: {o.status}", markup=False, highlight=False)

    if scheduler:
        from featurestore.distributed import dask_client, sweep_distributed

        with dask_client(scheduler) as client:
            outcomes = sweep_distributed(client, store, ckpts, datasets, solver or ["logreg"],
                                         device=device, force=force, on_result=report)
    else:
        outcomes = run_sweep(FeatureStore(store), ckpts, datasets, solver or ["logreg"],
                             device=device, force=force, on_result=report)
    _print_outcomes(outcomes)


@app.command()
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


@app.command()
def demo(
    store: StoreOpt = DEFAULT_URL,
    device: DeviceOpt = "auto",
    report_dir: Annotated[Path, typer.Option("--report-dir")] = Path("reports"),
) -> None:
    """The main job on the embedded default: EfficientNet-Lite0/1/2 on scikit-learn's digits."""
    from featurestore.demo import run_demo

    run_demo(store, device=device, report_dir=report_dir, console=out)


@app.command("report")
def report_cmd(
    store: StoreOpt = DEFAULT_URL,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the HTML pages.")] = Path(
        "reports"
    ),
    timeout: Annotated[int, typer.Option("--timeout", help="Seconds per notebook cell.")] = 600,
) -> None:
    """Run the analysis notebooks against the store and write standalone offline HTML."""
    from featurestore.report import report

    paths = report(store, out_dir, timeout=timeout)
    out.print(f"report: {paths[0].resolve()} ({len(paths) - 1} notebooks)")


@app.command()
def serve(
    store: StoreOpt = DEFAULT_URL,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
) -> None:
    """Share the store over HTTP (read-only): catalog, results, arrays, raw Zarr objects."""
    from featurestore.service import serve as run

    run(store, host=host, port=port)


def _register_training_commands() -> None:
    """Fine-tune / from-scratch / logreg-with-augmentation jobs live in probes (no torch here)."""
    from probes.finetune_cli import finetune_command, logreg_aug_command

    app.command("finetune")(finetune_command)
    app.command("logreg-aug")(logreg_aug_command)


_register_training_commands()


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one clear line and a non-zero status for every library error."""
    from probes.errors import ProbeInputError

    try:
        # Non-standalone click returns the exit code of typer.Exit instead of raising it.
        rc = app(args=argv, standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except (FeatureStoreError, ProbeInputError) as e:
        err.print(f"error: {e}", markup=False, highlight=False)
        return 1
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
