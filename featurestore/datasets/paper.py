"""What the paper's twelve datasets share: where their files sit, how missing files are reported,
how a validation split is made where none is distributed, and how torchvision downloads them.

Kornblith, Shlens & Le (CVPR 2019), Table 1 and Appendix A.2. Each loader reads the files its
authors distribute, laid out as the archive unpacks (and, where torchvision has a loader, also
the folder torchvision's ``download=True`` creates), so a root prepared by hand or by torchvision
both work. The paper's rules that every loader follows:

- validation: the official split where one is distributed (FGVC Aircraft, VOC 2007, DTD, Flowers);
  otherwise a seeded, class-stratified :data:`VAL_FRACTION` of the official training split
  (:func:`~featurestore.datasets.base.stratified_holdout`), so ``trainval`` is always the
  official training set, whose size is Table 1's "train" column;
- split files that name images absent on disk fail with one
  :class:`~featurestore.errors.MissingImagesError` unless ``allow_missing`` is set, in which case
  every skipped id is kept in ``skipped`` and recorded in provenance. The holdout is drawn before
  missing images are dropped, so an image's split never depends on which *other* files are absent.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from featurestore.datasets.base import (
    SPLITS,
    Dataset,
    SplitData,
    open_image,
    stratified_holdout,
    subset,
)
from featurestore.errors import DatasetRootError, MissingImagesError
from featurestore.paperdata import read_rows

#: Fraction of the official training split held out as validation where no official one exists.
VAL_FRACTION = 0.2


def _read_table1() -> dict[str, tuple[int, int, int]]:
    """Table 1 from ``data/paper/table1.csv``, keyed by registry name, in the paper's order."""
    return {
        row["store_name"]: (int(row["classes"]), int(row["train"]), int(row["test"]))
        for row in read_rows("table1.csv")
    }


#: Table 1 of the paper: classes, training-set size (train + val) and test-set size, keyed by
#: dataset registry name. Read from ``data/paper/table1.csv`` (the one copy of these numbers),
#: which also records the two printed typos it corrects (CIFAR-100 classes, Pets test size).
TABLE1: dict[str, tuple[int, int, int]] = _read_table1()

#: The ``paper12`` preset, in Table 1's order.
PAPER12: list[str] = list(TABLE1)

#: How many missing ids an error message names before it says "and N more".
_SHOW_MISSING = 5


