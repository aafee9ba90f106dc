"""Names and labels of the paper's tables: settings, datasets and models, store vs paper.

Store datasets use short names (``cars``, ``aircraft``, ``pets``); the paper uses
``stanford_cars``, ``fgvc_aircraft``, ``oxford_pets``. Every table of :mod:`probes.analysis`
uses the *store* names, so a store table and a paper table line up column for column; this
module is the one place that maps between the two and spells them for display. Store
checkpoints map to the paper's models through the checkpoint registry's
``extra["paper_model"]``, else by name (``inception_v4`` or ``inception_v4.tf_in1k``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from probes.analysis import paper

__all__ = [
    "PAPER_SETTINGS",
    "SETTINGS",
    "SETTING_LABELS",
    "SHORT_SETTING_LABELS",
    "STORE_DATASETS",
    "dataset_label",
    "dataset_order",
    "model_label",
    "paper_dataset_for",
    "paper_model_for",
    "setting_label",
    "store_dataset_for",
]


#: Settings of the results table, in display order (see :mod:`featurestore.results`).
SETTINGS: tuple[str, ...] = ("logreg", "svm", "logreg_aug", "finetune", "scratch")


#: Store setting -> the paper's Table 6 setting (the paper prints no table for SVM / augmentation).
PAPER_SETTINGS: dict[str, str] = {
    "logreg": "logistic_regression",
    "finetune": "fine_tuned",
    "scratch": "from_scratch",
}


SETTING_LABELS: dict[str, str] = {
    "logreg": "Logistic regression",
    "svm": "SVM",
    "logreg_aug": "Logistic regression + augmentation",
    "finetune": "Fine-tuned",
    "scratch": "Trained from random initialization",
}


#: Store dataset name -> the paper's dataset key (:data:`probes.analysis.paper.DATASETS`).
STORE_DATASETS: dict[str, str] = {
    "food101": "food101",
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "birdsnap": "birdsnap",
    "sun397": "sun397",
    "cars": "stanford_cars",
    "aircraft": "fgvc_aircraft",
    "voc2007": "voc2007",
    "dtd": "dtd",
    "pets": "oxford_pets",
    "caltech101": "caltech101",
    "flowers102": "flowers102",
}


_PAPER_TO_STORE = {v: k for k, v in STORE_DATASETS.items()}


def paper_dataset_for(dataset: str) -> str | None:
    """The paper's key for a store dataset name (or for a paper key itself), else None."""
    if dataset in STORE_DATASETS:
        return STORE_DATASETS[dataset]
    return dataset if dataset in paper.DATASET_NAMES else None


def store_dataset_for(paper_key: str) -> str:
    """The store's name for one of the paper's dataset keys (unknown keys pass through)."""
    return _PAPER_TO_STORE.get(paper_key, paper_key)


def _checkpoint_registry() -> Mapping[str, Any]:
    """The checkpoint registry (presets included), imported on first use: it loads no torch, but
    plain table transforms need none of it."""
    from featurestore.checkpoints import REGISTRY

    return REGISTRY


def paper_model_for(ckpt: str) -> str | None:
    """The paper model (Table 3 key) a store checkpoint is an instance of, if any.

    Registry entries say so in ``extra["paper_model"]``; otherwise a checkpoint named like a
    paper model (``inception_v4``, or a timm name with a pretrained tag, ``inception_v4.tf_in1k``)
    is that model.
    """
    info = _checkpoint_registry().get(ckpt)
    if info is not None:
        key = (info.extra or {}).get("paper_model")
        if key:
            return str(key)
    for candidate in (ckpt, ckpt.split(".", 1)[0]):
        if candidate in paper.MODEL_NAMES:
            return candidate
    return None


def dataset_label(dataset: str) -> str:
    """Display name: the paper's spelling for the paper's datasets, else the store name."""
    key = paper_dataset_for(dataset)
    return paper.DATASET_NAMES[key] if key else dataset


def model_label(model: str) -> str:
    """Display name: the paper's spelling for a paper model key, else the name itself."""
    return paper.MODEL_NAMES.get(model, model)


#: Setting names short enough for subplot titles, axis labels and legend entries.
SHORT_SETTING_LABELS: dict[str, str] = {
    "logreg": "Logistic regression",
    "svm": "SVM",
    "logreg_aug": "Logistic + augmentation",
    "finetune": "Fine-tuned",
    "scratch": "From scratch",
}


def setting_label(setting: str, short: bool = False) -> str:
    """The paper's name for a setting (``short``: a compact form for panel titles)."""
    labels = SHORT_SETTING_LABELS if short else SETTING_LABELS
    return labels.get(setting, setting)


def dataset_order(datasets: Iterable[str]) -> list[str]:
    """Paper order (Table 1) for the paper's datasets, then the others alphabetically."""
    rank = {store_dataset_for(k): i for i, k in enumerate(paper.DATASETS)}
    return sorted(set(datasets), key=lambda d: (rank.get(d, len(rank)), d))
