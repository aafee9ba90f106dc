"""LEEP and NCE: transferability from the source model's own ImageNet predictions.

Both need the checkpoint's 1000-way logits on the target images (``featurestore extract
--with-logits``); they measure how well the source label predicts the target label, without
features at all.
"""

from __future__ import annotations

import numpy as np
import torch

from probes.errors import ProbeInputError
from probes.transfer.inputs import (
    DEFAULT_BLOCK_ROWS,
    check_features,
    check_labels,
    dense_labels,
    device_of,
    row_blocks,
)


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    Z = check_features(logits, "logits")
    if Z.shape[1] < 2:
        raise ProbeInputError(f"logits need at least 2 source classes, got {Z.shape[1]}")
    y, k = dense_labels(check_labels(labels, Z.shape[0]))
    return Z, y, k


def leep(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    device: str | torch.device = "auto",
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> float:
    """LEEP (Nguyen, Hassner, Seeger & Archambeau, "LEEP: A New Measure to Evaluate
    Transferability of Learned Representations", ICML 2020, Eq. 1-2).

    With ``theta(x)`` the source model's softmax over source classes ``z``::

        P(y, z) = 1/N sum_{i: y_i = y} theta(x_i)_z          (empirical joint)
        P(y | z) = P(y, z) / sum_y' P(y', z)
        LEEP = 1/N sum_i log sum_z P(y_i | z) theta(x_i)_z

    i.e. the average log-likelihood of the "expected empirical predictor" that maps the source
    prediction to target classes (<= 0, higher = better). Two passes over the logits in blocks.
    """
    Z, y, k = _check(logits, labels)
    dev = device_of(device)
    joint = torch.zeros(k, Z.shape[1], dtype=torch.float64, device=dev)
    for rows, block in row_blocks(Z, dev, torch.float64, block_rows):
        joint.index_add_(0, torch.as_tensor(y[rows], device=dev), torch.softmax(block, 1))
    cond = joint / joint.sum(0, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    total = torch.zeros((), dtype=torch.float64, device=dev)
    for rows, block in row_blocks(Z, dev, torch.float64, block_rows):
        yi = torch.as_tensor(y[rows], device=dev)
        eep = (torch.softmax(block, 1) * cond[yi]).sum(1)  # sum_z P(y_i|z) theta(x_i)_z
        total += torch.log(eep).sum()
    return float(total / Z.shape[0])


def nce(
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    device: str | torch.device = "auto",
    block_rows: int = DEFAULT_BLOCK_ROWS,
) -> float:
    """Negative conditional entropy ``-H(Y | Z)`` (Tran, Nguyen & Hassner, "Transferability and
    Hardness of Supervised Classification Tasks", ICCV 2019, Eq. 2-4), with ``Z`` the source
    model's hard prediction ``argmax logits`` (the source "label" of each target image)::

        P(y, z) = #{i: y_i = y, z_i = z} / N,   NCE = sum_{y,z} P(y, z) log (P(y, z) / P(z))

    (<= 0; 0 when the source prediction determines the target class; higher = better).
    """
    Z, y, k = _check(logits, labels)
    dev = device_of(device)
    counts = torch.zeros(k, Z.shape[1], dtype=torch.float64, device=dev)
    for rows, block in row_blocks(Z, dev, torch.float32, block_rows):
        z = block.argmax(1)
        yi = torch.as_tensor(y[rows], device=dev)
        counts.index_put_((yi, z), torch.ones_like(z, dtype=torch.float64), accumulate=True)
    joint = counts / Z.shape[0]
    pz = joint.sum(0, keepdim=True)
    nz = joint > 0
    return float((joint[nz] * torch.log(joint[nz] / pz.expand_as(joint)[nz])).sum())
