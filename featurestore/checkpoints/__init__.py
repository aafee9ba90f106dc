"""Checkpoints: registry (names, presets, ImageNet metadata) and weight loading."""

# ``presets`` registers the paper16 and modern presets (plain data; imports nothing heavy).
from featurestore.checkpoints import presets  # noqa: F401
from featurestore.checkpoints.loading import (
    RANDOM,
    LoadedCheckpoint,
    load_checkpoint,
    penultimate_features,
    read_weights_file,
    sha256_file,
)
from featurestore.checkpoints.registry import (
    PRESETS,
    REGISTRY,
    CheckpointInfo,
    expand_checkpoints,
    register,
    resolve,
)

__all__ = [
    "RANDOM",
    "PRESETS",
    "REGISTRY",
    "CheckpointInfo",
    "LoadedCheckpoint",
    "expand_checkpoints",
    "load_checkpoint",
    "penultimate_features",
    "read_weights_file",
    "register",
    "resolve",
    "sha256_file",
]
