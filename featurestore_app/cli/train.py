"""``featurestore finetune`` and ``featurestore logreg-aug``: typer commands, wired in
:mod:`featurestore_app.cli` with::

    from featurestore_app.cli.train import finetune_command, logreg_aug_command
    app.command("finetune")(finetune_command)
    app.command("logreg-aug")(logreg_aug_command)

Both are plain functions with typed, annotated arguments, so library code and tests can call them
directly too; they return the :class:`probes.finetune.run.FinetuneOutcome`. Nothing heavy (torch, timm)
is imported until a command runs, so ``featurestore --help`` stays fast. Bad input raises
:class:`probes.finetune.config.FinetuneConfigError`, a ``ProbeInputError``, which the CLI's ``main``
turns into one ``error:`` line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from probes.finetune.config import FinetuneOutcome

DEFAULT_STORE = "./featurestore.zarr"  # featurestore.store.DEFAULT_URL, without importing zarr

StoreOpt = Annotated[str, typer.Option("--store", help="Store path or fsspec URL.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N]")]
DataRootOpt = Annotated[
    Path | None, typer.Option("--data-root", help="Folder the dataset archive unpacks to.")
]
StepsOpt = Annotated[
    int | None,
    typer.Option("--steps", help="Steps per run (default 20,000; logreg-aug 40,000; -k: A.5/A.6)."),
]
BatchOpt = Annotated[
    int | None, typer.Option("--batch-size", help="Batch size (default 256; 64/16 with -k).")
]
KOpt = Annotated[
    int | None,
    typer.Option("--examples-per-class", "-k",
                 help="Data-size study: train on K examples per class (same subset as logreg)."),
]
SubsetSeedOpt = Annotated[int, typer.Option("--subset-seed", help="Seed of the per-class subset.")]
EvalEveryOpt = Annotated[
    int | None,
    typer.Option("--eval-every", help="Validation interval in steps (default steps/10)."),
]
CkptEveryOpt = Annotated[
    int, typer.Option("--ckpt-every", help="Write a resumable checkpoint every N steps.")
]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", help="DataLoader workers (default: 0 on CPU).")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of data order, augmentation, init.")]
SizeOpt = Annotated[
    int | None,
    typer.Option("--image-size",
                 help="Override the checkpoint's input size (not the protocol; for quick runs)."),
]
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Append a new row even if one exists (reuses finished points)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


def _report(outcome: FinetuneOutcome) -> None:
    if outcome.status == "skipped":
        print(f"{outcome.ckpt}/{outcome.dataset} {outcome.setting} [{outcome.variant}]: already "
              "in the results table (use --force to add another row)", file=sys.stderr)
        return
    hp = outcome.row.get("hyperparams", {})
    print(
        f"{outcome.ckpt}/{outcome.dataset} {outcome.setting} [{outcome.variant}]: "
        f"test {outcome.metric} {100 * (outcome.test_metric or 0.0):.2f}% "
        f"(val {100 * (outcome.row.get('val_metric') or 0.0):.2f}%; "
        + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in hp.items())
        + f"; {outcome.seconds:.0f}s; result {outcome.result_id})",
        file=sys.stderr,
    )


def finetune_command(
    ckpt: Annotated[str, typer.Option("--ckpt", help="Checkpoint name.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset name.")],
    init: Annotated[
        str, typer.Option("--init", help="imagenet (fine-tune) | random (train from scratch).")
    ] = "imagenet",
    steps: StepsOpt = None,
    batch_size: BatchOpt = None,
    grid: Annotated[
        str,
        typer.Option("--grid", help="paper | quick | explicit points, e.g. "
                                    "'lr=0.01;0.1,wd_ratio=1e-5;0' (wd= for absolute decay)."),
    ] = "paper",
    store: StoreOpt = DEFAULT_STORE,
    device: DeviceOpt = "auto",
    data_root: DataRootOpt = None,
    weights: Annotated[
        str | None,
        typer.Option("--weights", help="ImageNet init from this state dict, not the default."),
    ] = None,
    examples_per_class: KOpt = None,
    subset_seed: SubsetSeedOpt = 0,
    eval_every: EvalEveryOpt = None,
    ckpt_every: CkptEveryOpt = 500,
    workers: WorkersOpt = None,
    seed: SeedOpt = 0,
    image_size: SizeOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> FinetuneOutcome:
    """Fine-tune from ImageNet weights or train from random init (grid on val, retrain on
    train+val, score test); resumable, results go to the store's table."""
    from probes.finetune.run import FinetuneConfig, run_finetune, setting_for_init

    config = FinetuneConfig(
        setting=setting_for_init(init), grid=grid, steps=steps, batch_size=batch_size,
        eval_every=eval_every, ckpt_every=ckpt_every, seed=seed,
        examples_per_class=examples_per_class, subset_seed=subset_seed, image_size=image_size,
        weights=weights, device=device, num_workers=workers, progress=not quiet, force=force,
    )
    outcome = run_finetune(ckpt, dataset, config, store=store, data_root=data_root)
    _report(outcome)
    return outcome


def logreg_aug_command(
    ckpt: Annotated[str, typer.Option("--ckpt", help="Checkpoint name.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset name.")],
    steps: StepsOpt = None,
    batch_size: BatchOpt = None,
    grid: Annotated[
        str, typer.Option("--grid", help="paper | quick | explicit, e.g. 'l2=1e-6;1e-4'.")
    ] = "paper",
    store: StoreOpt = DEFAULT_STORE,
    device: DeviceOpt = "auto",
    data_root: DataRootOpt = None,
    weights: Annotated[
        str | None, typer.Option("--weights", help="Backbone weights file instead of the default.")
    ] = None,
    examples_per_class: KOpt = None,
    subset_seed: SubsetSeedOpt = 0,
    eval_every: EvalEveryOpt = None,
    ckpt_every: CkptEveryOpt = 500,
    workers: WorkersOpt = None,
    seed: SeedOpt = 0,
    image_size: SizeOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
) -> FinetuneOutcome:
    """Logistic regression with data augmentation (Appendix G.2): frozen backbone, last layer
    trained 40,000 steps at lr 0.1 (cosine), L2 on the mean loss chosen on val."""
    from probes.finetune.run import FinetuneConfig, run_finetune

    config = FinetuneConfig(
        setting="logreg_aug", grid=grid, steps=steps, batch_size=batch_size,
        eval_every=eval_every, ckpt_every=ckpt_every, seed=seed,
        examples_per_class=examples_per_class, subset_seed=subset_seed, image_size=image_size,
        weights=weights, device=device, num_workers=workers, progress=not quiet, force=force,
    )
    outcome = run_finetune(ckpt, dataset, config, store=store, data_root=data_root)
    _report(outcome)
    return outcome
