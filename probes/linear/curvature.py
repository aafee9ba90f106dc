"""The curvature models the preconditioner builds and the L-BFGS two-loop applies.

Plain data (tensors and a ``solve``), kept below both :mod:`probes.linear.problem`, which
caches the current model on the problem, and :mod:`probes.linear.preconditioner`, which
computes it from a problem: the types sit where both can import them one way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Tensor = torch.Tensor

__all__ = ["ClassCurvature", "ColumnCurvature", "Curvature"]


@dataclass(frozen=True)
class ColumnCurvature:
    """One-vs-rest: the diagonal of each column's data Hessian, ``mean_i w_ik F_ij^2``
    (``w`` the loss curvature per entry; last row: the bias), ``[r + 1, C]``."""

    diag: Tensor

    def solve(self, q: Tensor, var_ext: Tensor, alpha: float) -> Tensor:
        """``H^-1 q`` with ``H = diag + alpha`` (the bias row gets no ``alpha``)."""
        denom = self.diag.clone()
        denom[:-1] += alpha
        return q / denom


@dataclass(frozen=True)
class ClassCurvature:
    """Softmax: the class curvature ``A = mean_i(diag(p_i) - p_i p_i^T) = Q diag(a) Q^T``."""

    a: Tensor  # [C]
    qmat: Tensor  # [C, C]

    def solve(self, q: Tensor, var_ext: Tensor, alpha: float) -> Tensor:
        """``H^-1 q`` for ``H ~ A (x) diag(var) + alpha I``:
        ``((q Q) / (var a^T + alpha)) Q^T``. The bias row (unpenalised) gets a small
        damping instead of ``alpha``."""
        denom = var_ext[:, None] * self.a[None, :]
        denom[:-1] += alpha
        denom[-1] += 1e-3 * self.a.max()
        return ((q @ self.qmat) / denom) @ self.qmat.T


Curvature = ColumnCurvature | ClassCurvature
