"""``featurestore extract | ls | ckpts | datasets``: the data layer's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from featurestore.errors import FeatureStoreError
from featurestore.store import DEFAULT_URL
from featurestore_app.cli.common import (
    DeviceOpt,
    ForceOpt,
    SchedulerOpt,
    StoreOpt,
    error_line,
    out,
)
from featurestore_app.console import entries_table


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
        from featurestore_app.distributed import dask_client, extract_distributed

        with dask_client(scheduler) as client:
            done = extract_distributed(
                client, store, [i.name for i in infos], [d.name for d in datasets],
                str(data_root) if data_root else None, weights=weights, batch_size=batch_size,
                device=device, force=force, wait=wait, seed=seed, allow_missing=allow_missing,
            )
        for r in done:
            if isinstance(r, str):
                failures.append(tuple(r.split(": ", 1)[0].split("/", 1)) + (r,))
                error_line(r)
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
                error_line(f"{info.name}/{d.name}: {e}")
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
    out.print(entries_table(entries, title=f"{store}: {len(entries)} entries"))


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


