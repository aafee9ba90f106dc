"""What every command shares: the consoles (results on stdout, progress and logs on stderr) and
the option types that mean the same on every command."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

StoreOpt = Annotated[str, typer.Option("--store", help="Store path or fsspec URL.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N]")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Recompute even if already done.")]
SchedulerOpt = Annotated[
    str | None,
    typer.Option("--scheduler", help="dask.distributed scheduler address, or 'local'."),
]


def error_line(message: str) -> None:
    """One ``error: ...`` line on stderr, printed as is (no rich markup or highlighting)."""
    err.print(f"error: {message}", markup=False, highlight=False)
