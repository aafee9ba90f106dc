"""Dataset registry: name -> loader class.

``get_dataset("caltech101", root=...)`` returns a :class:`~featurestore.datasets.base.Dataset`;
unknown names raise :class:`~featurestore.errors.UnknownDatasetError` with close-name suggestions.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from featurestore.datasets.aircraft import Aircraft
from featurestore.datasets.base import SPLITS, Dataset, SplitData, open_image, stratified_holdout
from featurestore.datasets.birdsnap import Birdsnap
from featurestore.datasets.caltech101 import Caltech101
from featurestore.datasets.cars import Cars
from featurestore.datasets.cifar import CIFAR10, CIFAR100
from featurestore.datasets.digits import Digits
from featurestore.datasets.dtd import DTD
from featurestore.datasets.flowers102 import Flowers102
from featurestore.datasets.food101 import Food101
from featurestore.datasets.imagefolder import ImageFolder
from featurestore.datasets.paper import PAPER12
from featurestore.datasets.pets import Pets
from featurestore.datasets.sun397 import SUN397
from featurestore.datasets.voc2007 import VOC2007
from featurestore.errors import UnknownDatasetError

REGISTRY: dict[str, type[Dataset]] = {cls.name: cls for cls in (Digits, ImageFolder)}
#: The paper's twelve datasets (Table 1, Appendix A.2), in Table 1's order.
REGISTRY.update(
    {
        cls.name: cls
        for cls in (
            Food101, CIFAR10, CIFAR100, Birdsnap, SUN397, Cars,
            Aircraft, VOC2007, DTD, Pets, Caltech101, Flowers102,
        )
    }
)  # fmt: skip

#: Named groups of datasets, expanded by the CLI (``--dataset paper12``).
PRESETS: dict[str, list[str]] = {"paper12": list(PAPER12)}


def expand_datasets(names: list[str]) -> list[str]:
    """Expand preset names, keep order, drop duplicates."""
    out: list[str] = []
    for n in names:
        for m in PRESETS.get(n, [n]):
            if m not in out:
                out.append(m)
    return out


def get_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    allow_missing: bool = False,
    download: bool = False,
    seed: int = 0,
) -> Dataset:
    """Instantiate the loader registered as ``name`` (splits are read lazily, on first use)."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(REGISTRY) + list(PRESETS), n=3, cutoff=0.5)
        raise UnknownDatasetError(name, close) from None
    return cls(root=Path(root) if root is not None else None, allow_missing=allow_missing,
               download=download, seed=seed)


__all__ = [
    "SPLITS",
    "Dataset",
    "SplitData",
    "REGISTRY",
    "PRESETS",
    "get_dataset",
    "expand_datasets",
    "open_image",
    "stratified_holdout",
]
