"""Opening a store: concurrent creators of one new store all get it (workers of a cluster open a
store that does not exist yet at the same moment)."""

from __future__ import annotations

import threading
from pathlib import Path

from featurestore import FeatureStore


def test_many_processes_creating_one_new_store_all_open_it(tmp_path: Path) -> None:
    # Threads stand in for processes: the race is between Zarr's existence check and its create,
    # and a filesystem sees the same interleavings from threads. 20 rounds of 6 at a barrier made
    # several of them fail before the fix.
    for round_ in range(20):
        path = tmp_path / f"s{round_}.zarr"
        barrier = threading.Barrier(6)
        errors: list[BaseException] = []

        def open_store(path: Path = path, barrier: threading.Barrier = barrier,
                       errors: list[BaseException] = errors) -> None:
            barrier.wait()
            try:
                FeatureStore(str(path))
            except BaseException as e:  # noqa: BLE001 - collected and asserted below
                errors.append(e)

        threads = [threading.Thread(target=open_store) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert FeatureStore(str(path), read_only=True).entries() == []
