"""Experiment on real data: EfficientNet-Lite0/1/2 features + the paper's logistic protocol.

Uses the canonical dataset folders under ``../shared/datasets`` (Caltech-101: 102 classes, 30 train
images per class, the rest test; Oxford 102 Flowers with ``allow_missing``: the shared copy lacks
204 images). Extraction is resumable, so an interrupted run picks up where it stopped.

    python -m benchmarks.real_data [--store real.zarr] [--datasets caltech101 flowers102]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scipy.stats import spearmanr

CKPTS = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--store", default="real.zarr")
    p.add_argument("--datasets", nargs="+", default=["caltech101", "flowers102"])
    p.add_argument("--data-root", type=Path, default=ROOT)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    a = p.parse_args()

    from featurestore.checkpoints import load_checkpoint, resolve
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore
    from probes.linear.sweep import run_probe

    fs = FeatureStore(a.store)
    rows = []
    for name in a.datasets:
        ds = get_dataset(name, a.data_root / name, allow_missing=True)
        counts = {s: len(ds.split(s)) for s in ds.splits}
        print(f"{name}: {counts}, {ds.num_classes} classes, metric {ds.metric}, "
              f"{len(ds.skipped)} images skipped as missing")
        for c in CKPTS:
            if not fs.has_complete(c, name):
                rep = extract_entry(fs, load_checkpoint(c), ds, device=a.device,
                                    batch_size=a.batch_size)
                print(f"  extracted {c}: {rep.n_images} images at {rep.images_per_s:.1f} img/s")
            o = run_probe(fs, c, name, "logreg", device=a.device)
            df = fs.results.frame()
            r = df[(df.ckpt == c) & (df.dataset == name) & (df.setting == "logreg")].iloc[-1]
            rows.append((name, c, resolve(c).imagenet_top1, float(r.test_metric), r.metric,
                         float(r.best_param), o.status))
    print(f"\n{'dataset':<12} {'checkpoint':<20} {'ImageNet':>9} {'transfer':>9}  metric  lambda")
    for name, c, top1, acc, metric, lam, _ in rows:
        print(f"{name:<12} {c:<20} {100 * top1:8.1f}% {100 * acc:8.2f}%  {metric}  {lam:.3g}")
    for name in a.datasets:
        sub = [r for r in rows if r[0] == name]
        rho = spearmanr([r[2] for r in sub], [r[3] for r in sub]).statistic
        print(f"{name}: order follows ImageNet top-1: {rho == 1.0} (Spearman rho {rho:.2f})")


if __name__ == "__main__":
    main()
