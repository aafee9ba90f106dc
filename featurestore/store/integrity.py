"""Integrity of stored features: a crc32c per chunk, and the checks that use it.

Every array an entry holds (``features``, ``labels``, ``ids``, ``done``) is written with Zarr v3's
``crc32c`` codec last in its codec pipeline, so each chunk object ends with the CRC-32C of its
encoded bytes. Any Zarr reader (zarr-python, xarray, tensorstore, other languages) verifies it;
the hand-written fast path of :mod:`featurestore.store.chunkio` verifies it with the same
function (:func:`crc32c`). Writes set ``write_empty_chunks`` so every chunk of a finished entry
exists: a missing chunk file is then damage, never "all fill value".

Entries written before checksums (no ``crc32c`` codec) still read; they are *unverified*: a chunk
that is missing or undecodable is still caught, a flipped bit is not. Their label chunks may be
legitimately absent (Zarr skipped all-zero chunks then), so only there a missing chunk reads as
the fill value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
import numpy as np
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from featurestore.errors import DamagedEntryError

#: The arrays of one split, in the order they are checked.
SPLIT_ARRAYS = ("features", "labels", "ids", "done")
OPTIONAL_ARRAYS = ("logits", "difficult")
#: Zarr config of every write: all chunks exist on disk, even all-zero ones (see module doc).
WRITE_CONFIG = {"write_empty_chunks": True}
CHECKSUM_BYTES = 4
VERIFIED, UNVERIFIED, DAMAGED = "verified", "unverified", "damaged"


def checksum_codecs(compressors: Iterable[Any] = ()) -> list[Any]:
    """The ``compressors`` (bytes -> bytes codecs) of a new array: ``compressors`` then crc32c."""
    return [*compressors, Crc32cCodec()]


def has_checksum(array: zarr.Array) -> bool:
    """True when each chunk of ``array`` carries a crc32c (the codec is last in its pipeline)."""
    codecs = getattr(array.metadata, "codecs", ())
    return bool(codecs) and isinstance(codecs[-1], Crc32cCodec)


def crc32c(data: Any, crc: int = 0) -> int:
    """CRC-32C of a bytes-like object or contiguous numpy array, extending ``crc``.

    ``google_crc32c`` is the implementation Zarr's codec uses (SSE4.2 in C); it releases the GIL
    on buffers of 1 MiB and more.
    """
    return int(google_crc32c.extend(crc, data))


def stored_crc(trailer: bytes | np.ndarray) -> int:
    """The checksum stored in a chunk's last 4 bytes (little-endian uint32, as Zarr writes it)."""
    return int(np.frombuffer(bytes(trailer), "<u4")[0])


def missing_is_damage(name: str, checksummed: bool) -> bool:
    """Whether a missing chunk of array ``name`` is damage (see the module docstring)."""
    return checksummed or name != "labels"


@dataclass
class ChunkDamage:
    """One damaged chunk: the array's path in the store, the chunk index and what is wrong."""

    array: str
    chunk: int
    reason: str

    @property
    def split(self) -> str:
        return self.array.rsplit("/", 2)[-2]

    def __str__(self) -> str:
        return f"{self.array} chunk {self.chunk}: {self.reason}"

    def error(self) -> DamagedEntryError:
        """The one-line error a read raises for this chunk."""
        return DamagedEntryError(
            f"damaged chunk {self}; `featurestore verify` lists all damage, "
            "`featurestore extract ... --repair` recomputes it"
        )


@dataclass
class EntryCheck:
    """Result of checking every chunk of one entry."""

    ckpt: str
    dataset: str
    integrity: str  # VERIFIED | UNVERIFIED (no checksums stored) | DAMAGED
    damage: list[ChunkDamage] = field(default_factory=list)
    reason: str = ""  # entry-level damage (unreadable metadata, missing arrays)

    @property
    def ok(self) -> bool:
        return self.integrity != DAMAGED

    def damaged_chunks(self) -> dict[str, list[int]]:
        """Row chunks to recompute, per split (one row chunk spans all arrays of a split)."""
        out: dict[str, set[int]] = {}
        for d in self.damage:
            out.setdefault(d.split, set()).add(d.chunk)
        return {s: sorted(ks) for s, ks in out.items()}

    def as_dict(self) -> dict[str, Any]:
        return {"ckpt": self.ckpt, "dataset": self.dataset, "integrity": self.integrity,
                "reason": self.reason,
                "damage": [{"array": d.array, "chunk": d.chunk, "reason": d.reason}
                           for d in self.damage]}


def chunk_key(array: zarr.Array, k: int, path: str = "") -> str:
    """The store key of row chunk ``k`` of ``array``, under ``path`` when given."""
    key = array.metadata.encode_chunk_key((k,) + (0,) * (array.ndim - 1))
    return f"{path}/{key}" if path else key


def checksum_mismatch(stored: int, computed: int) -> str | None:
    """The damage reason of a chunk whose crc32c does not match its trailer, else None."""
    if stored == computed:
        return None
    return f"checksum mismatch (stored crc32c {stored:08x}, computed {computed:08x})"