@dataclass
class PaperDataset(Dataset):
    """Base of the paper's loaders: root discovery, download, missing-file policy, holdout.

    Subclasses set ``layout_dirs`` (sub-folders of ``root`` that may hold the dataset, the
    archive's own layout first, ``""`` meaning ``root`` itself), ``required`` (paths relative to
    that folder that must exist), implement :meth:`_read_splits` and fill ``_names``; sample ids
    are image paths relative to :meth:`data_dir` unless :meth:`read` is overridden. Like the
    splits, ``skipped`` is filled when the split files are first read (any ``split()``,
    ``label_names`` or ``provenance()`` call).
    """

    layout_dirs: ClassVar[tuple[str, ...]] = ("",)
    required: ClassVar[tuple[str, ...]] = ()
    official_val: ClassVar[bool] = False
    #: Whether sample ids name image files whose existence is checked before use.
    checks_files: ClassVar[bool] = True
    #: Where the files come from, appended to root errors.
    source_hint: ClassVar[str] = ""

    _data_dir: Path | None = field(default=None, init=False, repr=False)
    _names: list[str] = field(default_factory=list, init=False, repr=False)

    # -- what subclasses provide -------------------------------------------------------------
    def _read_splits(self, data_dir: Path) -> dict[str, SplitData]:
        """Build train/val/test from the split files under ``data_dir``; set ``self._names``."""
        raise NotImplementedError

    def _download(self, root: Path) -> None:
        """Fetch the dataset into ``root`` (torchvision's layout); default: not downloadable."""
        raise DatasetRootError(
            f"dataset {self.name!r} has no automatic download. {self.source_hint}".rstrip()
        )

    # -- Dataset interface --------------------------------------------------------------------
    @property
    def label_names(self) -> list[str]:  # type: ignore[override]
        self._all_splits()
        return list(self._names)

    def read(self, sample_id: str) -> Image.Image:
        return open_image(self.data_dir() / sample_id)

    def file_path(self, sample_id: str) -> Path | None:
        return self.data_dir() / sample_id

    def _load_splits(self) -> dict[str, SplitData]:
        splits = self._read_splits(self.data_dir())
        if self.checks_files:
            splits = self._drop_missing(splits)
        return {k: splits[k] for k in SPLITS}

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        classes, trainval, test = TABLE1.get(self.name, (None, None, None))
        prov.update(
            {
                "data_dir": str(self.data_dir()),
                "val_split": (
                    "official"
                    if self.official_val
                    else f"stratified {VAL_FRACTION:.0%} of the official training split, "
                    f"numpy default_rng(seed={self._holdout_seed})"
                ),
                "paper_table1": {"classes": classes, "trainval": trainval, "test": test},
            }
        )
        return prov

    # -- root discovery and download ----------------------------------------------------------
    def data_dir(self) -> Path:
        """The folder that holds the dataset's files (``root`` or one of ``layout_dirs`` in it)."""
        if self._data_dir is None:
            self._data_dir = self._locate()
        return self._data_dir

    def _candidates(self) -> list[Path]:
        assert self.root is not None
        return [self.root / sub if sub else self.root for sub in self.layout_dirs]

    def _find(self) -> Path | None:
        for d in self._candidates():
            if all((d / r).exists() for r in self.required):
                return d
        return None

    def _expected(self, layout: str | None = None) -> list[str]:
        """Required paths as seen from ``root`` (default: under the archive's own layout)."""
        layout = self.layout_dirs[0] if layout is None else layout
        prefix = f"{layout}/" if layout else ""
        return [prefix + r for r in self.required]

    def _locate(self) -> Path:
        if self.root is None:
            raise DatasetRootError(
                f"dataset {self.name!r} needs --data-root: the folder holding "
                + ", ".join(self._expected())
                + (f". {self.source_hint}" if self.source_hint else "")
            )
        found = self._find()
        if found is None and self.download:
            self.root.mkdir(parents=True, exist_ok=True)
            self._download(self.root)
            found = self._find()
        if found is None:
            raise DatasetRootError(self._root_message())
        return found

    def _root_message(self) -> str:
        """Expected and missing paths for the layout the root comes closest to (ties: the
        archive's own), so a half-copied torchvision folder gets advice about that folder."""
        assert self.root is not None
        root = self.root
        layouts = [(layout, self._expected(layout)) for layout in self.layout_dirs]
        layout, expected = min(
            layouts, key=lambda le: sum(not (root / e).exists() for e in le[1])
        )
        missing = [e for e in expected if not (root / e).exists()]
        msg = (
            f"dataset {self.name!r}: expected under {root}: {', '.join(expected)}; "
            f"missing: {', '.join(missing)}"
        )
        others = [str(root / other) for other, _ in layouts if other != layout]
        if others:
            msg += f" (the same files are also accepted under {' or '.join(others)})"
        if self.source_hint:
            msg += f". {self.source_hint}"
        return msg

    def _torchvision_download(self, fetch: Callable[[], object]) -> None:
        """Run a torchvision downloader, turning any failure into one :class:`DatasetRootError`."""
        try:
            fetch()
        except Exception as e:  # network, checksum, removed URL: the user's remedy is the same
            raise DatasetRootError(
                f"dataset {self.name!r}: torchvision could not download into {self.root} "
                f"({type(e).__name__}: {str(e)[:200]}). Place the files by hand instead: "
                + ", ".join(self._expected())
                + (f". {self.source_hint}" if self.source_hint else "")
            ) from e

    # -- split helpers ------------------------------------------------------------------------
    @property
    def _holdout_seed(self) -> int:
        return self.seed

    def _holdout(self, trainval: SplitData) -> tuple[SplitData, SplitData]:
        """(train, val): a seeded, class-stratified ``VAL_FRACTION`` of ``trainval`` as val."""
        keep, hold = stratified_holdout(trainval.labels, VAL_FRACTION, self._holdout_seed)
        return subset(trainval, keep), subset(trainval, hold)

    def _drop_missing(self, splits: dict[str, SplitData]) -> dict[str, SplitData]:
        """Raise on ids whose image is absent, or (``allow_missing``) drop and record them."""
        data_dir = self.data_dir()
        missing: list[str] = []
        seen: set[str] = set()
        for s in SPLITS:
            for sid in splits[s].ids:
                if sid not in seen and not os.path.exists(data_dir / sid):
                    missing.append(sid)
                seen.add(sid)
        self.skipped = []
        if not missing:
            return splits
        if not self.allow_missing:
            shown = ", ".join(missing[:_SHOW_MISSING])
            extra = len(missing) - _SHOW_MISSING
            more = f" and {extra} more" if extra > 0 else ""
            raise MissingImagesError(
                f"dataset {self.name!r}: {len(missing)} of {len(seen)} images named by its split "
                f"files are absent under {data_dir} ({shown}{more}). Restore them, or pass "
                "allow_missing=True (CLI --allow-missing) to skip them; skipped ids are recorded "
                "in provenance"
            )
        gone = set(missing)
        out: dict[str, SplitData] = {}
        for s in SPLITS:
            keep = np.asarray(
                [i for i, sid in enumerate(splits[s].ids) if sid not in gone], dtype=np.int64
            )
            if len(keep) == 0:
                raise MissingImagesError(
                    f"dataset {self.name!r}: every image of split {s!r} is absent under {data_dir}"
                )
            out[s] = subset(splits[s], keep)
        self.skipped = missing
        return out


def read_lines(path: Path) -> list[str]:
    """Non-empty, stripped lines of a text split file (split files end with or without newline)."""
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def labels_array(values: list[int]) -> np.ndarray:
    """Single-label targets as the int64 array :class:`SplitData` expects."""
    return np.asarray(values, dtype=np.int64)
