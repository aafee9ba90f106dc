"""The image side of extraction: decode and resize every image of a split into uint8 batches.

DataLoader workers run the checkpoint's preprocessing up to normalisation (uint8 CHW, so the
hand-off to the main process is 4x smaller than float); a decode error travels back as a string
so the main process raises one clean :class:`CorruptImageError` naming the file; each worker dies
with the extracting process. :mod:`featurestore.extract` owns the rest (normalisation on the
device, forward pass, chunk writes) and only asks this module for a loader.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from featurestore.checkpoints import LoadedCheckpoint
from featurestore.datasets import Dataset
from featurestore.datasets.base import set_max_pixels
from featurestore.errors import CorruptImageError

__all__ = ["default_workers", "image_loader", "preprocess_transform"]


def preprocess_transform(ckpt: LoadedCheckpoint) -> T.Compose:
    """The paper's preprocessing up to normalisation: the whole image resized to the checkpoint's
    ImageNet input size (no crop, aspect ratio not kept), as uint8 CHW."""
    interp = InterpolationMode(ckpt.data_config.get("interpolation", "bilinear"))
    return T.Compose([T.Resize(ckpt.input_size, interpolation=interp, antialias=True),
                      T.PILToTensor()])


class _ImageSplit(TorchDataset):
    """Decodes samples in DataLoader workers; decode errors travel back as strings so the main
    process can raise one clean :class:`CorruptImageError` naming the file."""

    def __init__(self, dataset: Dataset, ids: Sequence[str], transform: T.Compose) -> None:
        self.dataset, self.ids, self.transform = dataset, list(ids), transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, int, str | None]:
        try:
            return self.transform(self.dataset.read(self.ids[i])), i, None
        except CorruptImageError as e:
            return None, i, str(e)


def _collate(batch: list[tuple[torch.Tensor | None, int, str | None]]) -> Any:
    errors = [e for _, _, e in batch if e is not None]
    if errors:
        return None, [i for _, i, _ in batch], errors
    return torch.stack([x for x, _, _ in batch]), [i for _, i, _ in batch], []


def default_workers() -> int:
    return max(1, min(8, (os.cpu_count() or 2) - 1))


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _worker_init(parent_pid: int, max_pixels: int | None, worker_id: int) -> None:
    """Run in each DataLoader worker: die with the extracting process, even on ``kill -9``.

    Linux delivers SIGKILL to the worker when its parent dies (``PR_SET_PDEATHSIG``); if the parent
    is already gone by the time this runs, the worker exits now. Also re-applies the
    ``--max-pixels`` limit, which a worker started by ``spawn`` would not inherit.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(0)
    if max_pixels is not None:
        set_max_pixels(max_pixels)


def image_loader(dataset: Dataset, ids: Sequence[str], transform: T.Compose,
                 batches: list[list[int]], workers: int, pin_memory: bool) -> DataLoader:
    """Batches ``(uint8 images or None, row indices, decode errors)`` of ``ids`` in the order of
    ``batches`` (row indices into ``ids``), decoded by ``workers`` processes (0: in this one).
    The ``--max-pixels`` limit in force now is re-applied in every worker."""
    return DataLoader(
        _ImageSplit(dataset, ids, transform),
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
        worker_init_fn=functools.partial(
            _worker_init, os.getpid(), Image.MAX_IMAGE_PIXELS) if workers else None,
    )
