"""Hyperparameter grids, the cosine learning-rate schedule and the BN momentum rule of the paper.

Grids (Appendix A.5, A.6, G.2):

* ``finetune`` (ImageNet init): 7 log-spaced learning rates 1e-4 .. 1e-1 x (7 log-spaced
  weight-decay / learning-rate ratios 1e-6 .. 1e-3, plus no weight decay) = 56 points. The paper
  found the best weight decay to vary inversely with the learning rate, hence the ratio.
* ``scratch`` (random init): learning rates 1e-3 .. 1.0, ratios 1e-5 .. 1e-2, plus no weight decay.
* ``logreg_aug``: learning rate fixed at 0.1, L2 penalty on the mean loss over 10 log-spaced values
  1e-10 .. 0.1 (the problem is convex, so the learning rate is not searched).
* ``quick``: the 1st, 3rd, 5th and 7th learning rate (1e-4, 1e-3, 1e-2, 1e-1 from ImageNet init)
  x {no weight decay, the middle ratio (10^-4.5 ~ 3.2e-5; 10^-3.5 from scratch)} = 8 points; for
  logreg_aug the L2 values 1e-10, 1e-6, 1e-2. A coarse pass for smoke runs, not the protocol.
* explicit points: ``lr=0.01;0.1,wd_ratio=1e-5;0`` (cross product). ``wd=`` gives the absolute
  weight decay instead of the ratio (ratio = wd / lr for each lr); a missing ``wd``/``wd_ratio``
  means no weight decay; ``l2=`` lists logreg_aug penalties (``lr`` defaults to 0.1 there).

Weight decay is applied as SGD ``weight_decay`` (``wd * param`` added to the gradient, i.e. an L2
term ``wd/2 * ||w||^2`` on the loss, TF-slim's ``l2_regularizer(wd)``) to conv and linear weights
only: biases and normalisation parameters are not decayed, as in TF-slim models, where only
``weights_regularizer`` is set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from probes.finetune.config import FinetuneConfigError

#: (lr range, ratio range) per setting, as log10 exponents.
_RANGES = {"finetune": ((-4.0, -1.0), (-6.0, -3.0)), "scratch": ((-3.0, 0.0), (-5.0, -2.0))}
N_LR = 7
N_RATIO = 7
LOGREG_AUG_LR = 0.1
LOGREG_AUG_L2 = (-10.0, -1.0, 10)
QUICK_LR_INDEX = (0, 2, 4, 6)
QUICK_RATIO_INDEX = 3
QUICK_L2_INDEX = (0, 4, 8)


@dataclass(frozen=True, order=True)
class GridPoint:
    """One grid point. ``wd_ratio`` = weight decay / learning rate (0: no weight decay);
    ``l2`` = logreg_aug's penalty on the mean loss (0 elsewhere)."""

    lr: float
    wd_ratio: float = 0.0
    l2: float = 0.0

    @property
    def weight_decay(self) -> float:
        return self.wd_ratio * self.lr

    @property
    def key(self) -> str:
        """A stable, filesystem-safe name (job directories are keyed by it)."""
        s = f"lr={self.lr:.6g}_wdr={self.wd_ratio:.6g}"
        return s + (f"_l2={self.l2:.6g}" if self.l2 else "")

    def as_dict(self) -> dict[str, float]:
        d = {"lr": self.lr, "wd_ratio": self.wd_ratio, "wd": self.weight_decay}
        if self.l2:
            d["l2"] = self.l2
        return d


def _logspace(lo: float, hi: float, n: int) -> list[float]:
    # Rounded to 12 significant digits so that keys and JSON round-trip exactly.
    return [float(f"{v:.12g}") for v in np.logspace(lo, hi, n)]


def paper_grid(setting: str, lr_divisor: float = 1.0) -> list[GridPoint]:
    """The paper's grid for ``setting``; ``lr_divisor`` scales the learning rates down (the
    data-size study divides them by 4 for fine-tuning, 16 from scratch)."""
    if setting == "logreg_aug":
        return [GridPoint(LOGREG_AUG_LR, 0.0, l2) for l2 in _logspace(*LOGREG_AUG_L2)]
    if setting not in _RANGES:
        raise FinetuneConfigError(f"no grid for setting {setting!r}")
    (lo, hi), (rlo, rhi) = _RANGES[setting]
    lrs = [float(f"{lr / lr_divisor:.12g}") for lr in _logspace(lo, hi, N_LR)]
    ratios = [*_logspace(rlo, rhi, N_RATIO), 0.0]
    return [GridPoint(lr, r) for lr in lrs for r in ratios]


def quick_grid(setting: str, lr_divisor: float = 1.0) -> list[GridPoint]:
    """The documented coarse subset of :func:`paper_grid` (see the module docstring)."""
    if setting == "logreg_aug":
        l2s = _logspace(*LOGREG_AUG_L2)
        return [GridPoint(LOGREG_AUG_LR, 0.0, l2s[i]) for i in QUICK_L2_INDEX]
    (lo, hi), (rlo, rhi) = _RANGES[setting]
    lrs = _logspace(lo, hi, N_LR)
    ratio = _logspace(rlo, rhi, N_RATIO)[QUICK_RATIO_INDEX]
    return [
        GridPoint(float(f"{lrs[i] / lr_divisor:.12g}"), r)
        for i in QUICK_LR_INDEX
        for r in (0.0, ratio)
    ]


