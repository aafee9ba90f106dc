"""probes: learning and statistics on top of the feature store.

Linear probes on cached features (L-BFGS logistic regression over the paper's regularisation path,
linear SVM), the metrics, sweeps that append to the store's results table, fine-tuning and
from-scratch jobs, and :mod:`probes.stats` (the paper's statistics).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "LogisticProbe",
    "SVMProbe",
    "logistic_path",
    "svm_path",
    "run_protocol",
    "ProtocolResult",
    "run_finetune",
    "FinetuneConfig",
]

_LAZY = {
    "LogisticProbe": "probes.linear.logistic",
    "logistic_path": "probes.linear.logistic",
    "SVMProbe": "probes.linear.svm",
    "svm_path": "probes.linear.svm",
    "run_protocol": "probes.linear.protocol",
    "ProtocolResult": "probes.linear.protocol",
    "run_finetune": "probes.finetune.run",
    "FinetuneConfig": "probes.finetune.config",
}


def __getattr__(name: str) -> Any:  # lazy, so `import probes.stats` does not import torch
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
