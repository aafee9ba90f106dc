"""The results table: one append-only row per finished probe / fine-tune / from-scratch job.

Stored inside the feature store as ``<store>/_results/<result_id>``: a Zarr array holding the job's
per-example test predictions (int32 ``[N]`` labels, or float32 ``[N, C]`` scores for multi-label),
whose attributes carry the row. The row's ``status`` attribute is set to ``complete`` only after the
predictions are written, so a killed job never leaves a visible half row, and concurrent appends
never touch the same object (each row has its own id).

A row is identified by ``(ckpt, dataset, setting, variant)``: ``setting`` is ``logreg``, ``svm``,
``logreg_aug``, ``finetune`` or ``scratch``; ``variant`` distinguishes runs of the same setting
(``""`` by default; e.g. ``"k=10,subset_seed=0"`` in the data-size study). What a row holds is
defined once, in :mod:`featurestore.results.schema`: rows go in and come out through
:class:`~featurestore.results.schema.ResultRow`.

One result per key: :meth:`ResultsTable.append` checks for an existing row and appends under the
store backend's lock of that key, so concurrent jobs of the same key write one row and the others
are told to skip (``force`` appends a newer row; readers take the latest).
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np
import pandas as pd
import zarr

from featurestore.results.schema import ResultRow, RowFormatError


class _Backend(Protocol):
    def lock(self, key: str, wait: float) -> AbstractContextManager[None]: ...


class _Store(Protocol):
    """What the table needs of its store (the store hands itself in: ``FeatureStore.results``)."""

    url: str
    root: zarr.Group
    backend: _Backend


RESULTS = "_results"
#: How long an append waits for another process appending the same key (a few object writes).
APPEND_WAIT_S = 600.0
#: Columns every row has, in display order (rows may carry more).
COLUMNS = [
    "result_id", "created", "ckpt", "dataset", "setting", "variant", "metric", "test_metric",
    "param_name", "best_param", "hyperparams", "val_curve", "n_train", "n_test", "imagenet_top1",
    "device", "timings", "versions", "test_ids_sha256", "weights_sha256", "subset", "features",
    "curve_steps",
]


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on (recorded with every row).

    Read from the installed distributions' metadata, not by importing them: importing timm
    (and torchvision with it) and scikit-learn only to read ``__version__`` cost the first
    row of every probe process 5 s (measured: 3.1 s timm + 1.9 s scikit-learn on this 2-core
    machine), which made a 2-worker sweep of 2-second probes look 20% slower than it is.
    """
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch  # already loaded wherever results are made; its version names the CUDA build

    from featurestore.version import __version__

    def dist(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {
        "featurestore": __version__,
        "torch": torch.__version__,
        "timm": dist("timm"),
        "numpy": np.__version__,
        "scikit-learn": dist("scikit-learn"),
        "zarr": zarr.__version__,
        "python": platform.python_version(),
    }


def _jsonable(obj: Any) -> Any:
    """Turn numpy scalars/arrays inside a row into JSON types."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


class ResultsTable:
    """Append-only results table of a :class:`~featurestore.store.FeatureStore`."""

    def __init__(self, store: _Store) -> None:
        self.store = store

    def _group(self, create: bool = False) -> zarr.Group | None:
        root = self.store.root
        if RESULTS in root:
            g = root[RESULTS]
            assert isinstance(g, zarr.Group)
            return g
        if not create:
            return None
        return root.create_group(RESULTS)

    def rows(self) -> list[ResultRow]:
        """Every complete row, parsed through the schema, oldest first.

        A stored row the schema cannot read (no ``ckpt``, say) is left out with a warning
        rather than failing every reader of the table.
        """
        g = self._group()
        if g is None:
            return []
        rows = []
        for name, arr in g.arrays():
            attrs = arr.attrs.asdict()
            if attrs.get("status") != "complete":
                continue
            try:
                rows.append(ResultRow.from_record({**attrs["row"], "result_id": name}))
            except (RowFormatError, KeyError, TypeError, ValueError) as exc:
                warnings.warn(f"result {name} in {self.store.url} is unreadable: {exc}",
                              stacklevel=2)
        rows.sort(key=lambda r: (r.created or "", r.result_id or ""))
        return rows

    def _rows(self) -> list[dict[str, Any]]:
        return [r.to_record() for r in self.rows()]

    def lock(self, key: tuple[str, str, str, str], wait: float = APPEND_WAIT_S
             ) -> AbstractContextManager[None]:
        """The backend's exclusive lock of one result key (ckpt, dataset, setting, variant)."""
        return self.store.backend.lock(f"{RESULTS}/" + "/".join(key), wait)

    def append(self, row: ResultRow | Mapping[str, Any], predictions: np.ndarray, *,
               force: bool = False, wait: float = APPEND_WAIT_S) -> str | None:
        """Add a row with its per-example test predictions; returns its ``result_id``, or
        None when a row of the same key is already there (and not ``force``).

        The check and the append run under the key's lock, so of several concurrent jobs of one
        key exactly one writes. A mapping is parsed through the schema first (a row missing a
        required field or naming an unknown setting raises ``ValueError``).
        """
        if not isinstance(row, ResultRow):
            row = ResultRow.from_record(row)
        preds = np.asarray(predictions)
        with self.lock(row.key, wait):
            if not force and self.exists(*row.key):
                return None
            return self._write(row, preds)

    def _write(self, row: ResultRow, preds: np.ndarray) -> str:
        dtype = "float32" if preds.ndim == 2 else "int32"
        record = row.to_record()
        for name in ("result_id", "created", "n_test", "versions"):
            record.pop(name, None)
        full = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": library_versions(),
            **record,
            "n_test": int(preds.shape[0]),
        }
        result_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:10]}"
        group = self._group(create=True)
        assert group is not None
        arr = group.create_array(
            result_id,
            shape=preds.shape,
            chunks=preds.shape if preds.size else (1,) * preds.ndim,
            dtype=dtype,
            attributes={"row": _jsonable(full), "status": "pending"},
        )
        if preds.size:
            arr[...] = preds.astype(dtype)
        arr.attrs["status"] = "complete"  # last: the row becomes visible only now
        return result_id

    def exists(self, ckpt: str, dataset: str, setting: str, variant: str = "") -> bool:
        return any(r.key == (ckpt, dataset, setting, variant) for r in self.rows())

    def frame(self) -> pd.DataFrame:
        """Every complete row as a DataFrame (dict/list fields stay Python objects)."""
        rows = self._rows()
        df = pd.DataFrame(rows)
        if df.empty:
            return pd.DataFrame(columns=COLUMNS)
        cols = [c for c in COLUMNS if c in df.columns] + [c for c in df.columns if c not in COLUMNS]
        return df[cols]

    def predictions(self, result_id: str) -> np.ndarray:
        g = self._group()
        if g is None or result_id not in g:
            raise KeyError(f"no result {result_id!r} in {self.store.url}")
        return np.asarray(g[result_id][...])

    @staticmethod
    def to_csv_frame(df: pd.DataFrame) -> pd.DataFrame:
        """Copy of ``df`` with dict/list cells as JSON strings (for CSV export)."""
        out = df.copy()
        for c in out.columns:
            if out[c].map(lambda v: isinstance(v, dict | list)).any():
                out[c] = out[c].map(lambda v: json.dumps(v) if isinstance(v, dict | list) else v)
        return out
