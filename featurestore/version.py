"""The package version, in a leaf module so that code recording it (every results row) need not
import the package root, which lazily imports the store that imports the results table."""

__version__ = "0.1.0"
