"""The extraction engine: penultimate-layer features of a checkpoint on every split of a dataset.

Pipeline (each stage overlaps the next):
  DataLoader workers decode and resize images (uint8, so the hand-off is 4x smaller than float)
  -> the main thread normalises on the device and runs the forward pass
     (``torch.inference_mode``; on CUDA bf16 autocast and channels_last)
  -> a writer thread puts finished row chunks into Zarr, then sets their ``done`` flags.

Batches never straddle row chunks and a chunk is always cut into batches the same way, so a chunk
recomputed after a crash is bit-identical to the one an uninterrupted run writes.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from featurestore.checkpoints import LoadedCheckpoint, load_checkpoint, penultimate_features
from featurestore.datasets import Dataset
from featurestore.datasets.base import SplitData
from featurestore.device import resolve_device
from featurestore.errors import (
    CorruptImageError,
    EmptySplitError,
    FeatureStoreError,
    NonFiniteFeaturesError,
)
from featurestore.image_batches import default_workers, image_loader, preprocess_transform
from featurestore.jpeg_decode import choose_decoder, decode_batches, decoder_provenance, jpeg_loader
from featurestore.store import EntryWriter, FeatureStore, SplitPlan, integrity
from featurestore.store.writer import chunk_rows_for

DEFAULT_BATCH_SIZE = 64
#: Row chunk = this many batches: the unit of resumption and of Zarr storage.
BATCHES_PER_CHUNK = 16


@dataclass
class EntryReport:
    ckpt: str
    dataset: str
    status: str  # "extracted" | "resumed" | "skipped" | "repaired" | "intact" (--repair)
    n_images: int = 0
    seconds: float = 0.0
    splits: dict[str, int] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.n_images / self.seconds if self.seconds > 0 else 0.0


class _ChunkWriter:
    """Background thread writing finished chunks, so Zarr I/O overlaps the next forward pass."""

    def __init__(self, writer: EntryWriter) -> None:
        self.writer = writer
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    *chunk, logits = item
                    if logits is not None:  # before write_chunk: its done flag covers both
                        self.writer.write_logits(chunk[0], chunk[1], logits)
                    self.writer.write_chunk(*chunk)
                except BaseException as e:  # re-raised in the producer thread
                    self.error = e

    def put(self, *item: Any) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _batches(plan: SplitPlan, chunks: list[int], batch_size: int) -> Iterator[list[int]]:
    for k in chunks:
        rows = plan.rows(k)
        for start in range(rows.start, rows.stop, batch_size):
            yield list(range(start, min(rows.stop, start + batch_size)))


def _logits_dim(loaded: LoadedCheckpoint) -> int:
    """Number of source classes of the checkpoint's head (1000 for ImageNet-1k)."""
    n = int(getattr(loaded.model, "num_classes", 0) or 0)
    if n < 2:
        raise FeatureStoreError(
            f"checkpoint {loaded.info.name} has no classifier head ({n} classes): there are no "
            "logits to store; extract without --with-logits"
        )
    return n


def check_splits(dataset: Dataset) -> dict[str, SplitData]:
    """Every split of ``dataset``, or :class:`EmptySplitError` with the counts when one would be
    empty (e.g. one train image per class leaves the derived val split empty): an empty split can
    never finish, so it is refused before the store or the model is touched."""
    splits = {s: dataset.split(s) for s in dataset.splits}
    empty = [s for s, sd in splits.items() if len(sd) == 0]
    if empty:
        counts = ", ".join(f"{s} {len(sd)}" for s, sd in splits.items())
        raise EmptySplitError(
            f"dataset {dataset.name!r}: split {', '.join(empty)} would be empty ({counts} "
            f"images); add images (at least 2 per class in train when val is derived from it)"
        )
    return splits


@contextlib.contextmanager
def _discard_staging_on_failure(store: FeatureStore, writer: EntryWriter) -> Iterator[None]:
    """A failed ``--force`` rewrite deletes its staging group (the finished entry stays as it
    was), so a full disk is not left fuller and no half rewrite lingers."""
    try:
        yield
    except BaseException:
        if writer.path != writer.final:
            with contextlib.suppress(Exception):
                store._delete(writer.path)
        raise


