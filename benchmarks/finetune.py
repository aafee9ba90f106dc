"""Fine-tuning throughput and accuracy against the logistic-regression probe on the same data.

Runs the real job (:func:`probes.finetune.run_finetune`: one grid point trained on train, scored
on val with both crops, retrained on train+val, scored on test) for a real ImageNet checkpoint on a
real dataset, then, when :mod:`probes.linear.protocol` is installed, extracts features into the
same store and runs the logistic probe (Appendix A.4) so the two test accuracies sit side by side.

Reported: training steps/s and images/s (training loop only: data loading, forward, backward,
update), evaluation seconds, wall time, the fine-tuned test metric and the probe's.

The defaults are sized for a 2-core CPU: 100 steps at batch 32 (~3 epochs of digits' 1,008
training images; the paper runs 20,000 steps at batch 256) for the one grid point and again for
the train+val retraining. EfficientNet-Lite0 trains at ~15-19 img/s on an idle 2-core CPU at
224 px (about 8 minutes in all); on a shared, loaded one, measured 3.6-4.3 img/s (25-30 minutes).
lr 0.1 is the top of the paper's fine-tuning grid; 0.01 under-trains in 100 steps (79% vs 95%).
On a GPU, raise ``--steps`` / ``--batch-size``.

    python -m benchmarks.finetune [--ckpt efficientnet_lite0] [--dataset digits] [--steps 100]
        [--batch-size 32] [--lr 0.1] [--wd-ratio 0] [--store DIR] [--device auto] [--no-probe]
        [--force]

With ``--store`` the results persist: a rerun reuses the finished fine-tune (its row is in the
table) and only adds what is missing (e.g. the probe once :mod:`probes.linear.protocol` exists).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def run_finetune_bench(args: argparse.Namespace, store_url: str) -> dict[str, Any]:
    from featurestore.store import FeatureStore
    from probes.finetune.run import FinetuneConfig, run_finetune

    config = FinetuneConfig(
        setting="finetune",
        grid=f"lr={args.lr},wd_ratio={args.wd_ratio}",
        steps=args.steps,
        batch_size=args.batch_size,
        eval_every=args.eval_every or args.steps,
        ckpt_every=max(args.steps // 4, 1),
        device=args.device,
        num_workers=args.workers,
        progress=not args.quiet,
        force=args.force,
    )
    t0 = time.perf_counter()
    out = run_finetune(args.ckpt, args.dataset, config, store=store_url)
    wall = time.perf_counter() - t0
    row = out.row
    if out.status == "skipped":  # finished by an earlier run of this benchmark: read its row
        df = FeatureStore(store_url).results.frame()
        sel = df[(df.ckpt == args.ckpt) & (df.dataset == args.dataset)
                 & (df.setting == "finetune") & (df.variant == out.variant)]
        row = sel.iloc[-1].to_dict()
    timings = row["timings"]
    return {
        "status": out.status,
        "variant": row["variant"],
        "test_metric": row["test_metric"],
        "val_metric": row["val_metric"],
        "crop": row["hyperparams"]["crop"],
        "steps_per_s": timings["steps_per_s"],
        "train_images_per_s": timings["images_per_s"],
        "train_seconds": timings["train_seconds"],
        "eval_seconds": timings["eval_seconds"],
        "wall_seconds": round(wall, 1),
        "device": row["device"],
        "n_train": row["n_train"],
    }


def run_probe_bench(args: argparse.Namespace, store_url: str) -> dict[str, Any]:
    if importlib.util.find_spec("probes.linear.protocol") is None:
        return {"status": "probes.linear.protocol not installed yet"}
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore
    from probes.linear.sweep import run_probe

    store = FeatureStore(store_url)
    t0 = time.perf_counter()
    rep = extract_entry(store, args.ckpt, get_dataset(args.dataset), device=args.device,
                        progress=not args.quiet)
    t1 = time.perf_counter()
    o = run_probe(store, args.ckpt, args.dataset, "logreg", device=args.device)
    t2 = time.perf_counter()
    test = o.test_metric
    if o.status == "skipped":
        df = store.results.frame()
        sel = df[(df.ckpt == args.ckpt) & (df.dataset == args.dataset)
                 & (df.setting == "logreg") & (df.variant == "")]
        test = float(sel.iloc[-1]["test_metric"])
    return {
        "status": o.status,
        "test_metric": test,
        "extract": rep.status,
        "extract_seconds": round(t1 - t0, 1),
        "probe_seconds": round(t2 - t1, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", default="efficientnet_lite0")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--wd-ratio", type=float, default=0.0)
    p.add_argument("--eval-every", type=int, default=None,
                   help="validation interval (default: only at the end)")
    p.add_argument("--store", default=None, help="store path/URL (default: a temporary folder)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--no-probe", action="store_true")
    p.add_argument("--force", action="store_true",
                   help="add a new fine-tune row even if one exists (finished runs are reused)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="also write the report as JSON here")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        store_url = args.store or str(Path(tmp) / "bench.zarr")
        report: dict[str, Any] = {
            "ckpt": args.ckpt, "dataset": args.dataset, "steps": args.steps,
            "batch_size": args.batch_size, "lr": args.lr, "wd_ratio": args.wd_ratio,
            "finetune": run_finetune_bench(args, store_url),
        }
        if not args.no_probe:
            report["logreg_probe"] = run_probe_bench(args, store_url)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
