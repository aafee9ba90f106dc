"""The curvature models the preconditioner builds and the L-BFGS two-loop applies.

Plain data (tensors and a ``solve``), kept below both :mod:`probes.linear.problem`, which
caches the current model on the problem, and :mod:`probes.linear.preconditioner`, which
computes it from a problem: the types sit where both can import them one way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    # the last (var_ext, alpha, denominator): a path applies one model at one alpha many times
    _denom: list[tuple[Tensor, float, Tensor]] = field(default_factory=list, compare=False,
                                                       repr=False)

    def solve(self, q: Tensor, var_ext: Tensor, alpha: float) -> Tensor:
        """``H^-1 q`` for ``H ~ A (x) diag(var) + alpha I``:
        ``((q Q) / (var a^T + alpha)) Q^T``. The bias row (unpenalised) gets a small
        damping instead of ``alpha``."""
        if self._denom and self._denom[0][0] is var_ext and self._denom[0][1] == alpha:
            denom = self._denom[0][2]
        else:
            denom = var_ext[:, None] * self.a[None, :]
            denom[:-1] += alpha
            denom[-1] += 1e-3 * self.a.max()
            self._denom[:] = [(var_ext, alpha, denom)]
        return (q @ self.qmat).div_(denom) @ self.qmat.T


Curvature = ColumnCurvature | ClassCurvature
