"""Transferability estimators: which checkpoint will transfer best to *this* dataset, from the
features (and source-model predictions) already cached in the store, in seconds instead of a probe
sweep or a fine-tune per checkpoint.

Every estimator takes numpy arrays (the store's float32 features / logits and int labels), works
on CPU or CUDA through torch, and streams rows in blocks so memory stays bounded for N in the
hundreds of thousands:

* :func:`logme`            LogME (You et al., ICML 2021)
* :func:`hscore`           H-score (Bao et al., ICIP 2019)
* :func:`knn_accuracy`     cosine k-nearest-neighbour accuracy, k chosen on val
* :func:`centroid_accuracy` leave-one-out nearest-centroid accuracy
* :func:`leep`             LEEP (Nguyen et al., ICML 2020), from source-model ImageNet logits
* :func:`nce`              NCE (Tran et al., ICCV 2019), from source-model ImageNet logits

:mod:`probes.transfer.entries` runs them on a store entry; :mod:`probes.transfer.ranking` ranks
checkpoints and correlates the estimates with measured transfer (probe, fine-tune).
"""

from __future__ import annotations

from probes.transfer.hscore import hscore
from probes.transfer.leep import leep, nce
from probes.transfer.logme import logme
from probes.transfer.neighbours import KnnResult, centroid_accuracy, knn_accuracy

__all__ = [
    "KnnResult",
    "centroid_accuracy",
    "hscore",
    "knn_accuracy",
    "leep",
    "logme",
    "nce",
]
