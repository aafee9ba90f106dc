"""Optional extras: the one place that knows which import belongs to which pip extra.

``pip install featurestore`` is the data layer and the probes. The HTTP service, the notebook
report, the dask scheduler and the GPU array stack are named extras of ``pyproject.toml``
(``serve``, ``notebooks``, ``distributed``, ``gpu``). A command that needs one checks for it
*before* doing any work, so a user who lacks it reads one line naming the ``pip install`` to run
instead of a ``ModuleNotFoundError`` traceback from deep inside a third-party import.
"""

from __future__ import annotations

import importlib

from featurestore.errors import FeatureStoreError

__all__ = ["EXTRAS", "MissingExtraError", "require_extra"]

#: Extra name -> the top-level modules whose import proves it is installed. Keep in step with
#: ``[project.optional-dependencies]`` of ``pyproject.toml`` (tests/featurestore/test_packaging.py
#: checks that every module listed here belongs to a distribution the extra declares).
EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("fastapi", "uvicorn"),
    "notebooks": ("jupytext", "nbformat", "nbclient", "nbconvert", "jupyter_client", "jinja2",
                  "ipykernel", "IPython"),
    "distributed": ("distributed",),
    "gpu": ("cupy",),
}


class MissingExtraError(FeatureStoreError, ImportError):
    """A feature was asked for whose optional extra is not installed.

    An :class:`ImportError` too, so code that already guards an optional import with
    ``except ImportError`` keeps working.
    """

    def __init__(self, feature: str, extra: str, module: str) -> None:
        self.feature, self.extra, self.module = feature, extra, module
        super().__init__(
            f"{feature} needs the '{extra}' extra: pip install 'featurestore[{extra}]'"
        )


def require_extra(extra: str, feature: str) -> None:
    """Import every module of ``extra``; raise :class:`MissingExtraError` naming ``feature`` if
    one is missing.

    The modules are imported (not just looked up) because the caller is about to import them
    anyway, and because an import that is blocked or broken is as missing as an absent one.
    """
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise MissingExtraError(feature, extra, module) from e
