"""`featurestore serve`: the HTTP API, reading a served store with the Python client, and the
service's safety (symlinks leaving the store, hostile names, tokens, HEAD, offline docs)."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from featurestore.datasets import get_dataset
from featurestore.extract import extract_entry
from featurestore.store import FeatureStore
from featurestore_app.service import create_app
from tests.conftest import FAST_CKPT, write_imagefolder

SETTINGS = ("logreg", "svm", "finetune")


def build_served_store(root: Path) -> str:
    """A store as the real writers leave it: one extracted entry and three result rows."""
    url = str(root / "store.zarr")
    fs = FeatureStore(url)
    images = write_imagefolder(root / "images")
    extract_entry(fs, FAST_CKPT, get_dataset("imagefolder", images), weights="random",
                  batch_size=8, num_workers=0, progress=False)
    for i, setting in enumerate(SETTINGS):
        fs.results.append({"ckpt": FAST_CKPT, "dataset": "imagefolder", "setting": setting,
                           "metric": "top1", "test_metric": 0.5 + i / 10}, np.arange(12) % 3)
    return url


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Built once per module; tests that alter a store work on a copy (:func:`served`)."""
    return build_served_store(tmp_path_factory.mktemp("served"))


@pytest.fixture
def served(pristine: str, tmp_path: Path) -> str:
    url = str(tmp_path / "store.zarr")
    shutil.copytree(pristine, url, symlinks=True)
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """A real uvicorn server for ``app`` on a free loopback port; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def raw_get(base: str, path: str, method: str = "GET",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Send ``path`` byte for byte (no client-side ``..`` normalisation, unlike httpx)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


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

    rows = client.get("/results").json()
    assert sorted(r["test_metric"] for r in rows) == [0.5, 0.6, 0.7]
    pred = client.get(f"/results/{rows[0]['result_id']}/predictions.npy").content
    np.testing.assert_array_equal(np.load(io.BytesIO(pred)), np.arange(12) % 3)
    assert "test_metric" in client.get("/results?format=csv").text

    assert client.get("/entries/nope/imagefolder").status_code == 404
    assert "no entry nope/imagefolder" in client.get("/entries/nope/imagefolder").json()["detail"]
    assert client.get("/zarr/nope/zarr.json").status_code == 404


def test_python_client_reads_served_store(served: str) -> None:
    with live_server(create_app(served)) as base:
        remote = FeatureStore(f"{base}/zarr", read_only=True)
        [e] = remote.entries()
        assert (e.ckpt, e.dataset, e.splits["test"]) == (FAST_CKPT, "imagefolder", 12)
        X, y = remote.load(FAST_CKPT, "imagefolder", "train")
        X_ref, y_ref = FeatureStore(served).load(FAST_CKPT, "imagefolder", "train")
        np.testing.assert_array_equal(X, X_ref)
        np.testing.assert_array_equal(y, y_ref)
        # The results table is found by listing _results/ over HTTP: every row arrives.
        got = remote.results.frame()
        ref = FeatureStore(served).results.frame()
        assert len(got) == len(ref) == 3
        assert sorted(got["setting"]) == sorted(SETTINGS)
        assert list(got["result_id"]) == list(ref["result_id"])
        rid = got["result_id"].iloc[0]
        np.testing.assert_array_equal(remote.results.predictions(rid), np.arange(12) % 3)


def test_symlinks_leaving_the_store_are_not_served(served: str, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("TOP-SECRET-LINE\n")
    root = Path(served)
    (root / "leak").symlink_to(secret)  # a file link at the top
    (root / "leakdir").symlink_to(secret.parent, target_is_directory=True)  # a folder link
    inside = root / "inside-link"  # a link that stays inside the store is still served
    inside.symlink_to(root / "zarr.json")
    # One chunk of the entry's test features replaced by a link to the secret.
    chunk = next(p for p in (root / FAST_CKPT / "imagefolder/test/features").rglob("*")
                 if p.is_file() and p.name != "zarr.json")
    chunk.unlink()
    chunk.symlink_to(secret)

    with live_server(create_app(served)) as base:
        for path in ("/zarr/leak", "/zarr/leakdir/secret.txt", "/zarr/leakdir",
                     f"/zarr/{chunk.relative_to(root)}"):
            status, headers, body = raw_get(base, path)
            assert status == 404, path
            assert b"TOP-SECRET" not in body
            assert "detail" in json.loads(body)
        for path in (f"/entries/{FAST_CKPT}/imagefolder/test/features.npy",
                     f"/entries/{FAST_CKPT}/imagefolder"):
            status, _, body = raw_get(base, path)
            assert status == 404 and b"TOP-SECRET" not in body, path
        status, _, body = raw_get(base, "/entries")
        assert status == 200 and json.loads(body) == []  # the tainted entry is not listed
        status, _, listing = raw_get(base, "/zarr/")
        assert status == 200 and b"leak" not in listing.replace(b"inside-link", b"")
        status, _, body = raw_get(base, "/zarr/inside-link")
        assert status == 200 and body == (root / "zarr.json").read_bytes()


HOSTILE = [
    "/entries/..", "/entries/%2e%2e/%2e%2e", "/entries/%2e%2e/imagefolder",
    f"/entries/{FAST_CKPT}/%2e%2e", f"/entries/{FAST_CKPT}/imagefolder/%2e%2e/ids",
    f"/entries/{FAST_CKPT}/imagefolder/%2e%2e/features.npy",
    "/entries/a%00b/imagefolder", f"/entries/{FAST_CKPT}/image%00folder",
    f"/entries/{FAST_CKPT}/imagefolder/te%00st/labels.npy",
    "/entries/" + "x" * 300 + "/imagefolder", f"/entries/{FAST_CKPT}/" + "y" * 300,
    f"/entries/{FAST_CKPT}/imagefolder/" + "s" * 300 + "/ids",
    "/entries/_results/imagefolder", "/entries/%5c/imagefolder",
    "/results/..%2f..%2fetc%2fpasswd/predictions.npy", "/results/%2e%2e/predictions.npy",
    "/results/a%00/predictions.npy", "/results/" + "r" * 300 + "/predictions.npy",
    "/results/zarr.json/predictions.npy", "/results?format=%00",
    "/zarr/%2e%2e/%2e%2e/etc/passwd", "/zarr/a%00b", "/zarr/" + "z" * 300,
    "/zarr/_results/%2e%2e/zarr.json", "/reports/%2e%2e", "/static/%2e%2e",
]


def test_hostile_paths_get_4xx_with_a_json_reason(served: str) -> None:
    with live_server(create_app(served)) as base:
        for path in HOSTILE:
            status, headers, body = raw_get(base, path)
            assert 400 <= status < 500, (path, status, body[:200])
            assert headers["content-type"].startswith("application/json"), path
            assert json.loads(body)["detail"], path


def test_head_answers_every_get_route(served: str) -> None:
    with live_server(create_app(served)) as base:
        rid = json.loads(raw_get(base, "/results")[2])[0]["result_id"]
        entry = f"/entries/{FAST_CKPT}/imagefolder"
        paths = ["/", "/docs", "/openapi.json", "/static/catalog.css", "/entries", entry,
                 f"{entry}/test/features.npy", f"{entry}/test/ids", "/results",
                 "/results?format=csv", f"/results/{rid}/predictions.npy", "/report",
                 "/zarr", "/zarr/zarr.json", "/entries/nope/imagefolder"]
        spec = json.loads(raw_get(base, "/openapi.json")[2])
        templated = {p for p in spec["paths"]}
        assert templated <= {"/entries", "/entries/{ckpt}/{dataset}", "/results", "/report",
                             "/entries/{ckpt}/{dataset}/{split}/{what}.npy",
                             "/entries/{ckpt}/{dataset}/{split}/ids", "/zarr",
                             "/results/{result_id}/predictions.npy", "/reports/{name}",
                             "/zarr/{key}"}, "a new GET route: add it to this test"
        for path in paths:
            g_status, g_headers, g_body = raw_get(base, path)
            h_status, h_headers, h_body = raw_get(base, path, method="HEAD")
            assert h_status == g_status, path
            assert h_body == b"", path
            assert h_headers["content-type"] == g_headers["content-type"], path
            assert int(h_headers["content-length"]) == len(g_body), path


def test_docs_work_offline(served: str) -> None:
    client = TestClient(create_app(served))
    page = client.get("/docs")
    assert page.status_code == 200 and 'href="/openapi.json"' in page.text
    assert "/entries/{ckpt}/{dataset}" in page.text
    for marker in ("http://", "https://", "//cdn"):  # nothing fetched from elsewhere
        assert marker not in page.text.replace("http://www.w3.org", "")
    assert client.get("/openapi.json").json()["info"]["title"] == "featurestore"


def test_token_guards_data_routes(served: str) -> None:
    client = TestClient(create_app(served, token="s3cret"))
    assert client.get("/entries").status_code == 401
    assert "Bearer" in client.get("/entries").json()["detail"]
    assert client.get("/entries", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/entries", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and len(ok.json()) == 1
    assert client.get("/zarr/zarr.json").status_code == 401
    assert client.get("/").status_code == 200  # the page shell carries no data


def _featurestore(*args: str, env: dict[str, str] | None = None,
                  **kw: Any) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("featurestore")
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})}, **kw)


def test_serve_beyond_loopback_needs_a_token(served: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FEATURESTORE_TOKEN"}
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("featurestore")), "serve", "--store", served,
         "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --host 0.0.0.0"), proc.stderr
    assert "--token" in lines[0] and "Traceback" not in proc.stderr


def test_served_with_token_end_to_end(served: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed command with FEATURESTORE_TOKEN; the Python client sends the same token."""
    port = free_port()
    proc = _featurestore("serve", "--store", served, "--host", "0.0.0.0", "--port", str(port),
                         env={"FEATURESTORE_TOKEN": "tok-123"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, _ = raw_get(base, "/entries")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
                time.sleep(0.2)
        assert status == 401
        status, _, body = raw_get(base, "/entries", headers={"Authorization": "Bearer tok-123"})
        assert status == 200 and json.loads(body)[0]["ckpt"] == FAST_CKPT
        monkeypatch.setenv("FEATURESTORE_TOKEN", "tok-123")
        remote = FeatureStore(f"{base}/zarr", read_only=True)
        assert len(remote.results.frame()) == 3
        X, _ = remote.load(FAST_CKPT, "imagefolder", "test")
        np.testing.assert_array_equal(X, FeatureStore(served).load(FAST_CKPT, "imagefolder",
                                                                   "test")[0])
    finally:
        proc.terminate()
        proc.wait(timeout=20)
