"""Data-fit terms of the probe solvers: mean over examples of a per-example loss of the
logits (the L2 term is the solver's).

Each loss supports the solver's line search along the logits: for a linear model the
logits move linearly along a search direction, ``Z(t) = Z + t * dZ``, so once ``dZ`` is
known every trial step is an elementwise pass over the ``N x C`` logits (:meth:`Loss.line`),
and the loss, softmax/sigmoid and residual are fused into it.
"""

from __future__ import annotations

from typing import Protocol

import torch

Tensor = torch.Tensor

__all__ = ["Loss", "MultinomialLoss", "SigmoidLoss", "SquaredHingeLoss"]


class Loss(Protocol):
    """Interface the solver needs from a data-fit term ``(1/N) sum_i l(z_i, y_i)``.

    Column-wise losses accept ``cols`` (indices of the columns still being optimised) in
    :meth:`line`; ``dz`` and ``t`` then only hold those columns.
    """

    columnwise: bool
    n: int  # examples (the loss is their mean)
    scale: float  # typical curvature of the loss (at z = 0), floors the preconditioner

    def start(self, z: Tensor) -> Tensor:
        """Cache per-example state at logits ``z``; return the loss (shape [1] or [C])."""
        ...

    def line(self, dz: Tensor, t: Tensor, cols: Tensor | None = None
             ) -> tuple[Tensor, Tensor, Tensor]:
        """Loss change, first and second derivative at ``z + t dz`` (relative to start)."""
        ...

    def accept(self) -> Tensor:
        """Adopt the last ``line`` point; return ``dloss/dz`` (divided by N) of its columns."""
        ...

    def residual(self) -> Tensor:
        """``dloss/dz`` (already divided by N) at the cached logits."""
        ...

    def curvature(self) -> Tensor:
        """Joint losses: the diagonal ``[C]`` of the class curvature averaged over examples
        (the softmax Hessian's diagonal ``p (1 - p)``)."""
        ...

    def weights(self) -> Tensor:
        """Column-wise losses: second derivative of the loss per entry ``[N, C]``."""
        ...


class MultinomialLoss:
    """Softmax cross-entropy; one joint problem over all classes.

    ``y_onehot`` is ``[N, C]`` one-hot. Each line-search trial is a few elementwise passes over
    the ``N x C`` logits, on one CPU thread, once per trial: they are what a path costs beyond
    its GEMMs, so the passes are counted (one ``exp``; the label terms are gathers, not
    products with the one-hot matrix; what depends only on the direction is computed once
    per search).
    """

    columnwise = False

    def __init__(self, y_onehot: Tensor) -> None:
        self.y = y_onehot
        self.n = y_onehot.shape[0]
        self.labels = y_onehot.argmax(1, keepdim=True)  # [N, 1]
        self.scale = 1.0 / y_onehot.shape[1]  # class curvature p(1 - p) at p = 1/C, roughly
        self._dir: tuple[Tensor, Tensor, Tensor] | None = None

    @staticmethod
    def _eval(z: Tensor) -> tuple[Tensor, Tensor]:
        """``(logsumexp(z), softmax(z))`` row-wise with one ``exp`` (``torch.logsumexp``
        followed by ``torch.softmax`` would take two)."""
        m = z.amax(1, keepdim=True)
        e = torch.exp(z - m)
        s = e.sum(1, keepdim=True)
        return (m + torch.log(s)).squeeze(1), e.div_(s)

    def start(self, z: Tensor) -> Tensor:
        self.z = z
        self.lse, self.p = self._eval(z)
        self._dir = None
        zy = z.gather(1, self.labels).squeeze(1)
        return ((self.lse - zy).sum() / self.n).reshape(1)

    def _direction_terms(self, dz: Tensor) -> tuple[Tensor, Tensor]:
        """``dz`` at the labels and ``dz**2``: fixed along one search, computed once."""
        if self._dir is None or self._dir[0] is not dz:
            self._dir = (dz, dz.gather(1, self.labels).squeeze(1), dz * dz)
        return self._dir[1], self._dir[2]

    def line(self, dz: Tensor, t: Tensor, cols: Tensor | None = None
             ) -> tuple[Tensor, Tensor, Tensor]:
        zt = torch.addcmul(self.z, dz, t)  # t is a 1-element tensor: broadcast
        lse, p = self._eval(zt)
        dzy, dz2 = self._direction_terms(dz)
        # per-example differences keep float32 precision near convergence
        df = ((lse - self.lse) - t * dzy).sum() / self.n
        spd = (p * dz).sum(1)
        d1 = (spd - dzy).sum() / self.n
        d2 = ((p * dz2).sum(1) - spd * spd).sum() / self.n
        self._cand = (zt, lse, p)
        return df.reshape(1), d1.reshape(1), d2.reshape(1)

    def accept(self) -> Tensor:
        self.z, self.lse, self.p = self._cand
        self._dir = None
        return self.residual()

    def residual(self) -> Tensor:
        return (self.p - self.y) / self.n

    def curvature(self) -> Tensor:
        # the diagonal of mean_i (diag(p_i) - p_i p_i^T)
        p = self.p
        return (p * (1 - p)).mean(0)


