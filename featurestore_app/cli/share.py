"""``featurestore demo | report | serve``: the main job, the HTML report, the HTTP service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featurestore.extras import require_extra
from featurestore.store import DEFAULT_URL
from featurestore_app.cli.common import DeviceOpt, StoreOpt, error_line, out


def demo(
    store: StoreOpt = DEFAULT_URL,
    device: DeviceOpt = "auto",
    report_dir: Annotated[Path, typer.Option("--report-dir")] = Path("reports"),
) -> None:
    """The main job on the embedded default: EfficientNet-Lite0/1/2 on scikit-learn's digits."""
    require_extra("notebooks", "featurestore demo")  # it ends with the report: fail before work
    from featurestore_app.demo import run_demo

    run_demo(store, device=device, report_dir=report_dir, console=out)


def report_cmd(
    store: StoreOpt = DEFAULT_URL,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the HTML pages.")] = Path(
        "reports"
    ),
    timeout: Annotated[int, typer.Option("--timeout", help="Seconds per notebook cell.")] = 600,
    show_code: Annotated[
        bool, typer.Option("--show-code", help="Show the notebooks' code (hidden by default).")
    ] = False,
    notebook: Annotated[
        list[str] | None,
        typer.Option("--notebook", help="Only this notebook (name or NN prefix); repeatable."),
    ] = None,
    study: Annotated[
        Path | None,
        typer.Option("--study", help="Settings-study file (TOML/JSON) to show beside the "
                     "built-in studies.", show_default=False),
    ] = None,
    duplicates: Annotated[
        Path | None,
        typer.Option("--duplicates", help="Pairs CSV of `featurestore duplicates`: show "
                     "thumbnails of its top pairs.", show_default=False),
    ] = None,
) -> None:
    """Run the analysis notebooks against the store and write offline HTML, plus data/<id>.csv
    (the data behind every figure and table, with its source)."""
    import sys

    require_extra("notebooks", "featurestore report")
    from featurestore_app.report import notebook_paths, report

    paths = notebook_paths()
    if notebook:
        chosen = [p for p in paths if any(p.stem == n or p.stem.startswith(n) for n in notebook)]
        if not chosen:
            error_line(f"no notebook matches {', '.join(notebook)} (have: "
                       f"{', '.join(p.stem for p in paths)})")
            raise typer.Exit(1)
        paths = chosen
    pages = report(store, out_dir, notebooks=paths, timeout=timeout, show_code=show_code,
                   progress=lambda line: print(line, file=sys.stderr, flush=True),
                   study_file=study, duplicates=duplicates)
    out.print(f"report: {pages[0].resolve()} ({len(pages) - 1} notebooks)")


def serve(
    store: StoreOpt = DEFAULT_URL,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="FEATURESTORE_TOKEN", show_default=False,
                     help="Require 'Authorization: Bearer TOKEN' (needed beyond loopback)."),
    ] = None,
    reports: Annotated[
        Path, typer.Option("--reports", help="Folder of `featurestore report`, linked from /.")
    ] = Path("reports"),
) -> None:
    """Share the store over HTTP (read-only): catalog page, results, arrays, raw Zarr objects."""
    require_extra("serve", "featurestore serve")
    from featurestore_app.service import is_loopback
    from featurestore_app.service import serve as run

    if not is_loopback(host) and not token:
        # Refused before anything listens: an open store on the network is a usage error.
        error_line(f"--host {host} exposes the store beyond this machine: pass --token or set "
                   "FEATURESTORE_TOKEN (clients then send 'Authorization: Bearer <token>')")
        raise typer.Exit(2)
    run(store, host=host, port=port, token=token, reports=reports)
