"""Read uncompressed row-chunked Zarr arrays of a local store straight into one numpy array.

Why by hand: Zarr's generic read path copies every chunk twice (file bytes -> chunk buffer ->
output) and goes through asyncio per chunk; for feature matrices stored with only the ``bytes``
codec a chunk file *is* the C-order rows, so ``readinto`` a slice of the output is a single copy,
like ``numpy.load``. Measured on this 2-core machine (benchmarks/extract.py, 98-244 MiB matrices):
Zarr's own path reached about 0.3x of ``numpy.load``; this path 0.5-1.0x depending on load.
Anything that is not exactly that layout (compression, filters, big-endian, other chunk grids,
remote stores) falls back to Zarr.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BytesCodec


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


def read_rows(array: zarr.Array, local_dir: Path, threads: int = 4) -> np.ndarray:
    """All rows of ``array`` (stored under ``local_dir``) via one ``readinto`` per chunk file.

    Missing chunk files (never written) come back as the array's fill value, as in Zarr.
    """
    n = array.shape[0]
    rows = array.chunks[0]
    out = np.empty(array.shape, dtype=array.dtype)
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

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(load, range(n_chunks)))
    return out
