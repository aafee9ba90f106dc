"""LogME: the log marginal evidence of a Bayesian linear model on the features.

You, Liu, Wang & Long, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning",
ICML 2021 (Algorithm 1).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from probes.transfer.inputs import (
    DEFAULT_BLOCK_ROWS,
    check_features,
    check_labels,
    dense_labels,
    device_of,
)
from probes.transfer.moments import moments

#: Stop when every target's ``lambda = alpha / beta`` moved by less than this, relatively. The
#: paper's code stops at 1e-2 after at most 11 steps; converging fully makes the value a property
#: of the data (the fixed point) rather than of the iteration count.
TOL = 1e-9
MAX_ITER = 5000
#: Eigenvalues of F^T F below this fraction of the largest are zero (float64 rounding).
RANK_RTOL = 1e-12
#: When a target can be fitted exactly (N <= D), the evidence grows towards a finite supremum as
#: beta -> inf; lambda = alpha / beta stops at this fraction of the smallest eigenvalue, where the
#: evidence is within ~1e-10 relative of that limit.
LAMBDA_FLOOR = 1e-10


def logme(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    device: str | torch.device = "auto",
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> float:
    """LogME of ``features`` [N, D] for ``labels`` (classes [N], or a 0/1 matrix [N, K]).

    For each target column ``y`` (one-hot column of a class, or a label column) the model is
    ``y = F w + e`` with prior ``w ~ N(0, alpha^-1 I_D)`` and noise ``e ~ N(0, beta^-1 I_N)``; its
    evidence, maximised over ``alpha, beta``, is (paper Eq. 2)::

        L(alpha, beta) = N/2 log beta + D/2 log alpha - N/2 log 2 pi
                         - beta/2 ||F m - y||^2 - alpha/2 m^T m - 1/2 log |A|,
        A = alpha I + beta F^T F,   m = beta A^-1 F^T y.

    MacKay's fixed point (Algorithm 1) with ``sigma_i^2`` the eigenvalues of ``F^T F`` (squared
    singular values of ``F``; one decomposition serves every class)::

        gamma = sum_i beta sigma_i^2 / (alpha + beta sigma_i^2)
        alpha <- gamma / m^T m,   beta <- (N - gamma) / ||F m - y||^2

    LogME is ``L / N`` at the fixed point, averaged over the K targets (higher = better). Where a
    target can be fitted exactly (N <= D) the evidence increases towards a finite limit as
    ``beta -> inf``; the iteration follows it to ``lambda = alpha / beta`` at
    :data:`LAMBDA_FLOOR` and reports that limit (the paper's code stops after 11 steps wherever
    it is on the way).

    Everything after the one streaming pass (:mod:`probes.transfer.moments`) happens in the
    eigenbasis of ``F^T F``, where ``A`` is diagonal: ``m^T m``, ``||F m - y||^2`` and ``log |A|``
    cost O(D) per target and iteration, and the K targets iterate together.
    """
    X = check_features(features)
    y = check_labels(labels, X.shape[0], single_label=False)
    if y.ndim == 1:
        targets, k = dense_labels(y)
    else:
        targets, k = y.astype(np.float64), y.shape[1]
    dev = device_of(device)
    mo = moments(X, targets, k, dev, block_rows)
    n, d = mo.n, X.shape[1]
    if n < d:
        # Fewer rows than features: decompose the N x N Gram matrix F F^T = U diag(s) U^T
        # instead (same non-zero s); the rows fit in memory since N < D.
        F = torch.as_tensor(X, device=dev, dtype=torch.float64)
        s, U = torch.linalg.eigh(F @ F.T)
        T = (torch.nn.functional.one_hot(torch.as_tensor(targets, device=dev), k).to(F.dtype)
             if targets.ndim == 1 else torch.as_tensor(targets, device=dev))
        pos = s > RANK_RTOL * s.max()
        s = torch.where(pos, s, torch.ones_like(s))  # placeholder 1 where masked out below
        proj = torch.where(pos, (T.T @ U) ** 2, 0.0)  # (u_i^T y)^2 per target
    else:
        s, V = torch.linalg.eigh(mo.gram)  # F^T F = V diag(s) V^T  <=>  F = U diag(sqrt s) V^T
        # Directions below RANK_RTOL of the top eigenvalue are rounding noise of a null space.
        pos = s > RANK_RTOL * s.max()
        s = torch.where(pos, s, torch.ones_like(s))  # placeholder 1 where masked out below
        b = mo.target_sums @ V  # [K, D]: V^T F^T y = diag(sqrt s) U^T y per target
        proj = torch.where(pos, b * b / s, 0.0)  # (u_i^T y)^2
    r = int(pos.sum())
    # ||y||^2 outside the column space of F (0 when N <= D): the part no m can fit.
    y_perp = (mo.target_sq - proj.sum(1)).clamp_min(0.0)[:, None]
    floor = LAMBDA_FLOOR * float(s[pos].min())

    def step(lam: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``alpha, beta*res, m^T m, N - gamma, res`` at ``lambda = alpha / beta``.

        Everything is a sum of non-negative terms (no cancellation): in the eigenbasis
        ``m_i = sqrt(s_i) u_i^T y / (lambda + s_i)``, ``gamma = sum_i s_i / (lambda + s_i)``,
        and the residual is
        ``y_perp + sum_i (u_i^T y)^2 (lambda / (lambda + s_i))^2``.
        """
        q = torch.where(pos, lam / (lam + s), 0.0)
        mm = (proj * s / (lam + s) ** 2).sum(1, keepdim=True)  # m_i = sqrt(s_i) u_i^T y / (...)
        n_minus_gamma = (n - r) + q.sum(1, keepdim=True)
        res = y_perp + (proj * q * q).sum(1, keepdim=True)
        gamma = n - n_minus_gamma
        return gamma / mm, mm, n_minus_gamma, res

    lam = torch.ones(k, 1, dtype=torch.float64, device=dev)  # the paper's alpha = beta = 1
    for _ in range(MAX_ITER):
        alpha, _, n_minus_gamma, res = step(lam)
        new = (alpha * res / n_minus_gamma).clamp_min(floor)  # alpha / beta
        done = ((new - lam).abs() <= TOL * lam) | (new <= floor)
        lam = new
        if bool(done.all()):
            break
    alpha, mm, n_minus_gamma, res = step(lam)
    beta = alpha / lam
    # log|A| = (D - r) log alpha + sum_{s>0} log(beta (lambda + s_i)); the r log beta terms are
    # merged with N/2 log beta so that beta -> inf (exact interpolation, N <= D) stays finite.
    beta_res = alpha * ((proj * torch.where(pos, lam / (lam + s) ** 2, 0.0)).sum(1, keepdim=True))
    beta_res = beta_res + torch.where(y_perp > 0, beta * y_perp, 0.0)
    log_beta = torch.where(torch.tensor(n > r, device=dev), torch.log(beta), 0.0)
    evidence = (
        (n - r) / 2 * log_beta + r / 2 * torch.log(alpha) - n / 2 * math.log(2 * math.pi)
        - 0.5 * torch.where(pos, torch.log(lam + s), 0.0).sum(1, keepdim=True)
        - beta_res / 2 - alpha / 2 * mm
    )
    return float((evidence / n).mean())
