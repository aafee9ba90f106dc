"""The results table: one row per finished probe / fine-tune / from-scratch job, in the store.

The row itself is defined once in :mod:`featurestore.results.schema`.
"""

from featurestore.results.schema import (
    SETTINGS,
    FeatureSource,
    ResultRow,
    RowFormatError,
    Subset,
    parse_curve_steps,
)
from featurestore.results.table import COLUMNS, ResultsTable

__all__ = [
    "COLUMNS",
    "SETTINGS",
    "FeatureSource",
    "ResultRow",
    "ResultsTable",
    "RowFormatError",
    "Subset",
    "parse_curve_steps",
]
