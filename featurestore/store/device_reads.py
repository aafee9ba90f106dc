"""A split's cached features as a torch tensor on a device: straight into GPU memory on CUDA.

:meth:`FeatureStore.load` returns numpy arrays, and a CUDA probe then copies them to the GPU.
:func:`load_tensor` hands the features to torch on the device the caller computes on, by one of
two readers (:func:`choose_reader` is the one rule that picks it):

- ``"direct"``: chunk by chunk, the stored bytes are checked and then copied once into device
  memory. On CUDA the copy goes through Zarr's GPU buffers (``zarr.buffer.gpu.Buffer``,
  cupy arrays) and reaches torch by DLPack (``torch.from_dlpack``): no host-side numpy array
  of the whole split, no second host copy. cupy is the optional ``gpu`` extra, imported
  lazily; its CUDA build must match torch's (``cupy-cuda13x`` for torch ``+cu130``).
  On CPU the same loop fills a torch tensor; it is what the tests exercise here.
- ``"host"``: :meth:`FeatureStore.load` (the single-copy local path of
  :mod:`~featurestore.store.chunkio`), then ``torch.from_numpy`` (CPU: no copy) or a pinned,
  ``non_blocking`` copy to CUDA.

Integrity is never skipped on the way to the GPU. Zarr's ``crc32c`` codec does run on GPU
buffers, but only by copying every chunk back to the host (``Buffer.as_numpy_array`` is
``cupy.asnumpy``), computing the CRC there and uploading the payload again: three PCIe
transfers per chunk, and a mismatch surfaces as a bare ``ValueError`` naming no chunk. Since a
chunk file is read into host memory anyway (there is no GPUDirect Storage in this path), the
direct reader checks the crc32c on those host bytes with :mod:`~featurestore.store.integrity`
(a damaged chunk raises :class:`~featurestore.errors.DamagedEntryError` naming it, as every
other read does) and then decodes on the device: for the ``bytes`` codec this store writes
(little-endian C-order rows) decoding is a reinterpretation of the uploaded bytes as rows.
Arrays in any other layout (compressed, big-endian) take the host reader.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
import torch
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.buffer.gpu import Buffer as GpuBuffer
from zarr.core.sync import sync

from featurestore.device import resolve_device
from featurestore.errors import DamagedEntryError, DeviceError
from featurestore.extras import MissingExtraError, require_extra
from featurestore.store import chunkio, integrity

__all__ = ["READERS", "Reader", "choose_reader", "gpu_reads_available", "load_tensor"]

Reader = Literal["auto", "direct", "host"]


class _Store(Protocol):
    """What a read needs of its store: :class:`~featurestore.store.catalog.FeatureStore` hands
    itself in (``FeatureStore.load_tensor``), so the catalog stays the one module that knows
    both and this module never imports it."""

    root: zarr.Group

    def entry(self, ckpt: str, dataset: str) -> Any: ...

    def _split_names(self, info: Any, split: str) -> list[str]: ...

    def _read_rows(self, paths: list[str], verify: bool = True) -> np.ndarray: ...

    def load(self, ckpt: str, dataset: str, split: str, *, verify: bool = True
             ) -> tuple[np.ndarray, np.ndarray]: ...
READERS: tuple[str, ...] = ("auto", "direct", "host")


def _cupy() -> Any:
    """The cupy module (the ``gpu`` extra), or :class:`MissingExtraError` naming the extra."""
    require_extra("gpu", "reading features straight into GPU memory")
    return importlib.import_module("cupy")


def gpu_reads_available() -> bool:
    """Whether cupy (the ``gpu`` extra) imports here, so CUDA reads can use Zarr's GPU buffers."""
    try:
        _cupy()
    except MissingExtraError:
        return False
    return True


def choose_reader(device: torch.device, reader: str = "auto",
                  has_cupy: Callable[[], bool] = gpu_reads_available) -> str:
    """The reader for ``device``: the one rule of this module.

    ``auto``: ``direct`` on CUDA when cupy imports (features go straight to GPU memory),
    otherwise ``host`` (on CPU the host read is already the single-copy path, and on CUDA
    without cupy a pinned copy is the best left). An explicit ``direct`` on CUDA without cupy
    raises :class:`MissingExtraError` naming the ``gpu`` extra rather than quietly taking
    another path; an unknown reader raises :class:`DeviceError`.
    """
    if reader not in READERS:
        raise DeviceError(f"unknown feature reader {reader!r} ({' | '.join(READERS)})")
    if reader == "host":
        return "host"
    if device.type == "cuda":
        if reader == "direct":
            _cupy()
            return "direct"
        return "direct" if has_cupy() else "host"
    return "direct" if reader == "direct" else "host"


