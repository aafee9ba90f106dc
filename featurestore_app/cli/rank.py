"""``featurestore rank``: which checkpoint for this dataset? Transferability estimates from the
cached features, beside the probe and fine-tune results that check them."""

from __future__ import annotations

import json
import math
import sys
from typing import Annotated, Any

import typer

from featurestore.errors import EntryNotFoundError
from featurestore.store import DEFAULT_URL
from featurestore_app.cli.common import DeviceOpt, StoreOpt, err, out
from featurestore_app.console import new_table, print_table


def _select(fs: Any, datasets: list[str] | None, ckpts: list[str] | None
            ) -> list[tuple[str, str]]:
    """The complete (ckpt, dataset) entries asked for; an unknown name raises, naming what
    exists."""
    entries = fs.entries()
    if not entries:
        raise EntryNotFoundError(
            f"no complete entries in {fs.url}; run `featurestore extract` first"
        )
    have_ds = sorted({e.dataset for e in entries})
    missing = [d for d in datasets or [] if d not in have_ds]
    if missing:
        raise EntryNotFoundError(
            f"no entries for dataset {', '.join(missing)} in {fs.url} "
            f"(datasets with entries: {', '.join(have_ds)})"
        )
    chosen = [e for e in entries if not datasets or e.dataset in datasets]
    have_ck = sorted({e.ckpt for e in chosen})
    missing = [c for c in ckpts or [] if c not in have_ck]
    if missing:
        raise EntryNotFoundError(
            f"no entries for checkpoint {', '.join(missing)} on "
            f"{', '.join(sorted({e.dataset for e in chosen}))} in {fs.url} "
            f"(checkpoints with entries there: {', '.join(have_ck)})"
        )
    return [(e.ckpt, e.dataset) for e in chosen if not ckpts or e.ckpt in ckpts]


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * v:.2f}%" if pct else f"{v:.4g}"


def _records(df: Any) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-safe dicts (NaN and pandas NA -> null)."""
    return json.loads(df.to_json(orient="records", double_precision=15))


def rank(
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Dataset (repeat; default: all).")
    ] = None,
    ckpt: Annotated[
        list[str] | None, typer.Option("--ckpt", help="Checkpoint (repeat; default: all).")
    ] = None,
    estimator: Annotated[
        list[str] | None,
        typer.Option("--estimator", help="logme | hscore | knn | centroid | leep | nce | all "
                                         "(repeat; default all)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    store: StoreOpt = DEFAULT_URL,
    device: DeviceOpt = "auto",
) -> None:
    """Rank checkpoints for a dataset by transferability estimators (from cached train+val
    features; LEEP/NCE from logits stored by `extract --with-logits`), with the logistic-probe
    and fine-tune results where the store has them and the rank correlations between the two."""
    import pandas as pd

    from featurestore.store import FeatureStore
    from probes.transfer.entries import NEEDS_LOGITS, estimate_entry, parse_estimators
    from probes.transfer.ranking import MEASURED, correlations, measured_frame, rank_table

    names = parse_estimators(estimator or ["all"])
    explicit_logits = bool(estimator) and "all" not in estimator and bool(NEEDS_LOGITS & set(names))
    fs = FeatureStore(store, read_only=True)
    pairs = _select(fs, dataset, ckpt)
    estimates = []
    for c, d in pairs:
        est = estimate_entry(fs, c, d, names, device=device, require_logits=explicit_logits)
        for e in est:
            msg = f"{e.score:.4g} in {e.seconds:.2f}s" if e.score is not None else e.note
            err.print(f"{c}/{d} {e.estimator}: {msg}", markup=False, highlight=False)
        estimates += est
    measured = measured_frame(fs.results.frame())
    table = rank_table(estimates, measured, names)
    corr = correlations(table, names)
    if as_json:
        sys.stdout.write(json.dumps({
            "store": store, "estimators": names, "settings": list(MEASURED),
            "rows": _records(table), "correlations": _records(corr),
        }) + "\n")
        return
    for d, sub in table.groupby("dataset"):
        t = new_table(f"{d}: estimate (rank) per checkpoint")
        t.add_column("checkpoint", no_wrap=True)
        shown = [*names, *(s for s in MEASURED if sub[s].notna().any())]
        for col in shown:  # names and numbers are whole at any width (print_table)
            t.add_column(col, justify="right", no_wrap=True)
        for _, r in sub.sort_values("ckpt").iterrows():
            cells = []
            for col in shown:
                rk = r[f"{col}_rank"]
                rank_s = "" if pd.isna(rk) else f" ({int(rk)})"
                cells.append(_fmt(r[col], pct=col in MEASURED) + rank_s)
            t.add_row(str(r["ckpt"]), *cells)
        print_table(out, t)
    t = new_table("rank correlation of estimate vs measured (accuracies in log odds when pooled)")
    for c in ("scope", "estimator", "setting", "n", "Kendall tau", "Spearman rho"):
        t.add_column(c, no_wrap=True,
                     justify="right" if c in ("n", "Kendall tau", "Spearman rho") else "left")
    shown_corr = corr[corr["n"] > 0]
    for _, r in shown_corr.iterrows():
        t.add_row(str(r["scope"]), r["estimator"], r["setting"], str(r["n"]),
                  _fmt(r["kendall_tau"]), _fmt(r["spearman_rho"]))
    if len(shown_corr):
        print_table(out, t)
    else:
        out.print("no logreg or finetune results for these entries yet: run `featurestore sweep`"
                  " to check the estimates")