@dataclass
class _EntryJob:
    """Everything one entry's extraction is decided by, computed before the store is touched."""

    name: str
    dataset: Dataset
    loaded: LoadedCheckpoint
    dev: torch.device
    splits: dict[str, SplitData]
    plans: list[SplitPlan]
    provenance: dict[str, Any]
    #: What a resumed or repaired chunk must share with the chunks already written.
    fingerprint: dict[str, Any]
    logits_dim: int = 0
    #: "pil" or "tensor" (:func:`featurestore.jpeg_decode.choose_decoder`)
    decoder: str = "pil"


def _plan_entry(
    name: str, dataset: Dataset, loaded: LoadedCheckpoint, splits: dict[str, SplitData],
    dev: torch.device, batch_size: int, chunk_batches: int, with_logits: bool,
    decoder: str = "auto",
) -> _EntryJob:
    """The entry's split plans, provenance and fingerprint."""
    # rows per chunk from each split's size (at most chunk_batches whole batches): small
    # splits are not padded to a full chunk on disk
    chunk_rows = {s: chunk_rows_for(len(sd), batch_size, batch_size * chunk_batches)
                  for s, sd in splits.items()}
    label_shape = (dataset.num_classes,) if dataset.multilabel else ()
    logits_dim = _logits_dim(loaded) if with_logits else 0
    decoder = choose_decoder(dev, decoder)
    plans = [SplitPlan(s, len(sd), loaded.feature_dim, chunk_rows[s], label_shape, logits_dim,
                       difficult=_difficult_mask(dataset, s, sd))
             for s, sd in splits.items()]
    ds_prov = dataset.provenance()
    ds_prov["label_names"] = dataset.label_names
    provenance = {
        "checkpoint": loaded.provenance(),
        "dataset": ds_prov,
        "feature_dim": loaded.feature_dim,
        "extraction": {
            "layer": "penultimate (timm forward_head(pre_logits=True))",
            "batch_size": batch_size,
            "chunk_rows": chunk_rows,
            "device": str(dev),
            "autocast": "bfloat16" if dev.type == "cuda" else None,
            "channels_last": True,
            "decoder": decoder_provenance(decoder, dev),
        },
    }
    fingerprint = {
        "weights_sha256": loaded.weights_sha256,
        "ids_sha256": ds_prov["ids_sha256"],
        "batch_size": batch_size,
        "chunk_rows": chunk_rows,
        "device_type": dev.type,
        **({"logits_dim": logits_dim} if logits_dim else {}),
        # chunks of one entry share a decoder (entries begun before this key used PIL)
        **({"decoder": decoder} if decoder != "pil" else {}),
    }
    if logits_dim:
        provenance["logits"] = {"dim": logits_dim,
                                "layer": "model.get_classifier() on the stored features"}
    return _EntryJob(name, dataset, loaded, dev, splits, plans, provenance, fingerprint,
                     logits_dim, decoder)


def _difficult_mask(dataset: Dataset, split: str, sd: SplitData) -> np.ndarray | None:
    """The split's uint8 ``[N, C]`` mask of *difficult* label entries, for multi-label
    datasets that flag them (VOC 2007's ``difficult_mask``), stored beside the labels so the
    probes score as the devkit does; None for every other dataset."""
    mask_of = getattr(dataset, "difficult_mask", None)
    if not dataset.multilabel or not callable(mask_of):
        return None
    mask = np.asarray(mask_of(split), dtype=np.uint8)
    if mask.shape != np.shape(sd.labels):
        raise FeatureStoreError(f"{dataset.name}/{split}: difficult mask {mask.shape} does not "
                                f"match the labels {np.shape(sd.labels)}")
    return mask


def _intact(store: FeatureStore, name: str, dataset: str) -> bool:
    """True when the entry is complete and every chunk of it passes its check (``--repair``
    has nothing to do)."""
    return (store.has_complete(name, dataset)
            and integrity.check_entry(store.root, name, dataset).ok)


