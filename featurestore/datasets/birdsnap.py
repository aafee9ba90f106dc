"""Birdsnap (Berg et al. 2014), v1.1: 500 species, the official 2,443-image test list.

Layout (``birdsnap.tgz`` unpacked, then ``python get_birdsnap.py`` run inside it, which downloads
the images from Flickr into ``download/images/``; a ``birdsnap/`` sub-folder is accepted too)::

    <root>/species.txt         (tab-separated, header; id, common, scientific, dir)
    <root>/images.txt          (tab-separated, header; url, md5, path, species_id, bb_*, parts)
    <root>/test_images.txt     (header ``path``, then one ``path`` per line)
    <root>/download/images/<dir>/<n>.jpg

Table 1: 47,386 / 2,443 (train = every images.txt row not in test_images.txt), top-1. Many
Flickr URLs have died since 2014, so real copies usually lack images: use ``allow_missing``
(``--allow-missing``) and the skipped ids go into provenance. No official validation split: a
seeded, class-stratified 20% of train is held out. Label names are the species' common names, in
species-id order.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from featurestore.datasets.base import SplitData
from featurestore.datasets.paper import VAL_FRACTION, PaperDataset, labels_array, read_lines
from featurestore.errors import DatasetRootError

IMAGE_DIR = "download/images"


def _read_table(path: Path) -> list[dict[str, str]]:
    """A tab-separated file whose first line names the columns."""
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@dataclass
class Birdsnap(PaperDataset):
    """Birdsnap; ids are ``download/images/<path>``."""

    name = "birdsnap"
    metric = "top1"
    split_rule = (
        "official: test_images.txt -> test, the other images.txt rows -> trainval; "
        f"stratified {VAL_FRACTION:.0%} of trainval (seed) -> val"
    )
    layout_dirs = ("", "birdsnap")
    required = ("species.txt", "images.txt", "test_images.txt", f"{IMAGE_DIR}/")
    source_hint = (
        "Files: https://thomasberg.org/datasets/birdsnap/1.1/birdsnap.tgz, then run "
        "get_birdsnap.py in the unpacked folder to fetch the images"
    )

    def _read_splits(self, data_dir: Path) -> dict[str, SplitData]:
        species = _read_table(data_dir / "species.txt")
        try:
            by_id = {int(row["id"]): row["common"] for row in species}
        except (KeyError, ValueError) as e:
            raise DatasetRootError(f"{data_dir / 'species.txt'}: bad id/common ({e})") from e
        if sorted(by_id) != list(range(1, len(by_id) + 1)):
            raise DatasetRootError(f"{data_dir / 'species.txt'}: ids are not 1..{len(by_id)}")
        self._names = [by_id[i] for i in range(1, len(by_id) + 1)]
        test_paths = read_lines(data_dir / "test_images.txt")
        if test_paths and test_paths[0] == "path":
            test_paths = test_paths[1:]
        label_of: dict[str, int] = {}
        order: list[str] = []
        for row in _read_table(data_dir / "images.txt"):
            try:
                path, label = row["path"], int(row["species_id"]) - 1
            except (KeyError, TypeError, ValueError) as e:
                raise DatasetRootError(f"{data_dir / 'images.txt'}: bad row ({e})") from e
            if not 0 <= label < len(self._names):
                raise DatasetRootError(f"{data_dir / 'images.txt'}: species_id {label + 1} unknown")
            label_of[path] = label
            order.append(path)
        unknown = [p for p in test_paths if p not in label_of]
        if unknown:
            raise DatasetRootError(
                f"{data_dir / 'test_images.txt'}: {len(unknown)} paths are not in images.txt "
                f"(first: {', '.join(unknown[:3])})"
            )
        test_set = set(test_paths)
        train_paths = [p for p in order if p not in test_set]
        trainval = SplitData(
            [f"{IMAGE_DIR}/{p}" for p in train_paths],
            labels_array([label_of[p] for p in train_paths]),
        )
        test = SplitData(
            [f"{IMAGE_DIR}/{p}" for p in test_paths],
            labels_array([label_of[p] for p in test_paths]),
        )
        train, val = self._holdout(trainval)
        return {"train": train, "val": val, "test": test}
