"""PASCAL VOC 2007 classification (Everingham et al. 2010): 20 labels per image, official val.

Layout (``VOCtrainval_06-Nov-2007.tar`` and ``VOCtest_06-Nov-2007.tar`` unpacked into the same
folder; both unpack to ``VOCdevkit/VOC2007/``, which is what torchvision's ``VOCDetection``
downloads)::

    <root>/VOCdevkit/VOC2007/JPEGImages/<id>.jpg
    <root>/VOCdevkit/VOC2007/ImageSets/Main/<class>_{train,val,test}.txt
        (``<id> <flag>``: 1 present, -1 absent, 0 "difficult": present but only hard to see)

Table 1: 5,011 train+val (2,501 + 2,510) / 4,952 test, 11-point mAP (``voc11_map``). Labels are
uint8 ``[N, 20]``: 1 where the flag is 1, 0 otherwise. *Difficult* (flag 0) entries are stored as
0 and also kept apart: :meth:`VOC2007.difficult_mask` gives a ``[N, 20]`` mask of them, so an AP
that follows the VOC devkit (which leaves difficult entries out of both positives and negatives)
can drop them; an AP that ignores the mask counts them as negatives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featurestore.datasets.base import SplitData
from featurestore.datasets.paper import PaperDataset, read_lines
from featurestore.errors import DatasetRootError

CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)  # fmt: skip
_MAIN = "ImageSets/Main"
_SPLITS = ("train", "val", "test")


@dataclass
class VOC2007(PaperDataset):
    """VOC 2007 classification; ids are ``JPEGImages/<id>.jpg`` relative to ``VOC2007/``."""

    name = "voc2007"
    metric = "voc11_map"
    multilabel = True
    split_rule = (
        "official ImageSets/Main/<class>_{train,val,test}.txt; label 1 where the flag is 1, "
        "0 for -1 and for 0 (difficult; see difficult_mask)"
    )
    official_val = True
    layout_dirs = ("VOCdevkit/VOC2007", "")
    required = ("JPEGImages/", *(f"{_MAIN}/{c}_{s}.txt" for s in _SPLITS for c in CLASSES))
    source_hint = (
        "Files: http://host.robots.ox.ac.uk/pascal/VOC/voc2007/ (VOCtrainval_06-Nov-2007.tar and "
        "VOCtest_06-Nov-2007.tar, both unpacked into the same folder)"
    )
    #: id -> uint8[20], 1 where that class is flagged difficult for the image.
    _difficult: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def _read_splits(self, data_dir: Path) -> dict[str, SplitData]:
        self._names = list(CLASSES)
        splits: dict[str, SplitData] = {}
        for split in _SPLITS:
            ids: list[str] | None = None
            flags = []
            for c in CLASSES:
                path = data_dir / _MAIN / f"{c}_{split}.txt"
                rows = [line.split() for line in read_lines(path)]
                if any(len(r) != 2 or r[1] not in ("1", "-1", "0") for r in rows):
                    raise DatasetRootError(f"{path}: expected '<id> <1|-1|0>' on every line")
                these = [r[0] for r in rows]
                if ids is None:
                    ids = these
                elif these != ids:
                    raise DatasetRootError(
                        f"{path} lists other images than {CLASSES[0]}_{split}.txt"
                    )
                flags.append(np.asarray([int(r[1]) for r in rows], dtype=np.int8))
            assert ids is not None
            flag = np.stack(flags, axis=1)  # [N, 20] in {-1, 0, 1}
            sample_ids = [f"JPEGImages/{i}.jpg" for i in ids]
            for sid, row in zip(sample_ids, flag == 0, strict=True):
                self._difficult[sid] = row.astype(np.uint8)
            splits[split] = SplitData(sample_ids, (flag == 1).astype(np.uint8))
        return splits

    def difficult_mask(self, split: str) -> np.ndarray:
        """uint8 ``[N, 20]``: 1 where the image is flagged *difficult* for that class."""
        ids = self.split(split).ids
        if not ids:
            return np.zeros((0, len(CLASSES)), dtype=np.uint8)
        return np.stack([self._difficult[i] for i in ids])

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov["difficult"] = (
            "flag 0 (difficult) stored as label 0; difficult_mask(split) marks them, "
            f"{sum(int(v.sum()) for v in self._difficult.values())} (image, class) pairs"
        )
        return prov

    def _download(self, root: Path) -> None:
        from torchvision.datasets import VOCDetection as TV

        def fetch() -> None:
            TV(str(root), year="2007", image_set="trainval", download=True)
            TV(str(root), year="2007", image_set="test", download=True)

        self._torchvision_download(fetch)