def _holds_logits(store: FeatureStore, name: str, dataset: str) -> bool:
    """Whether the complete entry stores logits; False when its metadata is unreadable (a
    repair then starts the entry afresh, as it would without logits)."""
    try:
        return store.has_complete(name, dataset) and store.has_logits(name, dataset)
    except FeatureStoreError:
        return False


def _open_entry(store: FeatureStore, writer: EntryWriter, job: _EntryJob, repair: bool) -> str:
    """Start, resume or (``repair``) reopen the entry; its status for the report.

    A repair clears the ``done`` flags of exactly the damaged row chunks of a complete entry, so
    the ordinary resume path recomputes those and nothing else. An entry whose metadata is
    unreadable has no chunks to trust: :meth:`EntryWriter.begin` starts it afresh.
    """
    name, ds = job.name, job.dataset.name
    if repair and store.has_complete(name, ds):
        check = integrity.check_entry(store.root, name, ds)
        if check.ok:
            return "intact"
        writer.begin_repair(job.plans, job.fingerprint, check.damaged_chunks())
        return "repaired"
    return "resumed" if writer.begin(job.plans, job.provenance, job.fingerprint) else "extracted"


def _extract_pending(
    writer: EntryWriter, job: _EntryJob, *, batch_size: int, workers: int, progress: bool,
    only: dict[str, list[int]] | None = None,
) -> int:
    """Compute and write every row chunk whose ``done`` flag is unset (``only``: just those of
    these chunks, per split: one worker's share of a distributed entry); the number of images."""
    loaded, dev = job.loaded, job.dev
    # channels_last on every device: measured 2.0x faster for tf_efficientnet_lite0 and 1.5x for
    # test_resnet on this 2-core CPU (oneDNN), and the layout Hopper tensor cores want.
    model = loaded.model.to(dev).to(memory_format=torch.channels_last)
    mean = torch.tensor(loaded.data_config["mean"], device=dev).view(1, 3, 1, 1) * 255
    std = torch.tensor(loaded.data_config["std"], device=dev).view(1, 3, 1, 1) * 255
    transform = preprocess_transform(loaded)
    n_done = 0
    chunk_writer = _ChunkWriter(writer)
    try:
        for plan in job.plans:
            pending = writer.pending_chunks(plan.name)
            if only is not None:
                pending = [k for k in pending if k in set(only.get(plan.name, ()))]
            if not pending:
                continue
            sd = job.splits[plan.name]
            batches = list(_batches(plan, pending, batch_size))
            if job.decoder == "tensor":
                loader: Any = decode_batches(
                    jpeg_loader(job.dataset, sd.ids, transform, batches, workers,
                                pin_memory=dev.type == "cuda"),
                    job.dataset, sd.ids, loaded, transform, dev)
            else:
                loader = image_loader(job.dataset, sd.ids, transform, batches, workers,
                                      pin_memory=dev.type == "cuda")
            n_todo = sum(plan.rows(k).stop - plan.rows(k).start for k in pending)
            n_done += _run_split(
                model, loader, plan, pending, sd.ids, sd.labels, mean, std, dev,
                chunk_writer, progress=progress, with_logits=bool(job.logits_dim),
                desc=f"{job.name}/{job.dataset.name}/{plan.name}", total=n_todo,
                weights=f"{job.name} (weights {loaded.weights_source})",
            )
    finally:
        chunk_writer.close()
    return n_done


def check_identity(store: FeatureStore, name: str, dataset: Dataset) -> None:
    """Refuse to skip an entry made from other data under the same name: datasets
    whose identity is their folder (``imagefolder``) record it, and a second tree extracted into
    the same entry raises instead of being reported ``skipped`` with the first tree's features.
    Entries written before identities were recorded are not checked."""
    identity = getattr(dataset, "identity", None)
    mine = identity() if callable(identity) else None
    if mine is None or not store.has_complete(name, dataset.name):
        return
    try:
        stored = store.entry(name, dataset.name).provenance.get("dataset", {}).get("identity")
    except FeatureStoreError:  # unreadable metadata: the writer reports it
        return
    if stored and stored != mine:
        from featurestore.errors import DatasetRootError

        raise DatasetRootError(
            f"store entry {name}/{dataset.name} holds features of {stored}, not {mine}: name "
            f"this tree (extract --name NAME) to keep both, or --force to replace the entry")


