"""The network a fine-tuning run trains: the checkpoint with a new head, or (logistic regression
with augmentation) a linear layer on its frozen penultimate features; and the optimiser's view of
it (which parameters decay, BatchNorm momentum).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from featurestore.checkpoints import LoadedCheckpoint, penultimate_features
from probes.finetune.data import mix_seed

__all__ = ["FrozenBackboneClassifier", "build_model", "classifier_of", "param_groups",
           "set_bn_momentum"]

#: Random stream of the new head's initialisation, derived from the job seed (distinct from the
#: data (1) and model (2) streams of :mod:`probes.finetune.train`).
_HEAD_STREAM = 3


class FrozenBackboneClassifier(nn.Module):
    """A linear layer on the frozen penultimate features (logistic regression with augmentation,
    Appendix G.2). The backbone stays in eval mode (BN uses its ImageNet statistics) whatever
    ``train()`` is called with, and runs without autograd."""

    def __init__(self, backbone: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.backbone = backbone
        self.backbone.requires_grad_(False)
        self.head = head

    def train(self, mode: bool = True) -> FrozenBackboneClassifier:
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            f = penultimate_features(self.backbone, x)
        return self.head(f.float())


def classifier_of(model: nn.Module) -> nn.Module:
    """The new classification layer (weight decay / L2 bookkeeping and zero initialisation)."""
    if isinstance(model, FrozenBackboneClassifier):
        return model.head
    head = model.get_classifier()
    assert isinstance(head, nn.Module)
    return head


def build_model(loaded: LoadedCheckpoint, setting: str, num_classes: int, seed: int) -> nn.Module:
    """The network a run starts from, on CPU (each grid point deep-copies it).

    ``finetune`` and ``logreg_aug``: the new layer starts at zero, so the start point does not
    depend on the seed (the common fine-tuning practice; for the convex logreg_aug problem any
    start is equivalent). ``scratch``: timm's own random initialisation of every layer, seeded.
    """
    if setting == "logreg_aug":
        model: nn.Module = FrozenBackboneClassifier(
            loaded.model, nn.Linear(loaded.feature_dim, num_classes)
        )
    else:
        model = loaded.model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(seed, _HEAD_STREAM))
            model.reset_classifier(num_classes)
    if setting in ("finetune", "logreg_aug"):
        head = classifier_of(model)
        for p in head.parameters():
            nn.init.zeros_(p)
    return model


def set_bn_momentum(model: nn.Module, momentum: float) -> int:
    """Set every BatchNorm's PyTorch momentum; returns how many layers were changed."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum
            n += 1
    return n


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv / linear weights only (ndim > 1), not on biases or norm parameters."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
