"""The feature store: catalog and reads over the Zarr layout of :mod:`featurestore.store.layout`.

Writes go through :class:`featurestore.store.writer.EntryWriter` (crash-safe, chunk by chunk);
everything that depends on where the store lives is in :mod:`featurestore.store.backends`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import zarr

from featurestore.errors import DamagedEntryError, EntryNotFoundError, StoreFormatError
from featurestore.store import chunkio, integrity
from featurestore.store.backends import Backend, backend_for
from featurestore.store.layout import (
    ATTR,
    COMPLETE,
    DEFAULT_URL,
    FORMAT_VERSION,
    STAGING_SUFFIX,
    entry_key,
)
from featurestore.store.location import open_root

if TYPE_CHECKING:
    import xarray as xr

    from featurestore.results import ResultsTable
    from featurestore.store.writer import EntryWriter


#: How :meth:`FeatureStore._entry_info` sizes an entry (see :meth:`FeatureStore.entries`).
SizeHow = Literal["none", "data", "walk"]


@dataclass
class EntryInfo:
    """Catalog row of one (checkpoint, dataset) entry."""

    ckpt: str
    dataset: str
    status: str
    splits: dict[str, int]
    feature_dim: int | None
    #: bytes the entry's chunks take (:meth:`FeatureStore.entries`); -1 when unknown (damaged)
    nbytes: int
    provenance: dict[str, Any] = field(repr=False)
    #: "verified" (every chunk carries a crc32c, checked on read), "unverified" (written before
    #: checksums: flipped bits go unnoticed) or "damaged" (then ``reason`` says why)
    integrity: str = integrity.VERIFIED
    reason: str = ""

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    def as_dict(self) -> dict[str, Any]:
        return {
            "ckpt": self.ckpt,
            "dataset": self.dataset,
            "status": self.status,
            "splits": self.splits,
            "n": sum(self.splits.values()),
            "d": self.feature_dim,
            "nbytes": self.nbytes,
            "integrity": self.integrity,
            "reason": self.reason,
        }


class FeatureStore:
    """A feature store at a local path or fsspec URL.

    >>> fs = FeatureStore("./featurestore.zarr")
    >>> X, y = fs.load("efficientnet_lite0", "digits", "train")
    """

    def __init__(
        self, url: str = DEFAULT_URL, *, read_only: bool = False, create: bool | None = None
    ) -> None:
        """``create`` (default: ``not read_only``) lets a new store be made at ``url``; with
        ``create=False`` a missing store is a :class:`StoreLocationError` (read commands)."""
        self.url = str(url)
        self.read_only = read_only
        self.backend: Backend = backend_for(self.url)
        self._store, self.root = open_root(
            self.backend, self.url, read_only=read_only,
            create=not read_only if create is None else create,
        )
        if not read_only and ATTR not in self.root.attrs:
            self.root.attrs[ATTR] = {"format_version": FORMAT_VERSION, "kind": "featurestore"}
        version = (self.root.attrs.get(ATTR) or {}).get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise StoreFormatError(
                f"store {self.url} has format version {version}; this featurestore reads "
                f"<= {FORMAT_VERSION} (upgrade featurestore)"
            )

    def __repr__(self) -> str:
        return f"FeatureStore({self.url!r})"

    @property
    def local_root(self) -> Path | None:
        """The store's directory when it is on this machine's filesystem, else None."""
        return self.backend.local_root

    # -- catalog ----------------------------------------------------------------------------
    def entries(self, include_incomplete: bool = False, sizes: bool = False) -> list[EntryInfo]:
        """Every entry, sorted by checkpoint then dataset; complete ones only by default.

        ``nbytes`` is always filled, from the arrays' metadata: a chunk of an uncompressed array
        (features, labels, logits, done flags) has a known size (rows x row bytes + its 4-byte
        crc32c; Zarr writes edge chunks whole), so those count as chunks x chunk bytes without
        touching the chunks; only variable-size chunks (the compressed ``ids``, ~1% of an
        entry) are sized one by one (a ``stat`` each on a local store). That is the size of
        the entry's data once complete (an in-progress entry counts its unwritten chunks).
        ``sizes=True`` instead walks every object under the entry (metadata files, leftovers
        too): exact, and not free on big or remote stores.
        """
        served = self.backend.served_entries(include_incomplete)
        if served is not None:
            return self._served_entries(served, sizes)
        out: list[EntryInfo] = []
        for ckpt in self._children(""):
            if ckpt.startswith("_"):
                continue
            for ds in self._children(ckpt):
                if ds.endswith(STAGING_SUFFIX) or ".old-" in ds:
                    continue
                info = self._entry_info(ckpt, ds, "walk" if sizes else "data")
                if info.complete or include_incomplete:
                    out.append(info)
        return out

    def _served_entries(self, rows: list[dict[str, Any]], sizes: bool) -> list[EntryInfo]:
        out = []
        for r in rows:
            info = self._entry_info(r["ckpt"], r["dataset"])
            info.nbytes = int(r.get("nbytes", -1))  # the server sized it, as walked
            out.append(info)
        return out

    def _children(self, prefix: str) -> list[str]:
        """Names directly under ``prefix``, listed from the store itself (sorted).

        Not ``Group.group_keys()``: that parses every child's ``zarr.json``, so one corrupt entry
        would break the listing of the whole store.
        """
        from zarr.core.sync import sync

        async def names() -> list[str]:
            return [k async for k in self.root.store.list_dir(prefix)]

        return sorted(n for n in sync(names()) if n != "zarr.json" and "." != n[:1])

    def _entry_info(self, ckpt: str, dataset: str, size: SizeHow = "none") -> EntryInfo:
        """The entry's catalog row; an entry whose metadata cannot be read is ``damaged``.

        ``size``: how ``nbytes`` is found: "data" from the arrays' metadata, "walk" over every
        stored object (:meth:`entries`), "none" leaves -1 (reads need no size).
        """
        nbytes = self._nbytes(f"{ckpt}/{dataset}") if size == "walk" else -1
        try:
            group = self.root[f"{ckpt}/{dataset}"]
            prov = dict(group.attrs.get(ATTR) or {})
            names = list(prov.get("split_names", []))
            features = {s: group[f"{s}/features"] for s in names}
            # the other arrays are only looked for here (opening each costs a round trip to
            # Zarr's event loop on every load); a corrupt one is refused when it is read
            for s in names:
                for a in integrity.SPLIT_ARRAYS[1:]:
                    if not self._array_exists(f"{ckpt}/{dataset}/{s}/{a}"):
                        raise KeyError(f"{s}/{a}")
        except Exception as e:  # corrupt zarr.json, missing arrays: this entry only
            return EntryInfo(ckpt, dataset, integrity.DAMAGED, {}, None, nbytes, {},
                             integrity.DAMAGED, integrity.entry_damage_reason(e))
        checked = all(integrity.has_checksum(a) for a in features.values())
        if size == "data":
            try:
                nbytes = self._data_nbytes(f"{ckpt}/{dataset}", group, names)
            except Exception:  # an unreadable optional array: reads name it, the size is unknown
                nbytes = -1
        return EntryInfo(
            ckpt=ckpt,
            dataset=dataset,
            status=prov.get("status", "unknown"),
            splits={s: int(features[s].shape[0]) for s in names},
            feature_dim=prov.get("feature_dim"),
            nbytes=nbytes,
            provenance=prov,
            integrity=integrity.VERIFIED if checked else integrity.UNVERIFIED,
        )

    def _nbytes(self, prefix: str) -> int:
        return self.backend.nbytes(prefix)

    def _data_nbytes(self, base: str, group: zarr.Group, splits: list[str]) -> int:
        """Bytes the chunks of every array of the entry take, from metadata where chunk sizes
        are fixed (see :meth:`entries`)."""
        from zarr.core.sync import sync

        total, variable = 0, []
        for s in splits:
            for a in integrity.SPLIT_ARRAYS + integrity.OPTIONAL_ARRAYS:
                path = f"{base}/{s}/{a}"
                if a in integrity.OPTIONAL_ARRAYS and not self._array_exists(path):
                    continue
                array = group[f"{s}/{a}"]
                per_chunk = chunkio.encoded_chunk_nbytes(array)
                n_chunks = int(np.prod(array.cdata_shape, dtype=np.int64))
                if per_chunk is not None:
                    total += n_chunks * per_chunk
                else:
                    variable += [f"{path}/{array.metadata.encode_chunk_key(idx)}"
                                 for idx in np.ndindex(*array.cdata_shape)]
        store = self.root.store

        async def size(key: str) -> int:
            try:
                return int(await store.getsize(key))
            except FileNotFoundError:  # unwritten (in progress) or lost: reads report the loss
                return 0

        async def sizes() -> list[int]:
            import asyncio

            return list(await asyncio.gather(*(size(k) for k in variable)))

        return total + (sum(sync(sizes())) if variable else 0)

    def entry(self, ckpt: str, dataset: str) -> EntryInfo:
        """The complete entry (ckpt, dataset), or :class:`EntryNotFoundError` saying what exists."""
        key = f"{ckpt}/{dataset}"
        if not self._exists(key):
            have = [f"{e.ckpt}/{e.dataset}" for e in self.entries()]
            raise EntryNotFoundError(
                f"no entry {key} in {self.url} (complete entries: {', '.join(have) or 'none'}); "
                f"run `featurestore extract --ckpt {ckpt} --dataset {dataset}`"
            )
        info = self._entry_info(ckpt, dataset)
        if info.status == integrity.DAMAGED:
            raise DamagedEntryError(
                f"entry {key} in {self.url} is damaged: {info.reason}; rewrite it with "
                f"`featurestore extract --ckpt {ckpt} --dataset {dataset} --force`"
            )
        if not info.complete:
            raise EntryNotFoundError(
                f"entry {key} in {self.url} is {info.status}, not complete; rerun "
                f"`featurestore extract --ckpt {ckpt} --dataset {dataset}` to finish it"
            )
        return info

    def has_complete(self, ckpt: str, dataset: str) -> bool:
        key = f"{ckpt}/{dataset}"
        return self._exists(key) and self._entry_info(ckpt, dataset).complete

    def _array_exists(self, path: str) -> bool:
        """Whether the array at ``path`` has its metadata (a file test on local stores)."""
        if self.local_root is not None:
            return (self.local_root / path / "zarr.json").is_file()
        return self._exists(path)

    def _exists(self, path: str) -> bool:
        """Whether anything is stored at ``path`` (a damaged node counts: it exists)."""
        try:
            return path in self.root
        except Exception:  # its zarr.json exists but cannot be parsed
            return True

    # -- reads ------------------------------------------------------------------------------
    def _split_names(self, info: EntryInfo, split: str) -> list[str]:
        if split == "trainval" and "trainval" not in info.splits:
            return ["train", "val"]
        if split not in info.splits:
            raise EntryNotFoundError(
                f"entry {info.ckpt}/{info.dataset} has no split {split!r} "
                f"(has {', '.join(info.splits)}; 'trainval' is train+val)"
            )
        return [split]

    def load(self, ckpt: str, dataset: str, split: str, *, verify: bool = True
             ) -> tuple[np.ndarray, np.ndarray]:
        """Features ``X`` (float32 [N, D]) and labels ``y`` of one split as numpy arrays.

        Every chunk's crc32c is checked (``verify=False`` skips that on the fast local path, for
        callers that accept the risk); a damaged or missing chunk raises
        :class:`DamagedEntryError` naming it, never returns numbers.
        """
        info = self.entry(ckpt, dataset)
        parts = self._split_names(info, split)
        base = f"{ckpt}/{dataset}"
        return (self._read_rows([f"{base}/{s}/features" for s in parts], verify),
                self._read_rows([f"{base}/{s}/labels" for s in parts], verify))

    def load_tensor(self, ckpt: str, dataset: str, split: str, device: str = "auto", *,
                    verify: bool = True, reader: str = "auto") -> tuple[Any, np.ndarray]:
        """Like :meth:`load`, but ``X`` is a torch tensor on ``device``: on CUDA read straight
        into GPU memory (:func:`featurestore.store.device_reads.load_tensor`, which says how)."""
        from featurestore.store.device_reads import load_tensor

        return load_tensor(self, ckpt, dataset, split, device, verify=verify, reader=reader)

    def _read_rows(self, paths: list[str], verify: bool = True) -> np.ndarray:
        """The arrays at ``paths`` stacked along rows, each written once into the result.

        Local uncompressed row-chunked arrays take the single-copy fast path
        (:mod:`featurestore.store.chunkio`); anything else is read by Zarr
        (:func:`integrity.read_checked`: Zarr checks the crc32c, we check chunks exist).
        """
        try:
            arrays = [self.root[p] for p in paths]
        except Exception as e:  # a corrupt or vanished array zarr.json
            raise DamagedEntryError(
                f"damaged array {paths[0].rsplit('/', 2)[0]}: "
                f"{integrity.entry_damage_reason(e)}"
            ) from e
        assert all(isinstance(a, zarr.Array) for a in arrays)
        fast = [self.local_root is not None and chunkio.fast_path_ok(a) for a in arrays]
        if len(arrays) == 1 and not fast[0]:
            # Zarr's result is already the answer: no copy
            return integrity.read_checked(arrays[0], self.root.store, paths[0])
        n = sum(a.shape[0] for a in arrays)
        out = chunkio.empty_aligned((n, *arrays[0].shape[1:]),
                                    np.result_type(*(a.dtype for a in arrays)))
        start = 0
        for path, array, is_fast in zip(paths, arrays, fast, strict=True):
            part = out[start:start + array.shape[0]]
            if is_fast and part.dtype == array.dtype:
                chunkio.read_rows(array, self.local_root / path, out=part, verify=verify,
                                  name=path)
            else:
                part[...] = integrity.read_checked(array, self.root.store, path)
            start += array.shape[0]
        return out

    def has_logits(self, ckpt: str, dataset: str) -> bool:
        """Whether the complete entry also holds the checkpoint's source-class logits
        (``featurestore extract --with-logits``)."""
        info = self.entry(ckpt, dataset)
        base = f"{ckpt}/{dataset}"
        return bool(info.splits) and all(self._exists(f"{base}/{s}/logits") for s in info.splits)

    def load_logits(self, ckpt: str, dataset: str, split: str, *, verify: bool = True
                    ) -> np.ndarray:
        """The checkpoint's own class scores (float32 [N, 1000] for ImageNet heads) on one split,
        row-aligned with :meth:`load`; :class:`EntryNotFoundError` when the entry has none."""
        info = self.entry(ckpt, dataset)
        parts = self._split_names(info, split)
        base = f"{ckpt}/{dataset}"
        if not all(self._exists(f"{base}/{s}/logits") for s in parts):
            raise EntryNotFoundError(
                f"entry {base} in {self.url} has no logits; re-extract with --with-logits "
                f"(`featurestore extract --ckpt {ckpt} --dataset {dataset} --with-logits`)"
            )
        return self._read_rows([f"{base}/{s}/logits" for s in parts], verify)

    def load_difficult(self, ckpt: str, dataset: str, split: str, *, verify: bool = True
                       ) -> np.ndarray | None:
        """uint8 ``[N, C]`` mask of *difficult* label entries of one split (VOC 2007), row-
        aligned with :meth:`load`, or None when the entry has none (single-label datasets,
        entries extracted before the mask was stored): the VOC devkit leaves those entries
        out of the AP, so a metric given this mask as ``ignore`` scores as it does."""
        info = self.entry(ckpt, dataset)
        parts = self._split_names(info, split)
        base = f"{ckpt}/{dataset}"
        if not all(self._array_exists(f"{base}/{s}/difficult") for s in parts):
            return None
        return self._read_rows([f"{base}/{s}/difficult" for s in parts], verify)

    def load_ids(self, ckpt: str, dataset: str, split: str) -> list[str]:
        info = self.entry(ckpt, dataset)
        base = f"{ckpt}/{dataset}"
        return [str(i) for s in self._split_names(info, split)
                for i in integrity.read_checked(self.root[f"{base}/{s}/ids"], self.root.store,
                                                f"{base}/{s}/ids")]

    def provenance(self, ckpt: str, dataset: str) -> dict[str, Any]:
        return self.entry(ckpt, dataset).provenance

    def open(self, ckpt: str, dataset: str, split: str | None = None) -> xr.Dataset:
        """The entry as an ``xarray.Dataset`` backed lazily by dask arrays over the Zarr chunks.

        Splits are concatenated along ``sample`` with a ``split`` coordinate (select one with
        ``ds.sel(sample=ds.split == "train")``), or only ``split`` when given. The dataset's class
        names are the ``label_name`` coordinate (dimension ``label_index``) and the provenance
        is the ``provenance`` attribute, a dict. One split also opens without this package:
        ``xarray.open_zarr("<store>/<ckpt>/<dataset>/<split>", consolidated=False)`` (every
        array names its dimensions; entries written before that need this method).
        """
        import dask.array as da
        import xarray as xr

        info = self.entry(ckpt, dataset)
        parts = list(info.splits) if split is None else self._split_names(info, split)
        group = self.root[f"{ckpt}/{dataset}"]
        for s in parts:  # Zarr checks each chunk's crc32c, but reads a missing chunk as zeros
            for a in ("features", "labels"):
                path = f"{ckpt}/{dataset}/{s}/{a}"
                missing = integrity.missing_chunks(group[f"{s}/{a}"], self.root.store, path)
                if missing:
                    raise integrity.ChunkDamage(path, missing[0], "chunk missing").error()
        feats = [da.from_zarr(group[f"{s}/features"]) for s in parts]
        labels = [da.from_zarr(group[f"{s}/labels"]) for s in parts]
        ids = np.concatenate([np.asarray(self.load_ids(ckpt, dataset, s), dtype=object)
                              for s in parts])
        split_coord = np.concatenate([np.full(info.splits[s], s) for s in parts])
        label_dims = ("sample",) if labels[0].ndim == 1 else ("sample", "label_index")
        prov = info.provenance
        coords: dict[str, Any] = {"id": ("sample", ids), "split": ("sample", split_coord)}
        names = (prov.get("dataset") or {}).get("label_names")
        if names:
            # class index -> name: ``ds.label_name[ds.labels]`` names each sample's class, and
            # multi-label columns (dimension ``label_index``) carry their names
            coords["label_name"] = ("label_index", np.asarray(names, dtype=object))
        return xr.Dataset(
            {
                "features": (("sample", "feature"), da.concatenate(feats)),
                "labels": (label_dims, da.concatenate(labels)),
            },
            coords=coords,
            # a dict, as stored in the entry's Zarr attributes (the same JSON tree)
            attrs={"ckpt": ckpt, "dataset": dataset, "provenance": prov},
        )

    # -- writes -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(
        self, ckpt: str, dataset: str, *, force: bool = False, wait: float = 0.0,
        repair: bool = False,
    ) -> Iterator[EntryWriter]:
        """Hold the entry's lock and yield an :class:`EntryWriter` for it (``repair``: one that
        rewrites damaged chunks of the finished entry in place)."""
        from featurestore.store.writer import EntryWriter

        if self.read_only:
            raise PermissionError(f"store {self.url} is opened read-only")
        with self.backend.lock(entry_key(ckpt, dataset), wait):
            yield EntryWriter(self, ckpt, dataset, force=force, repair=repair)

    def _delete(self, path: str) -> None:
        """Remove everything under ``path``, by key: a corrupt ``zarr.json`` cannot stop it."""
        from zarr.core.sync import sync

        sync(self.root.store.delete_dir(path))

    def _move(self, src: str, dst: str) -> None:
        """Replace group ``dst`` by ``src`` (used to swap a finished ``--force`` rewrite in)."""
        self.backend.move(src, dst)
        # Zarr caches nothing across calls, but reopen the root to be safe on remote stores.
        self.root = zarr.open_group(self._store, mode="a", zarr_format=3)

    @property
    def results(self) -> ResultsTable:
        """The results table of this store (:class:`featurestore.results.ResultsTable`)."""
        from featurestore.results import ResultsTable

        return ResultsTable(self)
