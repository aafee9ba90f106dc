"""Crash-safe chunked writes of one entry.

A row chunk of features, labels and ids is written first, then its ``done`` flag; the entry's
status becomes ``complete`` only after every flag of every split is set. A killed writer therefore
leaves an ``in_progress`` entry that is never listed as complete, and a rerun redoes only the chunks
without a flag. ``--force`` rewrites into a staging group and swaps it in at the end, so a finished
entry is never lost to a failed rewrite.

Every chunk carries a crc32c (:mod:`featurestore.store.integrity`), and every chunk is written even
when all zero, so a finished entry has no legitimately missing chunk. ``--repair`` reopens a
finished entry in place, clears the ``done`` flags of its damaged chunks and lets the ordinary
resume path recompute exactly those.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from featurestore.errors import DamagedEntryError
from featurestore.store.integrity import WRITE_CONFIG, checksum_codecs
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
    #: Width of the optional ``logits`` array (source-model class scores); 0 = no logits.
    logits_dim: int = 0

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

    def __init__(
        self, store: FeatureStore, ckpt: str, dataset: str, force: bool, repair: bool = False
    ) -> None:
        self.store = store
        self.ckpt, self.dataset = ckpt, dataset
        self.final = f"{ckpt}/{dataset}"
        exists_complete = store.has_complete(ckpt, dataset)
        self.already_complete = exists_complete and not force and not repair
        # A rewrite of a finished entry goes to a staging group, so failure loses nothing; a
        # repair rewrites damaged chunks in place (the rest of the entry is what it keeps).
        staged = exists_complete and not repair
        self.path = self.final + STAGING_SUFFIX if staged else self.final
        self.group: zarr.Group | None = None
        self.plans: dict[str, SplitPlan] = {}

    def begin(
        self, plans: list[SplitPlan], provenance: dict[str, Any], fingerprint: dict[str, Any]
    ) -> bool:
        """Create (or reopen, when resumable) the entry's arrays. Returns True when resuming."""
        root = self.store.root
        self.plans = {p.name: p for p in plans}
        if self._resumable(fingerprint):
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
                compressors=checksum_codecs(),
                dimension_names=("sample", "feature"),
            )
            g.create_array(
                "labels",
                shape=(p.n, *p.label_shape),
                chunks=(p.chunk_rows, *p.label_shape),
                dtype="uint8" if p.label_shape else "int32",
                # tiny, and uncompressed they take the same fast read path
                compressors=checksum_codecs(),
                dimension_names=("sample", "label_index")[: 1 + len(p.label_shape)],
            )
            if p.logits_dim:
                # Same chunking and codecs as the features, whatever integrity those carry.
                feats = g["features"]
                g.create_array("logits", shape=(p.n, p.logits_dim),
                               chunks=(p.chunk_rows, p.logits_dim), dtype="float32",
                               filters=feats.filters, serializer=feats.serializer,
                               compressors=feats.compressors,
                               dimension_names=("sample", "source_class"))
            g.create_array("ids", shape=(p.n,), chunks=(p.chunk_rows,), dtype=str,
                           compressors=checksum_codecs([ZstdCodec(level=0)]))
            g.create_array("done", shape=(p.n_chunks,), chunks=(1,), dtype="uint8", fill_value=0,
                           compressors=checksum_codecs())
        group.attrs[ATTR] = {
            **provenance,
            "format_version": FORMAT_VERSION,
            "split_names": [p.name for p in plans],
            "fingerprint": fingerprint,
            "status": IN_PROGRESS,
        }
        self.group = group
        return False

    def _resumable(self, fingerprint: dict[str, Any]) -> bool:
        """An in-progress entry of the same computation whose arrays are all readable.

        Anything else at the path (another fingerprint, unreadable metadata, missing arrays left
        by damage) is started afresh rather than trusted.
        """
        root = self.store.root
        try:
            if self.path not in root:
                return False
            group = root[self.path]
            old = dict(group.attrs.get(ATTR) or {})
            if old.get("status") != IN_PROGRESS or old.get("fingerprint") != fingerprint:
                return False
            return all(f"{p}/{a}" in group for p in self.plans
                       for a in ("features", "labels", "ids", "done"))
        except Exception:  # corrupt zarr.json of any kind: nothing here can be resumed
            return False

    def begin_repair(
        self, plans: list[SplitPlan], fingerprint: dict[str, Any], damaged: dict[str, list[int]]
    ) -> None:
        """Reopen the finished entry, mark it in progress and clear the flags of ``damaged``.

        Status goes first, so a repair killed half-way leaves an ``in_progress`` entry that a
        rerun resumes, never a ``complete`` one with holes.
        """
        self.plans = {p.name: p for p in plans}
        group = self.store.root[self.path]
        prov = dict(group.attrs[ATTR])
        old = dict(prov.get("fingerprint") or {})
        if old != fingerprint:
            differ = ", ".join(f"{k} {old.get(k)} -> {fingerprint.get(k)}"
                               for k in sorted(set(old) | set(fingerprint))
                               if old.get(k) != fingerprint.get(k))
            raise DamagedEntryError(
                f"cannot repair {self.final}: this run differs from its extraction ({differ}); "
                "repaired chunks must come from the same computation: repair with the same "
                "weights, dataset, batch size and device type, or rewrite it with --force"
            )
        prov["status"] = IN_PROGRESS
        group.attrs[ATTR] = prov
        self.group = group
        for split, chunks in damaged.items():
            done = group[f"{split}/done"].with_config(WRITE_CONFIG)
            for k in chunks:
                done[k] = 0

    def pending_chunks(self, split: str) -> list[int]:
        assert self.group is not None
        done = np.asarray(self.group[f"{split}/done"][...])
        return [int(k) for k in np.flatnonzero(done == 0)]

    def write_logits(self, split: str, k: int, logits: np.ndarray) -> None:
        """Write row chunk ``k`` of ``split``'s ``logits``; call before :meth:`write_chunk`, whose
        ``done`` flag then vouches for the logits too."""
        assert self.group is not None
        plan = self.plans[split]
        rows = plan.rows(k)
        if logits.shape != (rows.stop - rows.start, plan.logits_dim):
            raise ValueError(f"chunk {k} of {split}: expected logits of shape "
                             f"{(rows.stop - rows.start, plan.logits_dim)}, got {logits.shape}")
        if not np.isfinite(logits).all():
            raise ValueError(f"chunk {k} of {split}: logits contain NaN or inf")
        self.group[split]["logits"].with_config(WRITE_CONFIG)[rows] = logits.astype(
            np.float32, copy=False)

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

        def arr(name: str) -> zarr.Array:
            # every chunk is written, even all-zero ones: a missing chunk is then always damage
            return g[name].with_config(WRITE_CONFIG)

        arr("features")[rows] = features.astype(np.float32, copy=False)
        arr("labels")[rows] = labels
        arr("ids")[rows] = np.asarray(ids, dtype=object)
        arr("done")[k] = 1

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
