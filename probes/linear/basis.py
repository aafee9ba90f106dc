"""Centring and rotation of the training features: the coordinates the probe solvers work in.

The bias is not penalised, so replacing ``X`` by ``X - mean`` is an exact
reparametrisation (the bias absorbs ``mean @ W``). The features are then rotated into the
eigenbasis of the training covariance. The L2 penalty is rotation invariant, so the
problem is unchanged, but (i) when ``N <= D`` the optimum lies in the span of the training
rows and the rotated problem has only ``rank <= N - 1`` columns (cheaper passes), and
(ii) the feature covariance becomes diagonal, so a good preconditioner costs O(D C) per
iteration (see :mod:`probes.linear.preconditioner`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from probes.linear.threads import Threads

Tensor = torch.Tensor

__all__ = ["Basis", "make_basis"]


@dataclass
class Basis:
    """Centred training features expressed in (an approximation of) the eigenbasis of
    their covariance.

    ``feats = (X - mean) @ vecs`` with orthonormal ``vecs``; ``var[j]`` is the mean square
    of column ``j`` of ``feats``. Parameters in this basis are ``theta [r + 1, C]`` whose
    last row is the bias. ``complete`` is True when ``vecs`` spans all of ``R^D``, so any
    data (e.g. the val split) can be expressed in this basis exactly.
    """

    mean: Tensor  # [D]
    vecs: Tensor  # [D, r]
    var: Tensor  # [r]
    feats: Tensor  # [N, r]
    complete: bool

    @property
    def n(self) -> int:
        return int(self.feats.shape[0])

    def rotate(self, x: Tensor) -> Tensor:
        """Express other rows (same feature space) in this basis."""
        return (x - self.mean) @ self.vecs

    def extend(self, x_new: Tensor, x_new_rot: Tensor, x_train: Tensor,
               rel_tol: float = 1e-5) -> Basis:
        """A basis for the training rows plus ``x_new`` (e.g. train + val for the refit),
        reusing this one instead of a new eigen-decomposition.

        ``x_new_rot = self.rotate(x_new)``; ``x_train`` are the rows this basis was made
        from. Complete basis: just append ``x_new_rot`` (the rotation is a change of
        coordinates of ``R^D``; the centring is absorbed by the bias whatever data it came
        from). Otherwise append to ``vecs`` an orthonormal basis ``Q`` of the part of
        ``x_new`` outside the current span (new columns: ``(x - mean) @ Q``). The old
        columns come first, so a solution padded with zero rows for ``Q`` is a warm start.
        """
        if self.complete:
            feats = torch.cat([self.feats, x_new_rot], dim=0)
            return Basis(mean=self.mean, vecs=self.vecs, var=feats.pow(2).mean(0),
                         feats=feats, complete=True)
        threads = Threads(x_new.device)
        xn = x_new - self.mean
        n_all = self.n + xn.shape[0]
        with threads.gemm(2.0 * xn.numel() * self.vecs.shape[1]):
            resid = xn - x_new_rot @ self.vecs.T
        with threads.serial():
            lam, u = torch.linalg.eigh(resid @ resid.T / n_all)
        keep = lam > rel_tol * self.var.max().clamp_min(torch.finfo(lam.dtype).tiny)
        if not bool(keep.any()):
            feats = torch.cat([self.feats, x_new_rot], dim=0)
            return Basis(mean=self.mean, vecs=self.vecs, var=feats.pow(2).mean(0),
                         feats=feats, complete=False)
        q = resid.T @ (u[:, keep] / torch.sqrt(n_all * lam[keep]))
        with threads.gemm(4.0 * q.numel() * self.vecs.shape[1]):
            q = q - self.vecs @ (self.vecs.T @ q)  # re-orthogonalise against the span
        q = _orthonormalise(q, threads)
        with threads.gemm(2.0 * (self.n + xn.shape[0]) * q.numel()):
            top = torch.cat([self.feats, (x_train - self.mean) @ q], dim=1)
            bottom = torch.cat([x_new_rot, xn @ q], dim=1)
        feats = torch.cat([top, bottom], dim=0)
        return Basis(mean=self.mean, vecs=torch.cat([self.vecs, q], dim=1),
                     var=feats.pow(2).mean(0), feats=feats, complete=False)

    def to_original(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(coef [D, C], intercept [C])`` acting on un-centred, un-rotated X."""
        coef = self.vecs @ theta[:-1]
        intercept = theta[-1] - self.mean @ coef
        return coef, intercept

    def from_original(self, coef: Tensor, intercept: Tensor) -> Tensor:
        """Inverse of :meth:`to_original` (projects ``coef`` onto the basis span)."""
        w = self.vecs.T @ coef
        b = intercept + self.mean @ coef
        return torch.cat([w, b[None, :]], dim=0)


