"""``featurestore demo | report | serve``: the main job, the HTML report, the HTTP service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featurestore.store import DEFAULT_URL
from featurestore_app.cli.common import DeviceOpt, StoreOpt, out


def demo(
    store: StoreOpt = DEFAULT_URL,
    device: DeviceOpt = "auto",
    report_dir: Annotated[Path, typer.Option("--report-dir")] = Path("reports"),
) -> None:
    """The main job on the embedded default: EfficientNet-Lite0/1/2 on scikit-learn's digits."""
    from featurestore_app.demo import run_demo

    run_demo(store, device=device, report_dir=report_dir, console=out)


def report_cmd(
    store: StoreOpt = DEFAULT_URL,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the HTML pages.")] = Path(
        "reports"
    ),
    timeout: Annotated[int, typer.Option("--timeout", help="Seconds per notebook cell.")] = 600,
) -> None:
    """Run the analysis notebooks against the store and write standalone offline HTML."""
    from featurestore_app.report import report

    paths = report(store, out_dir, timeout=timeout)
    out.print(f"report: {paths[0].resolve()} ({len(paths) - 1} notebooks)")


def serve(
    store: StoreOpt = DEFAULT_URL,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
) -> None:
    """Share the store over HTTP (read-only): catalog, results, arrays, raw Zarr objects."""
    from featurestore_app.service import serve as run

    run(store, host=host, port=port)


