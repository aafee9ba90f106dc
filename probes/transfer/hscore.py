"""H-score: how much of the feature covariance the class-conditional means explain.

Bao, Li, Huang, Ren & Zheng, "An Information-Theoretic Approach to Transferability in Task Transfer
Learning", ICIP 2019 (Definition 1).
"""

from __future__ import annotations

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

#: Eigen-directions of cov(f) below this fraction of the largest are treated as null (the
#: pseudo-inverse); with N < D the covariance is singular and these directions are noise.
RTOL = 1e-10


def hscore(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    device: str | torch.device = "auto",
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> float:
    """H-score ``tr(cov(f)^+ cov(E[f | y]))`` of ``features`` [N, D] for classes ``labels`` [N].

    ``cov(f) = F^T F / N - mu mu^T`` and ``cov(E[f|y]) = sum_c (n_c / N) (mu_c - mu)(mu_c - mu)^T``
    with ``mu_c`` the class means: the between-class part of the covariance. The score is the
    optimal value of the paper's Eq. 4 (higher = the classes are more linearly separable), bounded
    by ``min(D, K - 1)``. Both covariances come from one streaming pass over the rows.
    """
    X = check_features(features)
    y = check_labels(labels, X.shape[0])
    targets, k = dense_labels(y)
    mo = moments(X, targets, k, device_of(device), block_rows)
    n = mo.n
    mu = mo.total / n
    cov_f = mo.gram / n - torch.outer(mu, mu)
    means = mo.target_sums / mo.target_sq[:, None]  # class means [K, D]
    centred = means - mu
    cov_g = centred.T @ (centred * (mo.target_sq[:, None] / n))
    cov_f = (cov_f + cov_f.T) / 2
    return float(torch.trace(torch.linalg.pinv(cov_f, rtol=RTOL, hermitian=True) @ cov_g))
