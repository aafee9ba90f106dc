"""Where a store lives: one small class per kind of URL, chosen once by :func:`backend_for`.

Everything that depends on the kind of storage (the Zarr store object, how a finished rewrite is
swapped in, how big an entry is, how an entry is locked, where job sidecar files go) is a method
here, so no other module tests URL strings.

- :class:`LocalBackend`: a path (or ``file://``); sidecars beside the store, ``flock`` locks.
- :class:`MemoryBackend`: ``memory://`` (one process; tests, scratch work).
- :class:`FsspecBackend`: any other fsspec URL (``s3://``, ``gcs://``...), lease-file locks.
- :class:`HttpBackend`: ``http(s)://host:port/zarr`` of ``featurestore serve``, read-only; its
  catalog comes from the service because HTTP cannot list a Zarr hierarchy.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import zarr
from zarr.storage import FsspecStore, LocalStore

from featurestore.errors import EntryNotFoundError
from featurestore.store import locking, swap


class Backend:
    """Base class: an fsspec filesystem addressed by URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    #: A local directory when the store is on this machine's filesystem (fast reads, flock).
    local_root: Path | None = None

    def zarr_store(self, read_only: bool) -> zarr.abc.store.Store:
        return FsspecStore.from_url(self.url, read_only=read_only)

    def _fs(self, suffix: str = "") -> tuple[Any, str]:
        import fsspec

        return fsspec.core.url_to_fs(self.url.rstrip("/") + suffix)

    def move(self, src: str, dst: str) -> None:
        """Replace group ``dst`` by group ``src`` (swapping a finished ``--force`` rewrite in)."""
        fs, base = self._fs()
        base = base.rstrip("/")
        if fs.exists(f"{base}/{dst}"):
            fs.rm(f"{base}/{dst}", recursive=True)
        fs.mv(f"{base}/{src}", f"{base}/{dst}", recursive=True)

    def nbytes(self, prefix: str) -> int:
        """Bytes stored under ``prefix`` (compressed size, as on disk)."""
        fs, path = self._fs("/" + prefix)
        return int(fs.du(path))

    def lock(self, key: str, wait: float) -> contextlib.AbstractContextManager[None]:
        """Exclusive write lock of ``key`` (an entry, or a job file)."""
        return locking.lease(self.url, key, wait)

    def sidecar(self, suffix: str) -> tuple[Any, str]:
        """An fsspec filesystem and path for files kept beside the store (``.jobs``)."""
        return self._fs(suffix)

    def served_entries(self, include_incomplete: bool) -> list[dict[str, Any]] | None:
        """The catalog when the backend cannot list the hierarchy itself (HTTP), else None."""
        return None


class LocalBackend(Backend):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.local_root = Path(url.removeprefix("file://")).expanduser().resolve()

    def zarr_store(self, read_only: bool) -> zarr.abc.store.Store:
        if read_only and not self.local_root.exists():
            raise EntryNotFoundError(f"no feature store at {self.local_root}")
        return LocalStore(self.local_root, read_only=read_only)

    def move(self, src: str, dst: str) -> None:
        # Atomic exchange where possible; otherwise recoverable on the next open (swap.recover).
        swap.replace_dir(self.local_root / src, self.local_root / dst)

    def nbytes(self, prefix: str) -> int:
        base = self.local_root / prefix
        return sum(p.stat().st_size for p in base.rglob("*") if p.is_file())

    def lock(self, key: str, wait: float) -> contextlib.AbstractContextManager[None]:
        return locking.flock(self.local_root, key, wait)

    def sidecar_dir(self, suffix: str) -> Path:
        """``<parent>/.<store name><suffix>``: outside the Zarr hierarchy, so Zarr never sees it."""
        return self.local_root.parent / f".{self.local_root.name}{suffix}"


class MemoryBackend(Backend):
    def lock(self, key: str, wait: float) -> contextlib.AbstractContextManager[None]:
        return locking.memory_lock(f"{self.url}/{key}", key, wait)


class FsspecBackend(Backend):
    """Object stores and other fsspec filesystems: the base behaviour."""


class HttpBackend(Backend):
    """A store served by ``featurestore serve``.

    Reads go through fsspec's HTTP filesystem. It lists a folder by reading the links of the
    folder's HTML page, which the service answers for every folder key under ``/zarr``: that is
    how Zarr finds the groups it cannot name in advance (the rows of the results table). When
    ``FEATURESTORE_TOKEN`` is set, every request carries ``Authorization: Bearer <token>``.
    """

    def _options(self) -> dict[str, Any]:
        import os

        token = os.environ.get("FEATURESTORE_TOKEN")
        return {"headers": {"Authorization": f"Bearer {token}"}} if token else {}

    def zarr_store(self, read_only: bool) -> zarr.abc.store.Store:
        return FsspecStore.from_url(self.url, read_only=read_only,
                                    storage_options=self._options())

    def served_entries(self, include_incomplete: bool) -> list[dict[str, Any]]:
        import fsspec

        base = self.url.rstrip("/").removesuffix("/zarr")
        flag = "true" if include_incomplete else "false"
        with fsspec.open(f"{base}/entries?all={flag}", "rb", **self._options()) as f:
            return json.loads(f.read())

    def lock(self, key: str, wait: float) -> contextlib.AbstractContextManager[None]:
        raise PermissionError(f"store {self.url} is served read-only over HTTP")


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def backend_for(url: str) -> Backend:
    """The backend of ``url``: the only place that looks at the URL's scheme."""
    url = str(url)
    if is_local(url):
        return LocalBackend(url)
    if url.startswith("memory://"):
        return MemoryBackend(url)
    if url.startswith(("http://", "https://")):
        return HttpBackend(url)
    return FsspecBackend(url)
