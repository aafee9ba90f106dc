"""Fine-tuning, training from random initialisation, and logistic regression with augmentation.

The paper's three image-level settings (Sections 4.2-4.7, Appendix A.5, A.6, G.2), one entry point:

>>> from probes.finetune.run import FinetuneConfig, run_finetune
>>> run_finetune("efficientnet_lite0", "digits", FinetuneConfig(setting="finetune"))

Protocol (``setting``; results-table setting in brackets):

* ``finetune`` [finetune]: ImageNet weights, every layer trained; grid of 7 learning rates
  1e-4..1e-1 x (7 weight-decay/lr ratios 1e-6..1e-3 + no decay).
* ``scratch`` [scratch]: the same architecture from a seeded random init; lr 1e-3..1, ratios
  1e-5..1e-2.
* ``logreg_aug`` [logreg_aug]: ImageNet backbone frozen, a new last layer trained for 40,000 steps
  at lr 0.1 with an L2 penalty on the mean loss over 10 values 1e-10..0.1.

All three: SGD with Nesterov momentum 0.9, cosine decay, batch 256 (20,000 steps unless stated),
BN momentum ``max(1 - 10/s, 0.9)`` (TF convention; see :mod:`probes.finetune.schedules`),
random-resized-crop + flip augmentation, validation on the whole image and on the central 87.5%
(the better one is used on test). Each grid point trains on train and is scored on val; the best
(val metric, first in grid order on ties) is retrained on train+val and scored on test. In the
data-size study (``examples_per_class``) training uses the per-class subset of train
(:mod:`probes.subsets`), the grid point chosen on the full val split is scored on test directly
(no retraining on val, as in Figure 9, so ``n_train`` is the subset's size), and steps / batch /
lr range follow Appendix A.5 / A.6.

Each grid point and the final run are independent, resumable jobs (:mod:`probes.finetune.jobs`);
rerunning the same command skips finished points and continues unfinished ones from their last
checkpoint. The result row goes into the store's results table beside the probes' rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.datasets import Dataset, SplitData, get_dataset
from featurestore.datasets.base import ids_digest, subset
from featurestore.errors import EntryBusyError
from featurestore.results import FeatureSource, ResultRow, Subset, parse_curve_steps
from featurestore.store import DEFAULT_URL, FeatureStore
from probes.finetune.config import (
    SETTING_OF_INIT,
    FinetuneConfig,
    FinetuneConfigError,
    FinetuneOutcome,
    ResolvedConfig,
)
from probes.finetune.data import CENTRAL_FRACTION, CROP_RATIO, CROP_SCALE
from probes.finetune.jobs import JobDir
from probes.finetune.schedules import GridPoint, parse_grid
from probes.finetune.train import MOMENTUM, RunOutcome, StepHook, Trainer
from probes.subsets import per_class_subset

__all__ = [
    "FinetuneConfig",
    "FinetuneConfigError",
    "FinetuneOutcome",
    "GridPoint",
    "run_finetune",
    "setting_for_init",
]

#: How long a process waits for a grid point another process is computing (then takes it over
#: if that process died, or reads its result).
POINT_WAIT_S = 7 * 24 * 3600.0


def setting_for_init(init: str) -> str:
    """``imagenet`` -> ``finetune``, ``random`` -> ``scratch``."""
    try:
        return SETTING_OF_INIT[init]
    except KeyError:
        raise FinetuneConfigError(f"unknown --init {init!r} (imagenet or random)") from None


@dataclass
class _Splits:
    train: SplitData
    val: SplitData
    test: SplitData
    trainval: SplitData | None
    subset_index: np.ndarray | None


def _splits(ds: Dataset, config: FinetuneConfig) -> _Splits:
    train, val, test = ds.split("train"), ds.split("val"), ds.split("test")
    index = None
    trainval: SplitData | None = ds.split("trainval")
    if config.examples_per_class is not None:
        index = per_class_subset(train.labels, config.examples_per_class, config.subset_seed)
        train, trainval = subset(train, index), None
    if len(train) == 0 or len(val) == 0 or len(test) == 0:
        raise FinetuneConfigError(
            f"dataset {ds.name!r} has an empty split (train {len(train)}, val {len(val)}, "
            f"test {len(test)})"
        )
    return _Splits(train, val, test, trainval, index)


def _device(name: str) -> Any:
    from featurestore.device import resolve_device

    return resolve_device(name)


def run_finetune(
    ckpt: str,
    dataset: str | Dataset,
    config: FinetuneConfig | None = None,
    *,
    store: FeatureStore | str = DEFAULT_URL,
    data_root: str | Path | None = None,
    on_step: StepHook | None = None,
    log: Callable[[str], None] | None = None,
    points: Sequence[str] | None = None,
) -> FinetuneOutcome:
    """Run (or resume) the grid search, the final run and append the result row.

    ``on_step(run_name, steps_done)`` is called after every training step (tests use it to kill a
    job); ``log`` receives one line per finished grid point. ``points`` (grid point keys, see
    :func:`grid_point_keys`) runs only those points and returns status ``points``: one task of a
    job spread over a cluster, whose final call (no ``points``) reads them back.
    """
    t0 = time.perf_counter()
    config = config or FinetuneConfig()
    config.validate()
    setting = config.setting
    parse_grid(config.grid, setting)  # a bad grid fails before any data or weights load
    fs = store if isinstance(store, FeatureStore) else FeatureStore(store)
    ds = dataset if isinstance(dataset, Dataset) else get_dataset(dataset, data_root)
    variant = config.variant_string()
    table = fs.results
    if not config.force and table.exists(ckpt, ds.name, setting, variant):
        return FinetuneOutcome(ckpt, ds.name, setting, variant, "skipped")

    sp = _splits(ds, config)
    n_trainval = len(sp.trainval) if sp.trainval is not None else len(sp.train)
    resolved = config.resolve(len(sp.train), n_trainval, len(sp.val))
    grid = parse_grid(config.grid, setting, resolved.lr_divisor)

    from featurestore.checkpoints import load_checkpoint
    from featurestore.extract import default_workers

    weights = "random" if setting == "scratch" else config.weights
    loaded = load_checkpoint(ckpt, weights, seed=config.seed)
    dev = _device(config.device)
    workers = config.num_workers
    if workers is None:  # decoding is negligible next to a CPU training step; not on a GPU
        workers = default_workers() if dev.type == "cuda" else 0
    trainer = Trainer(
        loaded, ds, resolved, device=dev, num_workers=workers,
        eval_batch_size=config.eval_batch_size or max(resolved.batch_size, 64),
        progress=config.progress, desc=f"{ckpt}/{ds.name} {setting}",
    )
    fingerprint = _fingerprint(ckpt, ds, setting, loaded.weights_sha256, sp, config, resolved,
                               trainer.size)
    job = JobDir(fs, fingerprint)

    if points is not None:
        wanted = set(points)
        _run_grid(trainer, job, [p for p in grid if p.key in wanted], sp, config, on_step, log)
        return FinetuneOutcome(ckpt, ds.name, setting, variant, "points", job=job.key)
    outcomes = _run_grid(trainer, job, grid, sp, config, on_step, log)
    best_point, best = _choose(grid, outcomes)
    if sp.trainval is not None:
        # Named by point and crop: a job's grid can grow (quick, then paper), and a final run
        # made for another winner must never be reused.
        final = _run_locked(
            trainer, job, f"final_{best_point.key}_{best.crop}", best_point, sp.trainval,
            val=None, test=sp.test, crop=best.crop, on_step=on_step,
        )
    else:
        final = best  # data-size study: the chosen point's own test score (no retraining)
    assert final.test_metric is not None and final.test_predictions is not None

    run = _RunContext(ckpt, ds, setting, variant, config, resolved, loaded, dev, sp, job,
                      trainer.size)
    row = _row(run, grid, outcomes, best_point, best, final)
    row.timings["wall_seconds_this_call"] = round(time.perf_counter() - t0, 3)
    result_id = table.append(row, final.test_predictions, force=config.force, wait=POINT_WAIT_S)
    if result_id is None:  # another process appended this key first
        return FinetuneOutcome(ckpt, ds.name, setting, variant, "skipped", job=job.key)
    return FinetuneOutcome(
        ckpt, ds.name, setting, variant, "done", final.test_metric, ds.metric, result_id,
        time.perf_counter() - t0, job.key, row.to_record(),
    )


def grid_point_keys(
    ckpt: str, dataset: str | Dataset, config: FinetuneConfig, *,
    data_root: str | Path | None = None,
) -> list[str]:
    """The keys of a job's grid points in grid order, without loading weights: what a scheduler
    fans out as one task each (``run_finetune(..., points=[key])``)."""
    config.validate()
    ds = dataset if isinstance(dataset, Dataset) else get_dataset(dataset, data_root)
    sp = _splits(ds, config)
    n_trainval = len(sp.trainval) if sp.trainval is not None else len(sp.train)
    resolved = config.resolve(len(sp.train), n_trainval, len(sp.val))
    return [p.key for p in parse_grid(config.grid, config.setting, resolved.lr_divisor)]


def _fingerprint(
    ckpt: str, ds: Dataset, setting: str, weights_sha256: str, sp: _Splits,
    config: FinetuneConfig, resolved: ResolvedConfig, size: tuple[int, int],
) -> dict[str, Any]:
    """Everything that changes a run's outcome (and nothing that does not, e.g. ckpt_every)."""
    return {
        "setting": setting,
        "ckpt": ckpt,
        "weights_sha256": weights_sha256,
        "dataset": ds.name,
        "dataset_seed": ds.seed,
        "ids_sha256": {
            "train": ids_digest(sp.train.ids),
            "val": ids_digest(sp.val.ids),
            "test": ids_digest(sp.test.ids),
        },
        "subset": None if sp.subset_index is None else {
            "k": config.examples_per_class, "seed": config.subset_seed,
        },
        "steps": resolved.steps,
        "batch_size": resolved.batch_size,
        "eval_every": resolved.eval_every,
        "seed": resolved.seed,
        "input_size": list(size),
    }


