"""The Zarr v3 feature store: layout, catalog, reads, and crash-safe chunked writes.

Layout (see DESIGN.md)::

    <store>/<ckpt>/<dataset>/<split>/features   float32 [N, D], chunked by rows
    <store>/<ckpt>/<dataset>/<split>/labels     int32 [N] (uint8 [N, C] for multi-label)
    <store>/<ckpt>/<dataset>/<split>/ids        string [N]
    <store>/<ckpt>/<dataset>/<split>/done       uint8 [n_chunks], one chunk per row chunk
    <store>/<ckpt>/<dataset>  attributes["featurestore"]: provenance, with "status" set last
    <store>/_results/                           results table (see featurestore.results)

Crash safety: a row chunk of features, labels and ids is written first, then its ``done`` flag; the
entry's status becomes ``complete`` only after every flag of every split is set. A killed writer
therefore leaves an ``in_progress`` entry that is never listed as complete, and a rerun redoes only
the chunks without a flag. ``--force`` rewrites into a staging group and swaps it in at the end, so
a finished entry is never lost to a failed rewrite.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import FsspecStore, LocalStore

from featurestore import chunkio
from featurestore.errors import EntryNotFoundError, StoreFormatError
from featurestore.locking import entry_lock

FORMAT_VERSION = 1
ATTR = "featurestore"
STAGING_SUFFIX = ".staging"
RESULTS_GROUP = "_results"
DEFAULT_URL = "./featurestore.zarr"
COMPLETE, IN_PROGRESS = "complete", "in_progress"


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> Path:
    return Path(url.removeprefix("file://")).expanduser().resolve()


def open_zarr_store(url: str, read_only: bool = False) -> zarr.abc.store.Store:
    """A Zarr store for a local path or any fsspec URL (``memory://``, ``s3://``, ``gcs://``...)."""
    if is_local(url):
        path = local_path(url)
        if read_only and not path.exists():
            raise EntryNotFoundError(f"no feature store at {path}")
        return LocalStore(path, read_only=read_only)
    return FsspecStore.from_url(url, read_only=read_only)


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
        self._store = open_zarr_store(self.url, read_only)
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
        return local_path(self.url) if is_local(self.url) else None

    # -- catalog ----------------------------------------------------------------------------
    def entries(self, include_incomplete: bool = False, sizes: bool = False) -> list[EntryInfo]:
        """Every entry, sorted by checkpoint then dataset; complete ones only by default.

        ``sizes`` fills ``nbytes`` (a walk over every chunk object: not free on big stores).
        """
        if self.url.startswith(("http://", "https://")):
            return self._served_entries(include_incomplete, sizes)
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

    def _served_entries(self, include_incomplete: bool, sizes: bool) -> list[EntryInfo]:
        """HTTP cannot list a Zarr hierarchy: ask the ``featurestore serve`` catalog instead."""
        import fsspec

        base = self.url.rstrip("/").removesuffix("/zarr")
        flag = "true" if include_incomplete else "false"
        with fsspec.open(f"{base}/entries?all={flag}", "rb") as f:
            rows = json.loads(f.read())
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
        """Bytes on disk under ``prefix`` (stored, i.e. compressed, size)."""
        if self.local_root is not None:
            base = self.local_root / prefix
            return sum(p.stat().st_size for p in base.rglob("*") if p.is_file())
        import fsspec

        fs, path = fsspec.core.url_to_fs(self.url.rstrip("/") + "/" + prefix)
        return int(fs.du(path))

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
        (:mod:`featurestore.chunkio`); anything else is read by Zarr.
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

    def open(self, ckpt: str, dataset: str, split: str | None = None) -> Any:
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
        if self.read_only:
            raise PermissionError(f"store {self.url} is opened read-only")
        key = f"{ckpt}/{dataset}"
        with entry_lock(self.url, self.local_root, key, wait):
            yield EntryWriter(self, ckpt, dataset, force=force)

    def _delete(self, path: str) -> None:
        if path in self.root:
            del self.root[path]

    def _move(self, src: str, dst: str) -> None:
        """Replace group ``dst`` by ``src`` (used to swap a finished ``--force`` rewrite in)."""
        if self.local_root is not None:
            s, d = self.local_root / src, self.local_root / dst
            trash = d.with_name(d.name + f".old-{time.time_ns()}")
            if d.exists():
                d.rename(trash)
            s.rename(d)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            import fsspec

            fs, base = fsspec.core.url_to_fs(self.url)
            base = base.rstrip("/")
            if fs.exists(f"{base}/{dst}"):
                fs.rm(f"{base}/{dst}", recursive=True)
            fs.mv(f"{base}/{src}", f"{base}/{dst}", recursive=True)
        # Zarr caches nothing across calls, but reopen the root to be safe on remote stores.
        self.root = zarr.open_group(self._store, mode="a", zarr_format=3)

    @property
    def results(self) -> Any:
        """The results table of this store (:class:`featurestore.results.ResultsTable`)."""
        from featurestore.results import ResultsTable

        return ResultsTable(self)


@dataclass
class SplitPlan:
    """What one split of an entry will hold: sizes, chunking, label shape."""

    name: str
    n: int
    feature_dim: int
    chunk_rows: int
    label_shape: tuple[int, ...] = ()

    @property
    def n_chunks(self) -> int:
        return max(1, -(-self.n // self.chunk_rows))

    def rows(self, k: int) -> slice:
        return slice(k * self.chunk_rows, min(self.n, (k + 1) * self.chunk_rows))


class EntryWriter:
    """Writes one entry chunk by chunk; resumes a matching in-progress entry.

    The caller passes a *plan fingerprint* (checkpoint weights digest, dataset ids digest, batch
    size, chunk rows): an in-progress entry with the same fingerprint is resumed, anything else is
    started afresh, so resumed chunks always come from the same computation.
    """

    def __init__(self, store: FeatureStore, ckpt: str, dataset: str, force: bool) -> None:
        self.store = store
        self.ckpt, self.dataset = ckpt, dataset
        self.final = f"{ckpt}/{dataset}"
        exists_complete = store.has_complete(ckpt, dataset)
        self.already_complete = exists_complete and not force
        # A rewrite of a finished entry goes to a staging group, so failure loses nothing.
        self.path = self.final + STAGING_SUFFIX if exists_complete else self.final
        self.group: zarr.Group | None = None
        self.plans: dict[str, SplitPlan] = {}

    def begin(
        self, plans: list[SplitPlan], provenance: dict[str, Any], fingerprint: dict[str, Any]
    ) -> bool:
        """Create (or reopen, when resumable) the entry's arrays. Returns True when resuming."""
        root = self.store.root
        self.plans = {p.name: p for p in plans}
        if self.path in root:
            old = dict(root[self.path].attrs.get(ATTR) or {})
            if old.get("status") == IN_PROGRESS and old.get("fingerprint") == fingerprint:
                self.group = root[self.path]
                return True
            self.store._delete(self.path)
        group = root.create_group(self.path, overwrite=True)
        for p in plans:
            g = group.create_group(p.name)
            g.create_array(
                "features",
                shape=(p.n, p.feature_dim),
                chunks=(p.chunk_rows, p.feature_dim),
                dtype="float32",
                # Uncompressed on purpose: penultimate float features compress poorly and reads
                # must run at disk speed (benchmarks/extract.py, read ratio vs numpy.load).
                compressors=None,
                dimension_names=("sample", "feature"),
            )
            g.create_array(
                "labels",
                shape=(p.n, *p.label_shape),
                chunks=(p.chunk_rows, *p.label_shape),
                dtype="uint8" if p.label_shape else "int32",
                compressors=None,  # tiny, and uncompressed they take the same fast read path
                dimension_names=("sample", "label_index")[: 1 + len(p.label_shape)],
            )
            g.create_array("ids", shape=(p.n,), chunks=(p.chunk_rows,), dtype=str)
            g.create_array("done", shape=(p.n_chunks,), chunks=(1,), dtype="uint8", fill_value=0)
        group.attrs[ATTR] = {
            **provenance,
            "format_version": FORMAT_VERSION,
            "split_names": [p.name for p in plans],
            "fingerprint": fingerprint,
            "status": IN_PROGRESS,
        }
        self.group = group
        return False

    def pending_chunks(self, split: str) -> list[int]:
        assert self.group is not None
        done = np.asarray(self.group[f"{split}/done"][...])
        return [int(k) for k in np.flatnonzero(done == 0)]

    def write_chunk(
        self, split: str, k: int, features: np.ndarray, labels: np.ndarray, ids: list[str]
    ) -> None:
        """Write row chunk ``k`` of ``split``; its ``done`` flag goes last."""
        assert self.group is not None
        plan = self.plans[split]
        rows = plan.rows(k)
        n = rows.stop - rows.start
        if features.shape != (n, plan.feature_dim) or len(labels) != n or len(ids) != n:
            raise ValueError(
                f"chunk {k} of {split}: expected {n} rows of dim {plan.feature_dim}, got "
                f"features {features.shape}, {len(labels)} labels, {len(ids)} ids"
            )
        if not np.isfinite(features).all():
            raise ValueError(f"chunk {k} of {split}: features contain NaN or inf")
        g = self.group[split]
        g["features"][rows] = features.astype(np.float32, copy=False)
        g["labels"][rows] = labels
        g["ids"][rows] = np.asarray(ids, dtype=object)
        g["done"][k] = 1

    def finish(self, extra: dict[str, Any]) -> None:
        """Mark the entry complete (status last) and swap a staging rewrite into place."""
        assert self.group is not None
        for s in self.plans:
            if self.pending_chunks(s):
                raise RuntimeError(f"cannot finish {self.final}: split {s} has pending chunks")
        prov = dict(self.group.attrs[ATTR])
        prov.update(extra)
        prov["status"] = COMPLETE
        prov["completed_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.group.attrs[ATTR] = prov
        if self.path != self.final:
            self.store._move(self.path, self.final)
