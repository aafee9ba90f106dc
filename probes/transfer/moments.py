"""One streaming pass over the features: the sufficient statistics LogME and H-score need.

Both estimators depend on the data only through ``F^T F`` (D x D), the per-target sums ``F^T Y``
(D x K) and ``Y^T Y``'s diagonal; accumulating them block by block in float64 makes their cost one
GEMM pass over the rows and their memory O(D^2 + D K), whatever N is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from probes.transfer.inputs import DEFAULT_BLOCK_ROWS, row_blocks


@dataclass
class Moments:
    """``gram = F^T F``, ``target_sums = Y^T F`` (K x D), ``target_sq = diag(Y^T Y)`` (K),
    ``total = 1^T F`` (D), all float64 on the device they were computed on."""

    n: int
    gram: torch.Tensor
    target_sums: torch.Tensor
    target_sq: torch.Tensor
    total: torch.Tensor


def moments(
    X: np.ndarray,
    targets: np.ndarray,
    n_targets: int,
    device: torch.device,
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> Moments:
    """Accumulate the statistics of ``X`` against ``targets``.

    ``targets`` is either dense class indices ``[N]`` in ``0..n_targets-1`` (one-hot targets,
    never materialised) or a real target matrix ``[N, n_targets]`` (multi-label 0/1 columns).
    """
    d = X.shape[1]
    f64 = torch.float64
    gram = torch.zeros(d, d, dtype=f64, device=device)
    sums = torch.zeros(n_targets, d, dtype=f64, device=device)
    sq = torch.zeros(n_targets, dtype=f64, device=device)
    total = torch.zeros(d, dtype=f64, device=device)
    for rows, F in row_blocks(X, device, f64, block_rows):
        gram.addmm_(F.T, F)
        total += F.sum(0)
        t = torch.as_tensor(np.ascontiguousarray(targets[rows]), device=device)
        if t.ndim == 1:
            sums.index_add_(0, t.long(), F)
            sq += torch.bincount(t.long(), minlength=n_targets).to(f64)
        else:
            t = t.to(f64)
            sums.addmm_(t.T, F)
            sq += (t * t).sum(0)
    return Moments(X.shape[0], gram, sums, sq, total)
