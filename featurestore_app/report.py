"""``featurestore report``: run the analysis notebooks against a store and write standalone HTML.

The notebooks live in the repository's ``notebooks/`` folder as jupytext percent files
(``NN_name.py``); they are the source of truth, and ``.ipynb`` files are only ever generated.
For each notebook this module

1. reads it with jupytext and **injects the store URL**: a code cell ``STORE_URL = "<url>"``
   tagged ``injected-parameters`` right after the cell tagged ``parameters`` (papermill's
   convention, so the value is visible in the report). The kernel also gets the URL in the
   ``FEATURESTORE_URL`` environment variable, which is what the notebooks' parameters cell
   reads when a person runs them by hand (``FEATURESTORE_URL=s3://... jupyter lab``);
2. executes it headless with nbclient (kernel ``python3`` of this interpreter, over private
   Unix sockets on POSIX; working directory ``out_dir``), two notebooks at a time, so a
   failing cell shows its traceback in the page;
3. converts every plotly output (``application/vnd.plotly.v1+json``, the renderer
   :func:`probes.analysis.figures.show` emits) into an HTML ``<div>`` drawn by
   ``Plotly.newPlot``, and exports the page with nbconvert's lab template altered to **load
   plotly.js from one file of the report** (``plotly.min.js``, written once beside the pages:
   inlining it made every page ~5 MB) and to drop the template's CDN scripts (require.js,
   MathJax, mermaid). The pages therefore render, interactively, with no network. Code cells
   are hidden unless ``show_code``;
4. writes ``<name>.html`` and the executed ``<name>.ipynb`` into ``out_dir``, plus an
   ``index.html`` linking them, and ``data/<id>.csv``: the tidy data behind every figure and
   table (:mod:`probes.analysis.report_data`), each row saying its source (store or paper).

Progress (one line per notebook started and finished) goes to the ``progress`` callback; the
CLI prints it on stderr.

Local store paths are made absolute before injection, because the kernel runs in ``out_dir``.
"""

from __future__ import annotations

import html
import importlib.resources
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featurestore.errors import FeatureStoreError
from featurestore.store.backends import backend_for

__all__ = [
    "NOTEBOOKS_DIR",
    "STORE_ENV",
    "STUDY_ENV",
    "NotebookRun",
    "ReportError",
    "execute_notebook",
    "inject_store_url",
    "notebook_html",
    "notebook_paths",
    "report",
]


def _notebooks_dir() -> Path:
    """The report's notebooks: the installed package ``featurestore_app.notebooks`` (which
    ``pyproject.toml`` maps onto the repository's ``notebooks/``, so wheels ship them), else the
    ``notebooks/`` of a checkout put on ``sys.path`` without an install."""
    try:
        installed = importlib.resources.files("featurestore_app.notebooks")
    except ModuleNotFoundError:
        installed = None
    if isinstance(installed, Path) and installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[1] / "notebooks"


#: The report's notebooks (``NN_*.py``), from the install or the checkout.
NOTEBOOKS_DIR = _notebooks_dir()
#: Environment variable the notebooks read their store URL from.
STORE_ENV = "FEATURESTORE_URL"
#: Environment variable naming a settings-study file (``featurestore report --study FILE``);
#: notebook 02 reads it, beside the built-in studies (:mod:`featurestore.checkpoints.families`).
STUDY_ENV = "FEATURESTORE_STUDY"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
KERNEL = "python3"
DEFAULT_TIMEOUT = 600

