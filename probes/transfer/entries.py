"""Run the estimators on a store entry: train(+val) features, labels and (for LEEP/NCE) logits.

The test split is never read: the estimators predict how a checkpoint will do on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from probes.errors import ProbeInputError
from probes.transfer.hscore import hscore
from probes.transfer.inputs import device_of
from probes.transfer.leep import leep, nce
from probes.transfer.logme import logme
from probes.transfer.neighbours import centroid_accuracy, knn_accuracy

if TYPE_CHECKING:
    from featurestore.store import FeatureStore

#: Every estimator, in display order.
ESTIMATORS: tuple[str, ...] = ("logme", "hscore", "knn", "centroid", "leep", "nce")
#: Estimators that need the source model's logits (``extract --with-logits``).
NEEDS_LOGITS = frozenset({"leep", "nce"})
#: Estimators whose score is an accuracy (analysed in log odds, like measured accuracies).
ACCURACIES = frozenset({"knn", "centroid"})
#: Estimators defined for multi-label targets too.
MULTILABEL_OK = frozenset({"logme"})


@dataclass
class Estimate:
    """One estimator's score on one entry; ``score`` is None when it does not apply (``note``
    says why). ``seconds`` is compute time, without reading the store."""

    ckpt: str
    dataset: str
    estimator: str
    score: float | None
    seconds: float
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_estimators(names: Iterable[str]) -> list[str]:
    """Estimator names in display order; ``all`` means every one. Unknown names raise."""
    names = list(names) or ["all"]
    unknown = [n for n in names if n != "all" and n not in ESTIMATORS]
    if unknown:
        raise ProbeInputError(
            f"unknown estimator {', '.join(unknown)} (one of {', '.join(ESTIMATORS)}, all)"
        )
    want = set(ESTIMATORS) if "all" in names else set(names)
    return [e for e in ESTIMATORS if e in want]


def _timed(fn: Callable[[], float], dev: torch.device) -> tuple[float, float]:
    t0 = time.perf_counter()
    score = fn()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return score, time.perf_counter() - t0


def estimate_entry(
    store: FeatureStore,
    ckpt: str,
    dataset: str,
    estimators: Iterable[str] = ESTIMATORS,
    *,
    device: str = "auto",
    require_logits: bool = False,
) -> list[Estimate]:
    """Every requested estimator on the entry's train+val (kNN: train as reference, val as
    queries). LEEP/NCE on an entry without logits are skipped with a note, or raise the store's
    "re-extract with --with-logits" error when ``require_logits``."""
    names = parse_estimators(estimators)
    dev = device_of(device)
    X_tr, y_tr = store.load(ckpt, dataset, "train")
    X_va, y_va = store.load(ckpt, dataset, "val")
    X, y = np.concatenate([X_tr, X_va]), np.concatenate([y_tr, y_va])
    logits = None
    if NEEDS_LOGITS & set(names) and (require_logits or store.has_logits(ckpt, dataset)):
        logits = store.load_logits(ckpt, dataset, "trainval")
    out = []
    for name in names:
        if y.ndim == 2 and name not in MULTILABEL_OK:
            out.append(Estimate(ckpt, dataset, name, None, 0.0, "single-label datasets only"))
            continue
        if name in NEEDS_LOGITS and logits is None:
            out.append(Estimate(ckpt, dataset, name, None, 0.0,
                                "no logits: re-extract with --with-logits"))
            continue
        fn: Callable[[], float]
        if name == "logme":
            def fn() -> float:
                return logme(X, y, device=dev)
        elif name == "hscore":
            def fn() -> float:
                return hscore(X, y, device=dev)
        elif name == "knn":
            def fn() -> float:
                return knn_accuracy(X_tr, y_tr, X_va, y_va, device=dev).score
        elif name == "centroid":
            def fn() -> float:
                return centroid_accuracy(X, y, device=dev)
        elif name == "leep":
            def fn() -> float:
                return leep(logits, y, device=dev)
        else:
            def fn() -> float:
                return nce(logits, y, device=dev)
        score, seconds = _timed(fn, dev)
        out.append(Estimate(ckpt, dataset, name, score, seconds))
    return out
