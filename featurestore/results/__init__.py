"""The results table: one row per finished probe / fine-tune / from-scratch job, in the store."""

from featurestore.results.table import COLUMNS, SETTINGS, ResultsTable

__all__ = ["COLUMNS", "SETTINGS", "ResultsTable"]
