"""``featurestore duplicates``: near-duplicate images from cached features (Table 5, App. H)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from featurestore.store import DEFAULT_URL
from featurestore_app.cli.common import DeviceOpt, JsonOpt, StoreOpt, out, print_json
from featurestore_app.console import new_table, print_table
from probes.analysis.duplicates import DEFAULT_BLOCK_ROWS, DEFAULT_K, DEFAULT_THRESHOLD

_SHOWN_PAIRS = 10


def duplicates(
    ckpt: Annotated[str, typer.Option("--ckpt", help="Checkpoint whose cached features compare.")],
    dataset: Annotated[str, typer.Option(
        "--dataset", help="Dataset whose images are checked (the query side).")],
    against: Annotated[str | None, typer.Option(
        "--against",
        help="Other dataset to match against (its train+val), e.g. the source training set. "
             "Without it: the dataset's test split against its own train+val.")] = None,
    threshold: Annotated[float, typer.Option(
        "--threshold", min=-1.0, max=1.0,
        help=f"Cosine similarity at or above which a pair is a near-duplicate. Default "
             f"{DEFAULT_THRESHOLD}: with efficientnet_lite0 on Caltech-101, resized and "
             "re-encoded copies score 0.97-1.00, 5% crops 0.83-0.96, different photographs "
             "0.70 median; ~0.85 also catches copies halved in size (0.85-0.88).")
    ] = DEFAULT_THRESHOLD,
    split: Annotated[list[str] | None, typer.Option(
        "--split", help="Query split(s) of --dataset (repeat). Default: test; with --against, "
                        "every split.")] = None,
    match_split: Annotated[list[str] | None, typer.Option(
        "--match-split", help="Split(s) matched against (repeat). Default: train and val.")
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Matches kept per query image.")
                 ] = DEFAULT_K,
    block_rows: Annotated[int, typer.Option(
        "--block-rows", min=1, help="Rows per block of the exact search (memory ~ rows^2).")
    ] = DEFAULT_BLOCK_ROWS,
    out_path: Annotated[Path | None, typer.Option(
        "--out", help="Pairs CSV to write (default duplicates_<ckpt>_<dataset>[_vs_<B>].csv).")
    ] = None,
    as_json: JsonOpt = False,
    store: StoreOpt = DEFAULT_URL,
    device: DeviceOpt = "auto",
) -> None:
    """Find near-duplicate images (cosine similarity of L2-normalised cached features, exact
    kNN in blocks) and write the pairs as CSV: query split/id, match split/id, similarity.

    The query images are always --dataset's. Within a dataset the default compares its test
    split with its train+val; --against B compares every split of --dataset with B's train+val,
    giving the paper's Table 5 columns (dups per split). `featurestore probe
    --exclude-duplicates PAIRS.csv` then scores without the test images the file names.
    """
    from featurestore.store import FeatureStore
    from probes.analysis.duplicates import find_duplicates, write_pairs

    fs = FeatureStore(store, read_only=True, create=False)
    report = find_duplicates(fs, ckpt, dataset, against=against, splits=split,
                             match_splits=match_split, threshold=threshold, k=k,
                             block_rows=block_rows, device=device)
    if out_path is None:
        vs = f"_vs_{against}" if against else ""
        out_path = Path(f"duplicates_{ckpt}_{dataset}{vs}.csv".replace("/", "-"))
    write_pairs(report.pairs, out_path)
    summary = {**report.summary(), "out": str(out_path)}
    if as_json:
        print_json(summary)
        return
    t = new_table(f"near-duplicates of {dataset} in {report.against} "
                  f"({'+'.join(report.match_splits)}), {ckpt}, cosine >= {threshold:g}")
    for c in ("split", "images", "with a duplicate", "%"):
        t.add_column(c, justify="left" if c == "split" else "right", no_wrap=True)
    for s, c in summary["counts"].items():
        t.add_row(s, str(c["n"]), str(c["duplicates"]), f"{c['percent']:.2f}%")
    print_table(out, t)
    if report.pairs:
        top = new_table(f"most similar pairs (of {len(report.pairs)})")
        for c in ("similarity", "query", "match"):  # image ids are whole (print_table)
            top.add_column(c, no_wrap=True)
        for p in report.pairs[:_SHOWN_PAIRS]:
            top.add_row(f"{p['similarity']:.4f}", escape(_named(p, "query")),
                        escape(_named(p, "match")))
        print_table(out, top)
    out.print(f"{len(report.pairs)} pairs, {report.matched_images} distinct matched images "
              f"-> {escape(str(out_path))}")


def _named(pair: dict, side: str) -> str:
    """``split/id``, without repeating the split when the id already starts with it."""
    split, sid = pair[f"{side}_split"], pair[f"{side}_id"]
    return sid if sid.startswith(f"{split}/") else f"{split}/{sid}"
