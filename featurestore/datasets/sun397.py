"""SUN397 (Xiao et al. 2010), the first of the ten official partitions.

Layout (``SUN397.tar.gz`` unpacked, which is also what torchvision downloads, plus
``Partitions.zip`` unpacked into ``Partitions/`` next to it)::

    <root>/SUN397/ClassName.txt                  (``/a/abbey`` per line; order = label)
    <root>/SUN397/<letter>/<class>[/<sub>]/sun_*.jpg
    <root>/Partitions/Training_01.txt            (``/a/abbey/sun_xxx.jpg`` per line)
    <root>/Partitions/Testing_01.txt

Table 1: 19,850 / 19,850 (50 + 50 per class), top-1. No official validation split: a seeded,
class-stratified 20% of Training_01 is held out. Label names drop the letter folder
(``abbey``, ``apse/indoor``), as torchvision's ``SUN397`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from featurestore.datasets.base import SplitData
from featurestore.datasets.paper import VAL_FRACTION, PaperDataset, labels_array, read_lines
from featurestore.errors import DatasetRootError

PARTITION = "01"


def _class_of(path: str) -> str:
    """``/a/apse/indoor/sun_x.jpg`` -> ``apse/indoor`` (letter folder and file name dropped)."""
    return "/".join(path.strip("/").split("/")[1:-1])


@dataclass
class SUN397(PaperDataset):
    """SUN397 partition 1; ids are ``SUN397/<letter>/<class>/sun_*.jpg``."""

    name = "sun397"
    metric = "top1"
    split_rule = (
        f"official Partitions/Training_{PARTITION}.txt -> trainval, Testing_{PARTITION}.txt -> "
        f"test; stratified {VAL_FRACTION:.0%} of trainval (seed) -> val"
    )
    layout_dirs = ("",)
    required = (
        "SUN397/ClassName.txt",
        f"Partitions/Training_{PARTITION}.txt",
        f"Partitions/Testing_{PARTITION}.txt",
    )
    source_hint = (
        "Files: https://vision.princeton.edu/projects/2010/SUN/ (SUN397.tar.gz; Partitions.zip "
        "unpacked into Partitions/ next to SUN397/)"
    )

    def _read_splits(self, data_dir: Path) -> dict[str, SplitData]:
        lines = read_lines(data_dir / "SUN397" / "ClassName.txt")
        classes = [c.strip("/").split("/", 1)[-1] for c in lines]
        index = {c: i for i, c in enumerate(classes)}
        self._names = classes
        parts: dict[str, SplitData] = {}
        for split, stem in (("train", "Training"), ("test", "Testing")):
            path = data_dir / "Partitions" / f"{stem}_{PARTITION}.txt"
            ids: list[str] = []
            labels: list[int] = []
            for line in read_lines(path):
                cls = _class_of(line)
                if cls not in index:
                    raise DatasetRootError(f"{path}: class {cls!r} is not in SUN397/ClassName.txt")
                ids.append("SUN397/" + line.strip("/"))
                labels.append(index[cls])
            parts[split] = SplitData(ids, labels_array(labels))
        train, val = self._holdout(parts["train"])
        return {"train": train, "val": val, "test": parts["test"]}

    def _download(self, root: Path) -> None:
        from torchvision.datasets import SUN397 as TV

        # torchvision fetches the images only; Partitions.zip must still be placed by hand.
        self._torchvision_download(lambda: TV(str(root), download=True))
