"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009), read from the python-version pickle batches.

Layout (``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` unpacked: the same folders
torchvision's ``CIFAR10`` / ``CIFAR100`` download; ``--data-root`` may also be that folder)::

    <root>/cifar-10-batches-py/data_batch_1 .. data_batch_5, test_batch, batches.meta
    <root>/cifar-100-python/train, test, meta

Each batch is a pickled dict (``data``: uint8 ``[N, 3072]``, the 1,024 red, then green, then blue
values of a 32x32 image, row-major; ``labels`` or ``fine_labels``). Sample ids are
``<batch file>:<row>`` (``data_batch_1:123``, ``test_batch:17``, ``test:17``); :meth:`read`
returns that row as a 32x32 RGB image. Table 1: 50,000 / 10,000, top-1; CIFAR-100 uses its 100
fine labels. No official validation split: a seeded, class-stratified 20% of train is held out.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from featurestore.datasets.base import SplitData
from featurestore.datasets.paper import VAL_FRACTION, PaperDataset, labels_array
from featurestore.errors import CorruptImageError, DatasetRootError


def _unpickle(path: Path) -> dict[str, Any]:
    """A CIFAR batch with str keys (the files are Python 2 pickles; latin1 keeps numpy intact)."""
    try:
        with open(path, "rb") as f:
            raw = pickle.load(f, encoding="latin1")
    except Exception as e:  # truncated download, wrong file: name it
        raise DatasetRootError(f"cannot read CIFAR batch {path}: {e}") from e
    if not isinstance(raw, dict):
        raise DatasetRootError(f"CIFAR batch {path} does not hold a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _text(values: list[Any]) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


@dataclass
class _Cifar(PaperDataset):
    """Shared reader of both CIFAR variants."""

    checks_files = False  # images live inside the batch files
    train_files: ClassVar[tuple[str, ...]]
    test_files: ClassVar[tuple[str, ...]]
    meta_file: ClassVar[str]
    names_key: ClassVar[str]
    labels_key: ClassVar[str]
    #: batch file -> uint8 [N, 3072]; filled lazily by read(), never pickled to workers.
    _pixels: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pixels"] = {}
        return state

    def _batch(self, data_dir: Path, file: str) -> tuple[np.ndarray, np.ndarray]:
        raw = _unpickle(data_dir / file)
        if "data" not in raw or self.labels_key not in raw:
            raise DatasetRootError(f"CIFAR batch {data_dir / file} lacks data / {self.labels_key}")
        data = np.asarray(raw["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise DatasetRootError(f"CIFAR batch {data_dir / file}: data is {data.shape}")
        return data, labels_array(list(raw[self.labels_key]))

    def _read_splits(self, data_dir: Path) -> dict[str, SplitData]:
        meta = _unpickle(data_dir / self.meta_file)
        if self.names_key not in meta:
            raise DatasetRootError(f"{data_dir / self.meta_file} has no {self.names_key!r}")
        self._names = _text(list(meta[self.names_key]))
        parts: dict[str, SplitData] = {}
        for split, files in (("train", self.train_files), ("test", self.test_files)):
            ids: list[str] = []
            labels: list[np.ndarray] = []
            for file in files:
                data, y = self._batch(data_dir, file)
                self._pixels[file] = data
                ids.extend(f"{file}:{i}" for i in range(len(y)))
                labels.append(y)
            parts[split] = SplitData(ids, np.concatenate(labels))
        train, val = self._holdout(parts["train"])
        return {"train": train, "val": val, "test": parts["test"]}

    def file_path(self, sample_id: str) -> Path | None:
        return None  # pixels are rows of the pickled batch files, not image files

    def read(self, sample_id: str) -> Image.Image:
        file, _, row = sample_id.rpartition(":")
        if file not in (*self.train_files, *self.test_files) or not row.isdigit():
            raise CorruptImageError(f"not a {self.name} sample id: {sample_id!r}")
        if file not in self._pixels:
            self._pixels[file] = self._batch(self.data_dir(), file)[0]
        pixels = self._pixels[file]
        if int(row) >= len(pixels):
            raise CorruptImageError(f"{sample_id!r}: {file} has {len(pixels)} rows")
        return Image.fromarray(pixels[int(row)].reshape(3, 32, 32).transpose(1, 2, 0), "RGB")


@dataclass
class CIFAR10(_Cifar):
    """CIFAR-10: 10 classes; ids ``data_batch_<k>:<row>`` and ``test_batch:<row>``."""

    name = "cifar10"
    metric = "top1"
    split_rule = (
        "official data_batch_1..5 -> trainval, test_batch -> test; "
        f"stratified {VAL_FRACTION:.0%} of trainval (seed) -> val"
    )
    layout_dirs = ("cifar-10-batches-py", "")
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files = ("test_batch",)
    meta_file = "batches.meta"
    names_key = "label_names"
    labels_key = "labels"
    required = (*train_files, *test_files, meta_file)
    source_hint = "Files: https://www.cs.toronto.edu/~kriz/cifar.html (cifar-10-python.tar.gz)"

    def _download(self, root: Path) -> None:
        from torchvision.datasets import CIFAR10 as TV

        self._torchvision_download(lambda: TV(str(root), train=True, download=True))


@dataclass
class CIFAR100(_Cifar):
    """CIFAR-100: 100 fine classes; ids ``train:<row>`` and ``test:<row>``."""

    name = "cifar100"
    metric = "top1"
    split_rule = (
        "official train -> trainval, test -> test (fine labels); "
        f"stratified {VAL_FRACTION:.0%} of trainval (seed) -> val"
    )
    layout_dirs = ("cifar-100-python", "")
    train_files = ("train",)
    test_files = ("test",)
    meta_file = "meta"
    names_key = "fine_label_names"
    labels_key = "fine_labels"
    required = (*train_files, *test_files, meta_file)
    source_hint = "Files: https://www.cs.toronto.edu/~kriz/cifar.html (cifar-100-python.tar.gz)"

    def _download(self, root: Path) -> None:
        from torchvision.datasets import CIFAR100 as TV

        self._torchvision_download(lambda: TV(str(root), train=True, download=True))
