"""The paper's published numbers (Kornblith, Shlens & Le), for checks and side-by-side figures.

The tables are CSV files in the repository's top-level ``data/paper/`` (see its README for the
layout and transcription notes), located by the data layer's :mod:`featurestore.paperdata` (which
also reads Tables 1 and 3 for the dataset and checkpoint registries, so each number lives once).
Installs (wheel or editable) ship them as the package ``featurestore.paper_tables``; a bare
checkout on ``sys.path`` reads them in place.

Models and datasets are identified by stable keys (``inception_v4``, ``fgvc_aircraft``, ...);
:data:`MODEL_NAMES` and :data:`DATASET_NAMES` give the paper's spelling for labels.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

import pandas as pd

from featurestore import paperdata
from featurestore.paperdata import data_dir

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


def _read(name: str) -> pd.DataFrame:
    """One table of ``data/paper`` (located by :mod:`featurestore.paperdata`) as a DataFrame."""
    return pd.read_csv(paperdata.table_path(name), comment="#")


def _column(table: str, key: str, value: str) -> dict[str, str]:
    """``{row[key]: row[value]}`` over a table's rows, in file (the paper's) order."""
    return {row[key]: row[value] for row in paperdata.read_rows(table)}


#: Dataset keys in the paper's column order (Table 1 / Table 6), with the paper's labels.
DATASET_NAMES: dict[str, str] = _column("table1.csv", "dataset", "name")
DATASETS: tuple[str, ...] = tuple(DATASET_NAMES)

#: Training-set sizes from Table 1 (train+val as used for the final models). Section 4.3 and
#: Appendix D split and regress on these.
TRAIN_SIZE: dict[str, int] = {
    k: int(v) for k, v in _column("table1.csv", "dataset", "train").items()
}

#: Model keys in the paper's row order (Table 3 / Table 6), with the paper's names.
MODEL_NAMES: dict[str, str] = _column("table3.csv", "model", "name")

_TOP1_COLUMNS: dict[str, str] = {
    "retrained": "top1_retrained",
    "paper": "top1_paper",
    "public": "top1_public",
}


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
