"""Rich renderings shared by the command line and the demo (stdout tables).

Names a user types back (checkpoints, datasets, timm architectures) sit in ``no_wrap`` columns
and are never cut: :func:`print_table` renders a table at least as wide as those columns need,
wider than the terminal if it must (the terminal then folds the line; the name stays whole and
selectable), and at its natural width when stdout is not a terminal, so a pipe or a script gets
one row per line, whatever ``COLUMNS`` says.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from featurestore.store import EntryInfo

#: Narrowest a wrapping column (notes, reasons) is squeezed to before the table grows instead.
WRAP_MIN = 12
_UNBOUNDED = 1_000_000


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


def new_table(title: str | None = None) -> Table:
    """A table in the house style: a rule under the header, no vertical borders (they cost two
    columns each, which the names need more)."""
    return Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)


def needed_width(console: Console, table: Table) -> int:
    """Narrowest width at which every ``no_wrap`` column is whole (wrapping columns counted at
    :data:`WRAP_MIN` or their content, whichever is less)."""
    opts = console.options.update_width(_UNBOUNDED)
    left, right = table.padding[3], table.padding[1]
    total = (2 if table.box and table.show_edge else 0) + (
        len(table.columns) - 1 if table.box else 0)
    if not table.pad_edge:
        total -= left + right
    for col in table.columns:
        cells = [col.header, *col.cells]
        widest = max((Measurement.get(console, opts, c).maximum for c in cells if c != ""),
                     default=1)
        longest_word = widest if col.no_wrap else min(widest, WRAP_MIN)
        total += max(longest_word, col.min_width or 0) + left + right
    return total


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` without ever truncating a ``no_wrap`` column (see the module doc)."""
    if console.is_terminal:
        width = max(console.width, needed_width(console, table))
    else:
        width = Measurement.get(console, console.options.update_width(_UNBOUNDED), table).maximum
    saved = console.width
    console.width = width
    try:
        console.print(table)
    finally:
        console.width = saved


def entries_table(entries: Sequence[EntryInfo], title: str) -> Table:
    """The store's catalog: checkpoint, dataset, splits, N, D, status, size."""
    t = new_table(title)
    # one split per line keeps the table narrow; names are whole (print_table)
    for c in ("checkpoint", "dataset", "splits", "N", "D", "status", "size"):
        t.add_column(c, justify="right" if c in ("N", "D", "size") else "left",
                     no_wrap=c != "status")
    for e in entries:
        splits = "\n".join(f"{k}={v}" for k, v in e.splits.items())
        status = e.status if e.complete else f"[yellow]{e.status}[/yellow]"
        if e.integrity == "unverified":  # written before checksums: bit flips go unnoticed
            status += "\n[yellow]unverified[/yellow]"
        elif e.reason:
            status = f"[red]{e.status}[/red]\n{escape(e.reason)}"
        t.add_row(e.ckpt, e.dataset, splits, str(sum(e.splits.values())), str(e.feature_dim),
                  status, human_bytes(e.nbytes))
    return t
