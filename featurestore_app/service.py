"""``featurestore serve``: share a store over HTTP, read-only.

Endpoints (JSON unless stated):

- ``GET /entries`` - the catalog (``?all=true`` includes unfinished entries)
- ``GET /entries/{ckpt}/{dataset}`` - one entry's provenance
- ``GET /entries/{ckpt}/{dataset}/{split}/features.npy`` (and ``labels.npy``) - a whole split as an
  ``.npy`` body, ``numpy.load(io.BytesIO(body))`` on the client
- ``GET /entries/{ckpt}/{dataset}/{split}/ids`` - the sample ids
- ``GET /results`` - the results table (``?format=csv`` for CSV)
- ``GET /results/{result_id}/predictions.npy`` - one result's per-example test predictions
- ``GET /zarr/{key}`` - raw Zarr objects, so any Zarr v3 client reads the store directly:
  ``FeatureStore("http://host:port/zarr", read_only=True).load(ckpt, dataset, split)``

Nothing here writes: the service opens the store read-only.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from featurestore.errors import EntryNotFoundError
from featurestore.store import FeatureStore

NPY = "application/octet-stream"


def _npy(array: np.ndarray) -> Response:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return Response(buf.getvalue(), media_type=NPY)


def create_app(store_url: str) -> FastAPI:
    """The HTTP app for the store at ``store_url`` (opened read-only)."""
    store = FeatureStore(store_url, read_only=True)
    app = FastAPI(title="featurestore", description=f"read-only view of {store_url}")

    def entry_or_404(ckpt: str, dataset: str) -> Any:
        try:
            return store.entry(ckpt, dataset)
        except EntryNotFoundError as e:
            raise HTTPException(404, str(e)) from None

    @app.get("/entries")
    def entries(all: bool = False) -> list[dict[str, Any]]:
        return [e.as_dict() for e in store.entries(include_incomplete=all, sizes=True)]

    @app.get("/entries/{ckpt}/{dataset}")
    def provenance(ckpt: str, dataset: str) -> dict[str, Any]:
        return entry_or_404(ckpt, dataset).provenance

    @app.get("/entries/{ckpt}/{dataset}/{split}/{what}.npy")
    def split_array(ckpt: str, dataset: str, split: str, what: str) -> Response:
        if what not in ("features", "labels"):
            raise HTTPException(404, f"no array {what!r} (features or labels)")
        entry_or_404(ckpt, dataset)
        try:
            X, y = store.load(ckpt, dataset, split)
        except EntryNotFoundError as e:
            raise HTTPException(404, str(e)) from None
        return _npy(X if what == "features" else y)

    @app.get("/entries/{ckpt}/{dataset}/{split}/ids")
    def split_ids(ckpt: str, dataset: str, split: str) -> list[str]:
        entry_or_404(ckpt, dataset)
        try:
            return store.load_ids(ckpt, dataset, split)
        except EntryNotFoundError as e:
            raise HTTPException(404, str(e)) from None

    @app.get("/results")
    def results(format: str = "json") -> Response:
        from featurestore.results import ResultsTable

        df = store.results.frame()
        if format == "csv":
            return PlainTextResponse(ResultsTable.to_csv_frame(df).to_csv(index=False),
                                     media_type="text/csv")
        return Response(df.to_json(orient="records"), media_type="application/json")

    @app.get("/results/{result_id}/predictions.npy")
    def predictions(result_id: str) -> Response:
        try:
            return _npy(store.results.predictions(result_id))
        except KeyError as e:
            raise HTTPException(404, str(e.args[0])) from None

    @app.get("/zarr/{key:path}")
    async def zarr_key(key: str) -> Response:
        from zarr.core.buffer import default_buffer_prototype

        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise HTTPException(400, "bad key")
        buf = await store._store.get(key, prototype=default_buffer_prototype())
        if buf is None:
            return JSONResponse({"detail": f"no object {key}"}, status_code=404)
        return Response(buf.to_bytes(), media_type=NPY)

    return app


def serve(store_url: str, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    uvicorn.run(create_app(store_url), host=host, port=port, log_level="info")