def _run_locked(
    trainer: Trainer, job: JobDir, name: str, point: GridPoint, train: SplitData, *,
    val: SplitData | None, test: SplitData | None, crop: str | None,
    on_step: StepHook | None, wait: float = POINT_WAIT_S,
) -> RunOutcome:
    with job.lock(name, wait=wait):
        return trainer.run(job, name, point, train, val=val, test=test, crop=crop, on_step=on_step)


def _run_grid(
    trainer: Trainer, job: JobDir, grid: list[GridPoint], sp: _Splits, config: FinetuneConfig,
    on_step: StepHook | None, log: Callable[[str], None] | None,
) -> dict[GridPoint, RunOutcome]:
    """Every grid point; points another process holds are done last (waiting for its lock)."""
    from tqdm.auto import tqdm

    test = sp.test if sp.trainval is None else None  # data-size study scores each point on test
    outcomes: dict[GridPoint, RunOutcome] = {}
    busy: list[GridPoint] = []
    bar = tqdm(total=len(grid), desc=f"{trainer.desc} grid", unit="point",
               disable=not config.progress, dynamic_ncols=True)

    def record(p: GridPoint, o: RunOutcome) -> None:
        outcomes[p] = o
        bar.update(1)
        best = max(v.val_metric or 0.0 for v in outcomes.values())
        bar.set_postfix(best_val=f"{best:.4f}")
        if log is not None:
            log(f"{trainer.desc} {p.key}: val {o.val_metric:.4f} ({o.crop}), "
                f"{o.steps_per_s:.2f} steps/s")

    for p in grid:
        try:
            o = _run_locked(trainer, job, p.key, p, sp.train, val=sp.val, test=test, crop=None,
                            on_step=on_step, wait=0.0)
        except EntryBusyError:
            busy.append(p)
            continue
        record(p, o)
    for p in busy:
        record(p, _run_locked(trainer, job, p.key, p, sp.train, val=sp.val, test=test, crop=None,
                              on_step=on_step))
    bar.close()
    return outcomes


