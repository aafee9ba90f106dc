"""Images for training and evaluation: augmentation, the two evaluation crops, deterministic order.

Training (Appendix A.5 trains "with data augmentation"; the paper cites Inception preprocessing):
``RandomResizedCrop`` to the checkpoint's input size with torchvision's defaults (area 8%-100% of
the image, aspect ratio 3/4-4/3; Inception's ``distorted_bounding_box_crop`` uses 5%-100% and the
same ratios) and a random horizontal flip. Inception's colour distortion is not applied: the paper
disables ImageNet-time regularisers and does not name it for fine-tuning.

Evaluation: the whole image resized to the input size ("uncropped", as for features), and the
central 87.5% of each side cropped then resized ("cropped", TF's ``central_crop(0.875)``).

Determinism, the basis of bit-identical resumption: the batch at step ``t`` and the random
augmentation of each of its examples are pure functions of ``(data seed, t)``. Each epoch's order is
a permutation drawn from a generator seeded with ``(seed, epoch)``; each example's augmentation
runs under a forked RNG seeded with ``(seed, step, position in batch)``. So a resumed job needs no
sampler state, and results do not depend on the number of DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from featurestore.datasets import Dataset

#: torchvision's RandomResizedCrop defaults, recorded in each result row.
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
CENTRAL_FRACTION = 0.875
CROPS = ("uncropped", "cropped")


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from integers (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


class CentralCrop:
    """Keep the central ``fraction`` of each side of a PIL image (TF ``central_crop`` offsets)."""

    def __init__(self, fraction: float = CENTRAL_FRACTION) -> None:
        self.fraction = fraction

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        top = int((h - h * self.fraction) / 2)
        left = int((w - w * self.fraction) / 2)
        return img.crop((left, top, w - left, h - top))


def _interp(name: str) -> InterpolationMode:
    return InterpolationMode(name or "bilinear")


def train_transform(size: tuple[int, int], interpolation: str) -> T.Compose:
    """Random resized crop + horizontal flip, as uint8 CHW (normalised later on the device)."""
    return T.Compose([
        T.RandomResizedCrop(size, scale=CROP_SCALE, ratio=CROP_RATIO,
                            interpolation=_interp(interpolation), antialias=True),
        T.RandomHorizontalFlip(),
        T.PILToTensor(),
    ])


def eval_transform(size: tuple[int, int], interpolation: str, crop: str) -> T.Compose:
    """``uncropped``: whole image resized; ``cropped``: central 87.5% then resized."""
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    steps: list[Any] = [CentralCrop()] if crop == "cropped" else []
    steps += [T.Resize(size, interpolation=_interp(interpolation), antialias=True), T.PILToTensor()]
    return T.Compose(steps)


def _label_tensor(label: np.ndarray | np.integer | int, multilabel: bool) -> torch.Tensor:
    if multilabel:
        return torch.as_tensor(np.asarray(label), dtype=torch.float32)
    return torch.as_tensor(int(label), dtype=torch.long)


class TrainImages(TorchDataset):
    """Training examples addressed by ``(row, augmentation seed)`` keys (:class:`StepSampler`)."""

    def __init__(self, dataset: Dataset, ids: Sequence[str], labels: np.ndarray,
                 transform: T.Compose) -> None:
        self.dataset, self.ids, self.labels, self.transform = dataset, list(ids), labels, transform
        self.multilabel = labels.ndim == 2

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        row, seed = key
        img = self.dataset.read(self.ids[row])
        with torch.random.fork_rng(devices=[]):  # augmentation never touches the global stream
            torch.manual_seed(seed)
            x = self.transform(img)
        return x, _label_tensor(self.labels[row], self.multilabel)


class EvalImages(TorchDataset):
    """Evaluation examples in split order (index keys)."""

    def __init__(self, dataset: Dataset, ids: Sequence[str], transform: T.Compose) -> None:
        self.dataset, self.ids, self.transform = dataset, list(ids), transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(self.dataset.read(self.ids[i]))


class StepSampler(Sampler[list[tuple[int, int]]]):
    """Batches for steps ``start .. total-1`` of a run over ``n`` examples (``drop_last``).

    Step ``t`` is batch ``t mod s`` of epoch ``t // s`` (``s = n // batch_size``); the epoch's
    order is ``torch.randperm(n)`` under a generator seeded with ``mix_seed(seed, epoch)``.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, total: int) -> None:
        if batch_size > n:
            raise ValueError(f"batch size {batch_size} > {n} examples")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.total = start, total
        self.steps_per_epoch = n // batch_size

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        return torch.randperm(self.n, generator=g)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, order = -1, torch.empty(0, dtype=torch.long)
        for step in range(self.start, self.total):
            e, pos = divmod(step, self.steps_per_epoch)
            if e != epoch:
                epoch, order = e, self.epoch_order(e)
            rows = order[pos * self.batch_size:(pos + 1) * self.batch_size].tolist()
            yield [(r, mix_seed(self.seed, step, j)) for j, r in enumerate(rows)]


def _collate_train(
    batch: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([x for x, _ in batch]), torch.stack([y for _, y in batch])


def train_loader(
    dataset: Dataset, ids: Sequence[str], labels: np.ndarray, transform: T.Compose, *,
    batch_size: int, seed: int, start: int, total: int, num_workers: int, pin_memory: bool,
) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
    """Loader over the remaining steps of a run (see :class:`StepSampler`)."""
    sampler = StepSampler(len(ids), batch_size, seed, start, total)
    return DataLoader(
        TrainImages(dataset, ids, labels, transform),
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=_collate_train,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
    )


def eval_loader(
    dataset: Dataset, ids: Sequence[str], transform: T.Compose, *,
    batch_size: int, num_workers: int, pin_memory: bool,
) -> DataLoader[torch.Tensor]:
    """Loader over a split in order: uint8 image batches ``[B, 3, H, W]``, no labels."""
    return DataLoader(
        EvalImages(dataset, ids, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
    )
