"""The dataset interface every loader implements.

A dataset here is a *description* of labelled images plus a reader: the split membership (sample ids
and labels per split), the label names, the metric the paper scores it with, and ``read(id)`` that
decodes one image. Extraction, probes, fine-tuning and from-scratch training all go through this one
interface, so they see identical splits; the split rule, seed and ids are recorded in provenance.

Objects must be picklable (DataLoader workers call ``read`` in other processes), so loaders keep
only plain data (paths, arrays, lists) as attributes.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from featurestore.errors import CorruptImageError, DatasetRootError, ImageTooLargeError

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class SplitData:
    """Membership of one split: a sample id and a label per row, in a fixed order.

    ``labels`` is int64 ``[N]`` for single-label data, uint8 ``[N, C]`` (0/1) for multi-label data.
    """

    ids: list[str]
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.labels):
            raise ValueError(f"{len(self.ids)} ids but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Dataset(ABC):
    """Base class of every dataset loader.

    Subclasses set the class attributes and implement :meth:`_load_splits`, :meth:`label_names` and
    :meth:`read`. ``root`` is the folder the dataset's archive unpacks to (see the README).
    """

    name: ClassVar[str]
    metric: ClassVar[str] = "top1"
    multilabel: ClassVar[bool] = False
    #: Human-readable rule that produced the splits; recorded in provenance.
    split_rule: ClassVar[str] = ""

    root: Path | None = None
    allow_missing: bool = False
    download: bool = False
    seed: int = 0
    _splits: dict[str, SplitData] | None = field(default=None, init=False, repr=False)
    #: Ids named by the split files but absent on disk (only with ``allow_missing``).
    skipped: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.root is not None:
            self.root = Path(self.root).expanduser()

    # -- what subclasses provide -------------------------------------------------------------
    @abstractmethod
    def _load_splits(self) -> dict[str, SplitData]:
        """Read the split files; raise :class:`DatasetRootError` naming what is missing where."""

    @property
    @abstractmethod
    def label_names(self) -> list[str]:
        """Class names, indexed by label."""

    @abstractmethod
    def read(self, sample_id: str) -> Image.Image:
        """Decode one sample as an RGB PIL image; raise :class:`CorruptImageError` naming it."""

    def file_path(self, sample_id: str) -> Path | None:
        """The image file :meth:`read` decodes, or None when samples are not files (arrays in
        memory): extraction may then decode the file's bytes itself (JPEGs on the GPU)."""
        return None

    # -- shared behaviour ---------------------------------------------------------------------
    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self._all_splits())

    def _all_splits(self) -> dict[str, SplitData]:
        if self._splits is None:
            self._splits = self._load_splits()
        return self._splits

    def split(self, name: str) -> SplitData:
        """The ids and labels of ``name`` (``train``, ``val``, ``test`` or derived ``trainval``)."""
        splits = self._all_splits()
        if name == "trainval" and "trainval" not in splits:
            tr, va = splits["train"], splits["val"]
            return SplitData(tr.ids + va.ids, np.concatenate([tr.labels, va.labels]))
        if name not in splits:
            raise KeyError(f"dataset {self.name!r} has no split {name!r} (has {sorted(splits)})")
        return splits[name]

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def provenance(self) -> dict[str, Any]:
        """Everything needed to rebuild the same splits: rule, seed, counts, id digests, skips."""
        splits = self._all_splits()
        return {
            "name": self.name,
            "root": str(self.root) if self.root is not None else None,
            "metric": self.metric,
            "multilabel": self.multilabel,
            "split_rule": self.split_rule,
            "seed": self.seed,
            "num_classes": self.num_classes,
            "counts": {k: len(v) for k, v in splits.items()},
            "ids_sha256": {k: ids_digest(v.ids) for k, v in splits.items()},
            "skipped_missing": list(self.skipped),
        }

    def require_root(self, *expected: str) -> Path:
        """Return the root, or raise one error listing every expected path that is absent."""
        if self.root is None:
            raise DatasetRootError(
                f"dataset {self.name!r} needs --data-root: the folder holding "
                + ", ".join(expected)
            )
        missing = [e for e in expected if not (self.root / e).exists()]
        if missing:
            raise DatasetRootError(
                f"dataset {self.name!r}: expected under {self.root}: "
                + ", ".join(expected)
                + f"; missing: {', '.join(missing)}"
            )
        return self.root


def ids_digest(ids: list[str]) -> str:
    """A short digest of an ordered id list, so provenance can prove two splits are identical."""
    h = hashlib.sha256()
    for i in ids:
        h.update(i.encode())
        h.update(b"\0")
    return h.hexdigest()


