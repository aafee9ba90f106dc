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
BN momentum ``max(1 - 10/s, 0.9)`` (TF convention; see :mod:`probes.finetune.schedules`), random-resized-crop
+ flip augmentation, validation on the whole image and on the central 87.5% (the better one is used
on test). Each grid point trains on train and is scored on val; the best (val metric, first in grid
order on ties) is retrained on train+val and scored on test. In the data-size study
(``examples_per_class``) training uses the per-class subset of train (:mod:`probes.subsets`), the
grid point chosen on the full val split is scored on test directly (no retraining, as in Figure 9),
and steps / batch / lr range follow Appendix A.5 / A.6.

Each grid point and the final run are independent, resumable jobs (:mod:`probes.finetune.jobs`);
rerunning the same command skips finished points and continues unfinished ones from their last
checkpoint. The result row goes into the store's results table beside the probes' rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.datasets import Dataset, SplitData, get_dataset
from featurestore.datasets.base import ids_digest, subset
from featurestore.errors import EntryBusyError
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
) -> FinetuneOutcome:
    """Run (or resume) the grid search, the final run and append the result row.

    ``on_step(run_name, steps_done)`` is called after every training step (tests use it to kill a
    job); ``log`` receives one line per finished grid point.
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
    resolved = config.resolve(len(sp.train), n_trainval)
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

    row = _row(ckpt, ds, setting, variant, config, resolved, loaded, dev, sp, grid, outcomes,
               best_point, best, final, job, trainer.size)
    row["timings"]["wall_seconds_this_call"] = round(time.perf_counter() - t0, 3)
    with job.lock("append", wait=POINT_WAIT_S):
        if not config.force and table.exists(ckpt, ds.name, setting, variant):
            return FinetuneOutcome(ckpt, ds.name, setting, variant, "skipped", job=job.key)
        result_id = table.append(row, final.test_predictions)
    return FinetuneOutcome(
        ckpt, ds.name, setting, variant, "done", final.test_metric, ds.metric, result_id,
        time.perf_counter() - t0, job.key, row,
    )


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


def _row(
    ckpt: str, ds: Dataset, setting: str, variant: str, config: FinetuneConfig,
    resolved: ResolvedConfig, loaded: Any, dev: Any, sp: _Splits, grid: list[GridPoint],
    outcomes: dict[GridPoint, RunOutcome], best_point: GridPoint, best: RunOutcome,
    final: RunOutcome, job: JobDir, size: tuple[int, int],
) -> dict[str, Any]:
    init = {"finetune": "imagenet", "scratch": "random", "logreg_aug": "imagenet (frozen)"}[setting]
    hyper: dict[str, Any] = {
        "lr": best_point.lr,
        "wd": best_point.weight_decay,
        "wd_ratio": best_point.wd_ratio,
    }
    if setting == "logreg_aug":
        hyper = {"lr": best_point.lr, "l2": best_point.l2}
    hyper.update({
        "steps": resolved.steps,
        "batch_size": resolved.batch_size,
        "crop": best.crop,
        "init": init,
    })
    if final.bn_momentum is not None:  # logreg_aug: the backbone's BN is frozen
        hyper["bn_momentum"] = final.bn_momentum
    val_curve = []
    for p in grid:
        o = outcomes[p]
        val_curve.append({
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
    runs = list(outcomes.values()) + ([final] if final is not best else [])
    train_s = sum(o.train_seconds for o in runs)
    eval_s = sum(o.eval_seconds for o in runs)
    steps = sum(o.steps for o in runs)
    dev_name = str(dev)
    if dev.type == "cuda":
        import torch

        dev_name = f"{dev} ({torch.cuda.get_device_name(dev)})"
    return {
        "ckpt": ckpt,
        "dataset": ds.name,
        "setting": setting,
        "variant": variant,
        "metric": ds.metric,
        "test_metric": final.test_metric,
        "param_name": "l2" if setting == "logreg_aug" else "lr",
        "best_param": best_point.l2 if setting == "logreg_aug" else best_point.lr,
        "hyperparams": hyper,
        "val_metric": best.val_metric,
        "val_curve": val_curve,
        # (steps, val metric) pairs of the chosen point: probes.stats.steps_to_fraction_of_max_odds
        # takes this list as it is (Section 4.6).
        "curve_steps": [[e["steps"], e["accuracy"]] for e in best.curve],
        "final_curve": final.curve if final is not best else None,
        "n_train": final.n_train,
        "n_train_grid": len(sp.train),
        "n_val": len(sp.val),
        "subset": None if sp.subset_index is None else {
            "k": config.examples_per_class,
            "subset_seed": config.subset_seed,
            "n": len(sp.subset_index),
            "indices_sha256": ids_digest([str(i) for i in sp.subset_index]),
        },
        "grid": config.grid,
        "n_grid_points": len(grid),
        "training": {
            "optimizer": f"SGD, Nesterov momentum {MOMENTUM}",
            "schedule": "cosine decay to 0 over all steps, no warm-up",
            "weight_decay": "SGD weight_decay = wd_ratio * lr on conv/linear weights only",
            "loss": "sigmoid cross-entropy" if ds.multilabel else "softmax cross-entropy",
            "l2": "l2 * ||W||^2 added to the mean loss" if setting == "logreg_aug" else None,
            "bn_momentum_rule": "torch momentum = min(10/s, 0.1), s = n_train / batch",
            "augmentation": {
                "random_resized_crop": {"scale": list(CROP_SCALE), "ratio": list(CROP_RATIO)},
                "horizontal_flip": True,
            },
            "eval_crops": {"uncropped": "whole image resized",
                           "cropped": f"central {CENTRAL_FRACTION:.1%} then resized"},
            "input_size": list(size),
            "eval_every": resolved.eval_every,
            "seed": resolved.seed,
            "lr_divisor": resolved.lr_divisor,
            "autocast": "bfloat16" if dev.type == "cuda" else None,
            "channels_last": True,
        },
        "timings": {
            "train_seconds": round(train_s, 3),
            "eval_seconds": round(eval_s, 3),
            "steps": steps,
            "steps_per_s": round(steps / train_s, 4) if train_s > 0 else None,
            "images_per_s": round(steps * resolved.batch_size / train_s, 3) if train_s else None,
        },
        "device": dev_name,
        "imagenet_top1": loaded.info.imagenet_top1,
        "weights_sha256": loaded.weights_sha256,
        "weights_source": loaded.weights_source,
        "test_ids_sha256": ids_digest(sp.test.ids),
        "job": job.key,
    }
