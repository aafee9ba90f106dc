"""``featurestore finetune`` and ``featurestore logreg-aug``: typer commands, wired in
:mod:`featurestore_app.cli` with::

    from featurestore_app.cli.train import finetune_command, logreg_aug_command
    app.command("finetune")(finetune_command)
    app.command("logreg-aug")(logreg_aug_command)

Both are plain functions with typed, annotated arguments, so library code and tests can call them
directly too; they return the :class:`probes.finetune.run.FinetuneOutcome`. Nothing heavy
(torch, timm) is imported until a command runs, so ``featurestore --help`` stays fast. Bad input
raises :class:`probes.finetune.config.FinetuneConfigError`, a ``ProbeInputError``, which the
CLI's ``main`` turns into one ``error:`` line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from featurestore_app.cli.common import (
    JsonOpt,
    QuietOpt,
    SchedulerOpt,
    print_json,
    show_progress,
)
from probes.finetune.config import SMOKE, SMOKE_GRID, FinetuneOutcome

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
StepBudgetsOpt = Annotated[
    str | None,
    typer.Option("--steps",
                 help="Steps per run (default 20,000; -k: A.5/A.6). A comma-separated list "
                      "(1000,2500,5000,10000) runs one independent job per budget (Figure 8)."),
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
SubsetSeedsOpt = Annotated[
    str | None,
    typer.Option("--subset-seeds", metavar="S1,S2,...",
                 help="With -k: one job per seeded subset (e.g. 0,1,2, the paper's three; "
                      "Figure 9's error bars are the standard error over them)."),
]
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
SmokeOpt = Annotated[
    bool,
    typer.Option("--smoke",
                 help=f"Smoke test: the smallest run that exercises the whole job ("
                      f"{SMOKE['steps']} steps, batch {SMOKE['batch_size']}, "
                      f"{SMOKE['image_size']} px, one grid point); its own variant, so it never "
                      "shadows a real row. Explicit options still win."),
]


def _smoke(setting: str, steps: object, batch_size: int | None, image_size: int | None,
           grid: str) -> tuple[object, int | None, int | None, str]:
    """``--smoke``'s values for the options the user left at their defaults."""
    return (str(SMOKE["steps"]) if steps is None else steps,
            SMOKE["batch_size"] if batch_size is None else batch_size,
            SMOKE["image_size"] if image_size is None else image_size,
            SMOKE_GRID[setting] if grid == "paper" else grid)


def _outcome_json(outcomes: list[FinetuneOutcome]) -> None:
    print_json([{"ckpt": o.ckpt, "dataset": o.dataset, "setting": o.setting,
                 "variant": o.variant, "status": o.status, "metric": o.metric,
                 "test_metric": o.test_metric, "result_id": o.result_id, "seconds": o.seconds,
                 "hyperparams": o.row.get("hyperparams", {})} for o in outcomes])


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
    steps: StepBudgetsOpt = None,
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
    subset_seeds: SubsetSeedsOpt = None,
    eval_every: EvalEveryOpt = None,
    ckpt_every: CkptEveryOpt = 500,
    workers: WorkersOpt = None,
    seed: SeedOpt = 0,
    image_size: SizeOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    smoke: SmokeOpt = False,
    as_json: JsonOpt = False,
    scheduler: SchedulerOpt = None,
) -> FinetuneOutcome:
    """Fine-tune from ImageNet weights or train from random init (grid on val, retrain on
    train+val, score test); resumable, results go to the store's table. Try `--smoke` first.

    ``--steps A,B,...`` runs one independent job per budget (each its own grid search and
    train+val run, as in Figure 8), recorded as one family; the last outcome is returned.
    ``--scheduler`` makes every grid point of every budget a task on a dask cluster."""
    if scheduler:  # before any work: a missing extra is one line naming the pip install
        from featurestore.extras import require_extra

        require_extra("distributed", "featurestore finetune --scheduler")
    from probes.finetune.config import parse_step_budgets, step_budget_family
    from probes.finetune.run import FinetuneConfig, run_finetune, setting_for_init

    if smoke:
        steps, batch_size, image_size, grid = _smoke(  # type: ignore[assignment]
            setting_for_init(init), steps, batch_size, image_size, grid)
    budgets: list[int | None] = [None] if steps is None else list(parse_step_budgets(steps))
    family = step_budget_family(budgets) if len(budgets) > 1 else None  # type: ignore[arg-type]
    outcomes: list[FinetuneOutcome] = []
    configs = []
    seeds = [subset_seed]
    if subset_seeds is not None:
        from probes.subsets import parse_subset_seeds

        if examples_per_class is None:
            raise typer.BadParameter("needs --examples-per-class/-k",
                                     param_hint="--subset-seeds")
        seeds = parse_subset_seeds(subset_seeds)
    for budget in budgets:
        for s in seeds:
            configs.append(FinetuneConfig(
                setting=setting_for_init(init), grid=grid, steps=budget, batch_size=batch_size,
                eval_every=eval_every, ckpt_every=ckpt_every, seed=seed,
                examples_per_class=examples_per_class, subset_seed=s,
                image_size=image_size, weights=weights, device=device, num_workers=workers,
                progress=show_progress(quiet), force=force, family=family,
            ))
    if scheduler:
        from featurestore_app.distributed import finetune_distributed, training_client

        for config in configs:
            config.progress = False  # workers' bars would interleave
        with training_client(scheduler) as client:
            outcomes = finetune_distributed(
                client, store, [(ckpt, dataset, c) for c in configs],
                None if data_root is None else str(data_root))
        for outcome in outcomes:
            _report(outcome)
    else:
        for config in configs:
            outcome = run_finetune(ckpt, dataset, config, store=store, data_root=data_root)
            _report(outcome)
            outcomes.append(outcome)
    outcome = outcomes[-1] if outcomes else None
    assert outcome is not None
    if as_json:
        _outcome_json(outcomes)
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
    smoke: SmokeOpt = False,
    as_json: JsonOpt = False,
) -> FinetuneOutcome:
    """Logistic regression with data augmentation (Appendix G.2): frozen backbone, last layer
    trained 40,000 steps at lr 0.1 (cosine), L2 on the mean loss chosen on val."""
    from probes.finetune.run import FinetuneConfig, run_finetune

    if smoke:
        smoke_steps, batch_size, image_size, grid = _smoke("logreg_aug", steps, batch_size,
                                                           image_size, grid)
        steps = int(smoke_steps)  # type: ignore[call-overload]
    config = FinetuneConfig(
        setting="logreg_aug", grid=grid, steps=steps, batch_size=batch_size,
        eval_every=eval_every, ckpt_every=ckpt_every, seed=seed,
        examples_per_class=examples_per_class, subset_seed=subset_seed, image_size=image_size,
        weights=weights, device=device, num_workers=workers, progress=show_progress(quiet),
        force=force,
    )
    outcome = run_finetune(ckpt, dataset, config, store=store, data_root=data_root)
    _report(outcome)
    if as_json:
        _outcome_json([outcome])
    return outcome
