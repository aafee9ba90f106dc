"""``featurestore extract | ls | ckpts | datasets``: the data layer's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from featurestore.errors import FeatureStoreError
from featurestore.store import DEFAULT_URL
from featurestore_app.cli.common import (
    DeviceOpt,
    ForceOpt,
    JsonOpt,
    NoProgressOpt,
    QuietOpt,
    SchedulerOpt,
    StoreOpt,
    error_line,
    os_error_message,
    out,
    print_json,
    show_progress,
)
from featurestore_app.console import entries_table, new_table, print_table

#: Terminal width from which ``ckpts`` shows its notes in a column rather than after the table.
_NOTES_INLINE_WIDTH = 110


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
    workers: Annotated[
        int | None, typer.Option("--workers", min=0, help="DataLoader workers (0: decode inline).")
    ] = None,
    max_pixels: Annotated[
        int | None,
        typer.Option("--max-pixels", min=1,
                     help="Refuse images with more pixels (decompression-bomb guard; "
                          "default Pillow's 89,478,485)."),
    ] = None,
    force: ForceOpt = False,
    with_logits: Annotated[
        bool, typer.Option("--with-logits",
                           help="Also store the checkpoint's ImageNet logits (LEEP/NCE in rank).")
    ] = False,
    repair: Annotated[
        bool, typer.Option("--repair", help="Check every chunk of complete entries and recompute "
                                            "only the damaged or missing ones.")
    ] = False,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for a busy entry.")] = 0.0,
    allow_missing: Annotated[
        bool, typer.Option("--allow-missing", help="Skip (and record) images absent on disk.")
    ] = False,
    download: Annotated[bool, typer.Option("--download", help="Download where possible.")] = False,
    name: Annotated[
        str | None,
        typer.Option("--name", help="imagefolder only: store this tree under NAME instead of "
                                    "'imagefolder' (one name per tree; later commands take "
                                    "--dataset NAME)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random weights / splits.")] = 0,
    quiet: QuietOpt = False,
    no_progress: NoProgressOpt = False,
    scheduler: SchedulerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cache penultimate-layer features of every checkpoint x dataset into the store."""
    if scheduler:  # before any work: a missing extra is one line naming the pip install
        from featurestore.extras import require_extra

        require_extra("distributed", "featurestore extract --scheduler")
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
    if name is not None:
        from featurestore.datasets import REGISTRY
        from featurestore.datasets.imagefolder import ImageFolder

        if len(datasets) != 1 or not isinstance(datasets[0], ImageFolder):
            raise FeatureStoreError("--name names one imagefolder tree: use it with "
                                    "--dataset imagefolder alone")
        if scheduler:
            raise FeatureStoreError("--name is not supported with --scheduler; run without it")
        datasets[0].named(name, registered=REGISTRY)
    # Everything a user can get wrong fails here, as one line, before a store is created.
    from featurestore.datasets.base import set_max_pixels
    from featurestore.device import resolve_device
    from featurestore.extract import check_splits

    resolve_device(device)
    if max_pixels is not None:
        set_max_pixels(max_pixels)
    for d in datasets:
        check_splits(d)
    fs = FeatureStore(store)
    progress = show_progress(quiet or no_progress)
    reports, failures = [], []
    if scheduler and repair:
        raise FeatureStoreError("--repair is not supported with --scheduler; run without it")
    if scheduler and with_logits:
        raise FeatureStoreError("--with-logits is not supported with --scheduler; run without it")
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
        todo = [d for d in datasets if force or not fs.has_complete(info.name, d.name)
                or (with_logits and not fs.has_logits(info.name, d.name))]
        loaded = load_checkpoint(info.name, weights, seed=seed) if todo else None
        for d in datasets:
            try:
                r = extract_entry(fs, loaded or info.name, d, weights=weights,
                                  batch_size=batch_size, device=device, num_workers=workers,
                                  force=force, wait=wait, progress=progress, seed=seed,
                                  with_logits=with_logits, repair=repair)
                reports.append(r)
            except FeatureStoreError as e:
                failures.append((info.name, d.name, str(e)))
                error_line(f"{info.name}/{d.name}: {e}")
            except OSError as e:  # disk full, read-only file system: the next entry fails too
                from featurestore.errors import StoreLocationError

                where = fs.local_root or store
                raise StoreLocationError(
                    f"writing {info.name}/{d.name} to store {where}: {os_error_message(e)}"
                ) from e
    if as_json:
        print_json({"store": store, "entries": [
            *({"ckpt": r.ckpt, "dataset": r.dataset, "status": r.status,
               "images": r.n_images, "seconds": r.seconds, "images_per_s": r.images_per_s}
              for r in reports),
            *({"ckpt": c, "dataset": d, "status": "failed", "error": why}
              for c, d, why in failures),
        ]})
    else:
        t = new_table(f"extract -> {store}")
        for c in ("checkpoint", "dataset", "status", "images", "seconds", "images/s"):
            t.add_column(c, justify="right" if c in ("images", "seconds", "images/s") else "left",
                         no_wrap=True)
        for r in reports:
            t.add_row(r.ckpt, r.dataset, r.status, str(r.n_images), f"{r.seconds:.1f}",
                      f"{r.images_per_s:.1f}")
        for c, d, _ in failures:
            t.add_row(c, d, "[red]failed[/red]", "-", "-", "-")
        print_table(out, t)
    if failures:
        raise typer.Exit(1)


