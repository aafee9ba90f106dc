"""One training run (a grid point, or the final train+val run) that survives being killed.

The run trains with SGD, Nesterov momentum 0.9 and a cosine-decayed learning rate (Appendix A.5),
evaluates the validation split on both crops every ``eval_every`` steps (the convergence curve of
Section 4.6) and, at the end, keeps the better crop on validation and scores the test split with it.

Every ``ckpt_every`` steps it writes a checkpoint (model, optimizer, scheduler, RNG states, step,
curve and loss accumulators) to its job folder; the data order and augmentation are functions of
the step (:mod:`probes.finetune.data`), so a resumed run continues exactly where the checkpoint
left off. On CPU the resumed run is bit-identical to an uninterrupted one; on CUDA, kernels are not
bitwise deterministic, so it is the same computation up to floating-point reordering.

Devices: on CUDA the forward and backward run under bf16 autocast, and on every device model and
inputs use channels_last (measured 2x faster for EfficientNet-Lite0 on this CPU, see
:mod:`featurestore.extract`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from featurestore.checkpoints import LoadedCheckpoint
from featurestore.datasets import Dataset, SplitData
from probes.finetune.config import FinetuneConfigError, ResolvedConfig
from probes.finetune.data import (
    CROPS,
    eval_loader,
    eval_transform,
    mix_seed,
    train_loader,
    train_transform,
)
from probes.finetune.jobs import PREDICTIONS, RESULT, STATE, JobDir
from probes.finetune.model import (
    FrozenBackboneClassifier,
    build_model,
    classifier_of,
    param_groups,
    set_bn_momentum,
)
from probes.finetune.schedules import CosineFactor, GridPoint, bn_momentum

MOMENTUM = 0.9
STATE_FORMAT = 1
#: Also checkpoint when this much wall time passed since the last one (slow CPU runs), whatever
#: ``ckpt_every`` says; resumption is exact from any step, so this never changes a result.
CKPT_MAX_SECONDS = 600.0
#: Independent random streams derived from the job seed.
_DATA_STREAM, _MODEL_STREAM = 1, 2  # 3: the new head's (probes.finetune.model)

StepHook = Callable[[str, int], None]


def choose_crop(val_metrics: dict[str, float]) -> str:
    """The evaluation crop with the better validation metric; ties go to ``uncropped`` (the
    features' protocol, so a tie never changes how the test images are seen)."""
    return max(CROPS, key=lambda c: val_metrics[c])  # max keeps the first of equal keys


@dataclass
class RunOutcome:
    """What a finished run reports (``result.json``); ``test_predictions`` live beside it."""

    name: str
    point: dict[str, float]
    steps: int
    batch_size: int
    n_train: int
    bn_momentum: float | None
    val: dict[str, float] = field(default_factory=dict)
    crop: str | None = None
    val_metric: float | None = None
    test_metric: float | None = None
    curve: list[dict[str, Any]] = field(default_factory=list)
    final_train_loss: float | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    resumed_at: list[int] = field(default_factory=list)
    test_predictions: np.ndarray | None = field(default=None, repr=False)
    #: The trained network, only when ``Trainer.run(..., keep_model=True)`` trained it just now.
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.train_seconds if self.train_seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("test_predictions", "model")}
        d["steps_per_s"] = self.steps_per_s
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunOutcome:
        d = {k: v for k, v in d.items() if k != "steps_per_s"}
        return cls(**d)


@dataclass
class _RunState:
    """The mutable state of one run between its steps: what a checkpoint saves and restores."""

    model: nn.Module
    opt: torch.optim.SGD
    sched: torch.optim.lr_scheduler.LambdaLR
    #: The classification layer (``point.l2`` penalises its weight).
    head: nn.Module
    criterion: nn.Module
    outcome: RunOutcome
    #: Training loss accumulated since the last curve entry (on the device: no per-step sync).
    loss_sum: torch.Tensor
    loss_count: int = 0
    #: The step the run (re)started at, and the steps completed so far.
    start: int = 0
    done: int = 0


