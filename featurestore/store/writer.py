"""Crash-safe chunked writes of one entry.

A row chunk of features, labels and ids is written first, then its ``done`` flag; the entry's
status becomes ``complete`` only after every flag of every split is set. A killed writer therefore
leaves an ``in_progress`` entry that is never listed as complete, and a rerun redoes only the chunks
without a flag. ``--force`` rewrites into a staging group and swaps it in at the end, so a finished
entry is never lost to a failed rewrite.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from featurestore.store.layout import ATTR, COMPLETE, FORMAT_VERSION, IN_PROGRESS, STAGING_SUFFIX

if TYPE_CHECKING:
    from featurestore.store.catalog import FeatureStore


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