def _n_chunks(array: zarr.Array) -> int:
    return -(-array.shape[0] // array.chunks[0]) if array.shape[0] else 0


def _get(store: Any, key: str) -> bytes | None:
    buf = sync(store.get(key, prototype=default_buffer_prototype()))
    return None if buf is None else buf.to_bytes()


def check_chunk(array: zarr.Array, store: Any, path: str, k: int) -> str | None:
    """What is wrong with chunk ``k`` of the array at ``path``, or None when it is sound."""
    name = path.rsplit("/", 1)[-1]
    checksummed = has_checksum(array)
    raw = _get(store, chunk_key(array, k, path))
    if raw is None:
        return "chunk missing" if missing_is_damage(name, checksummed) else None
    if checksummed:
        if len(raw) < CHECKSUM_BYTES:
            return f"truncated ({len(raw)} bytes)"
        mismatch = checksum_mismatch(stored_crc(raw[-CHECKSUM_BYTES:]),
                                     crc32c(raw[:-CHECKSUM_BYTES]))
        if mismatch:
            return mismatch
    codecs = array.metadata.codecs
    if len(codecs) - checksummed == 1 and isinstance(codecs[0], BytesCodec):
        # Zarr stores edge chunks at full size
        row = int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize
        want = array.chunks[0] * row
        if len(raw) - CHECKSUM_BYTES * checksummed != want:
            return f"wrong size ({len(raw)} bytes)"
        return None
    if checksummed:  # the bytes are those written: decoding cannot fail
        return None
    try:  # unverified variable-size or compressed chunks: decoding is the remaining check
        array.blocks[k]
    except Exception as e:  # any decode failure is damage, whatever the codec raised
        return f"cannot decode ({type(e).__name__}: {e})"
    return None


def find_damage(array: zarr.Array, store: Any, path: str,
                chunks: Iterable[int] | None = None) -> list[ChunkDamage]:
    """Every damaged chunk of the array at ``path`` (all chunks, or only ``chunks``)."""
    out = []
    for k in range(_n_chunks(array)) if chunks is None else chunks:
        reason = check_chunk(array, store, path, k)
        if reason is not None:
            out.append(ChunkDamage(path, k, reason))
    return out


def missing_chunks(array: zarr.Array, store: Any, path: str) -> list[int]:
    """Chunks of ``array`` absent from the store where that counts as damage."""
    if not missing_is_damage(path.rsplit("/", 1)[-1], has_checksum(array)):
        return []

    async def absent() -> list[int]:
        import asyncio

        keys = [chunk_key(array, k, path) for k in range(_n_chunks(array))]
        found = await asyncio.gather(*(store.exists(key) for key in keys))
        return [k for k, ok in enumerate(found) if not ok]

    return sync(absent())


def read_checked(array: zarr.Array, store: Any, path: str) -> np.ndarray:
    """All of ``array`` read by Zarr, refusing a missing or damaged chunk with a precise error.

    Zarr itself checks each chunk's crc32c but reads a missing chunk as the fill value and names
    no chunk on a mismatch, hence the existence check first and the search on failure.
    """
    missing = missing_chunks(array, store, path)
    if missing:
        raise ChunkDamage(path, missing[0], "chunk missing").error()
    try:
        return np.asarray(array[...])
    except Exception as e:
        damage = find_damage(array, store, path)
        if damage:
            raise damage[0].error() from e
        raise


def check_done_flags(group: zarr.Group, store: Any, path: str, split: str) -> list[ChunkDamage]:
    """A complete entry has every ``done`` flag set; an unset one marks its row chunk damaged."""
    done_path = f"{path}/{split}/done"
    done = group[f"{split}/done"]
    damage = find_damage(done, store, done_path)
    bad = {d.chunk for d in damage}
    try:
        flags = np.asarray(done.with_config({"write_empty_chunks": True})[...])
    except Exception:  # already reported chunk by chunk above
        return damage
    for k in np.flatnonzero(flags == 0):
        if int(k) not in bad:
            damage.append(ChunkDamage(done_path, int(k), "done flag unset in a complete entry"))
    return damage


def check_entry(root: zarr.Group, ckpt: str, dataset: str) -> EntryCheck:
    """Check every chunk of every array of the entry ``ckpt/dataset``."""
    from featurestore.store.layout import ATTR

    path = f"{ckpt}/{dataset}"
    store = root.store
    try:
        group = root[path]
        prov = dict(group.attrs.get(ATTR) or {})
        splits = list(prov.get("split_names", []))
        arrays = {(s, a): group[f"{s}/{a}"] for s in splits for a in SPLIT_ARRAYS}
        # optional arrays of the same row chunks (``extract --with-logits``)
        arrays |= {(s, a): group[f"{s}/{a}"] for s in splits for a in OPTIONAL_ARRAYS
                   if f"{s}/{a}" in group}
    except Exception as e:  # unreadable zarr.json, missing arrays: the entry as a whole
        return EntryCheck(ckpt, dataset, DAMAGED, reason=entry_damage_reason(e))
    damage: list[ChunkDamage] = []
    for (s, a), array in arrays.items():
        if a != "done":
            damage += find_damage(array, store, f"{path}/{s}/{a}")
    for s in splits:
        damage += check_done_flags(group, store, path, s)
    checksummed = all(has_checksum(x) for x in arrays.values())
    integrity = DAMAGED if damage else (VERIFIED if checksummed else UNVERIFIED)
    return EntryCheck(ckpt, dataset, integrity, damage)


def entry_damage_reason(e: BaseException) -> str:
    """One line saying why an entry's metadata cannot be used."""
    if isinstance(e, KeyError):
        return f"missing array or group {e}"
    return f"unreadable metadata ({type(e).__name__}: {e})".replace("\n", " ")
