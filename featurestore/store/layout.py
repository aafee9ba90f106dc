"""Names and constants of the store's on-disk layout (Zarr v3).

::

    <store>/<ckpt>/<dataset>/<split>/features   float32 [N, D], chunked by rows
    <store>/<ckpt>/<dataset>/<split>/labels     int32 [N] (uint8 [N, C] for multi-label)
    <store>/<ckpt>/<dataset>/<split>/ids        string [N]
    <store>/<ckpt>/<dataset>/<split>/done       uint8 [n_chunks], one chunk per row chunk
    <store>/<ckpt>/<dataset>  attributes["featurestore"]: provenance, with "status" set last
    <store>/_results/                           results table (see :mod:`featurestore.results`)

Top-level groups whose name starts with ``_`` are not checkpoints; entry groups ending in
:data:`STAGING_SUFFIX` are unfinished ``--force`` rewrites.
"""

from __future__ import annotations

FORMAT_VERSION = 1
ATTR = "featurestore"
STAGING_SUFFIX = ".staging"
DEFAULT_URL = "./featurestore.zarr"
COMPLETE, IN_PROGRESS = "complete", "in_progress"


def entry_key(ckpt: str, dataset: str) -> str:
    """The group path of an entry inside the store."""
    return f"{ckpt}/{dataset}"
