"""Every CUDA path once, in one table: a prepared check for the day a GPU is lent (< 5 minutes).

1. Linear probes (logistic and SVM paths) on CUDA vs CPU on the same synthetic CNN-like features
   (N=10,000, D=1,280, C=100; on CUDA train/val are GPU tensors, as ``run_probe`` reads them):
   chosen regularisation and test accuracy must agree; both times.
2. Extraction on CUDA (bf16 autocast, channels_last): end-to-end ``extract_entry`` img/s (decode,
   resize, forward, Zarr writes) with the GPU JPEG decoder (``decode_jpeg(device="cuda")``, the
   ``auto`` choice on CUDA) and with PIL in the workers, vs forward-only img/s of the same images
   already on the GPU; the two decoders' features must agree closely (cosine). The images are
   generated JPEGs (``--images``, 500x375 like the paper's datasets) unless ``--dataset`` names
   a registered dataset.
3. Cached-feature reads to CUDA: ``load_tensor(reader="direct")`` (Zarr GPU buffers + DLPack,
   needs the ``gpu`` extra, cupy) vs ``reader="host"`` (host read + pinned copy): seconds, GB/s,
   and the tensors must be equal.
4. One short fine-tune on CUDA (``run_finetune``, one grid point + train+val run): steps/s and
   test accuracy.

On a machine without CUDA it says so and exits 0 (nothing to check).

    python -m benchmarks.gpu_check [--ckpt efficientnet_lite0] [--images 2000] [--steps 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

Row = tuple[str, str, str, str]


def check_probes(n: int, d: int, c: int) -> list[Row]:
    """Probe paths on CUDA and CPU: same chosen parameter and accuracy."""
    import torch

    from benchmarks.probes import make_cnn_features
    from probes.linear.protocol import run_protocol

    x, y = make_cnn_features(n + n // 2, d, c, seed=0)
    n_tr = int(0.8 * n)
    data = (x[:n_tr], y[:n_tr], x[n_tr:n], y[n_tr:n], x[n:], y[n:])
    rows: list[Row] = []
    for solver in ("logreg", "svm"):
        res, secs = {}, {}
        # on CUDA train/val go in as GPU tensors, as run_probe passes them (load_tensor)
        on_gpu = (torch.from_numpy(data[0]).cuda(), data[1], torch.from_numpy(data[2]).cuda(),
                  *data[3:])
        for dev in ("cuda", "cpu"):
            t0 = time.perf_counter()
            res[dev] = run_protocol(solver, *(on_gpu if dev == "cuda" else data), device=dev)
            if dev == "cuda":
                torch.cuda.synchronize()
            secs[dev] = time.perf_counter() - t0
        g, h = res["cuda"], res["cpu"]
        same = g.best_param == h.best_param and abs(g.test_metric - h.test_metric) < 2e-3
        rows.append((f"probe {solver} N={n} D={d} C={c}",
                     f"cuda {secs['cuda']:.2f}s, cpu {secs['cpu']:.2f}s "
                     f"({secs['cpu'] / secs['cuda']:.1f}x)",
                     f"{g.param_name} {g.best_param:.3g} vs {h.best_param:.3g}; "
                     f"test {100 * g.test_metric:.2f}% vs {100 * h.test_metric:.2f}%",
                     "ok" if same else "MISMATCH"))
    return rows


def synthetic_jpegs(root: Path, n: int, classes: int = 10) -> Path:
    """``n`` 500x375 JPEGs (smooth colour gradients + noise, class-dependent) in an image folder
    (train/test), written in parallel: photo-sized inputs, so decoding costs what it does on
    the paper's datasets."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from PIL import Image

    def one(i: int) -> None:
        rng = np.random.default_rng(i)
        c, split = i % classes, "test" if i % 5 == 0 else "train"
        d = root / split / f"class_{c}"
        d.mkdir(parents=True, exist_ok=True)
        yy, xx = np.mgrid[0:375, 0:500]
        img = np.stack([xx * 255 / 500, yy * 255 / 375, np.full((375, 500), 25 * c)], -1)
        img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(d / f"img_{i:05d}.jpg", "JPEG", quality=90)

    with ThreadPoolExecutor() as pool:
        list(pool.map(one, range(n)))
    return root