def _orthonormalise(v: Tensor, threads: Threads) -> Tensor:
    """Make the nearly orthonormal columns of ``v`` orthonormal to working precision.

    Cholesky-QR (``V <- V L^-T`` with ``L L^T = V^T V``): one Gram product and a triangular
    solve, several times cheaper than a Householder QR, and accurate because ``V^T V`` is
    close to the identity; Householder QR if that Gram is not numerically positive definite.
    The Gram and the solve run on the products' thread count: on the N=2,000, D=2,048
    benchmark problem they took 0.37 s of a 0.95 s basis on one thread.
    """
    d, r = v.shape
    if r == 0:
        return v
    with threads.gemm(2.0 * d * r * r):
        gram = v.T @ v
    chol, info = torch.linalg.cholesky_ex(gram)
    if int(info) == 0:
        with threads.fastest():  # untimed: a solve would teach the tuner a product's speed
            return torch.linalg.solve_triangular(chol, v.T, upper=False).T.contiguous()
    return torch.linalg.qr(v).Q.contiguous()


def make_basis(x: Tensor, rel_tol: float = 1e-5) -> Basis:
    """Centre ``x`` and rotate it into the eigenbasis of its covariance.

    ``N > D``: eigen-decompose the ``D x D`` covariance and keep every direction (a full
    rotation, so the problem is exactly the original one). ``N <= D``: the optimum lies in
    the span of the centred training rows (the gradient never leaves it), so we
    eigen-decompose the ``N x N`` Gram matrix instead and work with ``rank <= N - 1``
    columns instead of ``D``: every pass gets cheaper. Directions with variance below
    ``rel_tol`` times the largest are dropped there: they hold the exact null space
    (the centring direction) and float32 round-off (``eigh`` errors are ~1e-7 of the
    largest eigenvalue), and carry too little of the data to matter.

    ``eigh`` runs in the features' dtype (float32 measured 2x faster than float64) on the
    thread count the products found fastest (:meth:`Threads.fastest`; on two busy cores one
    thread was 3.5x faster, on idle ones two threads 1.5x). Its accuracy only
    affects the preconditioner: orthonormality of ``vecs``, which the equivalence of the
    penalty needs, is restored by a QR step in the ``N <= D`` branch and holds to float32
    precision in the other.
    """
    threads = Threads(x.device)
    n, d = x.shape
    mean = x.mean(dim=0)
    xc = x - mean
    var = None
    if n > d:
        # the gram in two halves: in a fresh process the tuner times its first two products on
        # both thread counts, so the eigh below runs on the faster one, measured, not guessed
        half = n // 2
        with threads.gemm(2.0 * half * d * d):
            gram = xc[:half].T @ xc[:half]
        with threads.gemm(2.0 * (n - half) * d * d):
            gram.addmm_(xc[half:].T, xc[half:])
        gram /= n
        with threads.fastest():
            evals, vecs = torch.linalg.eigh(gram)
        vecs = vecs.flip(1)
        # the column variances of the rotated features are the eigenvalues: no pass over them
        var = evals.flip(0).clamp_min(0)
        complete = True
    else:
        with threads.gemm(2.0 * n * n * d):
            gram = (xc @ xc.T) / n
        with threads.fastest():
            evals, u = torch.linalg.eigh(gram)
        top = evals[-1].clamp_min(torch.finfo(evals.dtype).tiny)
        keep = evals > rel_tol * top
        evals, u = evals[keep].flip(0), u[:, keep].flip(1)
        # xc = sqrt(n) U diag(sqrt(evals)) V^T  =>  V = xc^T U diag(1 / sqrt(n * evals))
        with threads.gemm(2.0 * n * d * evals.numel()):
            vecs = xc.T @ (u / torch.sqrt(n * evals))
        vecs = _orthonormalise(vecs, threads)
        complete = False
    with threads.gemm(2.0 * n * d * vecs.shape[1]):
        feats = xc @ vecs
    del xc
    if var is None:
        var = feats.pow(2).mean(0)
    return Basis(mean=mean, vecs=vecs, var=var, feats=feats, complete=complete)
