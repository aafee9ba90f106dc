"""Every CUDA path once, in one table: a prepared check for the day a GPU is lent (< 5 minutes).

1. Linear probes (logistic and SVM paths) on CUDA vs CPU on the same synthetic CNN-like features
   (N=10,000, D=1,280, C=100): chosen regularisation and test accuracy must agree; both times.
2. Extraction on CUDA (bf16 autocast, channels_last): end-to-end ``extract_entry`` img/s (decode,
   resize, forward, Zarr writes) vs forward-only img/s of the same images already on the GPU.
3. One short fine-tune on CUDA (``run_finetune``, one grid point + train+val run): steps/s and
   test accuracy.

On a machine without CUDA it says so and exits 0 (nothing to check).

    python -m benchmarks.gpu_check [--ckpt efficientnet_lite0] [--dataset digits] [--steps 60]
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
        for dev in ("cuda", "cpu"):
            t0 = time.perf_counter()
            res[dev] = run_protocol(solver, *data, device=dev)
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


def check_extraction(ckpt: str, dataset: str, batch_size: int) -> list[Row]:
    """bf16 extraction end-to-end vs forward-only on the GPU."""
    import torch

    from featurestore.checkpoints import load_checkpoint, penultimate_features
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry, preprocess_transform
    from featurestore.store import FeatureStore

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
    with tempfile.TemporaryDirectory() as tmp:
        fs = FeatureStore(str(Path(tmp) / "gpu.zarr"))
        t0 = time.perf_counter()
        rep = extract_entry(fs, loaded, ds, batch_size=batch_size, device="cuda",
                            progress=False)
        e2e = rep.n_images / (time.perf_counter() - t0)
        autocast = fs.entry(loaded.info.name, ds.name).provenance["extraction"]["autocast"]
    return [(f"extract {ckpt}/{dataset} ({len(ids)} images, bf16)",
             f"end-to-end {e2e:.0f} img/s, forward-only {fwd:.0f} img/s",
             f"ratio {e2e / fwd:.2f}; autocast {autocast}",
             "ok" if autocast == "bfloat16" and rep.n_images == len(ids) else "MISMATCH")]


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
    ap.add_argument("--dataset", default="digits")
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
        ("extract", lambda: check_extraction(args.ckpt, args.dataset, args.batch_size)),
        ("finetune", lambda: check_finetune(args.ckpt, args.dataset, args.steps, 64)),
    ]
    for name, fn in checks:
        rows.extend(_safely(name, fn))
        print(f"  {name} done at {time.perf_counter() - t0:.0f}s", flush=True)
    _print_table(rows)
    print(f"total {time.perf_counter() - t0:.0f}s")
    return 0 if all(r[3] == "ok" for r in rows) else 1


def _print_table(rows: list[Row]) -> None:
    head: Row = ("check", "time / throughput", "agreement", "status")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for r in [head, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    sys.exit(main())
