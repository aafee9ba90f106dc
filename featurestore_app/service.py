"""``featurestore serve``: share a store over HTTP, read-only.

Endpoints (JSON unless stated; every ``GET`` also answers ``HEAD``):

- ``GET /`` - the catalog page (HTML + a little JavaScript, no CDN)
- ``GET /docs`` - an offline page listing the endpoints, linking ``/openapi.json``
- ``GET /entries`` - the catalog (``?all=true`` includes unfinished entries)
- ``GET /entries/{ckpt}/{dataset}`` - one entry's provenance
- ``GET /entries/{ckpt}/{dataset}/{split}/features.npy`` (and ``labels.npy``) - a whole split as an
  ``.npy`` body, ``numpy.load(io.BytesIO(body))`` on the client
- ``GET /entries/{ckpt}/{dataset}/{split}/ids`` - the sample ids
- ``GET /results`` - the results table (``?format=csv`` for CSV)
- ``GET /results/{result_id}/predictions.npy`` - one result's per-example test predictions
- ``GET /report`` - where the latest HTML report is (``{"url": ...}`` or ``{"url": null}``),
  ``GET /reports/{name}`` its pages
- ``GET /zarr/{key}`` - raw Zarr objects, so any Zarr v3 client reads the store directly:
  ``FeatureStore("http://host:port/zarr", read_only=True).load(ckpt, dataset, split)``. A key
  that is a folder answers an HTML list of links to its children, which is how fsspec's HTTP
  filesystem lists a folder: that is what lets a Zarr client list groups (the results table)
  over HTTP.

Safety, because a served store is read by people who did not write it:

- nothing here writes: the store is opened read-only;
- every name in a path is one plain path segment (no ``..``, no NUL, at most 255 characters),
  else 400 with a JSON reason; unknown names are 404; no input gives a 5xx;
- on a local store every file served, and every file an answer is computed from, resolves
  (symlinks followed) to a regular file inside the store root; anything that leads outside is 404,
  so a symlink placed in the store cannot publish ``/etc/passwd``;
- with a token (required by :func:`serve` beyond loopback) every data route needs
  ``Authorization: Bearer <token>``; the static pages (``/``, ``/docs``, ``/static``) carry no
  data and stay open so a browser can load the page that then asks for the token.
"""

from __future__ import annotations

import hmac
import html
import io
import ipaddress
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse

from featurestore.errors import EntryNotFoundError, FeatureStoreError
from featurestore.store import FeatureStore

NPY = "application/octet-stream"
STATIC = Path(__file__).with_name("static")
#: Longest single name accepted in a path (the usual file-system limit of one path component).
MAX_NAME = 255
#: Routes that carry no store data, so a browser can load them before it knows the token.
PUBLIC = re.compile(r"^/(|docs|static/.*|favicon\.ico)$")
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f/\\]")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BadName(HTTPException):
    """A path segment that cannot name anything in a store (400, with the reason)."""

    def __init__(self, what: str, name: str, why: str) -> None:
        shown = name if len(name) <= 40 else name[:40] + "..."
        super().__init__(400, f"bad {what} {shown!r}: {why}")


def check_name(what: str, name: str) -> str:
    """``name`` if it is one plain path segment, else :class:`BadName` saying why."""
    if name in ("", ".", ".."):
        raise BadName(what, name, "not a name")
    if len(name) > MAX_NAME:
        raise BadName(what, name, f"{len(name)} characters, at most {MAX_NAME}")
    if _BAD_CHARS.search(name):
        raise BadName(what, name, "contains a slash, backslash or control character")
    return name


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the service on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Confinement:
    """Which paths of a local store may be served: those resolving inside its root.

    Zarr's local store and ``open()`` follow symlinks, so a link placed inside the store could
    otherwise make the service read any file the server's user can read.
    """

    def __init__(self, root: Path | None) -> None:
        self.root = root.resolve() if root is not None else None

    def _inside(self, path: str | Path) -> bool:
        assert self.root is not None
        real = os.path.realpath(path)
        return real == str(self.root) or real.startswith(str(self.root) + os.sep)

    def file(self, key: str) -> Path | None:
        """The regular file of store key ``key`` when it is inside the root, else None."""
        assert self.root is not None
        path = self.root / key
        if not self._inside(path):
            return None
        return path if path.is_file() else None

    def tree(self, prefix: str) -> bool:
        """Whether ``prefix`` and everything under it (links followed) stays inside the root.

        True for a prefix that does not exist (the caller's own lookup then says 404), and for
        stores that are not local (object stores have no symlinks).
        """
        if self.root is None:
            return True
        top = self.root / prefix
        if not os.path.lexists(top):
            return True
        if not self._inside(top):
            return False
        seen: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
            real_dir = os.path.realpath(dirpath)
            if real_dir in seen:  # a link cycle inside the store: already checked
                dirnames[:] = []
                continue
            seen.add(real_dir)
            for name in (*dirnames, *filenames):
                full = os.path.join(dirpath, name)
                if os.path.islink(full) and not self._inside(full):
                    return False
        return True

    def children(self, key: str) -> list[str] | None:
        """Names under folder ``key`` that are served (links leaving the root hidden)."""
        assert self.root is not None
        path = self.root / key if key else self.root
        if not self._inside(path) or not path.is_dir():
            return None
        return sorted(p.name for p in path.iterdir() if self._inside(p))


