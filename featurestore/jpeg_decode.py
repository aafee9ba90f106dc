"""JPEG files decoded as tensors (nvJPEG on CUDA) for extraction, and the rule of when.

The rule (:func:`choose_decoder`, the only place it lives): ``auto`` decodes JPEG files with
``torchvision.io.decode_jpeg`` on the extraction device when that device is CUDA, and with PIL
in the DataLoader workers otherwise. Why: on CUDA the bf16 forward pass outruns the CPU
decoders. PIL decode + resize of a typical 500x375 JPEG to 224x224 takes a few ms per image
per core (``benchmarks/gpu_check.py`` prints both rates), so a few CPU workers feed a few
hundred images/s while an H200 runs EfficientNet-B0-class models at thousands: the CPU is the
bottleneck on any CUDA machine this project runs on. On CPU the forward pass is the slower
stage and PIL in parallel workers is the faster decoder, so ``auto`` keeps it.

``decoder="tensor"`` forces the tensor path on any device (``decode_jpeg(..., device="cpu")`` on
CPU: how the tests check it against PIL). Either way, per file: JPEGs (by their magic bytes,
8-bit RGB or grey, within the ``--max-pixels`` limit) are decoded and resized on the device
with the checkpoint's data config (whole image to the input size, its interpolation,
antialiased, uint8, no crop), and normalised by :mod:`featurestore.extract` as before; every
other file (PNG, CMYK JPEG, in-memory datasets) takes the PIL path in the workers, and a JPEG
the tensor decoder refuses is retried with PIL, so a corrupt file raises the same
:class:`CorruptImageError` naming it. The two decoders are not bit-identical (libjpeg/nvJPEG vs
PIL's IDCT, torch vs PIL resamplers); the entry's provenance records which one ran.
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as F

from featurestore.checkpoints import LoadedCheckpoint
from featurestore.datasets import Dataset
from featurestore.errors import CorruptImageError, DeviceError
from featurestore.image_batches import _worker_init

__all__ = ["DECODERS", "choose_decoder", "decode_batches", "decoder_provenance", "jpeg_loader"]

DECODERS = ("auto", "pil", "tensor")
JPEG_MAGIC = b"\xff\xd8\xff"


def choose_decoder(dev: torch.device, decoder: str = "auto") -> str:
    """``"pil"`` or ``"tensor"`` for extraction on ``dev`` (see the module docstring)."""
    if decoder not in DECODERS:
        raise DeviceError(f"unknown image decoder {decoder!r} ({' | '.join(DECODERS)})")
    if decoder == "auto":
        return "tensor" if dev.type == "cuda" else "pil"
    return decoder


def decoder_provenance(choice: str, dev: torch.device) -> str:
    """What the entry's provenance says decoded its images."""
    if choice == "pil":
        return "PIL"
    return f"torchvision.io.decode_jpeg on {dev.type} for JPEG files, PIL for the others"


def _jpeg_ok(data: bytes) -> bool:
    """A JPEG the tensor decoder should take: 8-bit RGB or grey, within the pixel limit (the
    header alone is parsed) and ending in its end-of-image marker, so a truncated file, which
    a lenient decoder might fill with grey, never gets past PIL. Anything else goes to PIL,
    which converts or refuses it with the usual message (:class:`ImageTooLargeError` for a
    bomb, :class:`CorruptImageError` naming the file)."""
    if data[:3] != JPEG_MAGIC or data.rstrip(b"\0")[-2:] != b"\xff\xd9":
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h, mode = im.width, im.height, im.mode
    except Exception:  # unreadable header: PIL names the file and the reason
        return False
    limit = Image.MAX_IMAGE_PIXELS
    return mode in ("RGB", "L") and (limit is None or w * h <= limit)