def ls(
    store: StoreOpt = DEFAULT_URL,
    as_json: JsonOpt = False,
) -> None:
    """List every entry: checkpoint, dataset, splits, N, D, status, size on disk."""
    from featurestore.store import FeatureStore

    fs = FeatureStore(store, read_only=True)
    entries = fs.entries(include_incomplete=True, sizes=True)
    if as_json:
        print_json([e.as_dict() for e in entries])
        return
    print_table(out, entries_table(entries, title=f"{store}: {len(entries)} entries"))


def ckpts(as_json: JsonOpt = False) -> None:
    """Known checkpoints and presets, with their ImageNet metadata."""
    from featurestore.checkpoints import PRESETS, REGISTRY

    if as_json:
        print_json({"checkpoints": [i.as_dict() for i in REGISTRY.values()], "presets": PRESETS})
        return
    infos = list(REGISTRY.values())

    def notes(i: Any) -> str:
        arch = f"timm {i.arch}; " if i.arch and i.arch != i.name else ""
        text = escape(arch + i.notes)
        return text if i.available else f"[red]{text}[/red]"

    # The names are whole (print_table); the notes get a column only where the terminal leaves
    # them room to read, else they follow the table, one line per checkpoint.
    inline = not out.is_terminal or out.width >= _NOTES_INLINE_WIDTH
    t = new_table("checkpoints (any timm model name works too)")
    for c in ("name", "top-1", "input", "D"):
        t.add_column(c, no_wrap=True, justify="left" if c == "name" else "right")
    if inline:
        t.add_column("notes", overflow="fold")
    for i in infos:
        name = i.name if i.available else f"[red]{i.name}[/red]"
        top1 = f"{100 * i.imagenet_top1:.1f}%" if i.imagenet_top1 else "-"
        t.add_row(name, top1, str(i.input_size or "-"), str(i.feature_dim or "-"),
                  *([notes(i)] if inline else []))
    print_table(out, t)
    if not inline:
        out.print("notes (red: not available):")
        for i in infos:
            out.print(f"  {i.name}: {notes(i)}", highlight=False)
    for name, members in PRESETS.items():
        out.print(f"preset [bold]{name}[/bold]: {', '.join(members)}", highlight=False)


def datasets(as_json: JsonOpt = False) -> None:
    """Known datasets: metric, multi-label, split rule."""
    from featurestore.datasets import PRESETS, REGISTRY

    if as_json:
        print_json({"datasets": [{"name": name, "metric": cls.metric,
                                  "multilabel": cls.multilabel, "split_rule": cls.split_rule}
                                 for name, cls in REGISTRY.items()], "presets": PRESETS})
        return
    t = new_table("datasets")
    for c in ("name", "metric", "multi-label"):
        t.add_column(c, no_wrap=True)
    t.add_column("split rule", overflow="fold")
    for name, cls in REGISTRY.items():
        t.add_row(name, cls.metric, "yes" if cls.multilabel else "no", escape(cls.split_rule))
    print_table(out, t)
    for name, members in PRESETS.items():
        out.print(f"preset [bold]{name}[/bold]: {', '.join(members)}", highlight=False)