def extract_entry(
    store: FeatureStore,
    ckpt: str | LoadedCheckpoint,
    dataset: Dataset,
    *,
    weights: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str = "auto",
    num_workers: int | None = None,
    force: bool = False,
    wait: float = 0.0,
    progress: bool = True,
    seed: int = 0,
    chunk_batches: int = BATCHES_PER_CHUNK,
    with_logits: bool = False,
    repair: bool = False,
    fan_out: Callable[[str, dict[str, list[int]]], int] | None = None,
    decoder: str = "auto",
) -> EntryReport:
    """Extract every split of ``dataset`` with ``ckpt`` into ``store``.

    ``fan_out(path, pending)``, when given, computes the pending row chunks (per split) of the
    entry group at ``path`` elsewhere (:func:`extract_chunks` on cluster workers) and returns the
    number of images: this process then only begins the entry, holds its lock and finishes it.

    Skips a complete entry unless ``force``; resumes an interrupted one at row-chunk granularity
    (``batch_size * chunk_batches`` rows); waits up to ``wait`` seconds for a busy entry.
    ``with_logits`` also stores the checkpoint's own class scores (``logits``, for LEEP/NCE); a
    complete entry without them is then rewritten, as with ``force``.
    ``repair`` checks every chunk of a complete entry and recomputes only the damaged or missing
    ones (status ``repaired``, or ``intact`` when there were none), in place and with the same
    batches, so the result is byte-identical to a clean extraction.
    ``decoder`` (``auto`` | ``pil`` | ``tensor``) decodes JPEG files on the device
    (:func:`featurestore.jpeg_decode.choose_decoder` has the rule; ``auto``: on CUDA).
    """
    name = ckpt if isinstance(ckpt, str) else ckpt.info.name
    if not force:
        check_identity(store, name, dataset)
    if (with_logits and not force and store.has_complete(name, dataset.name)
            and not store.has_logits(name, dataset.name)):
        force = True
    repair = repair and not force
    if repair and not with_logits:
        # a repaired entry keeps its logits: damaged logits chunks are recomputed like features
        with_logits = _holds_logits(store, name, dataset.name)
    if repair and _intact(store, name, dataset.name):
        return EntryReport(name, dataset.name, "intact")
    if not repair and store.has_complete(name, dataset.name) and not force:
        return EntryReport(name, dataset.name, "skipped")
    # Validate the dataset (split files, root layout) before touching the store or the model.
    splits = check_splits(dataset)
    loaded = load_checkpoint(ckpt, weights, seed=seed) if isinstance(ckpt, str) else ckpt
    job = _plan_entry(name, dataset, loaded, splits, resolve_device(device), batch_size,
                      chunk_batches, with_logits, decoder)
    workers = default_workers() if num_workers is None else num_workers

    t0 = time.perf_counter()
    with store.writing(name, dataset.name, force=force, wait=wait, repair=repair) as writer, \
            _discard_staging_on_failure(store, writer):
        if writer.already_complete:  # finished by another process while we waited
            return EntryReport(name, dataset.name, "skipped")
        status = _open_entry(store, writer, job, repair)
        if status == "intact":  # repaired by another process while we waited
            return EntryReport(name, dataset.name, status)
        if fan_out is not None:
            n_done = fan_out(writer.path, {p.name: writer.pending_chunks(p.name)
                                           for p in job.plans})
        else:
            n_done = _extract_pending(writer, job, batch_size=batch_size, workers=workers,
                                      progress=progress)
        seconds = time.perf_counter() - t0
        writer.finish({"timings": {"seconds": round(seconds, 3), "images": n_done,
                                   "images_per_s": round(n_done / max(seconds, 1e-9), 2)}})
    return EntryReport(name, dataset.name, status, n_done, seconds,
                       {p.name: p.n for p in job.plans})


