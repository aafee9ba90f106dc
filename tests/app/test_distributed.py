"""Extraction and probe sweeps on a dask.distributed cluster (worker processes on this machine)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from featurestore.store import FeatureStore
from tests.conftest import FAST_CKPT


@pytest.fixture(scope="module")
def client():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as c:
        yield c


def test_extract_and_sweep_on_cluster(client, imagefolder: Path, store_url: str) -> None:
    from featurestore_app.distributed import extract_distributed, sweep_distributed

    ckpts = [FAST_CKPT, "test_vit"]
    reports = extract_distributed(client, store_url, ckpts, ["imagefolder"], str(imagefolder),
                                  weights="random", batch_size=8)
    assert sorted(r.ckpt for r in reports) == sorted(ckpts)
    assert all(r.status == "extracted" and r.n_images == 36 for r in reports)
    fs = FeatureStore(store_url)
    assert sorted(e.ckpt for e in fs.entries()) == sorted(ckpts)

    # Same features as a local, single-process extraction of the same entry.
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry

    local = FeatureStore(str(Path(store_url).with_name("local.zarr")))
    extract_entry(local, FAST_CKPT, get_dataset("imagefolder", imagefolder), weights="random",
                  batch_size=8, num_workers=0, progress=False)
    np.testing.assert_allclose(fs.load(FAST_CKPT, "imagefolder", "test")[0],
                               local.load(FAST_CKPT, "imagefolder", "test")[0], rtol=1e-5,
                               atol=1e-6)

    # A second submission finds everything complete; a bad dataset root is reported per entry.
    again = extract_distributed(client, store_url, ckpts, ["imagefolder"], str(imagefolder),
                                weights="random", batch_size=8)
    assert {r.status for r in again} == {"skipped"}
    bad = extract_distributed(client, store_url, ["test_resnet"], ["imagefolder"],
                              str(imagefolder / "missing"), weights="random")
    assert isinstance(bad[0], str) and "expected under" in bad[0]

    outcomes = sweep_distributed(client, store_url, None, None, ["logreg", "svm"], device="cpu")
    assert len(outcomes) == 4 and {o.status for o in outcomes} == {"done"}
    df = fs.results.frame()
    assert len(df) == 4 and set(df.setting) == {"logreg", "svm"}


def _entry_files(store_url: str, entry: str) -> dict[str, bytes]:
    """Every file of an entry's split arrays (chunks, checksummed, and their metadata); the
    entry's own ``zarr.json`` differs by its timings and is left out."""
    root = Path(store_url) / entry
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.parent != root}


def test_one_entry_split_across_two_workers_is_byte_identical(
        client, imagefolder: Path, tmp_path: Path) -> None:
    import torch

    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry
    from featurestore_app.distributed import chunk_ranges, extract_entry_distributed

    opts = {"weights": "random", "batch_size": 4, "chunk_batches": 1}
    dist_url = str(tmp_path / "dist.zarr")
    report = extract_entry_distributed(client, dist_url, FAST_CKPT, "imagefolder",
                                       str(imagefolder), **opts)
    assert report.status == "extracted" and report.n_images == 36
    fs = FeatureStore(dist_url)
    assert [e.ckpt for e in fs.entries()] == [FAST_CKPT]

    # The shares really were spread: contiguous ranges, every chunk exactly once.
    pending = {"train": [0, 1, 2, 3, 4], "val": [0, 1], "test": [0, 1, 2]}
    shares = chunk_ranges(pending, 2)
    assert shares == [{"train": [0, 1, 2, 3, 4]}, {"val": [0, 1], "test": [0, 1, 2]}]
    assert chunk_ranges({"train": [0]}, 4) == [{"train": [0]}]

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' thread count: the same reductions, the same bits
    try:
        local_url = str(tmp_path / "local.zarr")
        extract_entry(FeatureStore(local_url), FAST_CKPT, get_dataset("imagefolder", imagefolder),
                      num_workers=0, progress=False, **opts)
    finally:
        torch.set_num_threads(before)
    entry = f"{FAST_CKPT}/imagefolder"
    dist, local = _entry_files(dist_url, entry), _entry_files(local_url, entry)
    chunk_files = [k for k in local if "/c/" in k]
    assert len(chunk_files) >= 30  # 10 row chunks x (features, labels, ids, done)
    assert dist.keys() == local.keys()
    assert [k for k in local if dist[k] != local[k]] == []

    again = extract_entry_distributed(client, dist_url, FAST_CKPT, "imagefolder",
                                      str(imagefolder), **opts)
    assert again.status == "skipped"


