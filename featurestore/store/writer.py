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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from featurestore.errors import DamagedEntryError
from featurestore.store.integrity import WRITE_CONFIG, checksum_codecs
from featurestore.store.layout import ATTR, COMPLETE, FORMAT_VERSION, IN_PROGRESS, STAGING_SUFFIX


class _Store(Protocol):
    """What a writer needs of its store. The store hands itself in
    (``FeatureStore.writing``), so the writer names only these four members and the catalog
    stays the one module that knows both."""

    root: zarr.Group

    def has_complete(self, ckpt: str, dataset: str) -> bool: ...

    def _delete(self, path: str) -> None: ...

    def _move(self, src: str, dst: str) -> None: ...


def chunk_rows_for(n: int, batch_size: int, max_rows: int) -> int:
    """Rows per chunk of a split of ``n`` rows: as few padding rows as the batches allow.

    Zarr stores the last chunk of an array at full size, so a fixed 1024-row chunk padded every
    small split to 1024 rows (a 300-image entry took 15 MiB). A split of at most ``max_rows``
    is one chunk of exactly ``n`` rows; a bigger one is cut into the fewest chunks of at most
    ``max_rows``, each rounded up to whole batches (padding < one batch per chunk, ~6% at the
    defaults). Chunks stay whole batches (``max_rows`` is a multiple of ``batch_size``), so
    resumption and ``--repair`` recompute exactly the batches of a clean extraction, and big
    splits keep chunks of ~``max_rows`` rows, the size the read path is measured at.
    """
    if n <= max_rows:
        return max(1, n)
    k = -(-n // max_rows)
    per_chunk = -(-n // k)
    return min(max_rows, -(-per_chunk // batch_size) * batch_size)


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
    #: uint8 ``[n, C]`` mask of *difficult* label entries (VOC 2007), stored as ``difficult``
    #: beside the labels so probes can leave them out of the metric as the devkit does; None
    #: for datasets without one. It is dataset metadata, written chunk by chunk with the labels.
    difficult: np.ndarray | None = field(default=None, repr=False, compare=False)

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
        self, store: _Store, ckpt: str, dataset: str, force: bool, repair: bool = False
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
            if p.difficult is not None:  # same shape, chunking and codecs as the labels
                g.create_array("difficult", shape=(p.n, *p.difficult.shape[1:]),
                               chunks=(p.chunk_rows, *p.difficult.shape[1:]), dtype="uint8",
                               compressors=checksum_codecs(),
                               dimension_names=("sample", "label_index"))
            if p.logits_dim:
                # Same chunking and codecs as the features, whatever integrity those carry.
                feats = g["features"]
                g.create_array("logits", shape=(p.n, p.logits_dim),
                               chunks=(p.chunk_rows, p.logits_dim), dtype="float32",
                               filters=feats.filters, serializer=feats.serializer,
                               compressors=feats.compressors,
                               dimension_names=("sample", "source_class"))
            # Every array names its dimensions, so xarray (``xr.open_zarr`` on a split group)
            # and any Zarr v3 reader open a split natively, with rows aligned on ``sample``.
            g.create_array("ids", shape=(p.n,), chunks=(p.chunk_rows,), dtype=str,
                           compressors=checksum_codecs([ZstdCodec(level=0)]),
                           dimension_names=("sample",))
            g.create_array("done", shape=(p.n_chunks,), chunks=(1,), dtype="uint8", fill_value=0,
                           compressors=checksum_codecs(), dimension_names=("chunk",))
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
            return all(f"{p.name}/{a}" in group for p in self.plans.values()
                       for a in ("features", "labels", "ids", "done")
                       + (("difficult",) if p.difficult is not None else ()))
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
        # Chunk rows aside: the repair adopts the stored chunking (entries of an older chunk
        # rule repair too), and any chunking of whole batches holds the same batches.
        keys = sorted((set(old) | set(fingerprint)) - {"chunk_rows"})
        if any(old.get(k) != fingerprint.get(k) for k in keys):
            differ = ", ".join(f"{k} {old.get(k)} -> {fingerprint.get(k)}"
                               for k in keys if old.get(k) != fingerprint.get(k))
            raise DamagedEntryError(
                f"cannot repair {self.final}: this run differs from its extraction ({differ}); "
                "repaired chunks must come from the same computation: repair with the same "
                "weights, dataset, batch size and device type, or rewrite it with --force"
            )
        self._adopt_stored_chunking(group, int(fingerprint.get("batch_size") or 1))
        prov["status"] = IN_PROGRESS
        group.attrs[ATTR] = prov
        self.group = group
        for split, chunks in damaged.items():
            done = group[f"{split}/done"].with_config(WRITE_CONFIG)
            for k in chunks:
                done[k] = 0

    def _adopt_stored_chunking(self, group: zarr.Group, batch_size: int) -> None:
        """Give each plan the row chunking the entry was written with.

        Damaged chunk indices refer to the stored chunks, and an entry written under an older
        chunk rule (fixed 1024 rows) keeps its layout. Any chunking of whole batches (or one
        chunk for the whole split) holds the same batches, so the recomputed rows are those of
        a clean extraction; anything else cannot be repaired byte-identically.
        """
        for p in self.plans.values():
            rows = int(group[f"{p.name}/features"].chunks[0])
            if rows % batch_size and rows < p.n:
                raise DamagedEntryError(
                    f"cannot repair {self.final}: split {p.name} is stored in chunks of {rows} "
                    f"rows, not whole batches of {batch_size}; rewrite it with --force")
            p.chunk_rows = rows

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
        if plan.difficult is not None and "difficult" in g:  # absent in entries made before it
            arr("difficult")[rows] = plan.difficult[rows]
        arr("ids")[rows] = np.asarray(ids, dtype=object)
        arr("done")[k] = 1

    def write_split(self, split: str, features: np.ndarray, labels: np.ndarray,
                    ids: Sequence[str]) -> None:
        """Write all of ``split`` from rows already in memory, chunk by chunk through
        :meth:`write_chunk` (same checks, each ``done`` flag after its rows): for entries
        computed elsewhere (benchmarks, imports), where extraction writes batch by batch."""
        plan = self.plans[split]
        for k in range(plan.n_chunks):
            r = plan.rows(k)
            self.write_chunk(split, k, features[r], labels[r], list(ids[r.start:r.stop]))

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
