"""Describable Textures (Cimpoi et al. 2014): split 1 with its official validation set.

Layout (``dtd-r1.0.1.tar.gz`` unpacked; torchvision's ``dtd/dtd/`` folder is accepted too)::

    <root>/images/<class>/<class>_XXXX.jpg
    <root>/labels/train1.txt, val1.txt, test1.txt   (``<class>/<file>.jpg`` per line)

Table 1: 3,760 train+val (split 1's 1,880 + 1,880) / 1,880 test, top-1. Label names are the 47
class names, sorted (the order torchvision's ``DTD`` uses).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from featurestore.datasets.base import SplitData
from featurestore.datasets.paper import PaperDataset, labels_array, read_lines

PARTITION = 1


@dataclass
class DTD(PaperDataset):
    """DTD split 1; ids are ``images/<class>/<file>.jpg``."""

    name = "dtd"
    metric = "top1"
    split_rule = (
        f"official partition {PARTITION}: labels/train{PARTITION}.txt -> train, "
        f"val{PARTITION}.txt -> val, test{PARTITION}.txt -> test"
    )
    official_val = True
    layout_dirs = ("", "dtd", "dtd/dtd")
    required = (
        "images/",
        f"labels/train{PARTITION}.txt",
        f"labels/val{PARTITION}.txt",
        f"labels/test{PARTITION}.txt",
    )
    source_hint = (
        "Files: https://www.robots.ox.ac.uk/~vgg/data/dtd/ (dtd-r1.0.1.tar.gz unpacks to dtd/)"
    )

    def _read_splits(self, data_dir: Path) -> dict[str, SplitData]:
        lines = {
            s: read_lines(data_dir / "labels" / f"{s}{PARTITION}.txt")
            for s in ("train", "val", "test")
        }
        classes = sorted({line.split("/", 1)[0] for ls in lines.values() for line in ls})
        index = {c: i for i, c in enumerate(classes)}
        self._names = classes
        return {
            s: SplitData(
                [f"images/{line}" for line in ls],
                labels_array([index[line.split("/", 1)[0]] for line in ls]),
            )
            for s, ls in lines.items()
        }

    def _download(self, root: Path) -> None:
        from torchvision.datasets import DTD as TV

        self._torchvision_download(lambda: TV(str(root), download=True))
