"""Run extraction, probe and fine-tuning jobs on a dask.distributed cluster.

Every job names the store by URL, so a worker anywhere opens the same store through fsspec (a shared
filesystem, ``s3://``, ``gcs://``...). Jobs are independent (one per entry, entry x solver, grid
point); the per-entry locks of :mod:`featurestore.store.locking` keep two workers off the same
entry, and the results table is append-only with one object per row, so concurrent appends never
collide.

``scheduler`` is a dask scheduler address (``tcp://host:8786``) or ``"local"``. ``local`` must
never cost a user time on one machine's worth of work, so it starts no worker processes (each would
import torch again: seconds of start-up per worker on a small machine, measured 0.62x of the plain
sweep on 6 entries). It is an in-process cluster whose threads share the machine's cores with torch:
``workers x threads x torch threads = cores`` (:func:`torch_threads_for`). Fine-tuning is the
exception (:func:`training_client`): its runs take minutes, so ``local`` starts one single-threaded
worker process per core for it. Real clusters start their workers once and amortise that cost over
every job.

Three kinds of fan-out:

* one job per entry (``extract_distributed``) or per entry x solver (``sweep_distributed``);
* one entry across many workers (``extract_entry_distributed``): this process begins the entry and
  holds its lock, workers compute contiguous ranges of its row chunks, this process finishes it;
* every grid point of every fine-tuning job (``finetune_distributed``), the train+val run of a job
  depending on its grid's tasks; points are resumable jobs (:mod:`probes.finetune.jobs`), so a
  retried or rerun task never recomputes a finished point.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from featurestore.extract import EntryReport

#: Dask resource a worker declares (``dask worker --resources GPU=1``) to receive CUDA tasks.
GPU_RESOURCE = "GPU"


def local_threads(cores: int | None = None) -> int:
    """Task threads of the ``local`` cluster: one per core (at least one)."""
    return max(1, cores or os.cpu_count() or 1)


@contextlib.contextmanager
def dask_client(
    scheduler: str, *, processes: bool = False, n_workers: int | None = None,
    threads_per_worker: int | None = None,
) -> Iterator[Any]:
    """A client of ``scheduler``; for ``"local"`` a cluster started here and closed on exit.

    ``local`` defaults to one in-process worker with one task thread per core (no start-up of
    worker processes); ``processes=True`` starts ``n_workers`` worker processes instead (default:
    one per core), each with ``threads_per_worker`` threads (default: cores / workers). The
    process's torch thread count is restored on exit (in-process tasks change it).
    """
    from dask.distributed import Client, LocalCluster

    if scheduler != "local":
        with Client(scheduler) as client:
            yield client
        return
    import torch

    cores = local_threads()
    if processes:
        n = n_workers or cores
        threads = threads_per_worker or max(1, cores // n)
    else:
        n, threads = n_workers or 1, threads_per_worker or cores
    before = torch.get_num_threads()
    try:
        with LocalCluster(n_workers=n, threads_per_worker=threads, processes=processes,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            yield client
    finally:
        torch.set_num_threads(before)


def training_client(scheduler: str) -> contextlib.AbstractContextManager[Any]:
    """The client for fine-tuning: ``local`` starts one single-threaded worker process per core.
    Training runs take minutes, so the processes' start-up is amortised, and separate processes
    train grid points side by side (runs in threads of one process would have to take turns:
    torch's random generator is process-wide)."""
    if scheduler == "local":
        return dask_client(scheduler, processes=True, threads_per_worker=1)
    return dask_client(scheduler)


def host_threads(client: Any, *, per_process: bool = False) -> dict[str, int]:
    """Task threads per worker host: tasks on one host share its cores. ``per_process`` counts
    worker processes instead (for jobs that run one at a time per process)."""
    out: dict[str, int] = {}
    for addr, w in client.scheduler_info()["workers"].items():
        host = _host(addr)
        out[host] = out.get(host, 0) + (1 if per_process else int(w.get("nthreads", 1)))
    return out


def _host(addr: str) -> str:
    hostport = addr.split("://", 1)[-1]
    return hostport.rsplit(":", 1)[0] if ":" in hostport else hostport


def torch_threads_for(host_task_threads: dict[str, int]) -> int:
    """torch threads for a task on this worker: the host's cores over its task threads, so the
    tasks running side by side use every core without oversubscribing it."""
    try:
        from dask.distributed import get_worker

        host = _host(get_worker().address)
    except (ImportError, ValueError):
        host = socket.gethostname()
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, host_task_threads.get(host, 1)))