def test_local_scheduler_runs_in_process_on_every_core(imagefolder: Path, store_url: str) -> None:
    """``--scheduler local`` starts no worker processes (their start-up made it slower than the
    plain sweep) and gives the same numbers as the plain sweep."""
    import os
    import shutil

    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry
    from featurestore_app.distributed import dask_client, sweep_distributed
    from probes.linear.sweep import sweep

    fs = FeatureStore(store_url)
    extract_entry(fs, FAST_CKPT, get_dataset("imagefolder", imagefolder), weights="random",
                  batch_size=8, num_workers=0, progress=False)
    plain_url = str(Path(store_url).with_name("plain.zarr"))
    shutil.copytree(store_url, plain_url)
    with dask_client("local") as c:
        workers = c.scheduler_info()["workers"]
        assert len(workers) == 1
        assert [w["nthreads"] for w in workers.values()] == [os.cpu_count()]
        assert all(str(a).startswith("inproc://") for a in workers)
        dist = sweep_distributed(c, store_url, None, None, ["logreg", "svm"], device="cpu")
    plain = sweep(FeatureStore(plain_url), None, None, ["logreg", "svm"], device="cpu")
    got = {(o.solver, o.test_metric, o.best_param) for o in dist}
    assert len(got) == 2 and got == {(o.solver, o.test_metric, o.best_param) for o in plain}


@pytest.mark.slow
def test_finetune_grid_on_two_workers_survives_a_killed_worker(client, tmp_path: Path) -> None:
    """Every grid point is a task: the row equals the sequential run's with the same seeds; a
    worker killed mid-point is replaced, the point resumes from its last state (no step is
    trained twice), and a rerun recomputes nothing."""
    import os

    import torch

    from featurestore_app.distributed import finetune_distributed
    from probes.finetune.jobs import RESULT
    from probes.finetune.run import FinetuneConfig, run_finetune
    from tests.conftest import write_imagefolder

    images = write_imagefolder(tmp_path / "images", classes=3, train=6, test=3, size=32,
                               fmt="PNG")
    config = FinetuneConfig(setting="finetune", grid="lr=0.01;0.1", steps=2, batch_size=5,
                            eval_every=2, ckpt_every=1, weights="random", progress=False,
                            image_size=64, num_workers=0, device="cpu")
    arch = "test_efficientnet"
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' thread count
    try:
        seq = run_finetune(arch, "imagefolder", config, store=str(tmp_path / "seq.zarr"),
                           data_root=images)
    finally:
        torch.set_num_threads(before)

    steps_log, marker = tmp_path / "steps.log", tmp_path / "killed"

    def kill_once(name: str, done: int) -> None:  # runs on the workers (pickled by value)
        with open(steps_log, "a") as f:
            f.write(f"{name} {done}\n")
        if name.startswith("lr=0.1_") and done == 1 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker process dies mid-point, after its step-1 state

    url = str(tmp_path / "dist.zarr")
    [out] = finetune_distributed(client, url, [(arch, "imagefolder", config)], str(images),
                                 on_step=kill_once)
    assert marker.exists()
    assert out.status == "done" and out.test_metric == seq.test_metric
    for key in ("val_curve", "hyperparams", "val_metric", "curve_steps", "n_train"):
        got, want = out.row[key], seq.row[key]
        if key == "val_curve":  # timings differ run to run
            got = [{k: v for k, v in p.items() if k != "steps_per_s"} for p in got]
            want = [{k: v for k, v in p.items() if k != "steps_per_s"} for p in want]
        assert got == want, key
    lines = steps_log.read_text().split("\n")[:-1]
    runs: dict[str, list[int]] = {}
    for line in lines:
        name, done = line.rsplit(" ", 1)
        runs.setdefault(name.split("_")[0], []).append(int(done))
    # each point and the final run trained each step exactly once (the killed one resumed at 2)
    assert runs == {"lr=0.01": [1, 2], "lr=0.1": [1, 2], "final": [1, 2]}

    job_dir = next((tmp_path / ".dist.zarr.jobs").iterdir())
    results = sorted(job_dir.glob(f"*/{RESULT}"))
    assert len(results) == 3
    mtimes = [p.stat().st_mtime_ns for p in results]
    config.force = True  # a second row from the same job: every point is read back
    [again] = finetune_distributed(client, url, [(arch, "imagefolder", config)], str(images),
                                   on_step=kill_once)
    assert again.status == "done" and again.test_metric == seq.test_metric
    assert steps_log.read_text().split("\n")[:-1] == lines
    assert [p.stat().st_mtime_ns for p in results] == mtimes
    assert len(FeatureStore(url).results.frame()) == 2