class _FileSplit(TorchDataset):
    """Raw JPEG bytes of files the tensor decoder takes, PIL-decoded uint8 CHW otherwise."""

    def __init__(self, dataset: Dataset, ids: Sequence[str], transform: T.Compose) -> None:
        self.dataset, self.ids, self.transform = dataset, list(ids), transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, bool, int, str | None]:
        path = self.dataset.file_path(self.ids[i])
        if path is not None:
            try:
                data = path.read_bytes()
            except OSError:  # missing or unreadable: PIL below raises the usual error
                data = b""
            if _jpeg_ok(data):
                return torch.frombuffer(bytearray(data), dtype=torch.uint8), True, i, None
        try:
            return self.transform(self.dataset.read(self.ids[i])), False, i, None
        except CorruptImageError as e:
            return None, False, i, str(e)


def _collate(batch: list[tuple[torch.Tensor | None, bool, int, str | None]]) -> Any:
    errors = [e for *_, e in batch if e is not None]
    return [(x, j) for x, j, _, _ in batch], [i for _, _, i, _ in batch], errors


def jpeg_loader(dataset: Dataset, ids: Sequence[str], transform: T.Compose,
                batches: list[list[int]], workers: int, pin_memory: bool) -> DataLoader:
    """Like :func:`featurestore.image_batches.image_loader`, but a batch holds ``(raw JPEG
    bytes, True)`` or ``(PIL-decoded uint8 CHW, False)`` per row: :func:`decode_batches`
    finishes it on the device."""
    return DataLoader(_FileSplit(dataset, ids, transform), batch_sampler=batches,
                      num_workers=workers, collate_fn=_collate, pin_memory=pin_memory,
                      prefetch_factor=4 if workers else None, persistent_workers=False,
                      worker_init_fn=functools.partial(
                          _worker_init, os.getpid(), Image.MAX_IMAGE_PIXELS) if workers else None)


def _decode(datas: list[torch.Tensor], dev: torch.device) -> list[torch.Tensor | None]:
    """Decoded uint8 RGB CHW tensors on ``dev``, None where the decoder refused the file (one
    batched call; on failure file by file, to find which)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if dev.type == "cuda":
        # nvJPEG may write into memory that kernels still queued on the stream are reading
        # (pytorch/vision#9606); the decoder waits on the host anyway, so this costs ~nothing
        torch.cuda.current_stream(dev).synchronize()
    with warnings.catch_warnings():  # torchvision 0.29 marks its decoders deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=dev))
        except RuntimeError:
            out: list[torch.Tensor | None] = []
            for d in datas:
                try:
                    out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=dev))
                except RuntimeError:
                    out.append(None)
            return out


def decode_batches(loader: Iterable[Any], dataset: Dataset, ids: Sequence[str],
                   loaded: LoadedCheckpoint, transform: T.Compose, dev: torch.device
                   ) -> Iterator[tuple[torch.Tensor | None, list[int], list[str]]]:
    """``(uint8 NCHW on dev, rows, errors)`` batches from :func:`jpeg_loader`'s: JPEGs decoded
    and resized on ``dev`` with the data config, the rest uploaded as PIL made them."""
    interp = InterpolationMode(loaded.data_config.get("interpolation", "bilinear"))
    size = list(loaded.input_size)
    for items, rows, errors in loader:
        if errors:
            yield None, rows, errors
            return
        out: list[torch.Tensor | None] = [None] * len(items)
        jpegs = [j for j, (_, is_jpeg) in enumerate(items) if is_jpeg]
        decoded = _decode([items[j][0] for j in jpegs], dev) if jpegs else []
        for j, img in zip(jpegs, decoded, strict=True):
            if img is not None:
                out[j] = F.resize(img, size, interpolation=interp, antialias=True)
        for j, x in enumerate(out):
            if x is None:  # not a JPEG for us, or refused by the tensor decoder: PIL decides
                x = items[j][0] if not items[j][1] else transform(dataset.read(ids[rows[j]]))
                out[j] = x.to(dev, non_blocking=True)
        yield torch.stack(out), rows, []
