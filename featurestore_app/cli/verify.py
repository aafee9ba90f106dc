"""``featurestore verify``: check every chunk of every entry against its stored crc32c.

Reads already refuse a damaged chunk when they meet it; this command finds all damage up front
(after a disk fault, a copy between machines) so ``extract --repair`` can recompute it before a
sweep stops on it.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from featurestore.store import DEFAULT_URL
from featurestore_app.cli.common import StoreOpt, out
from featurestore_app.console import new_table, print_table


def verify(
    ckpt: Annotated[list[str] | None, typer.Option("--ckpt", help="Only these (repeat).")] = None,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Only these (repeat).")
    ] = None,
    store: StoreOpt = DEFAULT_URL,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check every chunk of every entry; list what is damaged (exit 1 when anything is)."""
    from featurestore.checkpoints import expand_checkpoints
    from featurestore.datasets import expand_datasets
    from featurestore.store import FeatureStore, integrity

    fs = FeatureStore(store, read_only=True)
    want_c = set(expand_checkpoints(ckpt)) if ckpt else None
    want_d = set(expand_datasets(dataset)) if dataset else None
    checks = []
    for e in fs.entries(include_incomplete=True):
        if (want_c and e.ckpt not in want_c) or (want_d and e.dataset not in want_d):
            continue
        if e.status == integrity.DAMAGED:
            checks.append(integrity.EntryCheck(e.ckpt, e.dataset, integrity.DAMAGED,
                                               reason=e.reason))
        elif e.complete:  # an in-progress entry is unfinished, not damaged
            checks.append(integrity.check_entry(fs.root, e.ckpt, e.dataset))
    damaged = [c for c in checks if not c.ok]
    if as_json:
        out.print_json(json.dumps([c.as_dict() for c in checks]))
    else:
        t = new_table(f"{store}: {len(checks)} entries checked, {len(damaged)} damaged")
        for c in ("checkpoint", "dataset", "integrity"):  # names are whole (print_table)
            t.add_column(c, no_wrap=True)
        t.add_column("damage", overflow="fold")
        for c in checks:
            what = c.reason or "\n".join(str(d) for d in c.damage)
            colour = {"damaged": "red", "unverified": "yellow"}.get(c.integrity, "green")
            t.add_row(c.ckpt, c.dataset, f"[{colour}]{c.integrity}[/{colour}]", escape(what))
        print_table(out, t)
        if damaged:
            out.print("recompute damaged chunks with `featurestore extract --ckpt .. --dataset .. "
                      "--repair` (entries with unreadable metadata: `--force`)", markup=False)
    if damaged:
        raise typer.Exit(1)
