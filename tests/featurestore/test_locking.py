"""Per-entry write locks (featurestore/store/locking.py), exercised through the store backends.

Every lock is taken the way the writer takes it, ``FeatureStore(url).backend.lock(key, wait)``,
and contended by a real second process where the lock is meant to work across processes (local
flock, lease files): what a user would see is the second writer refused with the holder named,
and the entry free again once the holder is gone, even after ``kill -9``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from featurestore import FeatureStore
from featurestore.errors import EntryBusyError
from featurestore.store import locking
from featurestore.store.backends import FsspecBackend, LocalBackend, MemoryBackend, backend_for

KEY = "efficientnet_lite0/digits"
REPO = Path(__file__).resolve().parents[2]

#: A second process that takes ``lock(key, wait)`` on the store at argv[1]. It prints a JSON line
#: ``{"ready": true}`` just before asking for the lock, then one report: that it holds the lock
#: (a holder then keeps it until killed) or the error it got, and how long the attempt took.
_CONTENDER = textwrap.dedent(
    """
    import json, sys, time
    from featurestore import FeatureStore
    from featurestore.errors import EntryBusyError
    url, key, wait, hold = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "hold"
    store = FeatureStore(url)
    print(json.dumps({"ready": True}), flush=True)
    start = time.monotonic()
    try:
        with store.backend.lock(key, wait):
            print(json.dumps({"held": True, "after": time.monotonic() - start}), flush=True)
            time.sleep(120 if hold else 0)
    except EntryBusyError as e:
        print(json.dumps({"held": False, "error": str(e), "after": time.monotonic() - start}))
    """
)


def _contender(url: str, wait: float = 0.0, hold: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CONTENDER, url, KEY, str(wait), "hold" if hold else "try"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _line(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"contender exited without a report (rc={proc.wait(30)})"
    return json.loads(line)


def _ready(proc: subprocess.Popen[str]) -> None:
    """Wait until the contender has imported and is about to ask for the lock."""
    assert _line(proc) == {"ready": True}


def _report(proc: subprocess.Popen[str]) -> dict[str, object]:
    """The contender's outcome (waits for it; a holder keeps running afterwards)."""
    got = _line(proc)
    return _line(proc) if got == {"ready": True} else got


@pytest.fixture
def holder() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes started by a test, killed at the end whatever happens."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(30)


# ---------------------------------------------------------------------------- local: flock


def test_local_store_refuses_a_second_process_and_names_the_holder(tmp_path: Path) -> None:
    url = str(tmp_path / "features.zarr")
    fs = FeatureStore(url)
    assert isinstance(fs.backend, LocalBackend)
    with fs.backend.lock(KEY, 0.0):
        refused = _report(_contender(url))
        lock_files = list((tmp_path / ".features.zarr.locks").iterdir())
    assert refused["held"] is False
    assert f"entry {KEY} is being written by pid {os.getpid()} on {socket.gethostname()}" in str(
        refused["error"]
    )
    assert "--wait SECONDS" in str(refused["error"])
    # The lock lives beside the store, outside the Zarr hierarchy.
    assert len(lock_files) == 1 and not any("lock" in p.name for p in (tmp_path / url).iterdir())
    # Released: the same process and another one can take it again.
    with fs.backend.lock(KEY, 0.0):
        pass
    assert _report(_contender(url))["held"] is True


def test_local_lock_is_freed_when_its_holder_is_killed(tmp_path: Path, holder: list) -> None:
    url = str(tmp_path / "features.zarr")
    FeatureStore(url)
    proc = _contender(url, hold=True)
    holder.append(proc)
    assert _report(proc)["held"] is True
    fs = FeatureStore(url)
    with pytest.raises(EntryBusyError, match=f"pid {proc.pid} on"):
        with fs.backend.lock(KEY, 0.0):
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    start = time.monotonic()
    with fs.backend.lock(KEY, 0.0):  # no stale lock: the kernel dropped it with the process
        assert time.monotonic() - start < 1.0


def test_local_wait_is_honoured(tmp_path: Path) -> None:
    """``wait`` retries until the holder lets go, and fails only after waiting that long."""
    url = str(tmp_path / "features.zarr")
    fs = FeatureStore(url)
    with fs.backend.lock(KEY, 0.0):
        waiter = _contender(url, wait=20.0)
        _ready(waiter)
        time.sleep(1.0)  # the contender is blocked on the lock meanwhile
        assert waiter.poll() is None
    got = _report(waiter)
    assert got["held"] is True and 0.9 < float(got["after"]) < 20.0
    # it reports from inside the lock: it has let go only once it has exited (a loaded CI
    # machine once took the lock back in between)
    assert waiter.wait(30) == 0
    with fs.backend.lock(KEY, 0.0):
        refused = _report(_contender(url, wait=1.0))
    assert refused["held"] is False and "(waited 1s)" in str(refused["error"])
    assert 1.0 <= float(refused["after"]) < 5.0