def _npy(array: np.ndarray) -> Response:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return Response(buf.getvalue(), media_type=NPY)


def _listing(key: str, names: list[str]) -> HTMLResponse:
    """A folder as HTML links (relative to the folder), the format fsspec's HTTP ``ls`` parses."""
    base = "/zarr/" + (key + "/" if key else "")
    links = "\n".join(
        f'<li><a href="{html.escape(base + n, quote=True)}">{html.escape(n)}</a></li>'
        for n in names
    )
    return HTMLResponse(f"<!DOCTYPE html><title>{html.escape(base)}</title><ul>\n{links}\n</ul>")


def head_as_get(app: ASGIApp) -> ASGIApp:
    """Answer ``HEAD`` on every ``GET`` route: run the ``GET`` and send its headers only."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await app({**scope, "method": "GET"}, receive, headers_only)

    return wrapped


def _docs_page(schema: dict[str, Any]) -> str:
    """The offline ``/docs`` page: every operation of the OpenAPI schema, no external assets."""
    rows = []
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            params = ", ".join(p["name"] for p in op.get("parameters", []))
            rows.append(
                f"<tr><td>{method.upper()}</td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(params)}</td><td>{html.escape(op.get('summary', ''))}</td></tr>"
            )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>featurestore API</title>
<link rel="stylesheet" href="/static/catalog.css"></head>
<body><h1>featurestore API</h1>
<p>The machine-readable description is <a href="/openapi.json">/openapi.json</a>;
the store's catalog page is <a href="/">/</a>. Every GET also answers HEAD.
When the service was started with a token, send
<code>Authorization: Bearer &lt;token&gt;</code>.</p>
<table><thead><tr><th>method</th><th>path</th><th>parameters</th><th>what</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table></body></html>"""


