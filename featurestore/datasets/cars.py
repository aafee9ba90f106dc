"""Stanford Cars (Krause et al. 2013): the devkit's .mat annotations, 196 classes.

Layout (``cars_train.tgz``, ``cars_test.tgz``, ``car_devkit.tgz`` and
``cars_test_annos_withlabels.mat`` side by side: torchvision's ``stanford_cars/`` folder, which
is also accepted as a sub-folder of ``--data-root``)::

    <root>/cars_train/00001.jpg ...
    <root>/cars_test/00001.jpg ...
    <root>/devkit/cars_meta.mat                ('class_names': 1 x 196 cell)
    <root>/devkit/cars_train_annos.mat         ('annotations': struct, fields bbox_*, class, fname)
    <root>/cars_test_annos_withlabels.mat      (same struct, with 'class')

Table 1: 8,144 / 8,041, top-1. ``class`` is 1-based. No official validation split: a seeded,
class-stratified 20% of train is held out. Whole images are used (no bounding-box crop).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featurestore.datasets.base import SplitData
from featurestore.datasets.paper import VAL_FRACTION, PaperDataset, labels_array
from featurestore.errors import DatasetRootError

_ANNOTATIONS = {
    "train": ("devkit/cars_train_annos.mat", "cars_train"),
    "test": ("cars_test_annos_withlabels.mat", "cars_test"),
}


def _loadmat(path: Path) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    try:
        return loadmat(path, squeeze_me=True)
    except Exception as e:  # truncated or foreign file: name it
        raise DatasetRootError(f"cannot read {path}: {e}") from e


@dataclass
class Cars(PaperDataset):
    """Stanford Cars; ids are ``cars_train/<fname>`` and ``cars_test/<fname>``."""

    name = "cars"
    metric = "top1"
    split_rule = (
        "official devkit/cars_train_annos.mat -> trainval, cars_test_annos_withlabels.mat -> "
        f"test; stratified {VAL_FRACTION:.0%} of trainval (seed) -> val"
    )
    layout_dirs = ("", "stanford_cars")
    required = (
        "devkit/cars_meta.mat",
        "devkit/cars_train_annos.mat",
        "cars_test_annos_withlabels.mat",
        "cars_train/",
        "cars_test/",
    )
    source_hint = (
        "The original URLs are gone (torchvision cannot download it); copies of the archives "
        "exist e.g. on Kaggle"
    )

    def _read_splits(self, data_dir: Path) -> dict[str, SplitData]:
        meta = _loadmat(data_dir / "devkit" / "cars_meta.mat")
        if "class_names" not in meta:
            raise DatasetRootError(f"{data_dir / 'devkit/cars_meta.mat'} has no 'class_names'")
        self._names = [str(c) for c in np.atleast_1d(meta["class_names"]).tolist()]
        parts: dict[str, SplitData] = {}
        for split, (mat, folder) in _ANNOTATIONS.items():
            annos = _loadmat(data_dir / mat).get("annotations")
            if annos is None or annos.dtype.names is None or "class" not in annos.dtype.names:
                raise DatasetRootError(
                    f"{data_dir / mat} has no 'annotations' struct with 'class' and 'fname'"
                )
            annos = np.atleast_1d(annos)
            ids = [f"{folder}/{a['fname']}" for a in annos]
            labels = labels_array([int(a["class"]) - 1 for a in annos])
            if len(labels) and (labels.min() < 0 or labels.max() >= len(self._names)):
                raise DatasetRootError(f"{data_dir / mat}: class outside 1..{len(self._names)}")
            parts[split] = SplitData(ids, labels)
        train, val = self._holdout(parts["train"])
        return {"train": train, "val": val, "test": parts["test"]}

    def _download(self, root: Path) -> None:
        from torchvision.datasets import StanfordCars as TV

        self._torchvision_download(lambda: TV(str(root), download=True))
