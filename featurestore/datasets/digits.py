"""scikit-learn's bundled handwritten digits: real data that needs no download (demo default)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from PIL import Image

from featurestore.datasets.base import Dataset, SplitData, stratified_holdout, subset

TEST_FRACTION = 0.3
VAL_FRACTION = 0.2


@dataclass
class Digits(Dataset):
    """1,797 8x8 grey digits (UCI), split seeded and class-stratified: 30% test, then 20% of the
    rest as validation. Sample ids are the row numbers in ``sklearn.datasets.load_digits``."""

    name = "digits"
    metric = "top1"
    split_rule = (
        f"stratified by class with numpy default_rng(seed): {TEST_FRACTION:.0%} of all rows -> "
        "test, "
        f"then {VAL_FRACTION:.0%} of the rest (seed + 1) -> val, the remainder -> train"
    )
    _images: np.ndarray | None = field(default=None, init=False, repr=False)

    def _digits(self) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images, d.target.astype(np.int64)

    def _load_splits(self) -> dict[str, SplitData]:
        images, target = self._digits()
        self._images = images
        full = SplitData([f"{i:04d}" for i in range(len(target))], target)
        rest, test = stratified_holdout(target, TEST_FRACTION, self.seed)
        rest_split = subset(full, rest)
        train, val = stratified_holdout(rest_split.labels, VAL_FRACTION, self.seed + 1)
        return {
            "train": subset(rest_split, train),
            "val": subset(rest_split, val),
            "test": subset(full, test),
        }

    @cached_property
    def label_names(self) -> list[str]:  # type: ignore[override]
        return [str(i) for i in range(10)]

    def read(self, sample_id: str) -> Image.Image:
        if self._images is None:
            self._images = self._digits()[0]
        pixels = self._images[int(sample_id)]  # values 0..16
        grey = np.clip(pixels * (255.0 / 16.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
