"""Rich renderings shared by the command line and the demo (stdout tables)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from featurestore.store import EntryInfo


def human_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``; ``-1`` (size unknown) -> ``"-"``."""
    if n < 0:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def entries_table(entries: Sequence[EntryInfo], title: str) -> Table:
    """The store's catalog: checkpoint, dataset, splits, N, D, status, size."""
    t = Table(title=title)
    # names are kept whole where the terminal allows (a checkpoint cut to "efficientnet_l" is
    # useless) and folded, never truncated, where it does not; one split per line keeps the
    # table within 80 columns
    name_width = min(40, max((len(e.ckpt) for e in entries), default=10))
    for c in ("checkpoint", "dataset", "splits", "N", "D", "status", "size"):
        t.add_column(c, justify="right" if c in ("N", "D", "size") else "left", overflow="fold",
                     min_width=name_width if c == "checkpoint" else None)
    for e in entries:
        splits = "\n".join(f"{k}={v}" for k, v in e.splits.items())
        status = e.status if e.complete else f"[yellow]{e.status}[/yellow]"
        t.add_row(e.ckpt, e.dataset, splits, str(sum(e.splits.values())), str(e.feature_dim),
                  status, human_bytes(e.nbytes))
    return t
