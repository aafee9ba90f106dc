"""Any ``<root>/<split>/<class>/<image>`` tree (torchvision's ImageFolder layout, one per split).

Every tree is the dataset ``imagefolder``, so two trees extracted into one store would share an
entry. The entry therefore records the tree it came from (:meth:`ImageFolder.identity`, the
resolved root) and a second tree under the same name is refused (``extract`` checks it); the user
names each tree (``extract --name NAME``, :meth:`ImageFolder.named`) to keep both.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from featurestore.datasets.base import (
    Dataset,
    SplitData,
    open_image,
    stratified_holdout,
    subset,
)
from featurestore.errors import DatasetRootError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
VAL_FRACTION = 0.2
#: A store entry name: a path segment that is neither hidden nor a Zarr key separator.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


@dataclass
class ImageFolder(Dataset):
    """Images under ``<root>/train/<class>/*`` and ``<root>/test/<class>/*`` (``val/`` optional).

    Class names are the sorted union of class folders over all splits. Without ``val/``, a seeded,
    class-stratified 20% of train becomes val. Ids are paths relative to the root.
    """

    name = "imagefolder"
    metric = "top1"
    split_rule = f"<root>/<split>/<class>/*; without val/: stratified {VAL_FRACTION:.0%} of train"
    _classes: list[str] = field(default_factory=list, init=False, repr=False)

    def _load_splits(self) -> dict[str, SplitData]:
        root = self.root
        if root is None or not (root / "train").is_dir() or not (root / "test").is_dir():
            found = sorted(p.name for p in root.iterdir()) if root and root.is_dir() else "nothing"
            raise DatasetRootError(
                f"dataset 'imagefolder': expected under {root}: train/<class>/<image> and "
                f"test/<class>/<image> (val/<class>/<image> optional); found {found}"
            )
        present = [s for s in ("train", "val", "test") if (root / s).is_dir()]
        self._classes = sorted(
            {c.name for s in present for c in (root / s).iterdir() if c.is_dir()}
        )
        index = {c: i for i, c in enumerate(self._classes)}
        splits: dict[str, SplitData] = {}
        for s in present:
            ids: list[str] = []
            labels: list[int] = []
            for c in sorted(p for p in (root / s).iterdir() if p.is_dir()):
                for f in sorted(c.iterdir()):
                    if f.suffix.lower() in IMAGE_SUFFIXES:
                        ids.append(f"{s}/{c.name}/{f.name}")
                        labels.append(index[c.name])
            if not ids:
                raise DatasetRootError(f"dataset 'imagefolder': no images under {root / s}")
            splits[s] = SplitData(ids, np.asarray(labels, dtype=np.int64))
        if "val" not in splits:
            keep, hold = stratified_holdout(splits["train"].labels, VAL_FRACTION, self.seed)
            full = splits["train"]
            splits["train"], splits["val"] = subset(full, keep), subset(full, hold)
        return {k: splits[k] for k in ("train", "val", "test")}

    @property
    def label_names(self) -> list[str]:  # type: ignore[override]
        self._all_splits()
        return list(self._classes)

    def named(self, name: str, *, registered: Collection[str]) -> ImageFolder:
        """Store this tree's features under ``name`` instead of ``imagefolder`` (so several
        trees live side by side in one store). Registered dataset names (``registered``, the
        caller's registry: the registry imports this module, so it is handed in) are refused:
        an entry called ``digits`` that is not digits would mislead every later reader."""
        if not _NAME.match(name):
            raise DatasetRootError(
                f"--name {name!r}: use letters, digits and _ . + - (at most 64, not starting "
                "with a dot)")
        if name in registered and name != "imagefolder":
            raise DatasetRootError(
                f"--name {name!r} is a registered dataset; choose another name for this tree")
        self.name = name  # type: ignore[misc]  # shadows the class default for this tree
        return self

    def identity(self) -> str | None:
        """The tree the features come from (its resolved root): part of the entry's identity,
        so a different tree under the same name is an error, not a silent ``skipped``."""
        return str(self.root.resolve()) if self.root is not None else None

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "identity": self.identity()}

    def read(self, sample_id: str) -> Image.Image:
        assert self.root is not None
        return open_image(self.root / sample_id)

    def file_path(self, sample_id: str) -> Path | None:
        return None if self.root is None else self.root / sample_id