def _choose(grid: list[GridPoint], outcomes: dict[GridPoint, RunOutcome]) -> tuple[
    GridPoint, RunOutcome
]:
    """The grid point with the best validation metric; the first in grid order wins ties."""
    best_point = grid[0]
    for p in grid[1:]:
        if (outcomes[p].val_metric or 0.0) > (outcomes[best_point].val_metric or 0.0):
            best_point = p
    return best_point, outcomes[best_point]


@dataclass
class _RunContext:
    """What one job was: the inputs every part of its result row is derived from."""

    ckpt: str
    ds: Dataset
    setting: str
    variant: str
    config: FinetuneConfig
    resolved: ResolvedConfig
    loaded: Any
    dev: Any
    sp: _Splits
    job: JobDir
    size: tuple[int, int]


def _row(
    run: _RunContext, grid: list[GridPoint], outcomes: dict[GridPoint, RunOutcome],
    best_point: GridPoint, best: RunOutcome, final: RunOutcome,
) -> ResultRow:
    """The job's result row, built through the results schema."""
    aug = run.setting == "logreg_aug"
    sp = run.sp
    return ResultRow(
        ckpt=run.ckpt,
        dataset=run.ds.name,
        setting=run.setting,
        variant=run.variant,
        metric=run.ds.metric,
        test_metric=float(final.test_metric or 0.0),
        param_name="l2" if aug else "lr",
        best_param=best_point.l2 if aug else best_point.lr,
        hyperparams=_hyperparams(run, best_point, best, final),
        val_metric=best.val_metric,
        val_curve=_grid_curve(grid, outcomes),
        # (steps, val metric) of the chosen point (schema.CURVE_STEPS_FORMAT), Section 4.6
        curve_steps=parse_curve_steps(best.curve),
        n_train=final.n_train,
        subset=_subset(run),
        features=FeatureSource(
            kind="images",
            weights_sha256=run.loaded.weights_sha256,
            ids_sha256={name: ids_digest(split.ids) for name, split in (
                ("train", sp.train), ("val", sp.val), ("test", sp.test))},
        ),
        imagenet_top1=run.loaded.info.imagenet_top1,
        weights_sha256=run.loaded.weights_sha256,
        test_ids_sha256=ids_digest(sp.test.ids),
        device=_device_name(run.dev),
        timings=_timings(list(outcomes.values()) + ([final] if final is not best else []),
                         run.resolved.batch_size),
        extra={
            "final_curve": final.curve if final is not best else None,
            "n_train_grid": len(sp.train),
            "n_val": len(sp.val),
            "grid": run.config.grid,
            "n_grid_points": len(grid),
            "training": _training_record(run),
            "weights_source": run.loaded.weights_source,
            "job": run.job.key,
            # Figure 8: one row per step budget of a ``--steps A,B,...`` family
            "family": run.config.family,
            "step_budget": run.resolved.steps if run.config.family else None,
        },
    )


