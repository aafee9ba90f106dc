"""Line search along the logits: one GEMM per search, then elementwise trials only.

For a linear model the logits move linearly along a search direction:
``Z(t) = Z + t * dZ`` with ``dZ = X @ D``. One matrix product gives ``dZ``; every trial
step afterwards is an elementwise pass over the ``N x C`` logits (:meth:`Loss.line`), so
the search can afford to be nearly exact: a safeguarded 1-D Newton method on the convex
function of ``t``. Column-wise (one-vs-rest) problems get one step length per column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from probes.linear.losses import Loss

Tensor = torch.Tensor

__all__ = ["MAX_DZ", "LineStep", "line_search"]

#: Largest change of any logit in a line search's first trial (nats for the logistic losses).
MAX_DZ = 20.0


@dataclass
class LineStep:
    """Step lengths ``t`` (``[1]`` or one per searched column) and the change they make
    to the data loss (``df_data``) and to the whole objective (``df``)."""

    t: Tensor
    df_data: Tensor
    df: Tensor


def line_search(
    loss: Loss,
    dz: Tensor,
    g0d: Tensor,
    wd: Tensor,
    dd: Tensor,
    alpha: float,
    cols: Tensor | None,
    c1: float,
    c2: float,
    max_ls: int,
) -> LineStep:
    """Find a step along logits direction ``dz`` meeting the strong Wolfe conditions.

    ``g0d`` is the directional derivative at ``t = 0``; ``wd = <w, dw>`` and
    ``dd = <dw, dw>`` (penalised rows) give the L2 term along the line exactly:
    ``alpha (t wd + t^2 dd / 2)``. The first trial is the quasi-Newton step (``t = 1``) but
    moves no logit by more than :data:`MAX_DZ` (from a cold start on separable data the
    model step can be enormous; float32 softmax/sigmoid saturate and the gradient
    information vanishes). Columns whose search runs out of ``max_ls`` trials take the best
    point tried (``t = 0`` if none decreased the objective). The loss is left holding the
    chosen point, ready for :meth:`Loss.accept`.
    """
    dz_max = dz.abs().amax(0) if loss.columnwise else dz.abs().amax().reshape(1)
    t = torch.clamp(MAX_DZ / dz_max.clamp_min(1e-30), max=1.0)
    lo = torch.zeros_like(t)
    hi = torch.full_like(t, math.inf)
    done = torch.zeros_like(t, dtype=torch.bool)
    best_t, best_df = torch.zeros_like(t), torch.zeros_like(t)
    for k in range(max_ls):
        df_data, d1, d2 = loss.line(dz, t, cols)
        df = df_data + alpha * (t * wd + 0.5 * t * t * dd)
        d1 = d1 + alpha * (wd + t * dd)
        d2 = d2 + alpha * dd
        better = df < best_df
        best_t, best_df = torch.where(better, t, best_t), torch.where(better, df, best_df)
        # strong Wolfe conditions; the decrease ``df`` is summed from per-example
        # differences, so Armijo stays meaningful in float32 near the optimum
        done = done | ((df <= c1 * t * g0d) & (d1.abs() <= c2 * g0d.abs()))
        if bool(done.all()) or k == max_ls - 1:
            break
        t, lo, hi = _next_trial(t, d1, d2, lo, hi, done)
    if not bool(done.all()):
        # the search ran out for some columns: they take the best point tried (0 if none
        # decreased the objective), which needs one more elementwise evaluation
        t = torch.where(done, t, best_t)
        df_data, _, _ = loss.line(dz, t, cols)
        df = df_data + alpha * (t * wd + 0.5 * t * t * dd)
    return LineStep(t=t, df_data=df_data, df=df)


def _next_trial(t: Tensor, d1: Tensor, d2: Tensor, lo: Tensor, hi: Tensor, done: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:
    """Safeguarded 1-D Newton on the convex function of ``t``: bracket the minimiser with
    the sign of the slope ``d1``, take the Newton point when it lies inside the bracket,
    else bisect (or double ``t`` while there is no upper end). Returns ``(t, lo, hi)``;
    finished columns keep their ``t``."""
    lo = torch.where(~done & (d1 < 0), t, lo)
    hi = torch.where(~done & (d1 >= 0), t, hi)
    newton = t - d1 / d2.clamp_min(1e-30)
    fallback = torch.where(torch.isinf(hi), 2 * t, 0.5 * (lo + hi))
    inside = (newton > lo) & (newton < hi) & (d2 > 0)
    return torch.where(done, t, torch.where(inside, newton, fallback)), lo, hi
