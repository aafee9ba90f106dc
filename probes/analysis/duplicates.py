"""Near-duplicate images from cached features (the paper's Table 5 and Appendix H).

The paper ran a CNN duplicate detector between the ImageNet training set and every transfer
dataset, counted the duplicates per split (Table 5), and scored CIFAR-10/100 on the test set
without them (Appendix H). Here the detector is the cached features themselves: two images are
near-duplicates when the cosine similarity of their L2-normalised penultimate-layer features is
at least a threshold. Penultimate features are built to be invariant to exactly the changes a
copy goes through (resizing, re-encoding, small crops), so a copy of an image lands next to it
while a different photograph of the same class does not (see :data:`DEFAULT_THRESHOLD`).

The search is an exact k-nearest-neighbour search done in blocks: a block of query rows times
a block of reference rows at a time (a torch matmul on CPU or CUDA), keeping only the running
top-k per query, so memory is ``O(block_rows**2 + N_query * k)`` whatever the size of the
reference (the reference is read from the store chunk by chunk, never loaded whole).

Two modes, one rule: the *query* images always belong to ``dataset`` (the one whose test set
you may want to clean) and the *match* images are what they are compared against:

- within a dataset: its ``test`` split against its ``train`` + ``val`` splits;
- across datasets (``against``): every split of ``dataset`` against the ``train`` (+ ``val``)
  splits of ``against``, which yields the paper's Table 5 columns (train dups, test dups) when
  ``against`` is the source training set.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from probes.errors import ProbeInputError

if TYPE_CHECKING:
    import torch

    from featurestore.store import FeatureStore

__all__ = [
    "DEFAULT_BLOCK_ROWS",
    "DEFAULT_K",
    "DEFAULT_THRESHOLD",
    "PAIR_COLUMNS",
    "ArrayRows",
    "DuplicateReport",
    "StoreRows",
    "Deduplication",
    "blocked_topk",
    "brute_force_pairs",
    "excluded_test_ids",
    "file_sha256",
    "find_duplicates",
    "read_pairs",
    "search_pairs",
    "deduplicate_test",
    "write_pairs",
]

#: Cosine similarity at or above which two images count as near-duplicates. Measured with
#: efficientnet_lite0 (real ImageNet weights) on Caltech-101 photographs (README, "Near-duplicate
#: images"): copies enlarged 2x and re-encoded (JPEG q90) score 0.991-0.998 with their original,
#: copies resized to 224x224 (q75) 0.972-0.988, 5% crops (q85) 0.826-0.963, halved copies
#: (q40) 0.845-0.880; the nearest *different* photograph of a Caltech-101 test image scores
#: 0.70 median, and the highest different pair checked by eye is 0.914 (two different dollar
#: bills), the next 0.896 and 0.869. 0.90 finds every enlarged or re-sized copy and 3 of 4
#: 5% crops, with about one false positive per thousand test images (the paper's conservative
#: choice: some false positives, few false negatives); pass ~0.85 to catch heavily shrunk
#: copies too, at the price of more different-but-alike photographs.
DEFAULT_THRESHOLD = 0.90
#: Matches kept per query image (the nearest ones at or above the threshold).
DEFAULT_K = 5
#: Rows of each side multiplied at once: a 4096 x 4096 float32 similarity block is 64 MiB.
DEFAULT_BLOCK_ROWS = 4096
#: Columns of a pairs file, in order.
PAIR_COLUMNS = ("query_dataset", "query_split", "query_id", "match_dataset", "match_split",
                "match_id", "similarity", "ckpt", "threshold")


class RowSource(Protocol):
    """Rows of a feature matrix read on demand (a numpy array, or a store entry's splits)."""

    def __len__(self) -> int: ...

    def rows(self, start: int, stop: int) -> np.ndarray: ...


@dataclass
class ArrayRows:
    """A feature matrix already in memory."""

    array: np.ndarray

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def rows(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.array[start:stop], dtype=np.float32)


@dataclass
class StoreRows:
    """The features of some splits of one store entry, read lazily block by block.

    ``ids[i]`` and ``splits[i]`` name row ``i``; only the chunks a block needs are read (each
    checked against its crc32c by Zarr), so a reference as large as ImageNet never has to fit
    in memory.
    """

    store: FeatureStore
    ckpt: str
    dataset: str
    split_names: Sequence[str]
    ids: list[str] = field(init=False)
    splits: list[str] = field(init=False)
    feature_dim: int = field(init=False)

    def __post_init__(self) -> None:
        import dask.array as da

        info = self.store.entry(self.ckpt, self.dataset)
        missing = [s for s in self.split_names if s not in info.splits]
        if missing:
            raise ProbeInputError(
                f"entry {self.ckpt}/{self.dataset} has no split {missing[0]!r} "
                f"(has {', '.join(info.splits)})")
        parts = [self.store.open(self.ckpt, self.dataset, s) for s in self.split_names]
        self._features = da.concatenate([p["features"].data for p in parts])
        self.ids = [str(i) for p in parts for i in p["id"].values]
        self.splits = [s for s, p in zip(self.split_names, parts, strict=True)
                       for _ in range(p.sizes["sample"])]
        self.feature_dim = int(self._features.shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self._features[start:stop].compute(), dtype=np.float32)


def _normalised(block: np.ndarray, device: torch.device) -> torch.Tensor:
    """Rows scaled to unit L2 norm (an all-zero row stays zero: similarity 0 to everything)."""
    import torch

    t = torch.as_tensor(np.ascontiguousarray(block), dtype=torch.float32, device=device)
    return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)