def _subset(run: _RunContext) -> Subset | None:
    index = run.sp.subset_index
    if index is None or run.config.examples_per_class is None:
        return None
    return Subset(run.config.examples_per_class, run.config.subset_seed, len(index),
                  ids_digest([str(i) for i in index]))


def _init_label(setting: str, weights: str | None) -> str:
    """What the network started from, as run: ``--weights random`` on ``finetune`` is a random
    init (once recorded as ``imagenet``), a weights file is named."""
    if setting == "scratch" or weights == "random":
        init = "random"
    elif weights is not None:
        init = f"file {Path(weights).name}"
    else:
        init = "imagenet"
    return f"{init} (frozen)" if setting == "logreg_aug" else init


def _hyperparams(run: _RunContext, best_point: GridPoint, best: RunOutcome,
                 final: RunOutcome) -> dict[str, Any]:
    """The chosen grid point and the run's fixed settings."""
    init = _init_label(run.setting, run.config.weights)
    hyper: dict[str, Any]
    if run.setting == "logreg_aug":
        hyper = {"lr": best_point.lr, "l2": best_point.l2}
    else:
        hyper = {"lr": best_point.lr, "wd": best_point.weight_decay,
                 "wd_ratio": best_point.wd_ratio}
    hyper.update({"steps": run.resolved.steps, "batch_size": run.resolved.batch_size,
                  "crop": best.crop, "init": init})
    if final.bn_momentum is not None:  # logreg_aug: the backbone's BN is frozen
        hyper["bn_momentum"] = final.bn_momentum
    return hyper


