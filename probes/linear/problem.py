"""One data set's logits and data gradient, kept across the solves of a regularisation path.

Each L-BFGS iteration costs exactly two GEMMs over the (rotated) features: the logits of a
search direction (:meth:`Problem.logits_of`) and the data gradient of the residuals
(:meth:`Problem.grad_data_into`). Everything else works on the ``N x C`` logits or the
``(r + 1) x C`` parameters. Logits are updated incrementally along the path and re-derived
exactly by :meth:`Problem.refresh` (float32 increments drift).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from probes.linear.basis import Basis
from probes.linear.curvature import Curvature
from probes.linear.losses import Loss
from probes.linear.threads import Threads

Tensor = torch.Tensor
#: Inner product of two parameter matrices: one value ``[1]`` for joint problems, one per
#: column ``[C]`` for column-wise (one-vs-rest) problems.
Dot = Callable[[Tensor, Tensor], Tensor]

__all__ = ["Dot", "Problem", "affine", "dot_cols", "dot_joint", "make_problem",
           "zero_objective"]


def dot_joint(a: Tensor, b: Tensor) -> Tensor:
    """One inner product over all entries, shape ``[1]``."""
    return torch.dot(a.reshape(-1), b.reshape(-1)).reshape(1)


def dot_cols(a: Tensor, b: Tensor) -> Tensor:
    """One inner product per column, shape ``[C]``: C independent problems."""
    return (a * b).sum(0)


class Problem:
    """Logits/gradient bookkeeping for one data set; reused across the path.

    ``theta [r + 1, C]`` are the parameters in the basis (last row: the bias), ``gdata``
    the gradient of the mean data loss at ``theta``, ``data_loss`` its value (per column
    when column-wise). ``curv`` is the preconditioner's data factor and ``curv_age`` the
    iterations since it was computed (see :mod:`probes.linear.preconditioner`).
    """

    def __init__(self, basis: Basis, loss: Loss, theta: Tensor) -> None:
        self.basis = basis
        self.loss = loss
        self.theta = theta.clone()
        self.columnwise = loss.columnwise
        self.dot: Dot = dot_cols if self.columnwise else dot_joint
        self.flops = 2.0 * basis.feats.numel() * theta.shape[1]
        self.threads = Threads(theta.device, self.flops)
        self.curv: Curvature | None = None
        self.curv_age = 0
        self.data_loss: Tensor
        self.gdata: Tensor
        self.since_refresh = 0
        self.refresh()

    def logits_of(self, v: Tensor) -> Tensor:
        """``F @ v[:-1] + v[-1]``: the logits of parameters (or a direction) ``v``."""
        return affine(self.basis.feats, v, self.threads,
                      self.flops * v.shape[1] / self.theta.shape[1])

    def refresh(self) -> None:
        """Recompute logits from scratch (removes drift from incremental updates)."""
        if bool(self.theta.any()):
            z = self.logits_of(self.theta)
        else:  # a path's cold start: the logits of theta = 0 are 0, no product needed
            z = self.theta.new_zeros(self.basis.n, self.theta.shape[1])
        self.data_loss = self.loss.start(z)
        self.gdata = torch.empty_like(self.theta)
        self.grad_data_into(self.gdata, self.loss.residual())
        self.since_refresh = 0

    def grad_data_into(self, out: Tensor, r: Tensor) -> None:
        """``out = [F^T r; sum_i r_i]``: the data gradient for residuals ``r`` (its columns)."""
        with self.threads.gemm(self.flops * r.shape[1] / self.theta.shape[1]):
            torch.mm(self.basis.feats.T, r, out=out[:-1])
        out[-1] = r.sum(0)


def affine(x: Tensor, v: Tensor, threads: Threads, flops: float) -> Tensor:
    """``x @ v[:-1] + v[-1]`` (parameters with the bias as last row), the product on the
    thread count ``threads`` picks. The bias is added apart: addmm's fused bias measured
    1.5 ms slower than ``mm`` on ``[8000, 1280] @ [1280, 100]``."""
    with threads.gemm(flops):
        z = torch.mm(x, v[:-1])
    return z.add_(v[-1])


def zero_objective(basis: Basis, loss: Loss, n_cols: int) -> Tensor:
    """Data loss at ``theta = 0`` (per column when column-wise): the objective's scale."""
    feats = basis.feats
    z0 = torch.zeros(feats.shape[0], n_cols, dtype=feats.dtype, device=feats.device)
    return loss.start(z0)


def make_problem(basis: Basis, loss: Loss, theta0: Tensor) -> Problem:
    """Bundle features, loss and a starting point; reuse it across a path's solves."""
    return Problem(basis, loss, theta0)
