"""featurestore: cache penultimate-layer features of ImageNet checkpoints on transfer datasets.

The data layer of the transfer-learning study (Kornblith et al. 2019): checkpoint and dataset
registries, the extraction engine, the Zarr store, the CLI and the HTTP service.
"""

from featurestore.errors import FeatureStoreError
from featurestore.version import __version__

__all__ = ["FeatureStore", "FeatureStoreError", "__version__"]


def __getattr__(name: str):  # lazy: `import featurestore` stays cheap for the CLI's --help
    if name == "FeatureStore":
        from featurestore.store import FeatureStore

        return FeatureStore
    raise AttributeError(name)
