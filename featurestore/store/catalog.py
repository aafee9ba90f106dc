"""The feature store: catalog and reads over the Zarr layout of :mod:`featurestore.store.layout`.

Writes go through :class:`featurestore.store.writer.EntryWriter` (crash-safe, chunk by chunk);
everything that depends on where the store lives is in :mod:`featurestore.store.backends`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from featurestore.errors import EntryNotFoundError, StoreFormatError
from featurestore.store import chunkio
from featurestore.store.backends import Backend, backend_for
from featurestore.store.layout import (
    ATTR,
    COMPLETE,
    DEFAULT_URL,
    FORMAT_VERSION,
    STAGING_SUFFIX,
    entry_key,
)

if TYPE_CHECKING:
    import xarray as xr

    from featurestore.results import ResultsTable
    from featurestore.store.writer import EntryWriter


@dataclass
class EntryInfo:
    """Catalog row of one (checkpoint, dataset) entry."""

    ckpt: str
    dataset: str
    status: str
    splits: dict[str, int]
    feature_dim: int | None
    nbytes: int  # -1 unless asked for (entries(sizes=True))
    provenance: dict[str, Any] = field(repr=False)

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
        }


class FeatureStore:
    """A feature store at a local path or fsspec URL.

    >>> fs = FeatureStore("./featurestore.zarr")
    >>> X, y = fs.load("efficientnet_lite0", "digits", "train")
    """

    def __init__(self, url: str = DEFAULT_URL, *, read_only: bool = False) -> None:
        self.url = str(url)
        self.read_only = read_only
        self.backend: Backend = backend_for(self.url)
        self._store = self.backend.zarr_store(read_only)
        mode = "r" if read_only else "a"
        self.root = zarr.open_group(self._store, mode=mode, zarr_format=3)
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

        ``sizes`` fills ``nbytes`` (a walk over every chunk object: not free on big stores).
        """
        served = self.backend.served_entries(include_incomplete)
        if served is not None:
            return self._served_entries(served, sizes)
        out: list[EntryInfo] = []
        for ckpt in sorted(self.root.group_keys()):
            if ckpt.startswith("_"):
                continue
            cgroup = self.root[ckpt]
            assert isinstance(cgroup, zarr.Group)
            for ds in sorted(cgroup.group_keys()):
                if ds.endswith(STAGING_SUFFIX):
                    continue
                info = self._entry_info(ckpt, ds, sizes)
                if info.complete or include_incomplete:
                    out.append(info)
        return out

    def _served_entries(self, rows: list[dict[str, Any]], sizes: bool) -> list[EntryInfo]:
        out = []
        for r in rows:
            info = self._entry_info(r["ckpt"], r["dataset"])
            info.nbytes = int(r.get("nbytes", -1)) if sizes else -1
            out.append(info)
        return out

    def _entry_info(self, ckpt: str, dataset: str, sizes: bool = False) -> EntryInfo:
        group = self.root[f"{ckpt}/{dataset}"]
        prov = dict(group.attrs.get(ATTR) or {})
        splits = {
            s: int(group[f"{s}/features"].shape[0])
            for s in prov.get("split_names", [])
            if f"{s}/features" in group
        }
        return EntryInfo(
            ckpt=ckpt,
            dataset=dataset,
            status=prov.get("status", "unknown"),
            splits=splits,
            feature_dim=prov.get("feature_dim"),
            nbytes=self._nbytes(f"{ckpt}/{dataset}") if sizes else -1,
            provenance=prov,
        )

    def _nbytes(self, prefix: str) -> int:
        return self.backend.nbytes(prefix)

    def entry(self, ckpt: str, dataset: str) -> EntryInfo:
        """The complete entry (ckpt, dataset), or :class:`EntryNotFoundError` saying what exists."""
        key = f"{ckpt}/{dataset}"
        if key not in self.root:
            have = [f"{e.ckpt}/{e.dataset}" for e in self.entries()]
            raise EntryNotFoundError(
                f"no entry {key} in {self.url} (complete entries: {', '.join(have) or 'none'}); "
                f"run `featurestore extract --ckpt {ckpt} --dataset {dataset}`"
            )
        info = self._entry_info(ckpt, dataset)
        if not info.complete:
            raise EntryNotFoundError(
                f"entry {key} in {self.url} is {info.status}, not complete; rerun "
                f"`featurestore extract --ckpt {ckpt} --dataset {dataset}` to finish it"
            )
        return info

    def has_complete(self, ckpt: str, dataset: str) -> bool:
        key = f"{ckpt}/{dataset}"
        return key in self.root and self._entry_info(ckpt, dataset).complete

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

    def load(self, ckpt: str, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Features ``X`` (float32 [N, D]) and labels ``y`` of one split as numpy arrays."""
        info = self.entry(ckpt, dataset)
        parts = self._split_names(info, split)
        base = f"{ckpt}/{dataset}"
        return (self._read_rows([f"{base}/{s}/features" for s in parts]),
                self._read_rows([f"{base}/{s}/labels" for s in parts]))

    def _read_rows(self, paths: list[str]) -> np.ndarray:
        """The arrays at ``paths`` stacked along rows, each written once into the result.

        Local uncompressed row-chunked arrays take the single-copy fast path
        (:mod:`featurestore.store.chunkio`); anything else is read by Zarr.
        """
        arrays = [self.root[p] for p in paths]
        assert all(isinstance(a, zarr.Array) for a in arrays)
        fast = [self.local_root is not None and chunkio.fast_path_ok(a) for a in arrays]
        if len(arrays) == 1 and not fast[0]:
            return np.asarray(arrays[0][...])  # Zarr's result is already the answer: no copy
        n = sum(a.shape[0] for a in arrays)
        out = chunkio.empty_aligned((n, *arrays[0].shape[1:]),
                                    np.result_type(*(a.dtype for a in arrays)))
        start = 0
        for path, array, is_fast in zip(paths, arrays, fast, strict=True):
            part = out[start:start + array.shape[0]]
            if is_fast and part.dtype == array.dtype:
                chunkio.read_rows(array, self.local_root / path, out=part)
            else:
                part[...] = array[...]
            start += array.shape[0]
        return out

    def load_ids(self, ckpt: str, dataset: str, split: str) -> list[str]:
        info = self.entry(ckpt, dataset)
        group = self.root[f"{ckpt}/{dataset}"]
        return [str(i) for s in self._split_names(info, split) for i in group[f"{s}/ids"][...]]

    def provenance(self, ckpt: str, dataset: str) -> dict[str, Any]:
        return self.entry(ckpt, dataset).provenance

    def open(self, ckpt: str, dataset: str, split: str | None = None) -> xr.Dataset:
        """The entry as an ``xarray.Dataset`` backed lazily by dask arrays over the Zarr chunks.

        Splits are concatenated along ``sample`` with a ``split`` coordinate (select one with
        ``ds.sel(sample=ds.split == "train")``), or only ``split`` when given.
        """
        import dask.array as da
        import xarray as xr

        info = self.entry(ckpt, dataset)
        parts = list(info.splits) if split is None else self._split_names(info, split)
        group = self.root[f"{ckpt}/{dataset}"]
        feats = [da.from_zarr(group[f"{s}/features"]) for s in parts]
        labels = [da.from_zarr(group[f"{s}/labels"]) for s in parts]
        ids = np.concatenate([np.asarray(group[f"{s}/ids"][...]).astype(object) for s in parts])
        split_coord = np.concatenate([np.full(info.splits[s], s) for s in parts])
        label_dims = ("sample",) if labels[0].ndim == 1 else ("sample", "label_index")
        prov = info.provenance
        return xr.Dataset(
            {
                "features": (("sample", "feature"), da.concatenate(feats)),
                "labels": (label_dims, da.concatenate(labels)),
            },
            coords={"id": ("sample", ids), "split": ("sample", split_coord)},
            attrs={
                "ckpt": ckpt,
                "dataset": dataset,
                "label_names": json.dumps(prov.get("dataset", {}).get("label_names", [])),
                "provenance": json.dumps(prov),
            },
        )

    # -- writes -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(
        self, ckpt: str, dataset: str, *, force: bool = False, wait: float = 0.0
    ) -> Iterator[EntryWriter]:
        """Hold the entry's lock and yield an :class:`EntryWriter` for it."""
        from featurestore.store.writer import EntryWriter

        if self.read_only:
            raise PermissionError(f"store {self.url} is opened read-only")
        with self.backend.lock(entry_key(ckpt, dataset), wait):
            yield EntryWriter(self, ckpt, dataset, force=force)

    def _delete(self, path: str) -> None:
        if path in self.root:
            del self.root[path]

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
