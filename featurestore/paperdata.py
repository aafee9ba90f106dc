"""Where the paper's transcribed tables live, and how to read one.

The published numbers of Kornblith, Shlens & Le (Table 1 datasets, Table 3 networks, Table 6
results) are kept once, as CSV files in the repository's top-level ``data/paper/`` (its README
says how they were transcribed and checked). The data layer reads Tables 1 and 3 to describe its
datasets and checkpoint presets; the learning layer (``probes.analysis.paper``) reads all three
for its statistics. Both find the folder through this module, so the location is decided once.

Installs ship the folder as the package ``featurestore.paper_tables`` (``pyproject.toml`` maps
``data/paper`` onto it with ``package-dir``, for wheels and editable installs alike), so the folder
is found through :mod:`importlib.resources` first; a plain checkout on ``sys.path`` without an
install falls back to ``data/paper`` next to this package. Parsing uses the standard library's
:mod:`csv`, so importing the checkpoint and dataset registries stays free of pandas.
"""

from __future__ import annotations

import csv
import importlib.resources
from pathlib import Path

__all__ = ["data_dir", "read_rows", "table_path"]


#: The package an install ships ``data/paper`` as (see ``[tool.setuptools.package-dir]``).
PACKAGE = "featurestore.paper_tables"


def data_dir() -> Path:
    """The folder of the paper's tables: the installed package's, else the checkout's."""
    try:
        installed = importlib.resources.files(PACKAGE)
    except ModuleNotFoundError:  # a checkout put on sys.path without `pip install`
        installed = None
    if isinstance(installed, Path) and installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[1] / "data" / "paper"


def table_path(name: str) -> Path:
    """Path of the table file ``name`` (e.g. ``"table3.csv"``); raises if it is absent.

    Raises:
        FileNotFoundError: the file is not in :func:`data_dir` (an install or checkout that
            lost part of ``data/paper``).
    """
    path = data_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the paper's tables ship in the package {PACKAGE} (the "
            "repository's data/paper/); reinstall featurestore"
        )
    return path


def read_rows(name: str) -> list[dict[str, str]]:
    """The rows of table ``name`` as dicts of column -> cell text, in file order.

    Lines starting with ``#`` are the header comments that name the paper's table; they are
    skipped, exactly as ``pandas.read_csv(path, comment="#")`` does. Cells are returned as
    text (empty string for an empty cell) so each caller converts the columns it uses.
    """
    with open(table_path(name), encoding="utf-8", newline="") as f:
        lines = [line for line in f if not line.startswith("#")]
    return list(csv.DictReader(lines))
