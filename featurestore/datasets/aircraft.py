"""FGVC Aircraft (Maji et al. 2013), variant level (100 classes), official train / val / test.

Layout (``fgvc-aircraft-2013b.tar.gz`` unpacked; ``--data-root`` may be the
``fgvc-aircraft-2013b/`` folder or its parent, which is what torchvision downloads into)::

    <root>/data/images/<id>.jpg
    <root>/data/variants.txt                           (one variant per line; order = label)
    <root>/data/images_variant_{train,val,test}.txt    (``<id> <variant name>`` per line)

Table 1: 6,667 train+val (3,334 + 3,333) / 3,333 test, mean per-class accuracy, official val.
Images are read whole, including the 20-pixel copyright banner at the bottom (as torchvision
does; the paper does not say it was removed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from featurestore.datasets.base import SplitData
from featurestore.datasets.paper import PaperDataset, labels_array, read_lines
from featurestore.errors import DatasetRootError


@dataclass
class Aircraft(PaperDataset):
    """FGVC Aircraft variants; ids are ``data/images/<id>.jpg``."""

    name = "aircraft"
    metric = "mean_per_class"
    split_rule = "official data/images_variant_{train,val,test}.txt"
    official_val = True
    layout_dirs = ("", "fgvc-aircraft-2013b")
    required = (
        "data/images/",
        "data/variants.txt",
        "data/images_variant_train.txt",
        "data/images_variant_val.txt",
        "data/images_variant_test.txt",
    )
    source_hint = (
        "Files: https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ (fgvc-aircraft-2013b.tar.gz)"
    )

    def _read_splits(self, data_dir: Path) -> dict[str, SplitData]:
        variants = read_lines(data_dir / "data" / "variants.txt")
        index = {v: i for i, v in enumerate(variants)}
        self._names = variants
        splits: dict[str, SplitData] = {}
        for split in ("train", "val", "test"):
            path = data_dir / "data" / f"images_variant_{split}.txt"
            ids: list[str] = []
            labels: list[int] = []
            for line in read_lines(path):
                image_id, _, variant = line.partition(" ")
                if variant not in index:
                    raise DatasetRootError(f"{path}: variant {variant!r} is not in variants.txt")
                ids.append(f"data/images/{image_id}.jpg")
                labels.append(index[variant])
            splits[split] = SplitData(ids, labels_array(labels))
        return splits

    def _download(self, root: Path) -> None:
        from torchvision.datasets import FGVCAircraft as TV

        self._torchvision_download(lambda: TV(str(root), download=True))
