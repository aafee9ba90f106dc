"""Oxford 102 Flowers (Nilsback & Zisserman 2008): the official ``setid.mat`` splits.

Layout (the three files the VGG page distributes, unpacked side by side; torchvision's
``flowers-102/`` folder is accepted too)::

    <root>/jpg/image_00001.jpg ... image_08189.jpg   (102flowers.tgz)
    <root>/imagelabels.mat                           ('labels': 1 x 8189, values 1..102)
    <root>/setid.mat                                 ('trnid', 'valid', 'tstid': image numbers)

Table 1: 2,040 train+val (10 + 10 per class) / 6,149 test, mean per-class accuracy, official val.
The archive carries no class names, so label names are the dataset's own label numbers
``"1"`` .. ``"102"`` (label index ``i`` is ``imagelabels`` value ``i + 1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featurestore.datasets.base import SplitData
from featurestore.datasets.paper import PaperDataset
from featurestore.errors import DatasetRootError

_SPLIT_KEYS = {"train": "trnid", "val": "valid", "test": "tstid"}


def _loadmat(path: Path) -> dict[str, np.ndarray]:
    from scipy.io import loadmat

    try:
        return loadmat(path)
    except Exception as e:  # truncated or foreign file: name it
        raise DatasetRootError(f"cannot read {path}: {e}") from e


@dataclass
class Flowers102(PaperDataset):
    """Oxford 102 Flowers; ids are ``jpg/image_XXXXX.jpg``."""

    name = "flowers102"
    metric = "mean_per_class"
    split_rule = "official setid.mat: trnid -> train, valid -> val, tstid -> test"
    official_val = True
    layout_dirs = ("", "flowers-102")
    required = ("jpg/", "imagelabels.mat", "setid.mat")
    source_hint = (
        "Files: https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ (102flowers.tgz, "
        "imagelabels.mat, setid.mat)"
    )

    def _read_splits(self, data_dir: Path) -> dict[str, SplitData]:
        labels_mat = _loadmat(data_dir / "imagelabels.mat")
        setid = _loadmat(data_dir / "setid.mat")
        if "labels" not in labels_mat:
            raise DatasetRootError(f"{data_dir / 'imagelabels.mat'} has no 'labels' array")
        labels = np.asarray(labels_mat["labels"]).ravel().astype(np.int64)
        n_classes = int(labels.max())
        self._names = [str(i) for i in range(1, n_classes + 1)]
        splits: dict[str, SplitData] = {}
        for split, key in _SPLIT_KEYS.items():
            if key not in setid:
                raise DatasetRootError(f"{data_dir / 'setid.mat'} has no {key!r} array")
            numbers = np.asarray(setid[key]).ravel().astype(np.int64)
            if numbers.min() < 1 or numbers.max() > len(labels):
                raise DatasetRootError(
                    f"{data_dir / 'setid.mat'}: {key} names images outside 1..{len(labels)}"
                )
            ids = [f"jpg/image_{n:05d}.jpg" for n in numbers]
            splits[split] = SplitData(ids, labels[numbers - 1] - 1)
        return splits

    def _download(self, root: Path) -> None:
        from torchvision.datasets import Flowers102 as TV

        self._torchvision_download(lambda: TV(str(root), download=True))