class Trainer:
    """Runs training jobs of one (checkpoint, dataset, setting) on one device."""

    def __init__(
        self,
        loaded: LoadedCheckpoint,
        dataset: Dataset,
        resolved: ResolvedConfig,
        *,
        device: torch.device,
        num_workers: int,
        eval_batch_size: int,
        progress: bool = True,
        desc: str = "",
    ) -> None:
        self.loaded, self.dataset, self.cfg = loaded, dataset, resolved
        self.device = device
        self.num_workers = num_workers
        self.eval_batch_size = eval_batch_size
        self.progress = progress
        self.desc = desc
        self.multilabel = dataset.multilabel
        self.metric = dataset.metric
        size = resolved.image_size
        self.size = (size, size) if size else loaded.input_size
        self.interpolation = str(loaded.data_config.get("interpolation", "bilinear"))
        self.base = build_model(loaded, resolved.setting, dataset.num_classes, resolved.seed)
        dev = device
        self.mean = torch.tensor(loaded.data_config["mean"], device=dev).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(loaded.data_config["std"], device=dev).view(1, 3, 1, 1) * 255
        self.autocast = dev.type == "cuda"

    # -- pieces -------------------------------------------------------------------------------
    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        return (x.float() - self.mean) / self.std

    def _fresh_model(self, steps_per_epoch: float) -> tuple[nn.Module, float | None]:
        if self.cfg.setting == "logreg_aug":  # the frozen backbone is shared, only the head is new
            assert isinstance(self.base, FrozenBackboneClassifier)
            model: nn.Module = FrozenBackboneClassifier(
                self.base.backbone, copy.deepcopy(self.base.head)
            )
            mom = None
        else:
            model = copy.deepcopy(self.base)
            mom = bn_momentum(steps_per_epoch)
            set_bn_momentum(model, mom)
        model = model.to(self.device).to(memory_format=torch.channels_last)
        return model.train(), mom

    def predict(self, model: nn.Module, split: SplitData, crop: str) -> np.ndarray:
        """Predicted labels ``[N]`` (single-label) or sigmoid scores ``[N, C]`` (multi-label)."""
        loader = eval_loader(
            self.dataset, split.ids, eval_transform(self.size, self.interpolation, crop),
            batch_size=self.eval_batch_size, num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        was_training = model.training
        model.eval()
        outs: list[np.ndarray] = []
        with torch.inference_mode(), torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.autocast
        ):
            for x in loader:
                logits = model(self._prep(x)).float()
                out = torch.sigmoid(logits) if self.multilabel else logits.argmax(1)
                outs.append(out.cpu().numpy())
        model.train(was_training)
        return np.concatenate(outs) if outs else np.zeros((0,), np.int64)

    def score(self, split: SplitData, preds: np.ndarray) -> float:
        """The dataset's metric; VOC 2007's difficult entries are ignored, as in the devkit."""
        from probes.metrics import score

        return float(score(self.metric, split.labels, preds, ignore=self._difficult(split)))

    def _difficult(self, split: SplitData) -> np.ndarray | None:
        """``[N, C]`` difficult mask of ``split``'s rows, for datasets that flag them (VOC)."""
        mask_of = getattr(self.dataset, "difficult_mask", None)
        if mask_of is None or self.metric != "voc11_map":
            return None
        if not hasattr(self, "_difficult_by_id"):
            self._difficult_by_id: dict[str, np.ndarray] = {}
            for name in ("train", "val", "test"):
                self._difficult_by_id.update(
                    zip(self.dataset.split(name).ids, mask_of(name), strict=True))
        return np.stack([self._difficult_by_id[i] for i in split.ids])

    def _evaluate_both(self, model: nn.Module, split: SplitData) -> dict[str, float]:
        return {crop: self.score(split, self.predict(model, split, crop)) for crop in CROPS}

    # -- one run ------------------------------------------------------------------------------
    def run(
        self,
        job: JobDir,
        name: str,
        point: GridPoint,
        train: SplitData,
        *,
        val: SplitData | None,
        test: SplitData | None,
        crop: str | None = None,
        on_step: StepHook | None = None,
        keep_model: bool = False,
    ) -> RunOutcome:
        """Train ``point`` on ``train`` (resuming from ``job/name/state.pt``), evaluate, persist.

        ``val``: evaluated on both crops every ``eval_every`` steps and at the end, where the better
        crop is chosen (ties: uncropped). ``crop``: the crop to use when there is no ``val`` (the
        final train+val run). ``test``: scored at the end with the chosen crop. ``on_step(name,
        done)`` is called after every step, after any checkpoint write (tests inject failures).
        A finished run is read back from ``result.json`` and never recomputed. ``keep_model``
        returns the trained network in ``outcome.model`` (not for runs read back from disk).
        """
        done_json = job.read_json(f"{name}/{RESULT}")
        if done_json is not None:
            outcome = RunOutcome.from_json(done_json)
            outcome.test_predictions = job.read_array(f"{name}/{PREDICTIONS}")
            return outcome
        if val is None and crop is None:
            raise ValueError("a run without validation data needs an explicit crop")
        cfg = self.cfg
        n, batch = len(train), cfg.batch_size
        if batch > n:
            raise FinetuneConfigError(f"batch size {batch} > the {n} training examples")
        steps_per_epoch = n / batch
        cuda = self.device.type == "cuda"
        devices = [self.device.index or 0] if cuda else []
        with torch.random.fork_rng(devices=devices):  # never disturb the caller's RNG streams
            outcome = self._run(job, name, point, train, val, test, crop, on_step,
                                steps_per_epoch, keep_model)
        return outcome

    def _run(
        self, job: JobDir, name: str, point: GridPoint, train: SplitData,
        val: SplitData | None, test: SplitData | None, crop: str | None,
        on_step: StepHook | None, steps_per_epoch: float, keep_model: bool,
    ) -> RunOutcome:
        """Set up, resume, run the remaining steps, then evaluate and persist the result."""
        run = self._setup(name, point, len(train), steps_per_epoch)
        self._resume(job, name, point, run)
        self._train_steps(job, name, point, train, val, on_step, run)
        outcome = self._finish(job, name, run.model, run.outcome, val, test, crop)
        outcome.model = run.model if keep_model else None
        return outcome

    def _setup(self, name: str, point: GridPoint, n_train: int,
               steps_per_epoch: float) -> _RunState:
        """A fresh model with its optimizer, cosine schedule and loss, at step 0."""
        model, mom = self._fresh_model(steps_per_epoch)
        opt = torch.optim.SGD(param_groups(model, point.weight_decay), lr=point.lr,
                              momentum=MOMENTUM, nesterov=True)
        return _RunState(
            model=model,
            opt=opt,
            sched=torch.optim.lr_scheduler.LambdaLR(opt, CosineFactor(self.cfg.steps)),
            head=classifier_of(model),
            criterion=nn.BCEWithLogitsLoss() if self.multilabel else nn.CrossEntropyLoss(),
            outcome=RunOutcome(name, point.as_dict(), self.cfg.steps, self.cfg.batch_size,
                               n_train, mom),
            loss_sum=torch.zeros((), dtype=torch.float64, device=self.device),
        )

    def _resume(self, job: JobDir, name: str, point: GridPoint, run: _RunState) -> None:
        """Continue from ``name/state.pt`` if a checkpoint exists, else seed the model stream.

        Raises:
            RuntimeError: the checkpoint has another state format or belongs to another run.
        """
        state = job.read_torch(f"{name}/{STATE}")
        if state is None:
            torch.manual_seed(mix_seed(self.cfg.seed, _MODEL_STREAM))
            return
        if state.get("format") != STATE_FORMAT:
            raise RuntimeError(
                f"{job}: {name}/{STATE} has state format {state.get('format')!r}, this "
                f"version reads {STATE_FORMAT}; delete it to restart that run"
            )
        if state.get("point") != point.as_dict() or state.get("total") != self.cfg.steps:
            raise RuntimeError(f"{job}: {name}/{STATE} belongs to another run; delete it")
        run.model.load_state_dict(state["model"])
        run.opt.load_state_dict(state["optimizer"])
        run.sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
        if self.device.type == "cuda" and state["rng_cuda"] is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        run.start = run.done = int(state["step"])
        outcome = run.outcome
        outcome.curve = list(state["curve"])
        outcome.train_seconds = float(state["train_seconds"])
        outcome.eval_seconds = float(state["eval_seconds"])
        outcome.resumed_at = [*state["resumed_at"], run.start]
        run.loss_sum.fill_(float(state["loss_sum"]))
        run.loss_count = int(state["loss_count"])

    def _train_steps(
        self, job: JobDir, name: str, point: GridPoint, train: SplitData,
        val: SplitData | None, on_step: StepHook | None, run: _RunState,
    ) -> None:
        """Steps ``run.start + 1 .. total``: the SGD step, the validation curve every
        ``eval_every`` steps, a checkpoint every ``ckpt_every`` steps (or ``CKPT_MAX_SECONDS``)."""
        from tqdm.auto import tqdm

        cfg, total, outcome = self.cfg, self.cfg.steps, run.outcome
        loader = train_loader(
            self.dataset, train.ids, train.labels,
            train_transform(self.size, self.interpolation),
            batch_size=cfg.batch_size, seed=mix_seed(cfg.seed, _DATA_STREAM),
            start=run.start, total=total, num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        log_every = 20 if self.device.type == "cuda" else 1
        bar = tqdm(total=total, initial=run.start, desc=f"{self.desc} {name}".strip(),
                   unit="step", disable=not self.progress, dynamic_ncols=True, leave=False)
        last_val: float | None = None
        t_train = last_save = time.perf_counter()
        for x, y in loader:
            loss, lr_now = self._sgd_step(run, point, x, y)
            run.done += 1
            done = run.done
            if done % log_every == 0 or done == total:
                bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr_now:.3g}",
                                val="-" if last_val is None else f"{last_val:.4f}", refresh=False)
            bar.update(1)
            if done % cfg.eval_every == 0 or done == total:
                outcome.train_seconds += time.perf_counter() - t_train
                best = self._curve_point(run, lr_now, val)
                last_val = last_val if best is None else best
                t_train = time.perf_counter()
            now = time.perf_counter()
            due = done % cfg.ckpt_every == 0 or now - last_save > CKPT_MAX_SECONDS
            if due and done < total:
                outcome.train_seconds += now - t_train
                self._save(job, name, point, run)
                t_train = last_save = time.perf_counter()
            if on_step is not None:
                on_step(name, done)
        bar.close()

    def _sgd_step(self, run: _RunState, point: GridPoint, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, float]:
        """One optimizer and schedule step; returns the loss and the learning rate it used."""
        x = self._prep(x)
        y = y.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = run.model(x)
        loss = run.criterion(logits.float(), y)
        if point.l2:  # logreg_aug: L2 on the mean loss (the weights, not the bias)
            loss = loss + point.l2 * run.head.weight.float().pow(2).sum()
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        lr_now = float(run.opt.param_groups[0]["lr"])
        run.opt.step()
        run.sched.step()
        run.loss_sum += loss.detach().double()
        run.loss_count += 1
        return loss, lr_now

    def _curve_point(self, run: _RunState, lr_now: float, val: SplitData | None) -> float | None:
        """Append the convergence-curve entry at ``run.done`` (mean training loss since the last
        entry, and both crops' validation metric when there is ``val``); returns the better
        validation metric, or None without ``val``."""
        entry: dict[str, Any] = {"steps": run.done, "lr": lr_now,
                                 "train_loss": float(run.loss_sum) / max(run.loss_count, 1)}
        run.loss_sum.zero_()
        run.loss_count = 0
        best: float | None = None
        if val is not None:
            t_eval = time.perf_counter()
            metrics = self._evaluate_both(run.model, val)
            run.outcome.eval_seconds += time.perf_counter() - t_eval
            entry.update(metrics)
            best = max(metrics.values())
        run.outcome.curve.append(entry)
        return best

    def _save(self, job: JobDir, name: str, point: GridPoint, run: _RunState) -> None:
        """Write everything a resumed run needs to continue exactly at step ``run.done``."""
        cuda = self.device.type == "cuda"
        outcome = run.outcome
        job.write_torch(f"{name}/{STATE}", {
            "format": STATE_FORMAT,
            "point": point.as_dict(),
            "total": self.cfg.steps,
            "step": run.done,
            "model": run.model.state_dict(),
            "optimizer": run.opt.state_dict(),
            "scheduler": run.sched.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.device) if cuda else None,
            "curve": outcome.curve,
            "loss_sum": float(run.loss_sum),
            "loss_count": run.loss_count,
            "train_seconds": outcome.train_seconds,
            "eval_seconds": outcome.eval_seconds,
            "resumed_at": outcome.resumed_at,
        })

    def _finish(
        self, job: JobDir, name: str, model: nn.Module, outcome: RunOutcome,
        val: SplitData | None, test: SplitData | None, crop: str | None,
    ) -> RunOutcome:
        last = outcome.curve[-1] if outcome.curve else {}
        outcome.final_train_loss = last.get("train_loss")
        if val is not None:
            outcome.val = {c: float(last[c]) for c in CROPS}
            crop = choose_crop(outcome.val)
            outcome.val_metric = outcome.val[crop]
            for entry in outcome.curve:
                entry["accuracy"] = entry[crop]
        outcome.crop = crop
        if test is not None:
            assert crop is not None
            t_eval = time.perf_counter()
            preds = self.predict(model, test, crop)
            outcome.test_metric = self.score(test, preds)
            outcome.eval_seconds += time.perf_counter() - t_eval
            outcome.test_predictions = preds
            job.write_array(f"{name}/{PREDICTIONS}", preds)
        job.write_json(f"{name}/{RESULT}", outcome.as_json())  # the run is finished from here on
        job.remove(f"{name}/{STATE}")
        return outcome
