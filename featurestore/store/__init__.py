"""The Zarr v3 feature store: layout, backends, catalog and reads, crash-safe writes, locks.

- :mod:`~featurestore.store.layout`: names and constants of the on-disk layout;
- :mod:`~featurestore.store.backends`: local | memory | fsspec | http, chosen once per URL;
- :mod:`~featurestore.store.catalog`: :class:`FeatureStore` (catalog, reads, xarray view);
- :mod:`~featurestore.store.writer`: :class:`EntryWriter` (chunked, resumable writes);
- :mod:`~featurestore.store.chunkio`: the fast local read path; :mod:`~.locking`: entry locks.
- :mod:`~featurestore.store.device_reads`: a split as a torch tensor on a device (straight into
  GPU memory on CUDA); also :meth:`FeatureStore.load_tensor`.
"""

from featurestore.store.catalog import EntryInfo, FeatureStore
from featurestore.store.layout import COMPLETE, DEFAULT_URL, IN_PROGRESS
from featurestore.store.writer import EntryWriter, SplitPlan

__all__ = [
    "COMPLETE",
    "DEFAULT_URL",
    "IN_PROGRESS",
    "EntryInfo",
    "EntryWriter",
    "FeatureStore",
    "SplitPlan",
]