_TEMPLATE_NAME = "featurestore_report.html.j2"
# The lab template, with plotly.js inlined where require.js was and the CDN-only scripts
# (MathJax, mermaid) removed: nothing in the page needs the network.
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}
<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>
<script type="text/javascript" src="{{ resources.plotly_src }}"></script>
{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


class ReportError(FeatureStoreError):
    """One or more notebooks failed; their pages (with the traceback) were still written."""

    def __init__(self, failures: dict[str, str], paths: list[Path]) -> None:
        self.failures = failures
        self.paths = paths
        lines = "; ".join(f"{name}: {err}" for name, err in failures.items())
        super().__init__(f"{len(failures)} notebook(s) failed ({lines}); see their HTML pages")


@dataclass
class NotebookRun:
    """Outcome of one notebook: where its page is and the error, if a cell failed."""

    name: str
    title: str
    html_path: Path
    ipynb_path: Path
    seconds: float
    error: str | None = None


def notebook_paths(directory: Path | None = None) -> list[Path]:
    """The report's notebooks, ``NN_*.py`` in name order."""
    folder = NOTEBOOKS_DIR if directory is None else Path(directory)
    paths = sorted(folder.glob("[0-9][0-9]_*.py"))
    if not paths:
        raise FileNotFoundError(
            f"no notebooks (NN_*.py) in {folder}: the package featurestore_app.notebooks "
            "ships them; reinstall featurestore"
        )
    return paths


def _absolute_url(store_url: str) -> str:
    """Local paths made absolute (the kernel runs elsewhere); other URLs unchanged."""
    root = backend_for(store_url).local_root
    return str(root) if root is not None else store_url


def inject_store_url(nb: Any, store_url: str, study_file: str | None = None) -> Any:
    """Insert ``STORE_URL = <url>`` (and ``STUDY_FILE = <path>`` when given) after the
    ``parameters`` cell (at the top when none).

    Any previously injected cell is replaced, so re-running a notebook object is idempotent.
    """
    import nbformat

    cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    source = f"# Injected by featurestore report\nSTORE_URL = {store_url!r}"
    if study_file is not None:
        source += f"\nSTUDY_FILE = {study_file!r}"
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    where = next(
        (i + 1 for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])), 0
    )
    cells.insert(where, cell)
    nb.cells = cells
    return nb


def _title(nb: Any, fallback: str) -> str:
    """The first markdown heading, which each notebook opens with."""
    for c in nb.cells:
        if c.cell_type == "markdown":
            for line in c.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def execute_notebook(
    path: Path, store_url: str, cwd: Path, timeout: int = DEFAULT_TIMEOUT,
    study_file: str | None = None,
) -> tuple[Any, str | None]:
    """Read a jupytext notebook, inject the store URL, execute it headless.

    Returns ``(notebook, error)``: on a failing cell, a cell running past ``timeout`` seconds or
    a dead kernel, the partially executed notebook (a failing cell's traceback is in its
    outputs) and a one-line error; otherwise ``None``.
    """
    import jupytext
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    url = _absolute_url(store_url)
    nb = inject_store_url(jupytext.read(path), url, study_file)
    env = {**os.environ, STORE_ENV: url}
    if study_file is not None:
        env[STUDY_ENV] = study_file
    with tempfile.TemporaryDirectory(prefix="fs-kernel-") as sockets:
        try:
            # cleanup_kc: nbclient shuts down only kernels of managers it created itself; ours
            # would otherwise live on until this process exits ("Parent appears to have exited")
            _client(nb, cwd, timeout, sockets).execute(env=env, cleanup_kc=True)
        except CellExecutionError as exc:
            last = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
            return nb, (last[-1] if last else type(exc).__name__)
        except (CellTimeoutError, DeadKernelError) as exc:  # one stuck notebook must not sink all
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return nb, f"{type(exc).__name__}: {first}"
    return nb, None


def _client(nb: Any, cwd: Path, timeout: int, sockets: str) -> Any:
    """An nbclient client whose kernel talks over Unix sockets in ``sockets`` where possible.

    IPC rather than TCP: the kernel is local, TCP kernels are reachable by every user of the
    machine (ipykernel warns about it on each start), and a private socket folder per notebook
    keeps concurrently running kernels from picking the same socket names.
    """
    from nbclient import NotebookClient

    km = None
    if os.name == "posix":
        from jupyter_client.manager import AsyncKernelManager

        km = AsyncKernelManager(kernel_name=KERNEL, transport="ipc",
                                ip=os.path.join(sockets, "kernel"))
    return NotebookClient(nb, km=km, timeout=timeout, kernel_name=KERNEL,
                          resources={"metadata": {"path": str(cwd)}})


