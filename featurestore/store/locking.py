"""Per-entry write locks, so two processes never write the same (checkpoint, dataset) entry.

Each backend (:mod:`featurestore.store.backends`) picks one of these:

- Local stores: ``fcntl.flock`` on a file in a sidecar folder ``.<store-name>.locks/`` beside the
  store (outside the Zarr hierarchy, so Zarr never sees stray files). The kernel drops the lock when
  its holder dies, even by ``kill -9``, so there are no stale locks to clean up.
- ``memory://`` stores live in one process: a process-wide :class:`threading.Lock` per entry.
- Other fsspec filesystems (object stores) have no atomic create-if-absent, so a lease object with
  owner and expiry is written beside the store and read back to confirm ownership; a lease not
  renewed within ``LEASE_TTL`` seconds counts as abandoned. Best effort, and documented as such.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from featurestore.errors import EntryBusyError

LEASE_TTL = 600.0
_MEMORY_LOCKS: dict[str, threading.Lock] = {}
_MEMORY_GUARD = threading.Lock()


def _owner() -> dict[str, object]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}


def _describe(owner: dict[str, object] | None) -> str:
    if not owner:
        return "another process"
    since = time.strftime("%H:%M:%S", time.localtime(float(owner.get("since", 0))))
    return f"pid {owner.get('pid')} on {owner.get('host')} since {since}"


def _busy(key: str, owner: dict[str, object] | None, wait: float) -> EntryBusyError:
    waited = f" (waited {wait:g}s)" if wait else ""
    return EntryBusyError(
        f"entry {key} is being written by {_describe(owner)}{waited}; "
        "rerun when it finishes, or pass --wait SECONDS"
    )


def _lock_name(key: str) -> str:
    safe = key.replace("/", "--")
    return f"{safe[:80]}-{hashlib.sha1(key.encode()).hexdigest()[:10]}.lock"


@contextlib.contextmanager
def flock(local_root: Path, key: str, wait: float) -> Iterator[None]:
    folder = local_root.parent / f".{local_root.name}.locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _lock_name(key)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    try:
                        owner = json.loads(Path(path).read_text() or "null")
                    except (OSError, ValueError):
                        owner = None
                    raise _busy(key, owner, wait) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_owner()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def memory_lock(full: str, key: str, wait: float) -> Iterator[None]:
    with _MEMORY_GUARD:
        lock = _MEMORY_LOCKS.setdefault(full, threading.Lock())
    acquired = lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)
    if not acquired:
        raise _busy(key, None, wait)
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def lease(store_url: str, key: str, wait: float) -> Iterator[None]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(store_url.rstrip("/") + ".locks/" + _lock_name(key))
    # Object stores need no folders; filesystems with real ones (local://, sftp) do.
    fs.makedirs(fs._parent(path), exist_ok=True)
    me = {**_owner(), "token": uuid.uuid4().hex}
    deadline = time.monotonic() + wait
    while True:
        current = None
        if fs.exists(path):
            with contextlib.suppress(Exception):
                current = json.loads(fs.cat_file(path))
        if current is None or time.time() - float(current.get("since", 0)) > LEASE_TTL:
            fs.pipe_file(path, json.dumps(me).encode())
            if json.loads(fs.cat_file(path)).get("token") == me["token"]:
                break
        if time.monotonic() >= deadline:
            raise _busy(key, current, wait)
        time.sleep(0.5)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            fs.rm_file(path)
