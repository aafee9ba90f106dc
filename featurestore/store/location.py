"""Opening a store's root group, with the checks that keep a typo from doing damage.

A read command (``probe``, ``ls``, ``serve``...) must never create a store where the user
mistyped a path, and ``extract`` must never turn an unrelated non-empty directory (a home folder,
``/``) into one. Remote URLs fail here, naming the URL, when the scheme is unknown or the server
cannot be reached. Every refusal is a :class:`StoreLocationError` raised before anything is
written.
"""

from __future__ import annotations

from pathlib import Path

import zarr

from featurestore.errors import FeatureStoreError, StoreLocationError
from featurestore.store import swap
from featurestore.store.backends import Backend

#: The file that makes a directory a Zarr v3 group.
_ZARR_JSON = "zarr.json"


def check_local(root: Path, *, create: bool) -> None:
    """Refuse a local store path that is not a store and must not become one."""
    if root.exists() and not root.is_dir():
        raise StoreLocationError(f"store path {root} is a file, not a store directory")
    if not root.exists():
        if not create:
            raise StoreLocationError(
                f"no feature store at {root} (check --store; `featurestore extract` creates one)"
            )
        return
    if (root / _ZARR_JSON).is_file():
        return
    if not create:
        raise StoreLocationError(f"{root} is a directory but not a feature store (no zarr.json)")
    # Zarr writes zarr.json through a temporary ``zarr.<uuid>.partial``: a directory holding only
    # that (or, a moment later, the zarr.json it became) is a store another process is creating
    # right now, not someone's files.
    if any(p.name != _ZARR_JSON and not (p.name.startswith("zarr.") and p.name.endswith(".partial"))
           for p in root.iterdir()):
        raise StoreLocationError(
            f"{root} is a non-empty directory that is not a feature store; refusing to create a "
            "store in it (give a new or empty path, e.g. ./featurestore.zarr)"
        )


def open_root(backend: Backend, url: str, *, read_only: bool, create: bool
              ) -> tuple[zarr.abc.store.Store, zarr.Group]:
    """The backend's Zarr store and root group, opened ``r`` (read-only), ``r+`` (must exist) or
    ``a`` (may be created)."""
    if backend.local_root is not None:
        check_local(backend.local_root, create=create and not read_only)
        # An entry set aside by an interrupted --force swap gets its name back (even for a read:
        # otherwise `ls` would not list it); best effort on a read-only file system.
        swap.recover(backend.local_root)
    mode = "r" if read_only else ("a" if create else "r+")
    try:
        store = backend.zarr_store(read_only)
        try:
            return store, zarr.open_group(store, mode=mode, zarr_format=3)
        except zarr.errors.ContainsGroupError:
            # Another process created the store between Zarr's check and its create (workers
            # opening a new store at once): open the store it made.
            return store, zarr.open_group(store, mode="r+", zarr_format=3)
    except FeatureStoreError:
        raise
    except OSError as e:
        where = e.filename or url
        raise StoreLocationError(f"cannot open store {where}: {e.strerror or e}") from e
    except Exception as e:  # fsspec/aiohttp/zarr raise many types: one line naming the URL
        if "protocol" in str(e).lower() and "known" in str(e).lower():
            raise StoreLocationError(f"unknown URL scheme in store {url!r} ({e})") from e
        if isinstance(e, zarr.errors.GroupNotFoundError) or "not found" in str(e).lower():
            raise StoreLocationError(f"no feature store at {url}") from e
        raise StoreLocationError(f"cannot open store {url}: {type(e).__name__}: {e}") from e
