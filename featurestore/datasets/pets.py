"""Oxford-IIIT Pets (Parkhi et al. 2012): the official trainval / test lists, 37 breeds.

Layout (``images.tar.gz`` and ``annotations.tar.gz`` unpacked side by side; torchvision's
``oxford-iiit-pet/`` folder is accepted too)::

    <root>/images/<Breed_name>_<n>.jpg
    <root>/annotations/trainval.txt, test.txt   (``<image id> <class 1..37> <species> <breed>``)

Table 1: 3,680 / 3,669 (printed 3,369), mean per-class accuracy. No official validation split: a
seeded, class-stratified 20% of trainval is held out. Label names follow torchvision
(``"American Pit Bull Terrier"``: the image-id prefix, title-cased), in class-id order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from featurestore.datasets.base import SplitData
from featurestore.datasets.paper import VAL_FRACTION, PaperDataset, labels_array, read_lines
from featurestore.errors import DatasetRootError


@dataclass
class Pets(PaperDataset):
    """Oxford-IIIT Pets; ids are ``images/<image id>.jpg``."""

    name = "pets"
    metric = "mean_per_class"
    split_rule = (
        "official annotations/trainval.txt -> trainval, test.txt -> test; "
        f"stratified {VAL_FRACTION:.0%} of trainval (seed) -> val"
    )
    layout_dirs = ("", "oxford-iiit-pet")
    required = ("images/", "annotations/trainval.txt", "annotations/test.txt")
    source_hint = (
        "Files: https://www.robots.ox.ac.uk/~vgg/data/pets/ (images.tar.gz, annotations.tar.gz)"
    )

    def _read_splits(self, data_dir: Path) -> dict[str, SplitData]:
        names: dict[int, str] = {}
        parts: dict[str, SplitData] = {}
        for split in ("trainval", "test"):
            path = data_dir / "annotations" / f"{split}.txt"
            ids: list[str] = []
            labels: list[int] = []
            for line in read_lines(path):
                if line.startswith("#"):
                    continue
                fields = line.split()
                if len(fields) < 2 or not fields[1].isdigit():
                    raise DatasetRootError(f"{path}: cannot parse line {line!r}")
                image_id, label = fields[0], int(fields[1]) - 1
                names.setdefault(
                    label, " ".join(p.title() for p in image_id.rsplit("_", 1)[0].split("_"))
                )
                ids.append(f"images/{image_id}.jpg")
                labels.append(label)
            parts[split] = SplitData(ids, labels_array(labels))
        if sorted(names) != list(range(len(names))):
            raise DatasetRootError(
                f"dataset 'pets': class ids in {data_dir / 'annotations'} are not 1..{len(names)}"
            )
        self._names = [names[i] for i in range(len(names))]
        train, val = self._holdout(parts["trainval"])
        return {"train": train, "val": val, "test": parts["test"]}

    def _download(self, root: Path) -> None:
        from torchvision.datasets import OxfordIIITPet as TV

        self._torchvision_download(lambda: TV(str(root), download=True))
