"""Where the paper's transcribed tables live, and how to read one.

The published numbers of Kornblith, Shlens & Le (Table 1 datasets, Table 3 networks, Table 6
results) are kept once, as CSV files in the repository's top-level ``data/paper/`` (its README
says how they were transcribed and checked). The data layer reads Tables 1 and 3 to describe its
datasets and checkpoint presets; the learning layer (``probes.analysis.paper``) reads all three
for its statistics. Both find the folder through this module, so the location is decided once.

The folder is found relative to this file, which works for a source checkout and an editable
install (``pip install -e .``). A wheel does not ship ``data/``; reading then fails with a
``FileNotFoundError`` that says where the files were expected. Parsing uses the standard
library's :mod:`csv`, so importing the checkpoint and dataset registries stays free of pandas.
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["data_dir", "read_rows", "table_path"]


def data_dir() -> Path:
    """The ``data/paper`` folder of the source tree this module was loaded from."""
    return Path(__file__).resolve().parents[1] / "data" / "paper"


def table_path(name: str) -> Path:
    """Path of the table file ``name`` (e.g. ``"table3.csv"``); raises if it is absent.

    Raises:
        FileNotFoundError: the file is not in :func:`data_dir` (typically a non-editable
            install, which does not ship the repository's ``data/`` folder).
    """
    path = data_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the paper's tables live in the repository's data/paper/, which "
            "only a source checkout or an editable install (pip install -e .) provides"
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
