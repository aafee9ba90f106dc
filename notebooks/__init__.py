"""The report's notebooks, as the package ``featurestore_app.notebooks`` once installed.

``pyproject.toml`` maps this folder onto that package (``package-dir``) so ``featurestore report``
finds the notebooks from a wheel as well as from a checkout (:mod:`featurestore_app.report`).
"""