class _ColumnwiseLoss:
    """Shared bookkeeping of the one-vs-rest losses: ``z`` and a per-entry cache ``c``."""

    columnwise = True

    def __init__(self, y: Tensor) -> None:
        self.y = y
        self.n = y.shape[0]

    def _cache(self, z: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def start(self, z: Tensor) -> Tensor:
        self.z = z
        self.c = self._cache(z, self.y)
        return self._value(self.c, z, self.y).sum(0) / self.n

    def _value(self, c: Tensor, z: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def _derivs(self, c: Tensor, zt: Tensor, y: Tensor, dz: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def line(self, dz: Tensor, t: Tensor, cols: Tensor | None = None
             ) -> tuple[Tensor, Tensor, Tensor]:
        if cols is None:
            z, y, c0 = self.z, self.y, self.c
        else:
            z, y, c0 = self.z[:, cols], self.y[:, cols], self.c[:, cols]
        zt = torch.addcmul(z, dz, t)
        c = self._cache(zt, y)
        df = self._delta(c0, c, t, dz, y).sum(0) / self.n
        d1, d2 = self._derivs(c, zt, y, dz)
        self._cand = (cols, zt, c)
        return df, d1.sum(0) / self.n, d2.sum(0) / self.n

    def _delta(self, c0: Tensor, c: Tensor, t: Tensor, dz: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def accept(self) -> Tensor:
        cols, zt, c = self._cand
        if cols is None:
            self.z, self.c = zt, c
            return self.residual()
        self.z[:, cols] = zt
        self.c[:, cols] = c
        return self._residual(zt, c, self.y[:, cols])

    def residual(self) -> Tensor:
        return self._residual(self.z, self.c, self.y)

    def _residual(self, z: Tensor, c: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError


class SigmoidLoss(_ColumnwiseLoss):
    """Independent binary logistic losses per column (one-vs-rest / multi-label);
    ``y`` is 0/1. The cache is ``softplus(z)``."""

    scale = 0.25  # second derivative at z = 0

    def _cache(self, z: Tensor, y: Tensor) -> Tensor:
        return torch.nn.functional.softplus(z)

    def _value(self, c: Tensor, z: Tensor, y: Tensor) -> Tensor:
        return c - z * y

    def _delta(self, c0: Tensor, c: Tensor, t: Tensor, dz: Tensor, y: Tensor) -> Tensor:
        return (c - c0) - t * dz * y

    def _derivs(self, c: Tensor, zt: Tensor, y: Tensor, dz: Tensor) -> tuple[Tensor, Tensor]:
        s = torch.sigmoid(zt)
        return (s - y) * dz, s * (1 - s) * dz * dz

    def _residual(self, z: Tensor, c: Tensor, y: Tensor) -> Tensor:
        return (torch.sigmoid(z) - y) / self.n

    def weights(self) -> Tensor:
        s = torch.sigmoid(self.z)
        return s * (1 - s)


class SquaredHingeLoss(_ColumnwiseLoss):
    """One-vs-rest squared hinge ``max(0, 1 - y z)^2`` with ``y`` in {-1, +1}; the cache
    is the margin violation ``m = max(0, 1 - y z)``.

    Once differentiable and piecewise quadratic: the generalised second derivative is
    ``2 [m > 0]``, so the 1-D Newton line search is exact once the active set settles.
    """

    scale = 2.0  # second derivative where the margin is violated

    def _cache(self, z: Tensor, y: Tensor) -> Tensor:
        return torch.clamp_min(1 - y * z, 0)

    def _value(self, c: Tensor, z: Tensor, y: Tensor) -> Tensor:
        return c * c

    def _delta(self, c0: Tensor, c: Tensor, t: Tensor, dz: Tensor, y: Tensor) -> Tensor:
        return (c - c0) * (c + c0)

    def _derivs(self, c: Tensor, zt: Tensor, y: Tensor, dz: Tensor) -> tuple[Tensor, Tensor]:
        ydz = y * dz
        return -2 * c * ydz, 2 * (c > 0) * ydz * ydz

    def _residual(self, z: Tensor, c: Tensor, y: Tensor) -> Tensor:
        return -2 * y * c / self.n

    def weights(self) -> Tensor:
        return 2 * (self.c > 0).to(self.z.dtype)
