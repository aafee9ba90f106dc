"""The results table: one append-only row per finished probe / fine-tune / from-scratch job.

Stored inside the feature store as ``<store>/_results/<result_id>``: a Zarr array holding the job's
per-example test predictions (int32 ``[N]`` labels, or float32 ``[N, C]`` scores for multi-label),
whose attributes carry the row. The row's ``status`` attribute is set to ``complete`` only after the
predictions are written, so a killed job never leaves a visible half row, and concurrent appends
never touch the same object (each row has its own id).

A row is identified by ``(ckpt, dataset, setting, variant)``: ``setting`` is ``logreg``, ``svm``,
``logreg_aug``, ``finetune`` or ``scratch``; ``variant`` distinguishes runs of the same setting
(``""`` by default; e.g. ``"k=10,subset_seed=0"`` in the data-size study).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Protocol

import numpy as np
import pandas as pd
import zarr


class _Store(Protocol):
    """What the table needs of its store (the store hands itself in: ``FeatureStore.results``)."""

    url: str
    root: zarr.Group

RESULTS = "_results"
SETTINGS = ("logreg", "svm", "logreg_aug", "finetune", "scratch")
#: Columns every row has, in display order (rows may carry more).
COLUMNS = [
    "result_id", "created", "ckpt", "dataset", "setting", "variant", "metric", "test_metric",
    "param_name", "best_param", "hyperparams", "val_curve", "n_train", "n_test", "imagenet_top1",
    "device", "timings", "versions", "test_ids_sha256", "weights_sha256",
]


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on (recorded with every row)."""
    import platform

    import sklearn
    import timm
    import torch

    import featurestore

    return {
        "featurestore": featurestore.__version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
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

    def _rows(self) -> list[dict[str, Any]]:
        g = self._group()
        if g is None:
            return []
        rows = []
        for name, arr in g.arrays():
            attrs = arr.attrs.asdict()
            if attrs.get("status") == "complete":
                rows.append({"result_id": name, **attrs["row"]})
        rows.sort(key=lambda r: (r.get("created", ""), r["result_id"]))
        return rows

    def append(self, row: dict[str, Any], predictions: np.ndarray) -> str:
        """Add a row with its per-example test predictions; returns its ``result_id``."""
        required = ("ckpt", "dataset", "setting", "metric", "test_metric")
        missing = [k for k in required if k not in row]
        if missing:
            raise ValueError(f"result row lacks {', '.join(missing)}")
        if row["setting"] not in SETTINGS:
            raise ValueError(f"unknown setting {row['setting']!r} (one of {', '.join(SETTINGS)})")
        preds = np.asarray(predictions)
        dtype = "float32" if preds.ndim == 2 else "int32"
        full = {
            "variant": "",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": library_versions(),
            **row,
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
        return any(
            (r["ckpt"], r["dataset"], r["setting"], r.get("variant", "")) ==
            (ckpt, dataset, setting, variant)
            for r in self._rows()
        )

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