def check_extraction(ckpt: str, dataset: str, batch_size: int, n_images: int) -> list[Row]:
    """bf16 extraction end-to-end (GPU JPEG decoder, and PIL) vs forward-only on the GPU."""
    import numpy as np
    import torch

    from featurestore.checkpoints import load_checkpoint, penultimate_features
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry, preprocess_transform
    from featurestore.store import FeatureStore

    tmp = tempfile.TemporaryDirectory()
    if dataset == "synthetic":
        ds = get_dataset("imagefolder", synthetic_jpegs(Path(tmp.name) / "img", n_images))
    else:
        ds = get_dataset(dataset)
    loaded = load_checkpoint(ckpt)
    dev = torch.device("cuda")
    tf = preprocess_transform(loaded)
    ids = [i for s in ds.splits for i in ds.split(s).ids]
    images = torch.stack([tf(ds.read(i)) for i in ids]).to(dev)
    model = loaded.model.to(dev).to(memory_format=torch.channels_last).eval()
    mean = torch.tensor(loaded.data_config["mean"], device=dev).view(1, 3, 1, 1) * 255
    std = torch.tensor(loaded.data_config["std"], device=dev).view(1, 3, 1, 1) * 255

    def forward() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            for s in range(0, len(images), batch_size):
                x = images[s:s + batch_size].contiguous(memory_format=torch.channels_last)
                penultimate_features(model, (x.float() - mean) / std).float()
        torch.cuda.synchronize()

    forward()  # warm-up (cuDNN autotuning), not timed
    t0 = time.perf_counter()
    forward()
    fwd = len(ids) / (time.perf_counter() - t0)
    images = images.new_empty(0)  # frees the GPU copy before the extractions ([:0] would not)
    rows: list[Row] = []
    feats = {}
    with tmp:
        for decoder in ("auto", "pil"):
            fs = FeatureStore(str(Path(tmp.name) / f"{decoder}.zarr"))
            t0 = time.perf_counter()
            rep = extract_entry(fs, loaded, ds, batch_size=batch_size, device="cuda",
                                progress=False, decoder=decoder)
            e2e = rep.n_images / (time.perf_counter() - t0)
            extraction = fs.entry(loaded.info.name, ds.name).provenance["extraction"]
            feats[decoder] = fs.load(loaded.info.name, ds.name, "test")[0]
            ok = extraction["autocast"] == "bfloat16" and rep.n_images == len(ids)
            if decoder == "auto":
                ok = ok and extraction["decoder"].startswith("torchvision.io.decode_jpeg on cuda")
            rows.append((f"extract {ckpt}/{ds.name} ({len(ids)} images, bf16, {decoder})",
                         f"end-to-end {e2e:.0f} img/s, forward-only {fwd:.0f} img/s",
                         f"ratio {e2e / fwd:.2f}; decoder {extraction['decoder']}",
                         "ok" if ok else "MISMATCH"))
    a, b = feats["auto"], feats["pil"]
    cos = float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())
    rows.append(("extract: GPU JPEG vs PIL features (test split)", "-",
                 f"min cosine {cos:.5f}, max |diff| {np.abs(a - b).max():.4f}",
                 "ok" if cos > 0.999 else "MISMATCH"))
    return rows