def _numbers(key: str, text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(";") if v.strip()]
    except ValueError:
        raise FinetuneConfigError(
            f"grid: {key}= needs numbers separated by ';', got {text!r}"
        ) from None
    if not values:
        raise FinetuneConfigError(f"grid: {key}= has no values")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise FinetuneConfigError(f"grid: {key}= values must be finite and >= 0, got {text!r}")
    return values


def parse_grid(spec: str, setting: str, lr_divisor: float = 1.0) -> list[GridPoint]:
    """``paper`` | ``quick`` | explicit points ``lr=a;b,wd_ratio=c;d`` (see the module docstring).

    Raises :class:`FinetuneConfigError` for anything else, naming the accepted forms.
    """
    text = spec.strip()
    if text == "paper":
        return paper_grid(setting, lr_divisor)
    if text == "quick":
        return quick_grid(setting, lr_divisor)
    fields: dict[str, list[float]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if not eq or key not in ("lr", "wd", "wd_ratio", "ratio", "l2"):
            raise FinetuneConfigError(
                f"unknown grid spec {spec!r}: use 'paper', 'quick', or explicit points such as "
                "'lr=0.01;0.1,wd_ratio=1e-5;0' (keys: lr, wd_ratio, wd (absolute), l2)"
            )
        key = "wd_ratio" if key == "ratio" else key
        if key in fields:
            raise FinetuneConfigError(f"grid spec {spec!r} gives {key}= twice")
        fields[key] = _numbers(key, value)
    if "wd" in fields and "wd_ratio" in fields:
        raise FinetuneConfigError("grid: give wd= (absolute) or wd_ratio=, not both")
    if setting == "logreg_aug":
        if "wd" in fields or "wd_ratio" in fields:
            raise FinetuneConfigError("grid: logreg_aug searches l2= (penalty on the mean loss)")
        lrs = fields.get("lr", [LOGREG_AUG_LR])
        return [GridPoint(lr, 0.0, l2) for lr in lrs for l2 in fields.get("l2", [0.0])]
    if "l2" in fields:
        raise FinetuneConfigError("grid: l2= applies to logreg_aug only; use wd= or wd_ratio=")
    if "lr" not in fields:
        raise FinetuneConfigError(f"grid spec {spec!r} names no lr=")
    if any(lr <= 0 for lr in fields["lr"]):
        raise FinetuneConfigError("grid: learning rates must be > 0")
    points: list[GridPoint] = []
    for lr in fields["lr"]:
        if "wd" in fields:
            ratios = [float(f"{wd / lr:.12g}") for wd in fields["wd"]]
        else:
            ratios = fields.get("wd_ratio", [0.0])
        points += [GridPoint(lr, r) for r in ratios]
    return list(dict.fromkeys(points))  # drop duplicates, keep order


def cosine_factor(step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based): ``0.5 (1 + cos(pi step / T))``.

    TF's ``cosine_decay`` without warm-up or floor, the schedule Appendix A.5 names: 1 at step 0,
    0.5 half way, 0 at ``T`` (the update at step ``T - 1`` uses a tiny but non-zero rate).
    """
    t = min(max(step, 0), total_steps) / total_steps
    return 0.5 * (1.0 + math.cos(math.pi * t))


class CosineFactor:
    """Picklable ``lr_lambda`` for :class:`torch.optim.lr_scheduler.LambdaLR` (its state dict then
    records ``total_steps``, so a resumed job can check it continues the same schedule)."""

    def __init__(self, total_steps: int) -> None:
        self.total_steps = int(total_steps)

    def __call__(self, step: int) -> float:
        return cosine_factor(step, self.total_steps)


def tf_bn_decay(steps_per_epoch: float) -> float:
    """The paper's BN moving-average decay ``max(1 - 10/s, 0.9)`` (TensorFlow convention: the
    weight of the *old* average), s = steps per epoch. Averages over roughly the last 10 epochs, so
    the statistics follow the fine-tuned weights instead of lagging behind on small datasets."""
    if steps_per_epoch <= 0:
        raise FinetuneConfigError(f"steps per epoch must be > 0, got {steps_per_epoch}")
    return max(1.0 - 10.0 / steps_per_epoch, 0.9)


def bn_momentum(steps_per_epoch: float) -> float:
    """PyTorch ``BatchNorm.momentum`` for the paper's rule: PyTorch's momentum is the weight of the
    *new* batch statistic, i.e. ``1 - decay``: ``min(10 / s, 0.1)`` (computed in this form, which
    is exact, rather than as ``1 - decay``)."""
    tf_bn_decay(steps_per_epoch)  # validates s
    return min(10.0 / steps_per_epoch, 0.1)
