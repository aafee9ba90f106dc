"""Feature scale: L2 normalisation that survives any representable scale, and the range check
that refuses features the solver's float type cannot handle.

A wrong number that looks right is the worst outcome of a probe. Features scaled by 1e30
used to overflow silently: ``x.norm()`` became inf, every normalised row 0 and the SVM
scored chance; the logistic probe's covariance overflowed float32 and ``eigh`` failed. Per-row
L2 normalisation is scale invariant, so it is made exact at any scale (rows whose norm would
overflow or underflow are divided by their largest entry first). The logistic objective is
*not* scale invariant (the L2 penalty means something different at another scale), so it
cannot be rescaled silently: features whose second moments overflow the solver's dtype are
refused with :class:`~probes.errors.ProbeInputError`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from probes.errors import ProbeInputError

__all__ = ["Features", "check_feature_scale", "check_tensor_features", "l2_normalise_np",
           "l2_normalise_t", "max_safe_abs"]

#: Features as the probes take them: a NumPy array, or a torch tensor already on its device
#: (``FeatureStore.load_tensor`` reads CUDA features straight into GPU memory).
Features = np.ndarray | torch.Tensor


def check_tensor_features(x: torch.Tensor, what: str) -> torch.Tensor:
    """scikit-learn's checks of a feature matrix, for a torch tensor, where it lives (no host
    copy): two dimensions, a float dtype, at least one row, every entry finite."""
    if x.ndim != 2:
        raise ProbeInputError(f"Expected a 2D feature matrix for {what}, got shape "
                              f"{tuple(x.shape)}")
    if not x.is_floating_point():
        raise ProbeInputError(f"{what} must hold floating-point features, got {x.dtype}")
    if x.shape[0] < 1:
        raise ProbeInputError(f"Found array with 0 sample(s) (shape={tuple(x.shape)}) while a "
                              "minimum of 1 is required.")
    if not bool(torch.isfinite(x).all()):
        raise ProbeInputError(f"Input {what} contains NaN or infinity.")
    return x


def _safe_low(eps: float, tiny: float) -> float:
    """Smallest row norm whose sum of squares keeps full precision (no subnormal squares
    that matter)."""
    return math.sqrt(tiny) / eps


def l2_normalise_t(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` divided by their L2 norm (zero rows stay zero), exact at any scale.

    The plain ``x / ||x||`` is kept for rows whose norm is finite and not tiny (bitwise the
    same result as before this function existed); the other rows are first divided by their
    largest absolute entry, so their squares neither overflow nor underflow.
    """
    fi = torch.finfo(x.dtype)
    norms = x.norm(dim=1, keepdim=True)
    out = x / norms.clamp_min(fi.tiny)
    unsafe = (~torch.isfinite(norms) | (norms < _safe_low(fi.eps, fi.tiny))).squeeze(1)
    if bool(unsafe.any()):
        rows = unsafe.nonzero().squeeze(1)
        sub = x[rows]
        sub = sub / sub.abs().amax(dim=1, keepdim=True).clamp_min(fi.tiny)
        out[rows] = sub / sub.norm(dim=1, keepdim=True).clamp_min(fi.tiny)
    return out


def l2_normalise_np(x: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`l2_normalise_t` (prediction runs in float64 NumPy)."""
    fi = np.finfo(x.dtype)
    tiny, eps = float(fi.tiny), float(fi.eps)
    with np.errstate(over="ignore"):
        norms = np.linalg.norm(x, axis=1, keepdims=True)
    out = x / np.maximum(norms, tiny)
    unsafe = (~np.isfinite(norms) | (norms < _safe_low(eps, tiny))).ravel()
    if unsafe.any():
        sub = x[unsafe]
        sub = sub / np.maximum(np.abs(sub).max(axis=1, keepdims=True), tiny)
        out[unsafe] = sub / np.maximum(np.linalg.norm(sub, axis=1, keepdims=True), tiny)
    return out


def max_safe_abs(dtype: torch.dtype, n_rows: int, n_features: int, squares: bool) -> float:
    """Largest feature magnitude the solver handles in ``dtype``.

    ``squares=False`` (normalised features): anything the dtype represents. ``squares=True``
    (raw features): the covariance / Gram matrices sum up to ``max(N, D)`` squares of
    centred entries (each at most ``2 max|x|``), which must stay finite.
    """
    top = float(torch.finfo(dtype).max)
    if not squares:
        return top
    return math.sqrt(top / (4.0 * max(n_rows, n_features, 1)))


def check_feature_scale(x: Features, dtype_name: str, dtype: torch.dtype, n_rows: int,
                        squares: bool, what: str = "features") -> None:
    """Refuse ``x`` when its largest magnitude exceeds :func:`max_safe_abs`.

    ``n_rows`` counts every row that enters the same second moments (train + val for the
    refit). Costs two passes over ``x`` (max and min, no copy), on its device for a tensor.
    """
    if isinstance(x, torch.Tensor):
        if x.numel() == 0:
            return
        biggest = float(torch.maximum(x.amax(), -x.amin()))
    elif x.size == 0:
        return
    else:
        biggest = float(max(x.max(), -x.min()))
    limit = max_safe_abs(dtype, n_rows, x.shape[1], squares)
    if biggest <= limit:
        return
    if squares:
        raise ProbeInputError(
            f"{what} reach |x| = {biggest:.3g}, too large for the {dtype_name} solver: its "
            f"second moments overflow above |x| = {limit:.3g} for {n_rows} rows x "
            f"{x.shape[1]} features; rescale the features (the L2 penalty is not scale "
            "invariant, so lambda means something else at another scale) or use "
            "dtype='float64'"
        )
    raise ProbeInputError(
        f"{what} reach |x| = {biggest:.3g}, beyond the range of {dtype_name} "
        f"(max {limit:.3g}); rescale the features or use dtype='float64'"
    )