def test_other_entries_are_not_blocked(tmp_path: Path) -> None:
    fs = FeatureStore(str(tmp_path / "features.zarr"))
    with fs.backend.lock(KEY, 0.0), fs.backend.lock("efficientnet_lite0/cifar10", 0.0):
        pass


# ---------------------------------------------------------------------------- memory://


def test_memory_store_lock_between_threads() -> None:
    fs = FeatureStore("memory://locking-test-a")
    other = FeatureStore("memory://locking-test-b")
    assert isinstance(fs.backend, MemoryBackend)
    with fs.backend.lock(KEY, 0.0):
        with pytest.raises(EntryBusyError, match=f"entry {KEY} is being written by another"):
            with FeatureStore("memory://locking-test-a").backend.lock(KEY, 0.0):
                pass
        with other.backend.lock(KEY, 0.0):  # same key in another store: independent
            pass
    with fs.backend.lock(KEY, 0.0):  # released on exit
        pass


def test_memory_store_wait_is_honoured() -> None:
    fs = FeatureStore("memory://locking-test-wait")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with fs.backend.lock(KEY, 0.0):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        held.wait(10)
        start = time.monotonic()
        with pytest.raises(EntryBusyError, match=r"\(waited 0.3s\)"):
            with fs.backend.lock(KEY, 0.3):
                pass
        assert time.monotonic() - start >= 0.3
        threading.Timer(0.3, release.set).start()
        start = time.monotonic()
        with fs.backend.lock(KEY, 5.0):
            assert 0.2 < time.monotonic() - start < 5.0
    finally:
        release.set()
        t.join(10)


# ---------------------------------------------------------------------------- lease files


def _lease_store(tmp_path: Path) -> tuple[str, Path]:
    """A store addressed through fsspec's ``local://`` protocol: the same disk, but routed to
    :class:`FsspecBackend`, so it locks with lease files as an object store does."""
    root = tmp_path / "features.zarr"
    root.mkdir()
    return f"local://{root}", tmp_path / "features.zarr.locks"


def test_lease_refuses_a_second_process_and_is_removed_on_release(tmp_path: Path) -> None:
    url, folder = _lease_store(tmp_path)
    fs = FeatureStore(url)
    assert isinstance(fs.backend, FsspecBackend) and type(backend_for(url)) is FsspecBackend
    with fs.backend.lock(KEY, 0.0):
        (lease_file,) = folder.iterdir()
        owner = json.loads(lease_file.read_text())
        refused = _report(_contender(url))
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    assert refused["held"] is False
    assert f"entry {KEY} is being written by pid {os.getpid()}" in str(refused["error"])
    assert list(folder.iterdir()) == []  # released: the lease object is deleted
    assert _report(_contender(url))["held"] is True


def test_abandoned_lease_is_taken_over(tmp_path: Path, holder: list) -> None:
    """A lease is not freed by kill -9 (object stores have no such notion); one not renewed
    within LEASE_TTL counts as abandoned and the next writer takes it."""
    url, folder = _lease_store(tmp_path)
    proc = _contender(url, hold=True)
    holder.append(proc)
    assert _report(proc)["held"] is True
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    fs = FeatureStore(url)
    with pytest.raises(EntryBusyError, match=f"pid {proc.pid} on"):
        with fs.backend.lock(KEY, 0.0):
            pass
    (lease_file,) = folder.iterdir()
    stale = json.loads(lease_file.read_text())
    stale["since"] -= locking.LEASE_TTL + 1
    lease_file.write_text(json.dumps(stale))
    with fs.backend.lock(KEY, 0.0):
        assert json.loads(lease_file.read_text())["pid"] == os.getpid()


def test_lease_wait_is_honoured(tmp_path: Path) -> None:
    url, _ = _lease_store(tmp_path)
    fs = FeatureStore(url)
    with fs.backend.lock(KEY, 0.0):
        start = time.monotonic()
        with pytest.raises(EntryBusyError, match=r"\(waited 1s\)"):
            with FeatureStore(url).backend.lock(KEY, 1.0):
                pass
        assert time.monotonic() - start >= 1.0


def test_lease_creates_its_folder(tmp_path: Path) -> None:
    root = tmp_path / "features.zarr"
    root.mkdir()
    with FeatureStore(f"local://{root}").backend.lock(KEY, 0.0):
        assert len(list((tmp_path / "features.zarr.locks").iterdir())) == 1