def set_max_pixels(limit: int) -> None:
    """Raise (or lower) the decompression-bomb guard of :func:`open_image` in this process.

    Pillow keeps the limit in a module global; DataLoader workers that are forked inherit it and
    :mod:`featurestore.extract` sets it again in each worker, so ``--max-pixels`` holds everywhere.
    """
    Image.MAX_IMAGE_PIXELS = int(limit)


def open_image(path: Path | str) -> Image.Image:
    """Decode an image file fully to 8-bit RGB, turning every decoder failure into one named error.

    16-bit and 32-bit integer images are scaled by their bit depth and float images by their value
    range (``[0, 1]`` or ``[0, 255]``), because ``Image.convert("RGB")`` clips them instead (a
    16-bit PNG comes out almost white, a float TIFF binarised). An image with more pixels than the
    limit (:func:`set_max_pixels`) is refused before it is decoded.
    """
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its limit: make the limit the limit.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()  # forces decoding now, so truncated files fail here and not in a worker
                return _to_rgb8(im, path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)):,} pixels" if found else "more pixels than allowed"
        raise ImageTooLargeError(
            f"image {path} has {size}, over the limit of {Image.MAX_IMAGE_PIXELS:,} "
            "(decompression-bomb guard; if the file is trusted, raise it with "
            "`featurestore extract --max-pixels N`)"
        ) from e
    except FileNotFoundError as e:
        raise CorruptImageError(f"image file not found: {path}") from e
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise CorruptImageError(f"cannot decode image {path}: {e}") from e


#: Pillow modes holding one channel of more than 8 bits, which ``convert("RGB")`` would clip.
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _to_rgb8(im: Image.Image, path: Path | str) -> Image.Image:
    """``im`` as 8-bit RGB, scaling high-bit-depth and float pixels into 0..255 first."""
    if im.mode not in _WIDE_MODES:
        return im.convert("RGB")
    a = np.asarray(im)
    if im.mode == "F":
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if not np.isfinite(a).all():
            raise CorruptImageError(f"float image {path} contains NaN or inf pixels")
        if lo >= 0.0 and hi <= 1.0:
            scale = 255.0
        elif lo >= 0.0 and hi <= 255.0:
            scale = 1.0
        else:
            raise CorruptImageError(
                f"float image {path} has values in [{lo:.4g}, {hi:.4g}]; only [0, 1] or [0, 255] "
                "can be read as intensities (convert it to 8-bit first)"
            )
        g = np.clip(np.rint(a.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    else:
        bits = 16 if im.mode.startswith("I;16") else _int_bit_depth(im, a)
        if a.size and a.min() < 0:
            raise CorruptImageError(f"image {path} has negative pixel values (signed {im.mode})")
        g = np.rint(a.astype(np.float64) * (255.0 / (2**bits - 1))).astype(np.uint8)
    return Image.fromarray(g, mode="L").convert("RGB")


def _int_bit_depth(im: Image.Image, a: np.ndarray) -> int:
    """Bit depth of a 32-bit-integer ("I") image: TIFF records it; a PNG in mode "I" is 16-bit;
    otherwise the smallest of 8/16/32 bits that holds the largest value."""
    tags = getattr(im, "tag_v2", None)
    if tags is not None and 258 in tags:  # TIFF BitsPerSample
        bps = tags[258]
        return int(bps[0] if isinstance(bps, tuple) else bps)
    if im.format == "PNG":
        return 16
    top = int(a.max()) if a.size else 0
    return 8 if top <= 255 else 16 if top <= 65535 else 32


def stratified_holdout(
    labels: np.ndarray, fraction: float, seed: int, min_per_class: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (keep, holdout), class-stratified and deterministic for ``seed``.

    Each class gives ``round(fraction * n_c)`` rows (at least ``min_per_class`` when it has more
    than that), chosen by a seeded permutation; both index arrays come back sorted so row order
    follows the source order. Multi-label rows are stratified by their first positive label.
    """
    labels = np.asarray(labels)
    strat = labels.argmax(axis=1) if labels.ndim == 2 else labels
    rng = np.random.default_rng(seed)
    hold: list[np.ndarray] = []
    for c in np.unique(strat):
        idx = np.flatnonzero(strat == c)
        k = int(round(fraction * len(idx)))
        if len(idx) > min_per_class:
            k = max(k, min_per_class)
        k = min(k, len(idx) - 1) if len(idx) > 1 else 0
        hold.append(rng.permutation(idx)[:k])
    holdout = np.sort(np.concatenate(hold)) if hold else np.array([], dtype=np.int64)
    keep = np.setdiff1d(np.arange(len(labels)), holdout)
    return keep, holdout


def subset(split: SplitData, index: np.ndarray) -> SplitData:
    """Rows ``index`` of a split, order preserved."""
    return SplitData([split.ids[i] for i in index], split.labels[index])
