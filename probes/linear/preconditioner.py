"""The initial inverse Hessian of the L-BFGS two-loop recursion: a model of the Hessian.

Joint (softmax) problems: Kronecker-factored ``A (x) diag(var) + alpha I`` (``A`` the
class curvature averaged over examples); one-vs-rest problems: the exact per-column
diagonal in the rotated basis. It captures both the feature spectrum (diagonal after the
rotation of :mod:`probes.linear.basis`) and the regulariser, so strongly and weakly
regularised problems alike take a few iterations per grid point instead of hundreds.
"""

from __future__ import annotations

import torch

from probes.linear.curvature import ClassCurvature, ColumnCurvature, Curvature
from probes.linear.problem import Problem

Tensor = torch.Tensor

__all__ = ["ClassCurvature", "ColumnCurvature", "Curvature", "curvature_model",
           "floored_variance"]


def floored_variance(prob: Problem) -> Tensor:
    """Column variances of the rotated features plus a 1 for the bias row, floored at
    ``1e-6`` of the largest: directions without data variance would get the step 1/alpha."""
    var = prob.basis.var
    if var.numel():
        var = torch.clamp_min(var, 1e-6 * var.max())
    return torch.cat([var, torch.ones(1, dtype=prob.theta.dtype, device=prob.theta.device)])


def curvature_model(prob: Problem, floor: float = 1e-3) -> Curvature:
    """Data factor of the preconditioner at the current fit, floored at ``floor * max``
    (per column) so that directions the model thinks are flat (e.g. the softmax's shift
    invariance, or features no active example uses) stay finite.

    Column-wise it costs one matrix product (``(F^2)^T w``), so it is refreshed only
    every 10 iterations; the joint model costs ``N C^2`` and a ``C x C`` eigen-solve.
    """
    loss = prob.loss
    # the floor never falls below floor^2 of the curvature at theta = 0 (``loss.scale``):
    # on separable data the fitted curvature vanishes and the model would divide by ~0
    if loss.columnwise:
        w = loss.weights()
        with prob.threads.gemm(prob.flops):
            diag = torch.cat([prob.basis.feats.pow(2).T @ w, w.sum(0, keepdim=True)]) / loss.n
        ref = torch.cat([prob.basis.var, prob.basis.var.new_ones(1)])[:, None] * loss.scale
        return ColumnCurvature(torch.maximum(
            diag, floor * torch.maximum(diag.amax(0, keepdim=True), floor * ref)))
    c = loss.curvature()
    a, qmat = torch.linalg.eigh(c.double())
    a = torch.clamp_min(a, floor * max(float(a.max()), floor * loss.scale))
    return ClassCurvature(a.to(c.dtype), qmat.to(c.dtype))
