"""Input checks and row-block streaming shared by the estimators.

The store hands out float32 numpy arrays that may be far larger than what fits on a GPU (or in a
second copy in RAM), so estimators never convert a whole array at once: they walk it in blocks of
rows, move each block to the device, and keep only D x D or D x K accumulators.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from featurestore.device import resolve_device
from probes.errors import ProbeInputError

#: Rows per block: 8192 rows x 1280 float64 features is 80 MiB on the device.
DEFAULT_BLOCK_ROWS = 8192


def check_features(X: np.ndarray, name: str = "features") -> np.ndarray:
    """A 2-D finite array with at least two rows, else :class:`ProbeInputError`."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ProbeInputError(f"{name} must be 2-D [N, D], got shape {X.shape}")
    if X.shape[0] < 2:
        raise ProbeInputError(f"{name} need at least 2 rows, got {X.shape[0]}")
    if not np.isfinite(X).all():
        raise ProbeInputError(f"{name} contain NaN or inf")
    return X


def check_labels(y: np.ndarray, n: int, *, single_label: bool = True) -> np.ndarray:
    """Integer class labels ``[N]`` (or ``{0,1}`` label matrix ``[N, C]`` when allowed)."""
    y = np.asarray(y)
    if len(y) != n:
        raise ProbeInputError(f"{len(y)} labels for {n} rows")
    if y.ndim == 2:
        if single_label:
            raise ProbeInputError(
                "this estimator needs single-label classes; got a multi-label matrix "
                f"{y.shape} (LogME accepts those)"
            )
        return y
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ProbeInputError(f"labels must be integer classes [N], got {y.dtype} {y.shape}")
    if len(np.unique(y)) < 2:
        raise ProbeInputError("labels hold a single class: nothing to transfer to")
    return y


def dense_labels(y: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels renumbered 0..K-1 over the classes present (absent classes carry no evidence)."""
    classes, inv = np.unique(y, return_inverse=True)
    return inv.astype(np.int64), len(classes)


def row_blocks(
    X: np.ndarray, device: torch.device, dtype: torch.dtype, block_rows: int
) -> Iterator[tuple[slice, torch.Tensor]]:
    """``(rows, block)`` pairs covering ``X`` in order, each block on ``device`` as ``dtype``."""
    if block_rows < 1:
        raise ProbeInputError(f"block_rows must be >= 1, got {block_rows}")
    for start in range(0, X.shape[0], block_rows):
        rows = slice(start, min(X.shape[0], start + block_rows))
        yield rows, torch.as_tensor(np.ascontiguousarray(X[rows])).to(device, dtype)


def device_of(device: str | torch.device) -> torch.device:
    """The project's one device rule (:func:`featurestore.device.resolve_device`)."""
    return resolve_device(device)
