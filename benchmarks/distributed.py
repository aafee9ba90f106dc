"""What dask.distributed buys on one machine, each a ratio measured in the same run.

(a) one entry's extraction split by row-chunk ranges (``extract_entry_distributed``): 2 worker
    processes vs 1 (one thread each), on an ImageFolder of generated JPEGs. Goal >= 1.7x on 2 cores.
(b) a probe sweep over several entries (``sweep_distributed``, logistic path): 2 workers vs 1
    (one thread each). Goal >= 1.7x on 2 cores. The entries hold synthetic CNN-like features
    (:func:`benchmarks.probes.make_cnn_features`) written by the store's own writer.
(c) ``sweep --scheduler local`` vs the plain sweep on the same entries, cluster start-up included
    (what a user waits for). Goal >= 1.0x. Also printed: the same with a process ``LocalCluster``
    (workers x threads = cores), the alternative ``local`` does not use because of its start-up.

Worker clusters of (a) and (b) are started and warmed (torch and the store imported) before the
clock starts: a real cluster starts once and serves many jobs.

    python -m benchmarks.distributed [--ckpt efficientnet_lite0] [--images 96] [--entries 6]

Measured with the defaults (best of 3) on this 2-core machine, quiet (load average 1.3-2.0):
(a) 1.80x (6.5 s vs 3.6 s), (b) 1.80x (11.8 s vs 6.6 s), (c) 1.11x (plain 6.4 s vs local 5.7 s;
a process LocalCluster, start-up included, 12.7 s: 0.50x). Before the result rows stopped
importing timm and scikit-learn to read their versions, (b) was 1.28-1.62x: every worker's first
probe paid 5 s of imports.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def write_images(root: Path, n: int, classes: int = 4, size: int = 96) -> Path:
    """``root/{train,test}/<class>/*.jpg``: ``n`` noisy class-coloured JPEGs (3/4 train)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        split = "test" if i % 4 == 3 else "train"
        c = i % classes
        d = root / split / f"class_{c}"
        d.mkdir(parents=True, exist_ok=True)
        base = np.array([60 * c % 256, 255 - 50 * c % 256, 90], dtype=np.float32)
        img = np.clip(base + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"img_{i:05d}.jpg", quality=90)
    return root


def write_synthetic_entries(url: str, n_entries: int, n: int, d: int, c: int) -> list[str]:
    """``n_entries`` complete entries ``synthetic_<i>/synthetic`` through :class:`EntryWriter`
    (train/val/test = 60/20/20 of ``n`` rows); their checkpoint names."""
    from benchmarks.probes import make_cnn_features
    from featurestore.store import FeatureStore, SplitPlan

    fs = FeatureStore(url)
    names = []
    for i in range(n_entries):
        x, y = make_cnn_features(n, d, c, seed=i)
        cut = {"train": slice(0, int(0.6 * n)), "val": slice(int(0.6 * n), int(0.8 * n)),
               "test": slice(int(0.8 * n), n)}
        name = f"synthetic_{i}"
        with fs.writing(name, "synthetic") as w:
            plans = [SplitPlan(s, r.stop - r.start, d, 512) for s, r in cut.items()]
            w.begin(plans, {"dataset": {"name": "synthetic", "metric": "top1"},
                            "checkpoint": {"name": name}, "feature_dim": d},
                    {"synthetic": i, "n": n, "d": d, "c": c})
            for p in plans:
                w.write_split(p.name, x[cut[p.name]], y[cut[p.name]],
                              [f"{p.name}_{j}" for j in range(p.n)])
            w.finish({})
        names.append(name)
    return names


def _warm(ckpt: str | None, weights: str | None) -> None:
    """Imports (and the checkpoint, read once from disk) before the clock starts: what a
    long-lived cluster has done once, before the jobs being timed."""
    import featurestore.extract  # noqa: F401
    import probes.linear.protocol  # noqa: F401  (scikit-learn: 2 s to import here)
    import probes.linear.sweep  # noqa: F401

    if ckpt:
        from featurestore.checkpoints import load_checkpoint

        load_checkpoint(ckpt, weights)


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def on_workers(n: int, fn: Callable[[Any, int], Any], ckpt: str | None = None,
               weights: str | None = None, repeat: int = 1) -> float:
    """Seconds ``fn(client, i)`` takes on a warmed ``LocalCluster`` of ``n`` one-thread
    processes: the fastest of ``repeat`` runs (``i`` = 0, 1, ...; the machine may be shared)."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.run(_warm, ckpt, weights)
        return min(timed(lambda i=i: fn(client, i)) for i in range(max(1, repeat)))


def bench_extract(args: argparse.Namespace, tmp: Path) -> dict[int, float]:
    from featurestore_app.distributed import extract_entry_distributed

    images = write_images(tmp / "images", args.images)
    out = {}
    for n in (1, 2):
        out[n] = on_workers(n, lambda c, i, n=n: extract_entry_distributed(
            c, str(tmp / f"extract_{n}_{i}.zarr"), args.ckpt, "imagefolder", str(images),
            parts=n, batch_size=args.batch_size, chunk_batches=1, weights=args.weights,
            torch_threads=1), args.ckpt, args.weights, repeat=args.repeat)
    return out


def bench_sweep_workers(url: str, names: list[str], repeat: int) -> dict[int, float]:
    from featurestore_app.distributed import sweep_distributed

    return {n: on_workers(n, lambda c, i: sweep_distributed(c, url, names, None, ["logreg"],
                                                            device="cpu", force=True,
                                                            torch_threads=1), repeat=repeat)
            for n in (1, 2)}


def bench_local_vs_plain(url: str, names: list[str], repeat: int) -> dict[str, float]:
    """Best of ``repeat``: plain sweep, ``--scheduler local`` (in-process), process cluster."""
    from featurestore.store import FeatureStore
    from featurestore_app.distributed import dask_client, sweep_distributed
    from probes.linear.sweep import sweep

    def local(processes: bool) -> None:
        with dask_client("local", processes=processes) as c:
            sweep_distributed(c, url, names, None, ["logreg"], device="cpu", force=True)

    runs: dict[str, list[float]] = {"plain": [], "local": [], "local_processes": []}
    for _ in range(repeat):
        runs["plain"].append(timed(lambda: sweep(FeatureStore(url), names, None, ["logreg"],
                                                 device="cpu", force=True)))
        runs["local"].append(timed(lambda: local(False)))
        runs["local_processes"].append(timed(lambda: local(True)))
    return {k: min(v) for k, v in runs.items()}


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", default="efficientnet_lite0")
    ap.add_argument("--weights", default=None, help="default: the checkpoint's own")
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--entries", type=int, default=6)
    ap.add_argument("--rows", type=int, default=2000, help="rows per synthetic entry")
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--classes", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each measurement; the fastest counts (small jobs are noisy)")
    ap.add_argument("--skip-extract", action="store_true")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        url = str(tmp / "sweep.zarr")
        names = write_synthetic_entries(url, args.entries, args.rows, args.dim, args.classes)
        res: dict[str, float] = {}
        if not args.skip_extract:
            ex = bench_extract(args, tmp)
            res.update(extract_1w=ex[1], extract_2w=ex[2], extract_ratio=ex[1] / ex[2])
        sw = bench_sweep_workers(url, names, args.repeat)
        res.update(sweep_1w=sw[1], sweep_2w=sw[2], sweep_ratio=sw[1] / sw[2])
        lp = bench_local_vs_plain(url, names, args.repeat)
        res.update(plain=lp["plain"], local=lp["local"], local_processes=lp["local_processes"],
                   local_ratio=lp["plain"] / lp["local"],
                   local_processes_ratio=lp["plain"] / lp["local_processes"])

    load = os.getloadavg()
    print(f"cores {os.cpu_count()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if "extract_ratio" in res:
        print(f"(a) extract one entry ({args.images} images, {args.ckpt}): 1 worker "
              f"{res['extract_1w']:.1f}s, 2 workers {res['extract_2w']:.1f}s -> "
              f"{res['extract_ratio']:.2f}x (goal >= 1.7x)")
    print(f"(b) probe sweep, {args.entries} entries ({args.rows}x{args.dim}, {args.classes} "
          f"classes): 1 worker {res['sweep_1w']:.1f}s, 2 workers {res['sweep_2w']:.1f}s -> "
          f"{res['sweep_ratio']:.2f}x (goal >= 1.7x)")
    print(f"(c) sweep plain {res['plain']:.1f}s vs --scheduler local {res['local']:.1f}s -> "
          f"{res['local_ratio']:.2f}x (goal >= 1.0x); process LocalCluster "
          f"{res['local_processes']:.1f}s -> {res['local_processes_ratio']:.2f}x")
    return res


if __name__ == "__main__":
    main()