def _plotly_to_html(nb: Any) -> Any:
    """Give every plotly MIME output a ``text/html`` rendering (a div plus ``Plotly.newPlot``,
    no plotly.js: the page head carries it once). Div ids are derived from the cell position
    so that re-rendering the same notebook gives the same HTML."""
    import plotly.io as pio

    for ci, cell in enumerate(nb.cells):
        for oi, out in enumerate(cell.get("outputs", [])):
            data = out.get("data", {})
            if PLOTLY_MIME not in data:
                continue
            fig = dict(data[PLOTLY_MIME])
            height = (fig.get("layout") or {}).get("height") or 525
            data["text/html"] = pio.to_html(
                fig,
                include_plotlyjs=False,
                include_mathjax=False,
                full_html=False,
                div_id=f"figure-{ci}-{oi}",
                default_width="100%",
                default_height=height,
                config={"responsive": True, "displaylogo": False},
                validate=False,
            )
    return nb


#: plotly.js, written once per report beside the pages (each page loads it from there).
PLOTLY_JS = "plotly.min.js"
#: Folder (inside the report) of the tidy data behind every figure and table.
DATA_DIR = "data"
#: The near-duplicates page (``report(..., duplicates=PAIRS)``).
DUPLICATES_PAGE = "duplicates.html"


def notebook_html(nb: Any, title: str, show_code: bool = False,
                  plotly_src: str = PLOTLY_JS) -> str:
    """An HTML page for an executed notebook, loading plotly.js from ``plotly_src`` (a path
    relative to the page; :func:`report` writes the file once). Code cells are left out unless
    ``show_code``: the report is read for its figures and tables."""
    import copy

    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
        template_file=_TEMPLATE_NAME,
        exclude_input=not show_code,
        exclude_input_prompt=not show_code,
        exclude_output_prompt=not show_code,
    )
    body, _ = exporter.from_notebook_node(
        _plotly_to_html(copy.deepcopy(nb)),
        resources={"metadata": {"name": title}, "plotly_src": plotly_src},
    )
    return body


def _write_plotly_js(out_dir: Path) -> Path:
    """plotly.js, once per report (rewritten only when the installed version differs)."""
    from plotly.offline import get_plotlyjs

    path = out_dir / PLOTLY_JS
    js = get_plotlyjs()
    if not path.is_file() or path.stat().st_size != len(js.encode("utf-8")):
        path.write_text(js, encoding="utf-8")
    return path


def _run_one(path: Path, store_url: str, out_dir: Path, timeout: int, show_code: bool,
             progress: Callable[[str], None], study_file: str | None = None) -> NotebookRun:
    import nbformat

    progress(f"report: {path.stem} running")
    t0 = time.perf_counter()
    nb, error = execute_notebook(path, store_url, out_dir, timeout, study_file)
    title = _title(nb, path.stem)
    html_path, ipynb_path = out_dir / f"{path.stem}.html", out_dir / f"{path.stem}.ipynb"
    # the text/html copies of the figures (plotly.js inlined in the first, for plain nbconvert)
    # are regenerated without plotly.js: the report ships it once
    nbformat.write(_plotly_to_html(nb), ipynb_path)
    html_path.write_text(notebook_html(nb, title, show_code), encoding="utf-8")
    seconds = time.perf_counter() - t0
    progress(f"report: {path.stem} {'FAILED: ' + error if error else 'done'} ({seconds:.1f} s)")
    return NotebookRun(path.stem, title, html_path, ipynb_path, seconds, error)


def _index_html(runs: Sequence[NotebookRun], store_url: str, data: Sequence[str],
                extra_pages: Sequence[Path] = ()) -> str:
    from featurestore import __version__

    links = "\n".join(f'<li><a href="{DATA_DIR}/{html.escape(k)}.csv">{html.escape(k)}</a></li>'
                      for k in data)

    items = "\n".join(
        f'<li><a href="{html.escape(r.html_path.name)}">{html.escape(r.title)}</a> '
        f"<small>({r.seconds:.1f} s"
        + (f'; <span class="err">failed: {html.escape(r.error)}</span>' if r.error else "")
        + ")</small></li>"
        for r in runs
    ) + "".join(f'\n<li><a href="{html.escape(p.name)}">Near-duplicate images</a></li>'
                for p in extra_pages)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>featurestore report</title>
