"""What every command shares: the consoles (results on stdout, progress and logs on stderr),
the option types that mean the same on every command, and the checks every command makes before
it starts work (so a failure comes before any output is written, as one line)."""

from __future__ import annotations

import errno
import json
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from featurestore.store import FeatureStore

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

StoreOpt = Annotated[str, typer.Option("--store", help="Store path or fsspec URL.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N]")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Recompute even if already done.")]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Results as JSON on stdout (logs stay on stderr).")
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q",
                 help="No progress bars or per-item lines on stderr (off anyway when stderr "
                      "is not a terminal); results and errors still print."),
]
#: The old spelling of ``--quiet`` on ``extract``, kept so scripts keep working.
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", hidden=True)]
SchedulerOpt = Annotated[
    str | None,
    typer.Option("--scheduler", help="dask.distributed scheduler address, or 'local'."),
]

#: Plain words for the faults a user can fix, instead of the errno name.
_ERRNO_WORDS = {
    errno.ENOSPC: "disk full (no space left on device)",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EDQUOT: "disk quota exceeded",
}


def error_line(message: str) -> None:
    """One ``error: ...`` line on stderr, printed as is (no rich markup or highlighting)."""
    err.print(f"error: {message}".replace("\n", " "), markup=False, highlight=False)


def os_error_message(e: OSError) -> str:
    """``<what went wrong>: <path>`` for an operating-system fault, naming the file involved."""
    what = _ERRNO_WORDS.get(e.errno or 0) or e.strerror or str(e) or type(e).__name__
    paths = [p for p in (e.filename, e.filename2) if p is not None]
    return f"{what}: {' -> '.join(map(str, paths))}" if paths else what


def require_writable(fs: FeatureStore) -> None:
    """Fail now, naming the store, if results cannot be written to it: better than a probe that
    runs for minutes and then cannot record its result. Local stores get a real test write
    (root ignores permission bits, so ``os.access`` would lie); other stores are checked when
    they are written."""
    from featurestore.errors import StoreLocationError

    if fs.read_only:
        raise StoreLocationError(f"store {fs.url} is opened read-only; results cannot be written")
    root = fs.local_root
    if root is None:
        return
    try:
        fd, path = tempfile.mkstemp(prefix=".write-check-", dir=root)
        os.close(fd)
        os.unlink(path)
    except OSError as e:
        raise StoreLocationError(
            f"cannot write results to store {root}: {os_error_message(e)}"
        ) from e


def print_json(obj: Any) -> None:
    """``obj`` as one JSON document on stdout: no colour, no wrapping, whatever the terminal
    (rich's ``print_json`` would highlight it on a terminal); NaN becomes null."""
    sys.stdout.write(json.dumps(_json_safe(obj), default=str) + "\n")
    sys.stdout.flush()


def _json_safe(obj: Any) -> Any:
    """NaN/inf -> None, recursively: ``json.dumps`` would write ``NaN``, which is not JSON."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def show_progress(quiet: bool) -> bool:
    """Progress bars only for a person watching: not with ``--quiet``, and not when stderr is a
    file or a pipe (a log full of ``\\r`` bars is unreadable)."""
    if quiet:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced stderr
        return False