@pytest.mark.slow
def test_finetune_cli_with_local_scheduler(imagefolder: Path, tmp_path: Path) -> None:
    """``featurestore finetune --smoke --scheduler local`` (installed command) writes the row the
    sequential run computes with the same seeds."""
    import json
    import subprocess
    import sys

    import torch

    from probes.finetune.run import FinetuneConfig, run_finetune

    url = str(tmp_path / "cli.zarr")
    exe = Path(sys.executable).with_name("featurestore")
    proc = subprocess.run(
        [str(exe), "finetune", "--ckpt", "test_efficientnet", "--dataset", "imagefolder",
         "--data-root", str(imagefolder), "--store", url, "--weights", "random", "--smoke",
         "--scheduler", "local", "--json", "--quiet"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads(proc.stdout)
    assert row["status"] == "done"

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # one torch thread per task thread of the 'local' cluster
    try:
        seq = run_finetune("test_efficientnet", "imagefolder",
                           FinetuneConfig(setting="finetune", grid="lr=0.01", steps=2,
                                          batch_size=8, image_size=32, weights="random",
                                          progress=False, num_workers=0, device="cpu"),
                           store=str(tmp_path / "seq.zarr"), data_root=imagefolder)
    finally:
        torch.set_num_threads(before)
    assert row["test_metric"] == seq.test_metric
    assert row["hyperparams"]["lr"] == 0.01
    assert len(FeatureStore(url).results.frame()) == 1


def test_gpu_check_without_cuda_says_so_and_exits_0() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], capture_output=True,
                          text=True, timeout=120, env=env, cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA device" in proc.stdout


@pytest.mark.slow
def test_finetune_points_in_threads_of_one_process_match_the_sequential_run(
        tmp_path: Path) -> None:
    """Two task threads in one worker process (the in-process cluster, or a multi-threaded
    worker): training runs seed and draw from torch's process-wide random generator, so they
    take turns (no two runs' steps interleave) and the row is the sequential run's."""
    import time

    import torch

    from featurestore_app.distributed import dask_client, finetune_distributed
    from probes.finetune.run import FinetuneConfig, run_finetune
    from tests.conftest import write_imagefolder

    images = write_imagefolder(tmp_path / "images", classes=3, train=6, test=3, size=32,
                               fmt="PNG")
    config = FinetuneConfig(setting="finetune", grid="lr=0.01;0.1", steps=2, batch_size=5,
                            eval_every=2, weights="random", progress=False, image_size=64,
                            num_workers=0, device="cpu")
    log = tmp_path / "steps.log"

    def slow_steps(name: str, done: int) -> None:  # tasks are pickled: log to a file
        with open(log, "a") as f:
            f.write(f"{name} {time.monotonic()}\n")
        time.sleep(0.5)  # room for the other thread's run to interleave, were it allowed to

    with dask_client("local", threads_per_worker=2) as c:
        [out] = finetune_distributed(c, str(tmp_path / "dist.zarr"),
                                     [("test_efficientnet", "imagefolder", config)], str(images),
                                     on_step=slow_steps)
    steps = [line.rsplit(" ", 1) for line in log.read_text().splitlines()]
    order = [name.split("_")[0] for name, _ in sorted(steps, key=lambda t: float(t[1]))]
    assert len(order) == 6 and order[4:] == ["final", "final"]
    assert order[0] == order[1] and order[2] == order[3] and order[0] != order[2]
    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # one run at a time with every core, as above
    try:
        seq = run_finetune("test_efficientnet", "imagefolder", config,
                           store=str(tmp_path / "seq.zarr"), data_root=images)
    finally:
        torch.set_num_threads(before)
    assert out.test_metric == seq.test_metric
    assert [p["val_metric"] for p in out.row["val_curve"]] == \
        [p["val_metric"] for p in seq.row["val_curve"]]
    assert [p["final_train_loss"] for p in out.row["val_curve"]] == \
        [p["final_train_loss"] for p in seq.row["val_curve"]]


def test_a_failed_share_leaves_only_its_chunks_pending(imagefolder: Path, tmp_path: Path) -> None:
    """A coordinator whose fan-out dies after one worker's share leaves an in-progress entry
    with exactly that share done; a rerun computes only the rest. A worker with other options
    than the coordinator's is refused instead of writing chunks of another computation."""
    from featurestore.datasets import get_dataset
    from featurestore.errors import FeatureStoreError
    from featurestore.extract import extract_chunks, extract_entry
    from featurestore_app.distributed import chunk_ranges

    opts = {"weights": "random", "batch_size": 4, "chunk_batches": 1}
    ds = get_dataset("imagefolder", imagefolder)
    fs = FeatureStore(str(tmp_path / "s.zarr"))
    seen: dict[str, list[int]] = {}

    def first_share_then_die(path: str, pending: dict[str, list[int]]) -> int:
        seen.update(pending)
        first = chunk_ranges(pending, 2)[0]
        with pytest.raises(FeatureStoreError, match="another computation"):
            extract_chunks(fs, path, FAST_CKPT, ds, first, weights="random", batch_size=8,
                           chunk_batches=1)
        extract_chunks(fs, path, FAST_CKPT, ds, first, **opts)
        raise RuntimeError("coordinator lost its cluster")

    with pytest.raises(RuntimeError, match="lost its cluster"):
        extract_entry(fs, FAST_CKPT, ds, progress=False, fan_out=first_share_then_die, **opts)
    assert not fs.has_complete(FAST_CKPT, "imagefolder")
    rerun = extract_entry(fs, FAST_CKPT, ds, progress=False, num_workers=0, **opts)
    assert rerun.status == "resumed"
    first = chunk_ranges(seen, 2)[0]
    rows_first = sum(min(rerun.splits[s], 4 * (k + 1)) - 4 * k
                     for s, ks in first.items() for k in ks)
    assert 0 < rows_first < 36 and rerun.n_images == 36 - rows_first
    assert fs.has_complete(FAST_CKPT, "imagefolder")


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores to tell the counts apart")
def test_jobs_share_the_hosts_cores_unless_the_thread_count_is_fixed() -> None:
    """On a lone one-thread worker a job's torch threads are the host's cores; a fixed count
    (``torch_threads=1``: the benchmark's one-thread-per-worker baseline) pins them. Checked
    inside a task: torch's thread count belongs to the thread that sets it."""
    import torch
    from dask.distributed import Client, LocalCluster

    from featurestore_app.distributed import _set_threads, host_threads

    def job(threads: dict[str, int] | int) -> int:
        _set_threads(threads)
        return torch.get_num_threads()

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as c:
        shared = host_threads(c)
        assert sum(shared.values()) == 1
        assert c.submit(job, shared, pure=False).result() == os.cpu_count()
        assert c.submit(job, 1, pure=False).result() == 1
