"""Run extraction and probe jobs on a dask.distributed cluster.

Every job names the store by URL, so a worker anywhere opens the same store through fsspec (a shared
filesystem, ``s3://``, ``gcs://``...). Jobs are independent (one per entry, or per entry x solver);
the per-entry locks of :mod:`featurestore.store.locking` keep two workers off the same entry, and the
results table is append-only with one object per row, so concurrent appends never collide.

``scheduler`` is a dask scheduler address (``tcp://host:8786``) or ``"local"`` for a
``LocalCluster`` on this machine (one single-threaded worker process per core).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from featurestore.extract import EntryReport


@contextlib.contextmanager
def dask_client(scheduler: str) -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    if scheduler == "local":
        with LocalCluster(threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client
    else:
        with Client(scheduler) as client:
            yield client


def _extract_job(store_url: str, ckpt: str, dataset: str, data_root: str | None,
                 options: dict[str, Any]) -> EntryReport | str:
    """Runs on a worker. Returns the report, or the error line (errors stay per entry)."""
    import torch

    from featurestore.datasets import get_dataset
    from featurestore.errors import FeatureStoreError
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore

    torch.set_num_threads(1)  # one worker per core: no oversubscription
    opts = dict(options)
    ds = get_dataset(dataset, data_root, allow_missing=opts.pop("allow_missing", False),
                     seed=opts.get("seed", 0))
    try:
        return extract_entry(FeatureStore(store_url), ckpt, ds, progress=False, **opts)
    except FeatureStoreError as e:
        return f"{ckpt}/{dataset}: {e}"


def extract_distributed(
    client: Any, store_url: str, ckpts: list[str], datasets: list[str],
    data_root: str | None = None, **options: Any,
) -> list[EntryReport | str]:
    """One extraction job per (checkpoint, dataset), spread over the cluster's workers."""
    options.setdefault("num_workers", 0)  # decode inside the dask worker: no nested processes
    futures = [client.submit(_extract_job, store_url, c, d, data_root, options, pure=False)
               for c in ckpts for d in datasets]
    return client.gather(futures)


def _probe_job(store_url: str, ckpt: str, dataset: str, solver: str, device: str,
               force: bool) -> Any:
    import torch

    from featurestore.store import FeatureStore
    from probes.linear.sweep import run_probe

    torch.set_num_threads(1)
    return run_probe(FeatureStore(store_url), ckpt, dataset, solver, device=device, force=force)


def sweep_distributed(
    client: Any, store_url: str, ckpts: list[str] | None, datasets: list[str] | None,
    solvers: list[str], *, device: str = "auto", force: bool = False,
    on_result: Callable[[Any], None] | None = None,
) -> list[Any]:
    """One probe job per complete entry x solver, spread over the cluster's workers."""
    from dask.distributed import as_completed

    from featurestore.store import FeatureStore

    entries = [e for e in FeatureStore(store_url, read_only=True).entries()
               if (not ckpts or e.ckpt in ckpts) and (not datasets or e.dataset in datasets)]
    futures = [client.submit(_probe_job, store_url, e.ckpt, e.dataset, s, device, force,
                             pure=False)
               for e in entries for s in solvers]
    out = []
    for fut in as_completed(futures):
        o = fut.result()
        out.append(o)
        if on_result:
            on_result(o)
    return out
