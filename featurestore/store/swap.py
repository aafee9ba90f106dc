"""Swapping a finished ``--force`` rewrite into place on a local file system, crash-safely.

Replacing a directory with another cannot be done with one plain ``rename`` (the target must be
empty). Two renames (old entry aside, new entry in) leave a moment when the entry has no name at
all: a crash there made it vanish, listed as ``<dataset>.old-<ns>``. So:

- On Linux, ``renameat2(RENAME_EXCHANGE)`` swaps the two directories atomically: at every instant
  the entry's name holds either the old or the new complete entry. The old one, now under the
  staging name, is deleted afterwards (a crash before that leaves a staging group, which is never
  listed and is replaced by the next rewrite).
- Elsewhere (or on a file system without exchange), the two renames are used, and
  :func:`recover` -- run whenever a store is opened for writing -- puts an entry left aside by an
  interrupted swap back under its name: the finished rewrite when it is still in the staging
  group, else the old entry.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import sys
import time
from pathlib import Path

from featurestore.store.layout import ATTR, COMPLETE, STAGING_SUFFIX

#: Marker between an entry's name and the time it was set aside by a two-rename swap.
TRASH_MARK = ".old-"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap directories ``a`` and ``b``; False where the OS or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def replace_dir(src: Path, dst: Path) -> None:
    """Put directory ``src`` at ``dst``, replacing what is there, never leaving ``dst`` nameless
    (atomic exchange) or, without exchange, recoverably so (see :func:`recover`)."""
    if dst.exists() and exchange(src, dst):
        shutil.rmtree(src, ignore_errors=True)  # the old entry, now under the staging name
        return
    trash = dst.with_name(dst.name + f"{TRASH_MARK}{time.time_ns()}")
    if dst.exists():
        dst.rename(trash)
    src.rename(dst)
    shutil.rmtree(trash, ignore_errors=True)


def _complete(group: Path) -> bool:
    try:
        attrs = json.loads((group / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False
    return (attrs.get(ATTR) or {}).get("status") == COMPLETE


def recover(root: Path) -> list[str]:
    """Finish or undo every two-rename swap interrupted under store ``root``; returns the entries
    put back. Cheap (one directory listing per checkpoint); harmless when nothing was interrupted.
    """
    fixed: list[str] = []
    if not root.is_dir():
        return fixed
    for trash in sorted(root.glob(f"*/*{TRASH_MARK}*")):
        if not trash.is_dir():
            continue
        dst = trash.with_name(trash.name.split(TRASH_MARK, 1)[0])
        staging = dst.with_name(dst.name + STAGING_SUFFIX)
        with contextlib.suppress(OSError):
            if not dst.exists():
                (staging if _complete(staging) else trash).rename(dst)
                fixed.append(f"{dst.parent.name}/{dst.name}")
            if trash.exists():
                shutil.rmtree(trash)
    return fixed
