"""Dataset registry: name -> loader class.

``get_dataset("caltech101", root=...)`` returns a :class:`~featurestore.datasets.base.Dataset`;
unknown names raise :class:`~featurestore.errors.UnknownDatasetError` with close-name suggestions.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from featurestore.datasets.base import SPLITS, Dataset, SplitData, open_image, stratified_holdout
from featurestore.datasets.digits import Digits
from featurestore.datasets.imagefolder import ImageFolder
from featurestore.errors import UnknownDatasetError

REGISTRY: dict[str, type[Dataset]] = {cls.name: cls for cls in (Digits, ImageFolder)}

#: Named groups of datasets, expanded by the CLI (``--dataset paper12``).
PRESETS: dict[str, list[str]] = {}


def register(cls: type[Dataset]) -> type[Dataset]:
    """Class decorator adding a loader to the registry under ``cls.name``."""
    REGISTRY[cls.name] = cls
    return cls


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
    "register",
    "get_dataset",
    "expand_datasets",
    "open_image",
    "stratified_holdout",
]