def _set_threads(threads: dict[str, int] | int) -> None:
    """torch's thread count for a task: fixed (an int), or shared out from the host's cores
    (task threads per host, see :func:`torch_threads_for`)."""
    import torch

    n = threads if isinstance(threads, int) else torch_threads_for(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _wants_gpu(client: Any, device: str) -> bool:
    """Whether tasks must run on a worker declaring the ``GPU`` resource: an explicit CUDA
    device, or ``auto`` on a cluster where some worker declares one."""
    if device.startswith("cuda"):
        return True
    if device != "auto":
        return False
    return any(GPU_RESOURCE in (w.get("resources") or {})
               for w in client.scheduler_info()["workers"].values())


# ---------------------------------------------------------------------------- extraction
def _extract_job(store_url: str, ckpt: str, dataset: str, data_root: str | None,
                 options: dict[str, Any], threads: dict[str, int]) -> EntryReport | str:
    """Runs on a worker. Returns the report, or the error line (errors stay per entry)."""
    from featurestore.datasets import get_dataset
    from featurestore.errors import FeatureStoreError
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore

    _set_threads(threads)
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
    """One extraction job per (checkpoint, dataset), spread over the cluster's workers; with fewer
    entries than task threads, each entry in turn is split by row chunks over all of them
    (:func:`extract_entry_distributed`), so one large entry still uses the whole cluster."""
    from featurestore.store import FeatureStore

    options.setdefault("num_workers", 0)  # decode inside the dask worker: no nested processes
    FeatureStore(store_url)  # created once here: workers creating it at once would collide
    threads = host_threads(client)
    pairs = [(c, d) for c in ckpts for d in datasets]
    if len(pairs) < sum(threads.values()):
        return [_split_entry_or_error(client, store_url, c, d, data_root, options)
                for c, d in pairs]
    futures = [client.submit(_extract_job, store_url, c, d, data_root, options, threads,
                             pure=False)
               for c in ckpts for d in datasets]
    return client.gather(futures)


def _split_entry_or_error(client: Any, store_url: str, ckpt: str, dataset: str,
                          data_root: str | None, options: dict[str, Any]) -> EntryReport | str:
    """:func:`extract_entry_distributed`, its errors as one line (errors stay per entry)."""
    from featurestore.errors import FeatureStoreError

    try:
        return extract_entry_distributed(client, store_url, ckpt, dataset, data_root, **options)
    except FeatureStoreError as e:
        return f"{ckpt}/{dataset}: {e}"


def chunk_ranges(pending: dict[str, list[int]], parts: int) -> list[dict[str, list[int]]]:
    """``pending`` row chunks (per split, in order) cut into at most ``parts`` contiguous ranges
    of near-equal length: each worker reads and writes one stretch of the entry."""
    flat = [(s, k) for s, ks in pending.items() for k in ks]
    parts = max(1, min(parts, len(flat)))
    out: list[dict[str, list[int]]] = []
    for i in range(parts):
        share: dict[str, list[int]] = {}
        for s, k in flat[i * len(flat) // parts:(i + 1) * len(flat) // parts]:
            share.setdefault(s, []).append(k)
        out.append(share)
    return [s for s in out if s]


def _chunks_job(store_url: str, path: str, ckpt: str, dataset: str, data_root: str | None,
                chunks: dict[str, list[int]], options: dict[str, Any],
                threads: dict[str, int] | int) -> int:
    """Runs on a worker: one range of one entry's row chunks (no lock: the coordinator holds it)."""
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_chunks
    from featurestore.store import FeatureStore

    _set_threads(threads)
    ds = get_dataset(dataset, data_root, seed=options.get("seed", 0))
    return extract_chunks(FeatureStore(store_url), path, ckpt, ds, chunks, **options)


_CHUNK_OPTIONS = ("weights", "batch_size", "device", "seed", "chunk_batches")


def extract_entry_distributed(
    client: Any, store_url: str, ckpt: str, dataset: str, data_root: str | None = None,
    *, parts: int | None = None, torch_threads: int | None = None, **options: Any,
) -> EntryReport:
    """One entry split by row-chunk ranges over the cluster's workers.

    This process plans, begins (or resumes) and finishes the entry under its lock; ``parts``
    ranges (default: one per task thread of the cluster) are computed by workers, each writing
    only its chunks and their ``done`` flags. A failed share leaves its unfinished chunks pending,
    so a rerun resumes exactly those. Byte-identical to a single-process extraction.
    ``torch_threads`` fixes each task's torch thread count (default: the host's cores shared
    among its task threads).
    """
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore

    host = host_threads(client)
    n_parts = parts or sum(host.values())
    threads: dict[str, int] | int = torch_threads or host
    chunk_opts = {k: options[k] for k in _CHUNK_OPTIONS if k in options}
    chunk_opts["num_workers"] = 0  # decode inside the dask worker: no nested processes
    gpu = {GPU_RESOURCE: 1} if _wants_gpu(client, options.get("device", "auto")) else None

    def fan_out(path: str, pending: dict[str, list[int]]) -> int:
        futures = [client.submit(_chunks_job, store_url, path, ckpt, dataset, data_root, share,
                                 chunk_opts, threads, pure=False, resources=gpu)
                   for share in chunk_ranges(pending, n_parts)]
        return int(sum(client.gather(futures)))

    opts = dict(options)
    ds = get_dataset(dataset, data_root, allow_missing=opts.pop("allow_missing", False),
                     seed=opts.get("seed", 0))
    return extract_entry(FeatureStore(store_url), ckpt, ds, progress=False, fan_out=fan_out,
                         **opts)


# ---------------------------------------------------------------------------- probe sweeps
def _probe_job(store_url: str, ckpt: str, dataset: str, solver: str, device: str,
               force: bool, threads: dict[str, int] | int) -> Any:
    from featurestore.store import FeatureStore
    from probes.linear.sweep import run_probe

    _set_threads(threads)
    return run_probe(FeatureStore(store_url), ckpt, dataset, solver, device=device, force=force)


def sweep_distributed(
    client: Any, store_url: str, ckpts: list[str] | None, datasets: list[str] | None,
    solvers: list[str], *, device: str = "auto", force: bool = False,
    on_result: Callable[[Any], None] | None = None, torch_threads: int | None = None,
) -> list[Any]:
    """One probe job per complete entry x solver, spread over the cluster's workers.

    ``torch_threads`` fixes each job's torch thread count (default: the host's cores shared
    among its task threads, so side-by-side jobs use every core without oversubscribing)."""
    from dask.distributed import as_completed

    from featurestore.store import FeatureStore

    entries = [e for e in FeatureStore(store_url, read_only=True).entries()
               if (not ckpts or e.ckpt in ckpts) and (not datasets or e.dataset in datasets)]
    threads: dict[str, int] | int = torch_threads or host_threads(client)
    gpu = {GPU_RESOURCE: 1} if _wants_gpu(client, device) else None
    futures = [client.submit(_probe_job, store_url, e.ckpt, e.dataset, s, device, force, threads,
                             pure=False, resources=gpu)
               for e in entries for s in solvers]
    out = []
    for fut in as_completed(futures):
        o = fut.result()
        out.append(o)
        if on_result:
            on_result(o)
    return out


# ---------------------------------------------------------------------------- fine-tuning
#: Training runs seed and draw from torch's process-wide generator, so two runs in threads of one
#: worker process would interleave their random streams: one run at a time per process (with all
#: of the process's share of the cores).
_TRAINING = threading.Lock()


def _point_job(store_url: str, ckpt: str, dataset: str, data_root: str | None, config: Any,
               point: str, procs: dict[str, int], on_step: Any) -> str:
    """Runs on a worker: one grid point of one job (read back when already finished)."""
    from probes.finetune.run import run_finetune

    with _TRAINING:
        _set_threads(procs)
        run_finetune(ckpt, dataset, config, store=store_url, data_root=data_root,
                     on_step=on_step, points=[point])
    return point


def _final_job(store_url: str, ckpt: str, dataset: str, data_root: str | None, config: Any,
               procs: dict[str, int], on_step: Any, *grid_done: str) -> Any:
    """Runs on a worker once every grid point of the job is done: reads the grid back, runs the
    train+val run of the winner and appends the row."""
    from probes.finetune.run import run_finetune

    with _TRAINING:
        _set_threads(procs)
        return run_finetune(ckpt, dataset, config, store=store_url, data_root=data_root,
                            on_step=on_step)


def finetune_distributed(
    client: Any, store_url: str, jobs: list[tuple[str, str, Any]],
    data_root: str | None = None, *, on_step: Any = None,
    on_result: Callable[[Any], None] | None = None,
) -> list[Any]:
    """Every grid point of every ``(ckpt, dataset, FinetuneConfig)`` job is a task; each job's
    train+val run is a task depending on its grid's. Points are resumable jobs: a task retried
    after its worker died continues from the point's last state, and a rerun reads finished
    points back. Points ask for one ``GPU`` when the job's device is CUDA (or ``auto`` on a
    cluster with GPU workers). A worker process trains one run at a time (see ``_TRAINING``)
    with its host's cores shared among the host's worker processes, so use one-thread workers
    (``local`` for fine-tuning: :func:`training_client`). Returns the
    :class:`FinetuneOutcome` of every job, in order.
    """
    from dask.distributed import as_completed

    from featurestore.store import FeatureStore
    from probes.finetune.run import grid_point_keys

    FeatureStore(store_url)  # created once here: workers creating it at once would collide
    threads = host_threads(client, per_process=True)
    finals = []
    for ckpt, dataset, config in jobs:
        gpu = {GPU_RESOURCE: 1} if _wants_gpu(client, config.device) else None
        keys = grid_point_keys(ckpt, dataset, config, data_root=data_root)
        points = [client.submit(_point_job, store_url, ckpt, dataset, data_root, config, k,
                                threads, on_step, pure=False, resources=gpu) for k in keys]
        finals.append(client.submit(_final_job, store_url, ckpt, dataset, data_root, config,
                                    threads, on_step, *points, pure=False, resources=gpu))
    if on_result is not None:
        for fut in as_completed(finals):
            on_result(fut.result())
    return client.gather(finals)