def check_reads(rows: int, dim: int) -> list[Row]:
    """Cached features read into GPU memory: Zarr GPU buffers + DLPack vs host read + copy."""
    import numpy as np
    import torch

    from featurestore.store import FeatureStore, SplitPlan
    from featurestore.store.device_reads import gpu_reads_available, load_tensor

    X = np.random.default_rng(0).standard_normal((rows, dim), dtype=np.float32)
    y = np.arange(rows, dtype=np.int32) % 100
    gb = X.nbytes / 1e9
    out: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        fs = FeatureStore(str(Path(tmp) / "reads.zarr"))
        chunk = 8192
        plans = [SplitPlan(s, rows, dim, chunk, ()) for s in ("train", "val", "test")]
        with fs.writing("ck", "ds") as w:
            w.begin(plans, {}, {})
            for plan in plans:
                w.write_split(plan.name, X, y, [str(i) for i in range(rows)])
            w.finish({})
        readers = ["host", "direct"] if gpu_reads_available() else ["host"]
        got = {}
        for reader in readers:
            load_tensor(fs, "ck", "ds", "val", "cuda", reader=reader)  # warm page cache, CUDA
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            got[reader], _ = load_tensor(fs, "ck", "ds", "train", "cuda", reader=reader)
            torch.cuda.synchronize()
            secs = time.perf_counter() - t0
            same = bool(torch.equal(got[reader].cpu(), torch.from_numpy(X)))
            out.append((f"read {rows}x{dim} float32 ({gb:.2f} GB) to cuda, {reader}",
                        f"{secs:.2f}s, {gb / secs:.1f} GB/s",
                        "equal to the written features" if same else "DIFFERENT",
                        "ok" if same else "MISMATCH"))
    if "direct" not in readers:
        out.append(("read to cuda, direct (Zarr GPU buffers + DLPack)", "-",
                    "cupy not importable: pip install 'featurestore[gpu]' (cupy-cuda13x)",
                    "skipped"))
    return out


def check_finetune(ckpt: str, dataset: str, steps: int, batch_size: int) -> list[Row]:
    """One short fine-tune on CUDA: one grid point, the train+val run, the row."""
    from probes.finetune.run import FinetuneConfig, run_finetune

    with tempfile.TemporaryDirectory() as tmp:
        cfg = FinetuneConfig(setting="finetune", grid="lr=0.1", steps=steps,
                             batch_size=batch_size, device="cuda", progress=False)
        t0 = time.perf_counter()
        out = run_finetune(ckpt, dataset, cfg, store=str(Path(tmp) / "ft.zarr"))
        wall = time.perf_counter() - t0
    timings = out.row.get("timings", {})
    device = str(out.row.get("device", ""))
    return [(f"finetune {ckpt}/{dataset} ({steps} steps x 2 runs, batch {batch_size})",
             f"{timings.get('steps_per_s')} steps/s, {timings.get('images_per_s')} img/s, "
             f"wall {wall:.0f}s",
             f"test {100 * (out.test_metric or 0.0):.2f}% on {device}",
             "ok" if out.status == "done" and device.startswith("cuda") else "MISMATCH")]


def _safely(name: str, fn: Callable[[], list[Row]]) -> list[Row]:
    """A failing check is a row saying so: the other checks still run and print."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - reported in the table, then exit 1
        return [(name, "-", f"{type(e).__name__}: {e}"[:200], "ERROR")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", default="efficientnet_lite0")
    ap.add_argument("--dataset", default="synthetic",
                    help="'synthetic' (generated JPEGs) or a registered dataset")
    ap.add_argument("--images", type=int, default=2000, help="synthetic JPEGs to extract")
    ap.add_argument("--read-rows", type=int, default=100_000, help="rows of the read check")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--probe-n", type=int, default=10_000)
    args = ap.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine (torch.cuda.is_available() is False); "
              "nothing to check")
        return 0
    print(f"gpu_check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}")
    t0 = time.perf_counter()
    rows: list[Row] = []
    checks: list[tuple[str, Callable[[], list[Row]]]] = [
        ("probes", lambda: check_probes(args.probe_n, 1280, 100)),
        ("extract", lambda: check_extraction(args.ckpt, args.dataset, args.batch_size,
                                             args.images)),
        ("reads", lambda: check_reads(args.read_rows, 1280)),
        ("finetune", lambda: check_finetune(args.ckpt, "digits" if args.dataset == "synthetic"
                                            else args.dataset, args.steps, 64)),
    ]
    for name, fn in checks:
        rows.extend(_safely(name, fn))
        print(f"  {name} done at {time.perf_counter() - t0:.0f}s", flush=True)
    _print_table(rows)
    print(f"total {time.perf_counter() - t0:.0f}s")
    # an optional extra that is not installed (cupy) is skipped, not failed
    return 0 if all(r[3] in ("ok", "skipped") for r in rows) else 1


def _print_table(rows: list[Row]) -> None:
    head: Row = ("check", "time / throughput", "agreement", "status")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    sys.exit(main())
