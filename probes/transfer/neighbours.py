"""Non-parametric estimators on L2-normalised features: cosine kNN and nearest centroid.

They ask the question a linear probe asks (are the classes separable in this feature space?)
without fitting anything, so they cost one similarity pass. Both compute similarities block by
block (a ``query_block x ref_block`` tile at a time) and keep only a running top-k, so memory is
bounded whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from probes.errors import ProbeInputError
from probes.transfer.inputs import check_features, check_labels, device_of, row_blocks

DEFAULT_KS = (1, 3, 5, 10, 20, 50)
QUERY_BLOCK = 1024
REF_BLOCK = 16384


def _normalised(block: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(block, dim=1)


@dataclass
class KnnResult:
    """``score``: val accuracy at the chosen ``k`` (the best on val; ties go to the smaller k);
    ``val_accuracy``: every candidate k's val accuracy."""

    score: float
    k: int
    val_accuracy: dict[int, float] = field(default_factory=dict)


def _topk_neighbours(
    ref: np.ndarray, query: np.ndarray, kmax: int, dev: torch.device,
    query_block: int, ref_block: int,
) -> torch.Tensor:
    """Indices [Nq, kmax] of each query's most cosine-similar reference rows, most similar first."""
    out = []
    for _, q in row_blocks(query, dev, torch.float32, query_block):
        q = _normalised(q)
        best_s = torch.full((len(q), 0), -torch.inf, device=dev)
        best_i = torch.zeros((len(q), 0), dtype=torch.long, device=dev)
        for rows, r in row_blocks(ref, dev, torch.float32, ref_block):
            sim = q @ _normalised(r).T
            s, i = sim.topk(min(kmax, sim.shape[1]), dim=1)
            cat_s = torch.cat([best_s, s], 1)
            cat_i = torch.cat([best_i, i + rows.start], 1)
            best_s, pos = cat_s.topk(min(kmax, cat_s.shape[1]), dim=1)
            best_i = cat_i.gather(1, pos)
        out.append(best_i)
    return torch.cat(out)


def knn_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    val_features: np.ndarray,
    val_labels: np.ndarray,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    device: str | torch.device = "auto",
    query_block: int = QUERY_BLOCK,
    ref_block: int = REF_BLOCK,
) -> KnnResult:
    """Accuracy on val of a majority vote among the k train rows of highest cosine similarity,
    for each candidate ``k``; the estimate is the best of them (k chosen on val).

    Votes are unweighted and a tie between classes goes to the smallest label, as in
    scikit-learn's ``KNeighborsClassifier(metric="cosine")``. Candidates above the number of train
    rows are dropped. (A k-NN accuracy as transferability proxy: e.g. the k-NN evaluation of
    Wu et al., CVPR 2018, and the baselines of You et al., ICML 2021.)
    """
    Xtr = check_features(train_features, "train features")
    Xva = check_features(val_features, "val features")
    if Xtr.shape[1] != Xva.shape[1]:
        raise ProbeInputError(f"train has {Xtr.shape[1]} features, val {Xva.shape[1]}")
    ytr = check_labels(train_labels, len(Xtr)).astype(np.int64)
    yva = np.asarray(val_labels)
    if yva.shape != (len(Xva),) or not np.issubdtype(yva.dtype, np.integer):
        raise ProbeInputError(f"val labels must be integer classes [{len(Xva)}], got {yva.shape}")
    yva = yva.astype(np.int64)
    cand = sorted({int(k) for k in ks if 1 <= int(k) <= len(Xtr)})
    if not cand:
        raise ProbeInputError(f"no candidate k in {list(ks)} fits {len(Xtr)} train rows")
    dev = device_of(device)
    idx = _topk_neighbours(Xtr, Xva, cand[-1], dev, query_block, ref_block)
    n_classes = int(max(ytr.max(), yva.max())) + 1
    neigh = torch.as_tensor(ytr, device=dev)[idx]  # [Nval, kmax] labels, nearest first
    truth = torch.as_tensor(yva, device=dev)
    acc = {}
    for k in cand:
        votes = torch.zeros(len(neigh), n_classes, device=dev)
        votes.scatter_add_(1, neigh[:, :k], torch.ones_like(neigh[:, :k], dtype=votes.dtype))
        acc[k] = float((votes.argmax(1) == truth).double().mean())
    best = max(cand, key=lambda k: (acc[k], -k))
    return KnnResult(acc[best], best, acc)


def centroid_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    device: str | torch.device = "auto",
    block_rows: int = REF_BLOCK,
) -> float:
    """Leave-one-out nearest-centroid accuracy on L2-normalised features.

    Each row ``z_i`` (normalised) is assigned to the class whose centroid is nearest in Euclidean
    distance, its own class's centroid being recomputed without it:
    ``mu_c^(-i) = (S_c - z_i) / (n_c - 1)`` with ``S_c`` the class sum, so
    ``||z_i - mu||^2 = ||z_i||^2 - 2 z_i . mu + ||mu||^2`` needs only ``z_i . S_c`` and
    ``||S_c||^2``.
    A row alone in its class cannot be classified correctly and counts as an error. Cost: two
    passes over the rows (class sums, then distances), memory O(K D).
    """
    X = check_features(features)
    y = check_labels(labels, len(X)).astype(np.int64)
    dev = device_of(device)
    k = int(y.max()) + 1
    sums = torch.zeros(k, X.shape[1], dtype=torch.float64, device=dev)
    for rows, block in row_blocks(X, dev, torch.float64, block_rows):
        sums.index_add_(0, torch.as_tensor(y[rows], device=dev), _normalised(block))
    counts = torch.bincount(torch.as_tensor(y, device=dev), minlength=k).to(torch.float64)
    present = counts > 0
    sq_sums = (sums * sums).sum(1)
    correct = 0
    for rows, block in row_blocks(X, dev, torch.float64, block_rows):
        z = _normalised(block)
        yi = torch.as_tensor(y[rows], device=dev)
        zz = (z * z).sum(1)
        dots = z @ sums.T  # [B, K]: z . S_c
        safe = counts.clamp_min(1.0)
        dist = zz[:, None] - 2 * dots / safe + sq_sums / safe**2
        dist[:, ~present] = torch.inf
        # own class without z: S' = S - z, n' = n - 1
        n_own = counts[yi] - 1
        dot_own = dots.gather(1, yi[:, None])[:, 0] - zz
        sq_own = sq_sums[yi] - 2 * dots.gather(1, yi[:, None])[:, 0] + zz
        own = torch.where(n_own > 0,
                          zz - 2 * dot_own / n_own.clamp_min(1) + sq_own / n_own.clamp_min(1) ** 2,
                          torch.full_like(zz, torch.inf))
        dist.scatter_(1, yi[:, None], own[:, None])
        correct += int((dist.argmin(1) == yi).sum())
    return correct / len(X)