def load_tensor(store: _Store, ckpt: str, dataset: str, split: str,
                device: str | torch.device = "auto", *, verify: bool = True,
                reader: str = "auto") -> tuple[torch.Tensor, np.ndarray]:
    """Features (a tensor on ``device``) and labels (numpy) of one split of a complete entry.

    ``device`` goes through :func:`featurestore.device.resolve_device` (``auto`` | ``cpu`` |
    ``cuda[:N]``; CUDA asked for where there is none is a :class:`DeviceError`); ``reader``
    is ``auto`` | ``direct`` | ``host`` (see :func:`choose_reader`). ``split`` may be
    ``trainval`` (train then val, stacked), as in :meth:`FeatureStore.load`. The features equal
    those of :meth:`FeatureStore.load`; a damaged or missing chunk raises
    :class:`~featurestore.errors.DamagedEntryError` naming it on every reader (``verify=False``
    skips only the crc32c comparison, as there).
    """
    dev = resolve_device(device)
    how = choose_reader(dev, reader)
    info = store.entry(ckpt, dataset)
    parts = store._split_names(info, split)
    base = f"{ckpt}/{dataset}"
    paths = [f"{base}/{s}/features" for s in parts]
    arrays = _open(store, paths)
    if (how == "direct" and all(chunkio.fast_path_ok(a) for a in arrays)
            and len({a.dtype for a in arrays}) == 1):
        X = _read_direct(store, arrays, paths, dev, verify)
        y = store._read_rows([f"{base}/{s}/labels" for s in parts], verify)
        return X, y
    X_np, y = store.load(ckpt, dataset, split, verify=verify)
    return _host_to_device(X_np, dev), y


def _open(store: _Store, paths: list[str]) -> list[zarr.Array]:
    arrays = []
    for p in paths:
        try:
            a = store.root[p]
        except Exception as e:  # a corrupt or vanished zarr.json
            raise DamagedEntryError(f"damaged array {p}: {integrity.entry_damage_reason(e)}"
                                    ) from e
        assert isinstance(a, zarr.Array)
        arrays.append(a)
    return arrays


def _host_to_device(X: np.ndarray, dev: torch.device) -> torch.Tensor:
    """``X`` on ``dev``: no copy on CPU; on CUDA one pinned, asynchronous copy (the caching
    host allocator keeps the pinned block alive until the copy has run)."""
    t = torch.from_numpy(X)
    if dev.type == "cpu":
        return t
    if dev.type == "cuda":
        return t.pin_memory().to(dev, non_blocking=True)
    return t.to(dev)


def _chunk_payload(array: zarr.Array, store: Any, path: str, k: int, verify: bool
                   ) -> np.ndarray:
    """The decoded-size bytes of row chunk ``k`` (uint8, host memory), checked like every read:
    missing, truncated or (``verify``) checksum-mismatching chunks raise naming the chunk."""
    key = integrity.chunk_key(array, k, path)
    buf = sync(store.get(key, prototype=default_buffer_prototype()))
    if buf is None:
        raise integrity.ChunkDamage(path, k, "chunk missing").error()
    raw = buf.as_numpy_array()
    checksummed = integrity.has_checksum(array)
    want = int(np.prod(array.chunks, dtype=np.int64)) * array.dtype.itemsize
    trailer = integrity.CHECKSUM_BYTES if checksummed else 0
    if raw.size != want + trailer:
        raise integrity.ChunkDamage(path, k, f"wrong size ({raw.size} bytes)").error()
    if checksummed and verify:
        mismatch = integrity.checksum_mismatch(integrity.stored_crc(raw[want:]),
                                               integrity.crc32c(raw[:want]))
        if mismatch:
            raise integrity.ChunkDamage(path, k, mismatch).error()
    return raw[:want]


def _upload(payload: np.ndarray, dev: torch.device) -> torch.Tensor:
    """``payload`` (uint8 host bytes) as a uint8 tensor in CUDA memory on ``dev``.

    One host-to-device copy into a Zarr GPU buffer (a cupy array on ``dev``), handed to torch by
    DLPack: torch then holds a view of that device memory, no further copy. cupy works on torch's
    current stream: the caller's device copy out of the buffer is then ordered after the upload,
    and cupy's pool cannot hand the block to the next chunk's upload before that copy has read
    it (on two streams it could). The buffer class is taken directly, not by switching Zarr's
    global config (``zarr.config.enable_gpu()``), which other threads reading Zarr would see.
    """
    cp = _cupy()
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    stream = torch.cuda.current_stream(index).cuda_stream
    with cp.cuda.Device(index), cp.cuda.ExternalStream(stream):
        buf = GpuBuffer.from_array_like(cp.asarray(payload))
    return torch.from_dlpack(buf.as_array_like())


def _read_direct(store: _Store, arrays: list[zarr.Array], paths: list[str],
                 dev: torch.device, verify: bool) -> torch.Tensor:
    """The arrays (one dtype) stacked along rows in one tensor on ``dev``, chunk by chunk: each
    chunk's checked bytes land in their final place (an edge chunk's padding is dropped)."""
    n = sum(a.shape[0] for a in arrays)
    proto = np.empty((0, *arrays[0].shape[1:]), arrays[0].dtype)
    out = torch.empty((n, *proto.shape[1:]), dtype=torch.from_numpy(proto).dtype, device=dev)
    flat = out.view(-1).view(torch.uint8)
    host = out.numpy().reshape(-1).view(np.uint8) if dev.type == "cpu" else None
    row_bytes = int(np.prod(proto.shape[1:], dtype=np.int64)) * proto.itemsize
    at = 0
    for array, path in zip(arrays, paths, strict=True):
        rows, size = array.chunks[0], array.shape[0]
        for k in range(-(-size // rows) if size else 0):
            nbytes = (min(size, (k + 1) * rows) - k * rows) * row_bytes
            payload = _chunk_payload(array, store.root.store, path, k, verify)[:nbytes]
            if host is not None:
                host[at:at + nbytes] = payload
            else:
                flat[at:at + nbytes].copy_(_upload(payload, dev))
            at += nbytes
    return out
