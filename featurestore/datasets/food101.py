"""Food-101 (Bossard, Guillaumin & Van Gool 2014): the official meta/train.txt and meta/test.txt.

Layout (``food-101.tar.gz`` unpacked; the same folder torchvision's ``Food101`` downloads)::

    <root>/food-101/images/<class>/<id>.jpg
    <root>/food-101/meta/classes.txt     (one class per line; line order = label index)
    <root>/food-101/meta/train.txt       (``<class>/<id>`` per line, no extension)
    <root>/food-101/meta/test.txt

Table 1: 75,750 / 25,250, top-1. No official validation split: a seeded, class-stratified 20% of
train is held out. ``--data-root`` may also point at the ``food-101/`` folder itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from featurestore.datasets.base import SplitData
from featurestore.datasets.paper import VAL_FRACTION, PaperDataset, labels_array, read_lines
from featurestore.errors import DatasetRootError


@dataclass
class Food101(PaperDataset):
    """Food-101; ids are ``images/<class>/<id>.jpg`` relative to ``food-101/``."""

    name = "food101"
    metric = "top1"
    split_rule = (
        "official meta/train.txt -> trainval, meta/test.txt -> test; "
        f"stratified {VAL_FRACTION:.0%} of trainval (seed) -> val"
    )
    layout_dirs = ("food-101", "")
    required = ("meta/classes.txt", "meta/train.txt", "meta/test.txt", "images/")
    source_hint = (
        "Files: https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/ (food-101.tar.gz)"
    )

    def _read_splits(self, data_dir: Path) -> dict[str, SplitData]:
        classes = read_lines(data_dir / "meta" / "classes.txt")
        index = {c: i for i, c in enumerate(classes)}
        self._names = classes
        parts: dict[str, SplitData] = {}
        for split in ("train", "test"):
            path = data_dir / "meta" / f"{split}.txt"
            ids: list[str] = []
            labels: list[int] = []
            for line in read_lines(path):
                cls = line.split("/", 1)[0]
                if cls not in index:
                    raise DatasetRootError(f"{path}: class {cls!r} is not in meta/classes.txt")
                ids.append(f"images/{line}.jpg")
                labels.append(index[cls])
            parts[split] = SplitData(ids, labels_array(labels))
        train, val = self._holdout(parts["train"])
        return {"train": train, "val": val, "test": parts["test"]}

    def _download(self, root: Path) -> None:
        from torchvision.datasets import Food101 as TV

        self._torchvision_download(lambda: TV(str(root), download=True))
