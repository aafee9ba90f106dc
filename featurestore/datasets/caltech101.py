"""Caltech-101 (Fei-Fei, Fergus & Perona 2004) with the paper's protocol.

Layout (``101_ObjectCategories.tar.gz`` unpacked; torchvision's ``caltech101/`` folder is accepted
too)::

    <root>/101_ObjectCategories/<class>/image_XXXX.jpg

There is no official split. As in the paper (Table 1, A.2), all 102 folders are classes,
BACKGROUND_Google included, 30 images per class are drawn for training and the rest are the test
set: 3,060 / 6,084. Only ``image_*.jpg`` files count (the archive also holds a stray
``BACKGROUND_Google/tmp``). The 30 are a seeded choice made per class
(``numpy.random.default_rng((seed, crc32(class name)))``), so one class's draw does not depend on
which other classes are present; 20% of them (6 per class, ``seed + 1``) become validation.
Metric: mean per-class accuracy.
"""

from __future__ import annotations

import fnmatch
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featurestore.datasets.base import SplitData
from featurestore.datasets.paper import VAL_FRACTION, PaperDataset, labels_array
from featurestore.errors import DatasetRootError

TRAIN_PER_CLASS = 30
_IMAGE_PATTERN = "image_*.jpg"
_FOLDER = "101_ObjectCategories"


@dataclass
class Caltech101(PaperDataset):
    """Caltech-101, 102 classes; ids are ``101_ObjectCategories/<class>/image_XXXX.jpg``."""

    name = "caltech101"
    metric = "mean_per_class"
    split_rule = (
        f"per class (all {_FOLDER} folders, BACKGROUND_Google included; only {_IMAGE_PATTERN}): "
        f"{TRAIN_PER_CLASS} drawn with numpy default_rng((seed, crc32(class))) -> trainval, "
        f"the rest -> test; stratified {VAL_FRACTION:.0%} of trainval (seed + 1) -> val"
    )
    layout_dirs = ("", "caltech101")
    required = (f"{_FOLDER}/",)
    source_hint = (
        "Files: https://data.caltech.edu/records/mzrjq-6wc02 (caltech-101.zip holds "
        "101_ObjectCategories.tar.gz)"
    )

    @property
    def _holdout_seed(self) -> int:
        return self.seed + 1  # the seed itself drew the 30 training images

    def _read_splits(self, data_dir: Path) -> dict[str, SplitData]:
        folder = data_dir / _FOLDER
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if not classes:
            raise DatasetRootError(f"dataset 'caltech101': no class folders under {folder}")
        train_ids: list[str] = []
        train_labels: list[int] = []
        test_ids: list[str] = []
        test_labels: list[int] = []
        for label, cls in enumerate(classes):
            files = sorted(
                f.name
                for f in (folder / cls).iterdir()
                if f.is_file() and fnmatch.fnmatchcase(f.name, _IMAGE_PATTERN)
            )
            if len(files) <= TRAIN_PER_CLASS:
                raise DatasetRootError(
                    f"dataset 'caltech101': class {cls!r} has {len(files)} {_IMAGE_PATTERN} files "
                    f"under {folder / cls}; the protocol needs more than {TRAIN_PER_CLASS}"
                )
            rng = np.random.default_rng((self.seed, zlib.crc32(cls.encode())))
            chosen = set(rng.choice(len(files), TRAIN_PER_CLASS, replace=False).tolist())
            for i, f in enumerate(files):
                ids, labels = (train_ids, train_labels) if i in chosen else (test_ids, test_labels)
                ids.append(f"{_FOLDER}/{cls}/{f}")
                labels.append(label)
        self._names = classes
        train, val = self._holdout(SplitData(train_ids, labels_array(train_labels)))
        return {"train": train, "val": val, "test": SplitData(test_ids, labels_array(test_labels))}

    def _download(self, root: Path) -> None:
        from torchvision.datasets import Caltech101 as TV

        self._torchvision_download(lambda: TV(str(root), download=True))
