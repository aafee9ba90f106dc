"""Read uncompressed row-chunked Zarr arrays of a local store straight into one numpy array.

Why by hand: Zarr's generic read path copies every chunk twice (file bytes -> chunk buffer ->
output) and goes through asyncio per chunk; for feature matrices stored with only the ``bytes``
codec a chunk file *is* the C-order rows, so ``readinto`` a slice of the output is a single copy,
like ``numpy.load``. Measured on this 2-core machine (benchmarks/extract.py, 244 MiB matrix):
Zarr's own path reached about 0.3x of ``numpy.load``; this path about 1.0x.
The output is allocated page-aligned (:func:`empty_aligned`): glibc hands large blocks out at
16 bytes past a page boundary, and a kernel copy whose destination sits 16 bytes after its
page-aligned source (every chunk file starts at offset 0) hits 4K aliasing: 57 ms against
39 ms for the same 244 MiB. Threads (:func:`default_threads`) share one pool per process,
since starting threads costs ~5 ms a read.
Anything that is not exactly that layout (compression, filters, big-endian, other chunk grids,
remote stores) falls back to Zarr.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BytesCodec

_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def default_threads() -> int:
    """Reader threads: half the usable cores, at most 4; 1 (read in the caller) on 2 cores.

    Measured on this 2-core machine (21 interleaved reps of 244 MiB): 1 thread 0.98x of
    ``numpy.load``, 2 threads 0.95x, quiet or with one core busy; the copy is bound by memory
    and page faults, so threads only pay where there are cores to spare.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, (cores or 1) // 2))


def _executor() -> ThreadPoolExecutor:
    """The process's reader pool (recreated after a fork: a child must not use its parent's)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=default_threads(), thread_name_prefix="chunkio")
            _pool_pid = os.getpid()
        return _pool


def empty_aligned(shape: tuple[int, ...], dtype: np.dtype | str, align: int = 4096) -> np.ndarray:
    """An uninitialised C-order array whose data start on an ``align``-byte boundary."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    buf = np.empty(nbytes + align, np.uint8)
    start = -buf.ctypes.data % align
    return buf[start:start + nbytes].view(dt).reshape(shape)


def fast_path_ok(array: zarr.Array) -> bool:
    """True when ``array`` is row-chunked, uncompressed, little-endian with default chunk keys."""
    meta = array.metadata
    codecs = getattr(meta, "codecs", ())
    if len(codecs) != 1 or not isinstance(codecs[0], BytesCodec):
        return False
    if array.ndim < 1 or tuple(array.chunks[1:]) != tuple(array.shape[1:]):
        return False
    dt = np.dtype(array.dtype)
    if dt.kind not in "fiub" or (dt.itemsize > 1 and dt.byteorder == ">"):
        return False
    endian = getattr(codecs[0], "endian", None)
    return endian is None or getattr(endian, "value", endian) == "little"


def read_rows(array: zarr.Array, local_dir: Path, out: np.ndarray | None = None,
              parallel: bool | None = None) -> np.ndarray:
    """All rows of ``array`` (stored under ``local_dir``) via one ``readinto`` per chunk file.

    ``out`` (C-contiguous, the array's shape and dtype) receives the rows when given, so that
    callers stacking several arrays (train + val) write each once into its final place.
    ``parallel`` reads the chunks on the process's reader pool; by default only when
    :func:`default_threads` is above 1.
    Missing chunk files (never written) come back as the array's fill value, as in Zarr.
    """
    n = array.shape[0]
    rows = array.chunks[0]
    if out is None:
        out = empty_aligned(array.shape, array.dtype)
    elif out.shape != array.shape or out.dtype != array.dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous {array.dtype}{array.shape}")
    row_bytes = out[0:1].nbytes if n else 0
    n_chunks = -(-n // rows) if n else 0

    def load(k: int) -> None:
        start, stop = k * rows, min(n, (k + 1) * rows)
        key = array.metadata.encode_chunk_key((k,) + (0,) * (array.ndim - 1))
        view = memoryview(out[start:stop]).cast("B")
        try:
            with open(local_dir / key, "rb", buffering=0) as f:
                got = f.readinto(view)
        except FileNotFoundError:
            out[start:stop] = array.fill_value
            return
        if got != (stop - start) * row_bytes:
            raise OSError(f"short chunk file {local_dir / key}: {got} bytes")

    if parallel is None:
        parallel = default_threads() > 1
    if parallel and n_chunks > 1:
        list(_executor().map(load, range(n_chunks)))
    else:
        for k in range(n_chunks):
            load(k)
    return out
