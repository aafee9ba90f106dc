"""`featurestore serve`: the HTTP API and reading a served store with the Python client."""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from featurestore.datasets import get_dataset
from featurestore.extract import extract_entry
from featurestore.store import FeatureStore
from featurestore_app.service import create_app
from tests.conftest import FAST_CKPT


@pytest.fixture
def served(imagefolder: Path, store_url: str) -> str:
    fs = FeatureStore(store_url)
    extract_entry(fs, FAST_CKPT, get_dataset("imagefolder", imagefolder), weights="random",
                  batch_size=8, num_workers=0, progress=False)
    fs.results.append({"ckpt": FAST_CKPT, "dataset": "imagefolder", "setting": "logreg",
                       "metric": "top1", "test_metric": 0.5}, np.arange(12) % 3)
    return store_url


def test_http_api(served: str) -> None:
    client = TestClient(create_app(served))
    [row] = client.get("/entries").json()
    assert (row["ckpt"], row["dataset"], row["status"]) == (FAST_CKPT, "imagefolder", "complete")
    prov = client.get(f"/entries/{FAST_CKPT}/imagefolder").json()
    assert prov["status"] == "complete" and prov["feature_dim"] == 64

    X_ref, y_ref = FeatureStore(served).load(FAST_CKPT, "imagefolder", "trainval")
    body = client.get(f"/entries/{FAST_CKPT}/imagefolder/trainval/features.npy").content
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), X_ref)
    body = client.get(f"/entries/{FAST_CKPT}/imagefolder/trainval/labels.npy").content
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), y_ref)
    assert len(client.get(f"/entries/{FAST_CKPT}/imagefolder/test/ids").json()) == 12

    [res] = client.get("/results").json()
    assert res["test_metric"] == 0.5
    pred = client.get(f"/results/{res['result_id']}/predictions.npy").content
    np.testing.assert_array_equal(np.load(io.BytesIO(pred)), np.arange(12) % 3)
    assert "test_metric" in client.get("/results?format=csv").text

    assert client.get("/entries/nope/imagefolder").status_code == 404
    assert "no entry nope/imagefolder" in client.get("/entries/nope/imagefolder").json()["detail"]
    assert client.get("/zarr/nope/zarr.json").status_code == 404
    assert client.get("/zarr/a/../b").status_code in (400, 404)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_python_client_reads_served_store(served: str) -> None:
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(served), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        remote = FeatureStore(f"http://127.0.0.1:{port}/zarr", read_only=True)
        [e] = remote.entries()
        assert (e.ckpt, e.dataset, e.splits["test"]) == (FAST_CKPT, "imagefolder", 12)
        X, y = remote.load(FAST_CKPT, "imagefolder", "train")
        X_ref, y_ref = FeatureStore(served).load(FAST_CKPT, "imagefolder", "train")
        np.testing.assert_array_equal(X, X_ref)
        np.testing.assert_array_equal(y, y_ref)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
