"""Figure 4: a 2-D t-SNE of cached features (pure: :mod:`probes.analysis.store_reads` reads
them from a store)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = [
    "tsne_frame",
]


def tsne_frame(
    features: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str] | None = None,
    classes: Sequence[int] | None = None,
    n_classes: int = 10,
    seed: int = 0,
    perplexity: float = 30.0,
) -> pd.DataFrame:
    """Figure 4: a 2-D t-SNE (scikit-learn) of ``features`` for ``n_classes`` classes.

    ``classes`` defaults to the ``n_classes`` smallest label ids present, so the same classes
    are shown for every checkpoint of a dataset. Perplexity is capped below a third of the
    number of points (t-SNE needs perplexity < n), which only matters for tiny test splits.
    Returns columns ``x``, ``y``, ``label`` and ``class_name``.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError("t-SNE colouring needs single-label data (got multi-label labels)")
    chosen = np.unique(labels)[:n_classes] if classes is None else np.asarray(list(classes))
    mask = np.isin(labels, chosen)
    x = np.asarray(features, dtype=np.float32)[mask]
    if len(x) < 3:
        raise ValueError(f"t-SNE needs at least 3 points of the chosen classes, got {len(x)}")
    perp = float(min(perplexity, max(1.0, (len(x) - 1) / 3.0)))
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed)
    # One OpenMP thread: at Figure 4's size (~600 points) the parallel Barnes-Hut gradient gains
    # nothing and spin-waits badly on a busy machine (measured on 2 cores: 2.8 s with 1 thread,
    # 12-25 s with 2).
    with threadpool_limits(limits=1, user_api="openmp"):
        emb = tsne.fit_transform(x)
    y = labels[mask]
    names = [label_names[i] if label_names is not None and i < len(label_names) else str(i)
             for i in y]
    return pd.DataFrame({"x": emb[:, 0], "y": emb[:, 1], "label": y, "class_name": names})
