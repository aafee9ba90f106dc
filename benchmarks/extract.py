"""Extraction and read throughput, each a ratio against a named baseline measured in the same run.

(a) end-to-end ``extract_entry`` images/s (decode + resize in DataLoader workers, forward, Zarr
    writes) divided by forward-pass-only images/s (same model, batch size and images, already
    decoded and resized in memory). Target >= 0.85: loading, preprocessing and writes hidden
    behind compute.
(b) reading a full feature matrix with ``FeatureStore.load`` divided by ``numpy.load`` of the same
    array from an ``.npy`` on the same disk (both from a warm page cache). Target >= 0.7 with
    every chunk's crc32c verified (the default); ``verify=False`` is printed for reference.

    python -m benchmarks.extract [--ckpt efficientnet_lite0] [--images 512] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def bench_extract(ckpt: str, weights: str | None, n_images: int, batch_size: int,
                  workers: int | None) -> dict[str, float]:
    from featurestore.checkpoints import load_checkpoint
    from featurestore.datasets import get_dataset
    from featurestore.datasets.base import subset
    from featurestore.extract import extract_entry, preprocess_transform
    from featurestore.store import FeatureStore

    ds = get_dataset("digits")
    per = {s: ds.split(s) for s in ds.splits}
    total = sum(len(v) for v in per.values())
    ds._splits = {s: subset(v, np.arange(int(len(v) * n_images / total))) for s, v in per.items()}
    ids = [i for s in ds.splits for i in ds.split(s).ids]

    loaded = load_checkpoint(ckpt, weights)
    loaded.model.to(memory_format=torch.channels_last)
    tf = preprocess_transform(loaded)
    images = torch.stack([tf(ds.read(i)) for i in ids])
    mean = torch.tensor(loaded.data_config["mean"]).view(1, 3, 1, 1) * 255
    std = torch.tensor(loaded.data_config["std"]).view(1, 3, 1, 1) * 255
    with torch.inference_mode():  # warm-up (oneDNN primitive creation), not timed
        loaded.features(((images[:batch_size].float() - mean) / std)
                        .contiguous(memory_format=torch.channels_last))
        t0 = time.perf_counter()
        for s in range(0, len(images), batch_size):
            x = images[s:s + batch_size].contiguous(memory_format=torch.channels_last)
            loaded.features((x.float() - mean) / std).float().numpy()
        fwd = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        fs = FeatureStore(str(Path(tmp) / "bench.zarr"))
        t0 = time.perf_counter()
        rep = extract_entry(fs, loaded, ds, batch_size=batch_size, num_workers=workers,
                            progress=False)
        e2e = time.perf_counter() - t0
    n = len(ids)
    assert rep.n_images == n
    return {"images": n, "forward_img_s": n / fwd, "end_to_end_img_s": n / e2e,
            "ratio": (n / e2e) / (n / fwd)}


def bench_read(rows: int, dim: int, reps: int) -> dict[str, float]:
    from featurestore.extract import BATCHES_PER_CHUNK, DEFAULT_BATCH_SIZE
    from featurestore.store import FeatureStore, SplitPlan
    from featurestore.store.writer import chunk_rows_for

    rng = np.random.default_rng(0)
    X = np.maximum(rng.standard_normal((rows, dim), dtype=np.float32), 0)
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        npy = Path(tmp) / "features.npy"
        np.save(npy, X)
        fs = FeatureStore(str(Path(tmp) / "read.zarr"))
        # chunked as extraction chunks a split of this size
        plan = SplitPlan("train", rows, dim, chunk_rows_for(
            rows, DEFAULT_BATCH_SIZE, DEFAULT_BATCH_SIZE * BATCHES_PER_CHUNK))
        with fs.writing("synthetic", "bench") as w:
            w.begin([plan], {}, {})
            w.write_split("train", X, np.zeros(rows, np.int32), [str(i) for i in range(rows)])
            w.finish({})
        ours, unverified, base = [], [], []
        np.load(npy), fs.load("synthetic", "bench", "train")  # warm the page cache
        for _ in range(reps):  # interleaved, so load from other processes hits all alike
            t0 = time.perf_counter()
            a = np.load(npy)
            base.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b, _ = fs.load("synthetic", "bench", "train")
            ours.append(time.perf_counter() - t0)
            assert np.array_equal(a, b)
            del b
            t0 = time.perf_counter()
            b, _ = fs.load("synthetic", "bench", "train", verify=False)
            unverified.append(time.perf_counter() - t0)
            del a, b
    mb = X.nbytes / 2**20
    med = statistics.median
    return {"MiB": mb, "numpy_load_MiB_s": mb / med(base), "store_MiB_s": mb / med(ours),
            "ratio": med(base) / med(ours), "ratio_unverified": med(base) / med(unverified)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ckpt", default="efficientnet_lite0")
    p.add_argument("--weights", default=None)
    p.add_argument("--images", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--rows", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=1280)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--read-only", action="store_true", help="Only (b), the read benchmark.")
    a = p.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    if not a.read_only:
        e = bench_extract(a.ckpt, a.weights, a.images, a.batch_size, a.workers)
        print(f"(a) extraction, {a.ckpt}, batch {a.batch_size}, {e['images']} digits images: "
              f"forward-only {e['forward_img_s']:.1f} img/s, end-to-end "
              f"{e['end_to_end_img_s']:.1f} img/s -> ratio {e['ratio']:.3f} (target >= 0.85)")
    r = bench_read(a.rows, a.dim, a.reps)
    print(f"(b) read [{a.rows} x {a.dim}] float32 ({r['MiB']:.0f} MiB): numpy.load "
          f"{r['numpy_load_MiB_s']:.0f} MiB/s, FeatureStore.load {r['store_MiB_s']:.0f} MiB/s -> "
          f"ratio {r['ratio']:.3f} with crc32c verified (target >= 0.7); "
          f"verify=False {r['ratio_unverified']:.3f}")


if __name__ == "__main__":
    main()