<style>body{{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.5}}
.err{{color:#b00}} code{{background:#f4f4f4;padding:0 .2em}}</style></head>
<body><h1>featurestore report</h1>
<p>Store: <code>{html.escape(store_url)}</code><br>
Generated {html.escape(time.strftime("%Y-%m-%d %H:%M:%S %z"))} by featurestore {__version__}.
The pages load plotly.js from <code>{PLOTLY_JS}</code> beside them and work offline.</p>
<ol>
{items}
</ol>
<h2>Data</h2>
<p>The tidy data behind every figure and table, one CSV per id; the <code>source</code> column
says whether a row comes from the store or the paper.</p>
<ul>
{links}
</ul>
<p>Reproducing: Kornblith, Shlens &amp; Le, <i>Do Better ImageNet Models Transfer Better?</i>
(CVPR 2019). Figures show the paper's published numbers and the store's results side by
side, each panel labelled with its source.</p>
</body></html>
"""


def report(
    store_url: str,
    out_dir: Path,
    notebooks: Sequence[Path] | None = None,
    timeout: int = DEFAULT_TIMEOUT,
    jobs: int | None = None,
    show_code: bool = False,
    progress: Callable[[str], None] | None = None,
    study_file: Path | str | None = None,
    duplicates: Path | str | None = None,
) -> list[Path]:
    """Execute the notebooks against ``store_url`` and write the HTML report into ``out_dir``.

    Returns the written pages, ``index.html`` first, then one page per notebook (the executed
    ``.ipynb`` files sit beside them, the figure data in ``data/``). ``jobs`` notebooks run at
    once (default: 2, or 1 on a single core): each has its own kernel, and kernel start-up
    dominates short notebooks. ``progress`` gets one line per notebook started and finished.
    ``study_file`` names a settings-study file (TOML/JSON,
    :mod:`featurestore.checkpoints.families`) whose studies the report shows beside the
    built-in ones; it is read first, so a bad file fails before any work
    (:class:`featurestore.checkpoints.families.StudyFileError`). ``duplicates`` names a pairs
    CSV of ``featurestore duplicates``: the report then shows thumbnails of its top pairs
    (``duplicates.html`` and ``data/duplicates.csv``,
    :mod:`featurestore_app.duplicate_pages`).
    Raises :class:`featurestore.errors.StoreLocationError` when ``store_url`` names no store,
    and :class:`ReportError` after writing everything if any notebook failed.
    """
    from featurestore.store import FeatureStore
    from probes.analysis.report_data import write_figure_data

    # A mistyped --store fails here, before any page exists, rather than rendering the paper's
    # numbers alone as if they were the store's (StoreLocationError names the path).
    FeatureStore(store_url, read_only=True)
    study = None
    if study_file is not None:
        from featurestore.checkpoints.families import load_study_file

        study = str(Path(study_file).resolve())
        load_study_file(study)
    say = progress or (lambda _line: None)
    if duplicates is not None:
        from probes.analysis.duplicates import read_pairs

        read_pairs(Path(duplicates))  # a missing or foreign pairs file fails before any work
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = list(notebooks) if notebooks is not None else notebook_paths()
    t0 = time.perf_counter()
    data = write_figure_data(_absolute_url(store_url), str(out_dir / DATA_DIR), study)
    say(f"report: data/ ({len(data)} figure and table CSVs, {time.perf_counter() - t0:.1f} s)")
    _write_plotly_js(out_dir)
    workers = jobs if jobs is not None else min(2, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        runs = list(pool.map(
            lambda p: _run_one(Path(p), store_url, out_dir, timeout, show_code, say, study),
            paths))
    extra_pages: list[Path] = []
    if duplicates is not None:
        from featurestore_app.duplicate_pages import duplicates_page

        page = duplicates_page(_absolute_url(store_url), duplicates)
        extra_pages.append(out_dir / DUPLICATES_PAGE)
        extra_pages[-1].write_text(page.html, encoding="utf-8")
        page.data.to_csv(out_dir / DATA_DIR / "duplicates.csv", index=False)
        data["duplicates"] = str(out_dir / DATA_DIR / "duplicates.csv")
        say(f"report: {DUPLICATES_PAGE} ({len(page.data)} pairs)")
    index = out_dir / "index.html"
    index.write_text(_index_html(runs, store_url, sorted(data), extra_pages), encoding="utf-8")
    written = [index, *(r.html_path for r in runs), *extra_pages]
    failures = {r.name: r.error for r in runs if r.error}
    if failures:
        raise ReportError(failures, written)
    return written
