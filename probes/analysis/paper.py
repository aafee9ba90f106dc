"""The paper's published numbers (Kornblith, Shlens & Le), for checks and side-by-side figures.

The tables are CSV files in the repository's top-level ``data/paper/`` (see its README for the
layout and transcription notes). They are found relative to this file, which works for a source
checkout and an editable install; a wheel does not ship them, and loading then fails with a
``FileNotFoundError`` that says where the files were expected.

Models and datasets are identified by stable keys (``inception_v4``, ``fgvc_aircraft``, ...);
:data:`MODEL_NAMES` and :data:`DATASET_NAMES` give the paper's spelling for labels.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import pandas as pd

__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "MODEL_NAMES",
    "SETTINGS",
    "TRAIN_SIZE",
    "data_dir",
    "imagenet_top1",
    "load_table3",
    "load_table6",
]

Setting = Literal["logistic_regression", "fine_tuned", "from_scratch"]
Top1Kind = Literal["retrained", "paper", "public"]

#: Table 6's three training settings, in the paper's order.
SETTINGS: tuple[str, ...] = ("logistic_regression", "fine_tuned", "from_scratch")

#: Dataset keys in the paper's column order (Table 1 / Table 6), with the paper's labels.
DATASET_NAMES: dict[str, str] = {
    "food101": "Food-101",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "birdsnap": "Birdsnap",
    "sun397": "SUN397",
    "stanford_cars": "Stanford Cars",
    "fgvc_aircraft": "FGVC Aircraft",
    "voc2007": "VOC 2007",
    "dtd": "DTD",
    "oxford_pets": "Oxford-IIIT Pets",
    "caltech101": "Caltech-101",
    "flowers102": "Oxford 102 Flowers",
}
DATASETS: tuple[str, ...] = tuple(DATASET_NAMES)

#: Training-set sizes from Table 1 (train+val as used for the final models). Section 4.3 and
#: Appendix D split and regress on these.
TRAIN_SIZE: dict[str, int] = {
    "food101": 75_750,
    "cifar10": 50_000,
    "cifar100": 50_000,
    "birdsnap": 47_386,
    "sun397": 19_850,
    "stanford_cars": 8_144,
    "fgvc_aircraft": 6_667,
    "voc2007": 5_011,
    "dtd": 3_760,
    "oxford_pets": 3_680,
    "caltech101": 3_060,
    "flowers102": 2_040,
}

#: Model keys in the paper's row order (Table 3 / Table 6), with the paper's names.
MODEL_NAMES: dict[str, str] = {
    "inception_v1": "Inception v1",
    "bn_inception": "BN-Inception",
    "inception_v3": "Inception v3",
    "inception_v4": "Inception v4",
    "inception_resnet_v2": "Inception-ResNet v2",
    "resnet50_v1": "ResNet-50 v1",
    "resnet101_v1": "ResNet-101 v1",
    "resnet152_v1": "ResNet-152 v1",
    "densenet121": "DenseNet-121",
    "densenet169": "DenseNet-169",
    "densenet201": "DenseNet-201",
    "mobilenet_v1": "MobileNet v1",
    "mobilenet_v2": "MobileNet v2",
    "mobilenet_v2_140": "MobileNet v2 (1.4)",
    "nasnet_a_mobile": "NASNet-A Mobile",
    "nasnet_a_large": "NASNet-A Large",
}

_TOP1_COLUMNS: dict[str, str] = {
    "retrained": "top1_retrained",
    "paper": "top1_paper",
    "public": "top1_public",
}


def data_dir() -> Path:
    """The ``data/paper`` folder of the source tree this module was loaded from."""
    return Path(__file__).resolve().parents[2] / "data" / "paper"


def _read(name: str) -> pd.DataFrame:
    path = data_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the paper's tables live in the repository's data/paper/, which "
            "only a source checkout or an editable install (pip install -e .) provides"
        )
    return pd.read_csv(path, comment="#")


@cache
def _table3() -> pd.DataFrame:
    return _read("table3.csv").set_index("model")


@cache
def _table6() -> pd.DataFrame:
    return _read("table6.csv")


def load_table3() -> pd.DataFrame:
    """Table 3 (ImageNet networks), indexed by model key, as printed: parameters in millions,
    feature dimension, input size, and ImageNet top-1 in *percent* (``top1_paper``,
    ``top1_public``, ``top1_retrained``; ``top1_paper`` is NaN for ResNet-152, N/A in the paper).
    Use :func:`imagenet_top1` for fractions ready for :mod:`probes.stats`."""
    return _table3().copy()


def load_table6(setting: Setting) -> pd.DataFrame:
    """One setting of Table 6 as fractions: rows = models (paper order), columns = datasets.

    ``setting`` is ``"logistic_regression"``, ``"fine_tuned"`` or ``"from_scratch"``. Metrics
    follow Table 1 (top-1, mean per-class for Aircraft/Pets/Caltech-101/Flowers, 11-point mAP for
    VOC 2007). Values carry the paper's printed precision (0.1% or 0.01%).
    """
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose one of {SETTINGS}")
    t6 = _table6()
    table = t6[t6["setting"] == setting].drop(columns="setting").set_index("model")
    table.columns.name = "dataset"
    return table.astype(float) / 100.0


def imagenet_top1(kind: Top1Kind = "retrained") -> pd.Series:
    """ImageNet top-1 from Table 3 as fractions, indexed by model key.

    ``"retrained"``: the authors' unregularised retrained models, the x-axis of all main results
    (Table 2); ``"paper"``: the original publications (ResNet-152 has none and is omitted);
    ``"public"``: the public TF-Slim / Keras checkpoints (Appendix B).
    """
    if kind not in _TOP1_COLUMNS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {tuple(_TOP1_COLUMNS)}")
    col = _TOP1_COLUMNS[kind]
    return (_table3()[col].dropna().astype(float) / 100.0).rename(f"imagenet_top1_{kind}")
