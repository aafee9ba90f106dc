"""Where fine-tuning jobs keep their state between processes: one folder per job beside the store.

A job (checkpoint x dataset x setting x everything that changes a run's outcome) owns a folder:

* local store ``/data/featurestore.zarr`` -> ``/data/.featurestore.zarr.jobs/<job key>/`` (a
  sidecar, like the lock folder of :mod:`featurestore.store.locking`, so Zarr never sees stray
  files);
* fsspec store ``s3://b/fs.zarr`` -> ``s3://b/fs.zarr.jobs/<job key>/``.

Inside, each grid point (and the final train+val run) has a sub-folder holding ``state.pt`` (the
latest training checkpoint, replaced atomically) while it runs and ``result.json`` once it has
finished: a finished point is never recomputed, and an unfinished one resumes from ``state.pt``.
Each point is computed under its own lock, so several processes started on the same job share the
grid instead of duplicating it.

Atomic replacement: local files are written to a temporary name in the same folder, fsynced, then
``os.replace``d; on object stores one ``put`` is already atomic (readers see the old or the new
object, never a torn one).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from featurestore.store import FeatureStore
from featurestore.store.backends import LocalBackend

JOB_FORMAT = 1
STATE, RESULT, PREDICTIONS, JOB = "state.pt", "result.json", "test_predictions.npy", "job.json"


def job_key(fingerprint: dict[str, Any]) -> str:
    """``<setting>--<ckpt>--<dataset>--<12 hex of the fingerprint>``: readable, collision-safe."""
    blob = json.dumps({"format": JOB_FORMAT, **fingerprint}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]

    def safe(s: Any) -> str:
        return "".join(c if c.isalnum() or c in "._-" else "_" for c in str(s))[:60]

    return f"{safe(fingerprint['setting'])}--{safe(fingerprint['ckpt'])}--" \
           f"{safe(fingerprint['dataset'])}--{digest}"


class JobDir:
    """The folder of one job (see the module docstring) with atomic file reads and writes."""

    def __init__(self, store: FeatureStore, fingerprint: dict[str, Any]) -> None:
        self.store = store
        self.key = job_key(fingerprint)
        self.fingerprint = fingerprint
        backend = store.backend
        if isinstance(backend, LocalBackend):
            self.local: Path | None = backend.sidecar_dir(".jobs") / self.key
            self.fs: Any = None
            self.base = str(self.local)
        else:
            self.local = None
            self.fs, base = backend.sidecar(".jobs/" + self.key)
            self.base = base.rstrip("/")
        if not self.exists(JOB):
            self.write_json(JOB, {"format": JOB_FORMAT, "key": self.key, **fingerprint})

    def __repr__(self) -> str:
        return f"JobDir({self.base!r})"

    def _path(self, name: str) -> str:
        return f"{self.base}/{name}"

    def exists(self, name: str) -> bool:
        if self.local is not None:
            return (self.local / name).is_file()
        return bool(self.fs.exists(self._path(name)))

    def read_bytes(self, name: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        try:
            if self.local is not None:
                return (self.local / name).read_bytes()
            return bytes(self.fs.cat_file(self._path(name)))
        except FileNotFoundError:
            return None

    def write_bytes(self, name: str, data: bytes) -> None:
        """Replace ``name`` atomically (temp file + fsync + rename locally; one put remotely)."""
        if self.local is None:
            path = self._path(name)
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(path, data)
            return
        target = self.local / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.local is not None:
                (self.local / name).unlink()
            elif self.fs.exists(self._path(name)):
                self.fs.rm_file(self._path(name))

    def read_json(self, name: str) -> Any:
        data = self.read_bytes(name)
        return None if data is None else json.loads(data)

    def write_json(self, name: str, obj: Any) -> None:
        self.write_bytes(name, json.dumps(obj, indent=1, sort_keys=True).encode())

    def read_torch(self, name: str) -> Any:
        """A torch checkpoint (``weights_only``: tensors, dicts, lists and numbers only)."""
        import torch

        data = self.read_bytes(name)
        if data is None:
            return None
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)

    def write_torch(self, name: str, obj: Any) -> None:
        import torch

        buf = io.BytesIO()
        torch.save(obj, buf)
        self.write_bytes(name, buf.getvalue())

    def read_array(self, name: str) -> Any:
        import numpy as np

        data = self.read_bytes(name)
        return None if data is None else np.load(io.BytesIO(data), allow_pickle=False)

    def write_array(self, name: str, arr: Any) -> None:
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, np.asarray(arr), allow_pickle=False)
        self.write_bytes(name, buf.getvalue())

    @contextlib.contextmanager
    def lock(self, name: str, wait: float = 0.0) -> Iterator[None]:
        """Hold the lock of ``name`` within this job (raises ``EntryBusyError`` after ``wait``)."""
        with self.store.backend.lock(f"_jobs/{self.key}/{name}", wait):
            yield