def _grid_curve(grid: list[GridPoint], outcomes: dict[GridPoint, RunOutcome]
                ) -> list[dict[str, Any]]:
    """``val_curve``: one dict per grid point, in grid order."""
    out = []
    for p in grid:
        o = outcomes[p]
        out.append({
            **p.as_dict(),
            "val_metric": o.val_metric,
            "val_metric_uncropped": o.val.get("uncropped"),
            "val_metric_cropped": o.val.get("cropped"),
            "crop": o.crop,
            "final_train_loss": o.final_train_loss,
            "steps_per_s": o.steps_per_s,
            "curve": o.curve,
            **({"test_metric": o.test_metric} if o.test_metric is not None else {}),
        })
    return out


def _timings(runs: list[RunOutcome], batch_size: int) -> dict[str, Any]:
    train_s = sum(o.train_seconds for o in runs)
    steps = sum(o.steps for o in runs)
    return {
        "train_seconds": round(train_s, 3),
        "eval_seconds": round(sum(o.eval_seconds for o in runs), 3),
        "steps": steps,
        "steps_per_s": round(steps / train_s, 4) if train_s > 0 else None,
        "images_per_s": round(steps * batch_size / train_s, 3) if train_s else None,
    }


def _device_name(dev: Any) -> str:
    if dev.type == "cuda":
        import torch

        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return str(dev)


def _training_record(run: _RunContext) -> dict[str, Any]:
    """How the networks were trained, in words a reader of the row can check."""
    aug = run.setting == "logreg_aug"
    return {
        "optimizer": f"SGD, Nesterov momentum {MOMENTUM}",
        "schedule": "cosine decay to 0 over all steps, no warm-up",
        "weight_decay": "SGD weight_decay = wd_ratio * lr on conv/linear weights only",
        "loss": "sigmoid cross-entropy" if run.ds.multilabel else "softmax cross-entropy",
        "l2": "l2 * ||W||^2 added to the mean loss" if aug else None,
        "bn_momentum_rule": "torch momentum = min(10/s, 0.1), s = n_train / batch",
        "augmentation": {
            "random_resized_crop": {"scale": list(CROP_SCALE), "ratio": list(CROP_RATIO)},
            "horizontal_flip": True,
        },
        "eval_crops": {"uncropped": "whole image resized",
                       "cropped": f"central {CENTRAL_FRACTION:.1%} then resized"},
        "input_size": list(run.size),
        "eval_every": run.resolved.eval_every,
        "seed": run.resolved.seed,
        "lr_divisor": run.resolved.lr_divisor,
        "autocast": "bfloat16" if run.dev.type == "cuda" else None,
        "channels_last": True,
    }