def blocked_topk(
    query: RowSource,
    reference: RowSource,
    k: int = DEFAULT_K,
    *,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    device: str | torch.device = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar reference rows of every query row, exactly.

    Returns ``(similarity, index)``, both ``[N_query, min(k, N_reference)]``, best first.
    Work is done ``block_rows`` x ``block_rows`` at a time on ``device`` (resolved by
    :func:`featurestore.device.resolve_device`); the reference is streamed once per query block.
    """
    import torch

    from featurestore.device import resolve_device

    if k < 1 or block_rows < 1:
        raise ProbeInputError(f"k and block_rows must be >= 1 (got k={k}, block_rows={block_rows})")
    dev = resolve_device(device)
    nq, nr = len(query), len(reference)
    kk = min(k, nr)
    sims = np.empty((nq, kk), np.float32)
    index = np.empty((nq, kk), np.int64)
    if nq == 0 or kk == 0:
        return sims, index
    for q0 in range(0, nq, block_rows):
        q = _normalised(query.rows(q0, min(q0 + block_rows, nq)), dev)
        best_s = torch.full((q.shape[0], 0), -2.0, device=dev)
        best_i = torch.zeros((q.shape[0], 0), dtype=torch.int64, device=dev)
        for r0 in range(0, nr, block_rows):
            r = _normalised(reference.rows(r0, min(r0 + block_rows, nr)), dev)
            if r.shape[1] != q.shape[1]:
                raise ProbeInputError(
                    f"query features have {q.shape[1]} dimensions, reference {r.shape[1]}: "
                    "compare features of one checkpoint")
            s = q @ r.T
            cand_s = torch.cat([best_s, s], dim=1)
            cand_i = torch.cat([best_i, torch.arange(r0, r0 + r.shape[0], device=dev)
                                .expand(q.shape[0], -1)], dim=1)
            top = torch.topk(cand_s, min(kk, cand_s.shape[1]), dim=1)
            best_s, best_i = top.values, torch.gather(cand_i, 1, top.indices)
        sims[q0:q0 + q.shape[0]] = best_s.cpu().numpy()
        index[q0:q0 + q.shape[0]] = best_i.cpu().numpy()
    return sims, index


def search_pairs(
    query: RowSource,
    reference: RowSource,
    threshold: float = DEFAULT_THRESHOLD,
    k: int = DEFAULT_K,
    *,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    device: str | torch.device = "auto",
) -> list[tuple[int, int, float]]:
    """``(query_row, reference_row, similarity)`` of every top-``k`` match at or above
    ``threshold``, most similar first (ties: query row, then reference row)."""
    sims, index = blocked_topk(query, reference, k, block_rows=block_rows, device=device)
    qi, col = np.nonzero(sims >= threshold)
    pairs = [(int(q), int(index[q, c]), float(sims[q, c])) for q, c in zip(qi, col, strict=True)]
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))


def brute_force_pairs(query: np.ndarray, reference: np.ndarray, threshold: float,
                      k: int = DEFAULT_K) -> list[tuple[int, int, float]]:
    """The same answer as :func:`search_pairs` from the whole similarity matrix in float64
    (the independent reference the blocked search is tested against; O(N_q x N_r) memory)."""
    def unit(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, np.float64)
        return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)

    s = unit(query) @ unit(reference).T
    pairs = []
    for q, row in enumerate(s):
        for r in np.argsort(-row, kind="stable")[:k]:
            if row[r] >= threshold:
                pairs.append((q, int(r), float(row[r])))
    return sorted(pairs, key=lambda p: (-p[2], p[0], p[1]))


@dataclass
class DuplicateReport:
    """The pairs found, and per query split how many of its images have a near-duplicate
    (the paper's Table 5 columns: size, dups, dup %)."""

    ckpt: str
    dataset: str
    against: str
    query_splits: list[str]
    match_splits: list[str]
    threshold: float
    k: int
    #: one dict per pair, keys :data:`PAIR_COLUMNS`, most similar first
    pairs: list[dict[str, Any]]
    #: query split -> {"n": images, "duplicates": images with >= 1 match}
    counts: dict[str, dict[str, int]]
    #: distinct match images named by at least one pair
    matched_images: int
    device: str

    def summary(self) -> dict[str, Any]:
        """Everything but the pairs, as JSON-able data (``featurestore duplicates --json``)."""
        return {
            "ckpt": self.ckpt, "dataset": self.dataset, "against": self.against,
            "query_splits": self.query_splits, "match_splits": self.match_splits,
            "threshold": self.threshold, "k": self.k, "pairs": len(self.pairs),
            "counts": {s: {**c, "percent": 100.0 * c["duplicates"] / c["n"] if c["n"] else 0.0}
                       for s, c in self.counts.items()},
            "matched_images": self.matched_images, "device": self.device,
        }


def _default_splits(splits: Collection[str], against: bool) -> tuple[list[str], list[str]]:
    """Query and match splits when the user names none (module docs)."""
    reference = [s for s in ("train", "val") if s in splits]
    if against:
        return list(splits), reference
    return [s for s in splits if s not in reference], reference


def find_duplicates(
    store: FeatureStore,
    ckpt: str,
    dataset: str,
    *,
    against: str | None = None,
    splits: Sequence[str] | None = None,
    match_splits: Sequence[str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    k: int = DEFAULT_K,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    device: str = "auto",
) -> DuplicateReport:
    """Near-duplicates of ``dataset``'s ``splits`` among ``match_splits`` of ``against`` (or of
    ``dataset`` itself), from the features of ``ckpt`` cached in ``store``.

    Defaults: within a dataset, ``test`` vs ``train`` + ``val``; across datasets, every split
    of ``dataset`` vs ``train`` + ``val`` of ``against``. Within one dataset the query and match
    splits must not overlap (an image would match itself).
    """
    from featurestore.device import resolve_device

    if not -1.0 <= threshold <= 1.0:
        raise ProbeInputError(f"threshold {threshold} is not a cosine similarity in [-1, 1]")
    dev = resolve_device(device)
    other = against or dataset
    q_info = store.entry(ckpt, dataset)
    m_info = store.entry(ckpt, other) if against else q_info
    d_q, d_m = _default_splits(q_info.splits, False), _default_splits(m_info.splits, True)
    q_splits = list(splits) if splits else (list(q_info.splits) if against else d_q[0])
    m_splits = list(match_splits) if match_splits else (d_m[1] if against else d_q[1])
    if not m_splits:
        raise ProbeInputError(f"entry {ckpt}/{other} has no train or val split to match against "
                              f"(has {', '.join(m_info.splits)}); name one with --match-split")
    if not against and set(q_splits) & set(m_splits):
        raise ProbeInputError(
            f"query splits ({', '.join(q_splits)}) and match splits ({', '.join(m_splits)}) of "
            f"{dataset} overlap: every image would match itself")
    query = StoreRows(store, ckpt, dataset, q_splits)
    reference = StoreRows(store, ckpt, other, m_splits)
    found = search_pairs(query, reference, threshold, k, block_rows=block_rows, device=dev)
    pairs = [
        {"query_dataset": dataset, "query_split": query.splits[q], "query_id": query.ids[q],
         "match_dataset": other, "match_split": reference.splits[r], "match_id": reference.ids[r],
         "similarity": s, "ckpt": ckpt, "threshold": threshold}
        for q, r, s in found
    ]
    counts = {s: {"n": query.splits.count(s), "duplicates": 0} for s in q_splits}
    for q in {q for q, _, _ in found}:
        counts[query.splits[q]]["duplicates"] += 1
    return DuplicateReport(
        ckpt=ckpt, dataset=dataset, against=other, query_splits=q_splits, match_splits=m_splits,
        threshold=threshold, k=k, pairs=pairs, counts=counts,
        matched_images=len({r for _, r, _ in found}), device=str(dev),
    )


def write_pairs(pairs: Iterable[dict[str, Any]], path: Path) -> None:
    """The pairs as CSV with :data:`PAIR_COLUMNS` (a header even when there are none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=PAIR_COLUMNS)
        w.writeheader()
        for p in pairs:
            w.writerow({**p, "similarity": f"{p['similarity']:.6f}"})


def read_pairs(path: Path) -> list[dict[str, str]]:
    """The rows of a pairs file :func:`write_pairs` wrote; :class:`ProbeInputError` when the
    file is missing or is not one."""
    try:
        with Path(path).open(newline="") as f:
            reader = csv.DictReader(f)
            need = {"query_dataset", "query_split", "query_id", "match_dataset", "match_split",
                    "match_id"}
            lacking = need - set(reader.fieldnames or ())
            if lacking:
                raise ProbeInputError(
                    f"{path} is not a duplicates pairs file (no column "
                    f"{', '.join(sorted(lacking))}); write one with `featurestore duplicates`")
            return list(reader)
    except FileNotFoundError as e:
        raise ProbeInputError(f"pairs file {path} does not exist") from e
    except UnicodeDecodeError as e:
        raise ProbeInputError(f"{path} is not a duplicates pairs file (not text)") from e


def excluded_test_ids(pairs: Iterable[dict[str, str]], dataset: str) -> set[str]:
    """Ids of ``dataset``'s test images named on either side of any pair: the images the
    paper leaves out of the CIFAR test sets (Appendix H)."""
    out: set[str] = set()
    for p in pairs:
        for side in ("query", "match"):
            if p[f"{side}_dataset"] == dataset and p[f"{side}_split"] == "test":
                out.add(p[f"{side}_id"])
    return out


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (names the pairs file a result was deduplicated with)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Deduplication:
    """What ``probe --exclude-duplicates`` scores without, and how the result row says so."""

    #: rows of the test split that are kept, in order
    index: np.ndarray
    excluded: int
    sha256: str

    @property
    def variant(self) -> str:
        """The result row's variant: ``dedup=<first 12 hex of the pairs file's sha256>,
        excluded=<test images left out>``."""
        return f"dedup={self.sha256[:12]},excluded={self.excluded}"

    def extra(self, path: Path) -> dict[str, Any]:
        return {"duplicates_file": str(path), "duplicates_sha256": self.sha256,
                "excluded_test": self.excluded}


def deduplicate_test(path: Path, dataset: str, test_ids: Sequence[str]) -> Deduplication:
    """The test rows of ``dataset`` to keep when the images a pairs file names are left out.

    Refuses (:class:`ProbeInputError`) a file about other datasets only, one naming test ids
    the split does not hold (pairs from another version or seed of the dataset would silently
    exclude nothing), and an exclusion that leaves no test image.
    """
    rows = read_pairs(path)
    named = {p["query_dataset"] for p in rows} | {p["match_dataset"] for p in rows}
    if rows and dataset not in named:
        raise ProbeInputError(f"pairs file {path} names no image of dataset {dataset!r} "
                              f"(it pairs {', '.join(sorted(named))})")
    drop = excluded_test_ids(rows, dataset)
    unknown = sorted(drop - set(test_ids))
    if unknown:
        raise ProbeInputError(
            f"pairs file {path} names {len(unknown)} test image(s) of {dataset} that its test "
            f"split does not hold (e.g. {unknown[0]!r}); was it made from another split of "
            "the dataset?")
    index = np.array([i for i, t in enumerate(test_ids) if t not in drop], dtype=np.int64)
    if index.size == 0:
        raise ProbeInputError(f"pairs file {path} names every test image of {dataset}: "
                              "nothing would be left to score")
    return Deduplication(index, len(drop), file_sha256(path))