def extract_chunks(
    store: FeatureStore,
    path: str,
    ckpt: str,
    dataset: Dataset,
    chunks: dict[str, list[int]],
    *,
    weights: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str = "auto",
    num_workers: int | None = 0,
    seed: int = 0,
    chunk_batches: int = BATCHES_PER_CHUNK,
    decoder: str = "auto",
) -> int:
    """Compute and write ``chunks`` (row-chunk indices per split) of the entry group at ``path``,
    begun by a coordinator's :func:`extract_entry` (``fan_out``) that holds the entry's lock and
    finishes it; the number of images written.

    Only those chunks and their ``done`` flags (and checksums) are written, and chunks whose flag
    is already set are skipped, so workers of one entry never touch each other's data and a
    retried share redoes only what is missing. The same batches as a single-process extraction
    make the chunks byte-identical to its. Raises :class:`FeatureStoreError` when the group was
    begun for another computation (weights, ids, batch size, device type).
    """
    splits = check_splits(dataset)
    loaded = load_checkpoint(ckpt, weights, seed=seed)
    job = _plan_entry(ckpt, dataset, loaded, splits, resolve_device(device), batch_size,
                      chunk_batches, with_logits=False, decoder=decoder)
    writer = EntryWriter(store, ckpt, dataset.name, force=False)
    writer.path, writer.group = path, store.root[path]
    writer.plans = {p.name: p for p in job.plans}
    from featurestore.store.layout import ATTR

    begun = dict(writer.group.attrs.get(ATTR) or {}).get("fingerprint")
    if begun != job.fingerprint:
        raise FeatureStoreError(
            f"entry group {path} was begun for another computation ({begun}), not "
            f"{job.fingerprint}: every worker must use the coordinator's weights and options")
    workers = default_workers() if num_workers is None else num_workers
    return _extract_pending(writer, job, batch_size=batch_size, workers=workers, progress=False,
                            only=chunks)


def _run_split(
    model: torch.nn.Module,
    loader: DataLoader | Iterator[Any],
    plan: SplitPlan,
    pending: list[int],
    ids: list[str],
    labels: np.ndarray,
    mean: torch.Tensor,
    std: torch.Tensor,
    dev: torch.device,
    chunk_writer: _ChunkWriter,
    *,
    progress: bool,
    desc: str,
    total: int,
    weights: str = "",
    with_logits: bool = False,
) -> int:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress, dynamic_ncols=True,
               leave=True)
    chunks = iter(pending)
    k = next(chunks)
    buf: list[np.ndarray] = []
    logit_buf: list[np.ndarray] = []
    head = model.get_classifier() if with_logits else None
    filled = 0
    with torch.inference_mode():
        for x, rows, errors in loader:
            if errors:
                raise CorruptImageError(errors[0])
            x = x.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
            x = (x.float() - mean) / std
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                f = penultimate_features(model, x)
                if head is not None:
                    logit_buf.append(head(f).float().cpu().numpy())
            f = f.float().cpu().numpy()
            bad = ~np.isfinite(f).all(axis=1)
            if bad.any():  # never written: a NaN probe score would look like a real number
                row = rows[int(np.argmax(bad))]
                raise NonFiniteFeaturesError(
                    f"checkpoint {weights or desc} produced NaN/inf features: first bad row "
                    f"{row} of {desc} (id {ids[row]}); nothing was written for it"
                )
            buf.append(f)
            filled += len(rows)
            bar.update(len(rows))
            r = plan.rows(k)
            if filled == r.stop - r.start:
                chunk_writer.put(plan.name, k, np.concatenate(buf), labels[r], ids[r],
                                 np.concatenate(logit_buf) if head is not None else None)
                buf, logit_buf, filled = [], [], 0
                k = next(chunks, -1)
    bar.close()
    return total
