"""The paper's transcribed tables, as the package ``featurestore.paper_tables`` once installed.

``pyproject.toml`` maps this folder onto that package (``package-dir``) so wheels ship the CSV
files and editable installs import them from here; :mod:`featurestore.paperdata` finds them.
"""