def create_app(
    store_url: str, *, token: str | None = None, reports: Path | None = None
) -> ASGIApp:
    """The HTTP app for the store at ``store_url`` (opened read-only).

    ``token``: when set, data routes need ``Authorization: Bearer <token>`` (401 otherwise).
    ``reports``: the folder ``featurestore report`` writes into, linked from the catalog page.
    """
    store = FeatureStore(store_url, read_only=True)
    guard = Confinement(store.local_root)
    app = FastAPI(title="featurestore", description=f"read-only view of {store_url}",
                  docs_url=None, redoc_url=None)

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Response:
        if token is not None and not PUBLIC.match(request.url.path):
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return JSONResponse({"detail": "missing or wrong token: send "
                                               "'Authorization: Bearer <token>'"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.exception_handler(EntryNotFoundError)
    async def not_found(request: Request, exc: EntryNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(FeatureStoreError)
    async def unusable(request: Request, exc: FeatureStoreError) -> JSONResponse:
        # The request was fine; what is stored cannot answer it (a damaged entry): say why.
        return JSONResponse({"detail": str(exc)}, status_code=409)

    def entry_or_404(ckpt: str, dataset: str) -> Any:
        check_name("checkpoint", ckpt)
        check_name("dataset", dataset)
        if ckpt.startswith("_") or not guard.tree(f"{ckpt}/{dataset}"):
            raise HTTPException(404, f"no entry {ckpt}/{dataset}")
        return store.entry(ckpt, dataset)

    @app.get("/", include_in_schema=False)
    def catalog_page() -> FileResponse:
        return FileResponse(STATIC / "catalog.html", media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        path = STATIC / check_name("file", name)
        if not path.is_file():
            raise HTTPException(404, f"no static file {name}")
        return FileResponse(path)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(_docs_page(app.openapi()))

    @app.get("/entries", summary="The catalog: one row per entry")
    def entries(all: bool = False) -> list[dict[str, Any]]:
        rows = []
        for e in store.entries(include_incomplete=all, sizes=True):
            if guard.tree(f"{e.ckpt}/{e.dataset}"):
                rows.append({**e.as_dict(), "provenance": e.provenance})
        return rows

    @app.get("/entries/{ckpt}/{dataset}", summary="One entry's provenance")
    def provenance(ckpt: str, dataset: str) -> dict[str, Any]:
        return entry_or_404(ckpt, dataset).provenance

    @app.get("/entries/{ckpt}/{dataset}/{split}/{what}.npy", summary="A split's features/labels")
    def split_array(ckpt: str, dataset: str, split: str, what: str) -> Response:
        check_name("split", split)
        if what not in ("features", "labels"):
            raise HTTPException(404, f"no array {what[:40]!r} (features or labels)")
        entry_or_404(ckpt, dataset)
        X, y = store.load(ckpt, dataset, split)
        return _npy(X if what == "features" else y)

    @app.get("/entries/{ckpt}/{dataset}/{split}/ids", summary="A split's sample ids")
    def split_ids(ckpt: str, dataset: str, split: str) -> list[str]:
        check_name("split", split)
        entry_or_404(ckpt, dataset)
        return store.load_ids(ckpt, dataset, split)

    def result_rows() -> Any:
        df = store.results.frame()
        if guard.root is not None and len(df):
            df = df[[guard.tree(f"_results/{r}") for r in df["result_id"]]]
        return df

    @app.get("/results", summary="The results table (format=json|csv)")
    def results(format: str = "json") -> Response:
        from featurestore.results import ResultsTable

        if format not in ("json", "csv"):
            raise HTTPException(400, f"unknown format {format[:40]!r} (json or csv)")
        df = result_rows()
        if format == "csv":
            return PlainTextResponse(ResultsTable.to_csv_frame(df).to_csv(index=False),
                                     media_type="text/csv")
        return Response(df.to_json(orient="records"), media_type="application/json")

    @app.get("/results/{result_id}/predictions.npy", summary="One result's test predictions")
    def predictions(result_id: str) -> Response:
        check_name("result id", result_id)
        if not guard.tree(f"_results/{result_id}"):
            raise HTTPException(404, f"no result {result_id!r}")
        try:
            return _npy(store.results.predictions(result_id))
        except KeyError as e:
            raise HTTPException(404, str(e.args[0])) from None

    @app.get("/report", summary="Where the latest HTML report is")
    def report() -> dict[str, Any]:
        index = reports / "index.html" if reports is not None else None
        if index is None or not index.is_file():
            return {"url": None, "modified": None}
        return {"url": "/reports/index.html", "modified": index.stat().st_mtime}

    @app.get("/reports/{name}", summary="A page of the latest HTML report")
    def report_page(name: str) -> FileResponse:
        check_name("report page", name)
        path = reports / name if reports is not None else None
        if path is None or not path.is_file() or not Confinement(reports).file(name):
            raise HTTPException(404, f"no report page {name[:40]!r}")
        return FileResponse(path)

    @app.get("/zarr", summary="The store root's children (HTML links)")
    async def zarr_root() -> Response:
        return await zarr_key("")

    @app.get("/zarr/{key:path}", summary="A raw Zarr object, or a folder's children")
    async def zarr_key(key: str) -> Response:
        key = key.rstrip("/")
        if key:
            for part in key.split("/"):
                check_name("key part", part)
        if guard.root is not None:
            path = guard.file(key) if key else None
            if path is not None:
                return FileResponse(path, media_type=NPY)
            names = guard.children(key)
            if names is None:
                return JSONResponse({"detail": f"no object {key[:80]}"}, status_code=404)
            return _listing(key, names)
        from zarr.core.buffer import default_buffer_prototype

        buf = await store._store.get(key, prototype=default_buffer_prototype()) if key else None
        if buf is not None:
            return Response(buf.to_bytes(), media_type=NPY)
        names = sorted({n.split("/")[0] async for n in store._store.list_dir(key)})
        if not names:
            return JSONResponse({"detail": f"no object {key[:80]}"}, status_code=404)
        return _listing(key, names)

    return head_as_get(app)


class ServeConfigError(FeatureStoreError):
    """A ``serve`` invocation that would expose the store unsafely."""


def serve(
    store_url: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    reports: Path | None = None,
) -> None:
    """Run the service until interrupted; beyond loopback only with a token."""
    import uvicorn

    if not is_loopback(host) and not token:
        raise ServeConfigError(
            f"--host {host} exposes the store beyond this machine: pass --token or set "
            f"FEATURESTORE_TOKEN (clients then send 'Authorization: Bearer <token>')"
        )
    uvicorn.run(create_app(store_url, token=token or None, reports=reports),
                host=host, port=port, log_level="info")

