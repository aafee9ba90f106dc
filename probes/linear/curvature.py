"""The curvature model the preconditioner builds and the L-BFGS two-loop applies.

Plain data (tensors and a ``solve``), kept below both :mod:`probes.linear.problem`, which
caches the current model on the problem, and :mod:`probes.linear.preconditioner`, which
computes it from a problem: the type sits where both can import it one way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

Tensor = torch.Tensor

__all__ = ["Curvature"]


@dataclass(frozen=True)
class Curvature:
    """A diagonal model of the data Hessian in the rotated basis, ``[r + 1, C]`` (last row:
    the bias); the penalty adds ``alpha`` to every row but the bias.

    ``joint`` says how :meth:`quad` sums: over all entries (one softmax problem) or per
    column (C one-vs-rest problems).
    """

    diag: Tensor
    joint: bool
    # the last (alpha, denominator): a path applies one model at one alpha many times
    _denom: list[tuple[float, Tensor]] = field(default_factory=list, compare=False, repr=False)

    def solve(self, q: Tensor, alpha: float) -> Tensor:
        """``H^-1 q`` with ``H = diag + alpha`` (the bias row gets no ``alpha``)."""
        return q / self._denominator(alpha)

    def quad(self, q: Tensor, alpha: float) -> Tensor:
        """``q . H^-1 q``: shape ``[1]`` when joint, else one value per column ``[C]``."""
        v = (q * q).div_(self._denominator(alpha))
        return v.sum().reshape(1) if self.joint else v.sum(0)

    def _denominator(self, alpha: float) -> Tensor:
        if self._denom and self._denom[0][0] == alpha:
            return self._denom[0][1]
        denom = self.diag.clone()
        denom[:-1] += alpha
        self._denom[:] = [(alpha, denom)]
        return denom
