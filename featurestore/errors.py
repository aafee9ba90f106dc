"""Exceptions raised by the data layer.

Every failure a user can cause (a typo in a checkpoint name, a corrupt JPEG, a weights file for
another architecture, a dataset root in the wrong place) has its own class, so library callers can
catch exactly what they mean to handle and the CLI can print one clear line per error without a
traceback.
"""

from __future__ import annotations


class FeatureStoreError(Exception):
    """Base class of every error the featurestore data layer raises on purpose."""


class UnknownCheckpointError(FeatureStoreError, KeyError):
    """A checkpoint name that is neither a registry entry, a preset nor a timm architecture."""

    def __init__(self, name: str, suggestions: list[str] | None = None) -> None:
        self.name = name
        self.suggestions = list(suggestions or [])
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown checkpoint {name!r}{hint} (`featurestore ckpts` lists them)")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class WeightsUnavailableError(FeatureStoreError):
    """Pretrained weights could not be obtained (no network, no local file)."""


class WeightsMismatchError(FeatureStoreError):
    """A weights file whose tensors do not fit the architecture they were loaded into."""


class UnknownDatasetError(FeatureStoreError, KeyError):
    """A dataset name that is not in the registry."""

    def __init__(self, name: str, suggestions: list[str] | None = None) -> None:
        self.name = name
        self.suggestions = list(suggestions or [])
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown dataset {name!r}{hint} (`featurestore datasets` lists them)")

    def __str__(self) -> str:
        return str(self.args[0])


class DatasetRootError(FeatureStoreError, FileNotFoundError):
    """A dataset root that is missing or lacks the files its loader expects."""


class MissingImagesError(DatasetRootError):
    """Split files name images that are absent on disk (use allow_missing to proceed)."""


class CorruptImageError(FeatureStoreError):
    """An image file that cannot be decoded; the message names the file."""


class EntryNotFoundError(FeatureStoreError, KeyError):
    """A (checkpoint, dataset[, split]) entry that is not complete in the store."""

    def __str__(self) -> str:
        return str(self.args[0])


class EntryBusyError(FeatureStoreError):
    """Another process holds the lock of the entry being written."""


class StoreFormatError(FeatureStoreError):
    """Store content that does not follow the featurestore layout (or a newer format version)."""


class DeviceError(FeatureStoreError, ValueError):
    """A ``--device`` that does not exist or is not available here (``cuda`` without CUDA)."""


class StoreLocationError(FeatureStoreError):
    """A store path or URL that cannot hold, or does not hold, a feature store: a regular file,
    a non-empty directory that is not a store, a mistyped path given to a read command, an unknown
    URL scheme or an unreachable server. Raised before anything is written."""


class EmptySplitError(DatasetRootError):
    """A dataset whose split rule leaves a split without images (e.g. one train image per class
    leaves val empty); refused before extraction so no entry is left ``in_progress``."""


class ImageTooLargeError(CorruptImageError):
    """An image whose header claims more pixels than the limit (a decompression bomb guard);
    ``featurestore extract --max-pixels`` raises the limit."""


class NonFiniteFeaturesError(FeatureStoreError, ValueError):
    """A checkpoint/weights whose forward pass yields NaN or inf features; the message names the
    weights and the first bad row. Such features are never written."""


class DamagedEntryError(FeatureStoreError):
    """Stored features that fail their integrity check: a chunk whose crc32c does not match, a
    chunk file that is missing although its ``done`` flag says it was written, or entry metadata
    that cannot be read. Raised instead of returning numbers, since a damaged chunk read as zeros
    scores like a real (bad) checkpoint and would be recorded as a result."""
