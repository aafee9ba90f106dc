"""Per-class training subsets for the data-size study (Section 4.7, Figure 9).

Logistic regression, fine-tuning and training from scratch must see *the same* examples for a given
(dataset, K, seed), so the subset is a pure function of the training split's labels, K and the seed,
and every setting calls :func:`per_class_subset` on ``dataset.split("train").labels`` (the store's
train rows are in the same order, so the indices select the same rows of cached features).
"""

from __future__ import annotations

import numpy as np


def variant_string(k: int, subset_seed: int) -> str:
    """The results-table variant of a data-size-study row: ``"k=K,subset_seed=S"``."""
    from featurestore.results.schema import subset_variant

    return subset_variant(k, subset_seed)


def parse_subset_seeds(spec: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (unique, in order): the seeded subsets of one data-size
    call, the paper's three per K (Figure 9's error bars are the standard error over them).

    Raises :class:`probes.errors.ProbeInputError` for anything but non-negative integers."""
    from probes.errors import ProbeInputError

    parts = [p.strip() for p in str(spec).split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise ProbeInputError(
            f"--subset-seeds takes non-negative integers separated by commas (e.g. 0,1,2), "
            f"got {spec!r}")
    return list(dict.fromkeys(int(p) for p in parts))


def per_class_subset(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Sorted row indices of ``k`` training examples per class, drawn with ``seed``.

    Classes are visited in sorted order and each draws a permutation of its rows from one
    ``numpy.random.default_rng(seed)``; the first ``k`` rows are kept. The permutation does not
    depend on ``k``, so subsets are nested (K=5 is contained in K=10 for the same seed), which keeps
    the points of a Figure 9 curve comparable. A class with fewer than ``k`` rows contributes all of
    them. Multi-label rows ``[N, C]`` are assigned to their first positive label (as the stratified
    validation split does).
    """
    if k <= 0:
        from probes.errors import ProbeInputError

        raise ProbeInputError(f"examples per class must be positive, got {k}")
    labels = np.asarray(labels)
    strat = labels.argmax(axis=1) if labels.ndim == 2 else labels
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    for c in np.unique(strat):
        rows = np.flatnonzero(strat == c)
        chosen.append(rng.permutation(rows)[:k])
    if not chosen:
        return np.array([], dtype=np.int64)
    return np.sort(np.concatenate(chosen)).astype(np.int64)
