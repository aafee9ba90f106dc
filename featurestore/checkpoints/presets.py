"""The ``paper16`` and ``modern`` checkpoint presets.

``paper16`` maps the paper's sixteen networks (Kornblith, Shlens & Le 2019, Table 3) onto the
closest public timm checkpoints. The paper's main results use the authors' *retrained*,
unregularised models, which were never released; what can be loaded is a public checkpoint of
the same architecture, so each entry says which one and carries all three of Table 3's ImageNet
numbers in ``extra`` (fractions): ``top1_paper`` (original publication; None for ResNet-152),
``top1_public`` (the TF-Slim / Keras checkpoint the paper evaluated in Appendix B) and
``top1_retrained`` (the x-axis of the paper's main results). ``extra["paper_model"]`` is the
Table 3 key (``probes.analysis.paper``), which is also the entry's name.

The paper's numbers are not repeated here: they are read from ``data/paper/table3.csv`` (through
:mod:`featurestore.paperdata`), the one transcription of Table 3. This module adds only what the
paper does not say: which timm checkpoint stands in for each network (:data:`PAPER16_TIMM`).

``imagenet_top1`` is the loaded checkpoint's own ImageNet top-1, as timm reports it (source in
``top1_source``); for the three networks with no public equivalent in timm (Inception v1,
BN-Inception, NASNet-A Mobile) the entry has ``available=False`` and ``imagenet_top1`` is the
paper's public-checkpoint value, for reference only.

How close each mapping is (``extra["weights_origin"]``):

- ``tf-slim``: the very checkpoint the paper's "public" column measured, ported to PyTorch
  (Inception v3 / v4, Inception-ResNet v2, NASNet-A Large).
- ``torchvision``: torchvision's v1 weights. For the ResNets this is the "v1.5" block (stride 2
  on the 3x3 convolution) that the paper's retrained ResNets use (Table 3, footnote e), while the
  paper's public column is TF-Slim's Caffe-converted v1; the DenseNets' public column is Keras'.
- ``timm``: weights trained by timm's author with modern recipes (MobileNet v1 / v2); same
  architecture, clearly higher top-1 than any checkpoint in the paper.

Table 3 prints 1,024 features for all three DenseNets; DenseNet-169 and -201 have 1,664 and
1,920 (their printed parameter counts, 12.5M and 18.1M, are those of the standard networks), so
``feature_dim`` holds the real width and ``extra["features_paper"]`` the printed one.
``params`` counts parameters without the classifier, as Table 3 does.

``modern`` is a spread of current timm ImageNet-1k checkpoints (CNNs, ViTs, mobile nets). Their
top-1 is timm's published evaluation at the listed ``extra["top1_img_size"]``, which for some
(``resnet50.a1_in1k``: 288) is timm's *test* size, larger than the ``input_size`` the features
are extracted at.

Sources of timm top-1 values: ``results/results-imagenet.csv`` of huggingface/pytorch-image-models
at commit 0173a139a2c66db3a41ebfe1d8ac4fb02483642e; MobileNet v1 from that repository's README
(July 2024 "MobileNet-V1 and EfficientNet-B0 baseline challenges" table, 224 px row).
"""

from __future__ import annotations

from dataclasses import dataclass

from featurestore.checkpoints.registry import PRESETS, CheckpointInfo, register
from featurestore.paperdata import read_rows

TIMM_RESULTS = (
    "timm results-imagenet.csv (huggingface/pytorch-image-models@0173a139a2c6)"
)
TIMM_README_MNV1 = (
    "timm README, 'MobileNet-V1 and EfficientNet-B0 baseline challenges' table (July 2024)"
)
PAPER_PUBLIC = "paper Table 3, public checkpoint column (no timm equivalent)"


@dataclass(frozen=True, kw_only=True)
class TimmMatch:
    """The public timm checkpoint standing in for one of the paper's networks.

    ``arch`` is None where timm has no equivalent; then only ``notes`` (why) is set.
    """

    arch: str | None = None
    #: How close the weights are to the paper's: ``tf-slim``, ``torchvision`` or ``timm``.
    origin: str | None = None
    #: timm's ImageNet top-1 of ``arch`` in percent, at the arch's own input size.
    top1: float | None = None
    top1_source: str = ""
    #: Exact parameter count without the classifier (Table 3 counts the same way).
    params: int | None = None
    #: Real penultimate width of ``arch`` (Table 3 misprints the DenseNets').
    feature_dim: int | None = None
    notes: str


#: Table 3 key -> the timm checkpoint mapped onto it (the paper's own numbers are in table3.csv).
PAPER16_TIMM: dict[str, TimmMatch] = {
    "inception_v1": TimmMatch(
        notes="TF-Slim Inception v1 (GoogLeNet with batch norm): no timm architecture or "
        "weights; torchvision's googlenet is not a timm model",
    ),
    "bn_inception": TimmMatch(
        notes="BN-Inception (TF-Slim 'inception_v2'): no timm architecture or weights",
    ),
    "inception_v3": TimmMatch(
        arch="inception_v3.tf_in1k", origin="tf-slim", top1=77.862, top1_source=TIMM_RESULTS,
        params=21_785_568, feature_dim=2048,
        notes="TF-Slim inception_v3 checkpoint ported to PyTorch",
    ),
    "inception_v4": TimmMatch(
        arch="inception_v4.tf_in1k", origin="tf-slim", top1=80.156, top1_source=TIMM_RESULTS,
        params=41_142_816, feature_dim=1536,
        notes="TF-Slim inception_v4 checkpoint ported to PyTorch",
    ),
    "inception_resnet_v2": TimmMatch(
        arch="inception_resnet_v2.tf_in1k", origin="tf-slim", top1=80.462,
        top1_source=TIMM_RESULTS, params=54_306_464, feature_dim=1536,
        notes="TF-Slim inception_resnet_v2 checkpoint ported to PyTorch",
    ),
    "resnet50_v1": TimmMatch(
        arch="resnet50.tv_in1k", origin="torchvision", top1=76.130, top1_source=TIMM_RESULTS,
        params=23_508_032, feature_dim=2048,
        notes="torchvision v1 weights (v1.5 block, as the paper's retrained ResNets); the "
        "paper's public column is TF-Slim's ResNet v1",
    ),
    "resnet101_v1": TimmMatch(
        arch="resnet101.tv_in1k", origin="torchvision", top1=77.376, top1_source=TIMM_RESULTS,
        params=42_500_160, feature_dim=2048,
        notes="torchvision v1 weights (v1.5 block); the paper's public column is TF-Slim's v1",
    ),
    "resnet152_v1": TimmMatch(
        arch="resnet152.tv_in1k", origin="torchvision", top1=78.322, top1_source=TIMM_RESULTS,
        params=58_143_808, feature_dim=2048,
        notes="torchvision v1 weights (v1.5 block); the paper's public column is TF-Slim's v1",
    ),
    "densenet121": TimmMatch(
        arch="densenet121.tv_in1k", origin="torchvision", top1=74.764, top1_source=TIMM_RESULTS,
        params=6_953_856, feature_dim=1024,
        notes="torchvision weights; the paper's public column is the Keras checkpoint",
    ),
    "densenet169": TimmMatch(
        arch="densenet169.tv_in1k", origin="torchvision", top1=75.900, top1_source=TIMM_RESULTS,
        params=12_484_480, feature_dim=1664,
        notes="torchvision weights; 1,664 features (Table 3 prints 1,024)",
    ),
    "densenet201": TimmMatch(
        arch="densenet201.tv_in1k", origin="torchvision", top1=77.286, top1_source=TIMM_RESULTS,
        params=18_092_928, feature_dim=1920,
        notes="torchvision weights; 1,920 features (Table 3 prints 1,024)",
    ),
    "mobilenet_v1": TimmMatch(
        arch="mobilenetv1_100.ra4_e3600_r224_in1k", origin="timm", top1=75.382,
        top1_source=TIMM_README_MNV1, params=3_206_976, feature_dim=1024,
        notes="MobileNet v1 1.0 trained by timm (2024 recipe), not the TF-Slim checkpoint",
    ),
    "mobilenet_v2": TimmMatch(
        arch="mobilenetv2_100.ra_in1k", origin="timm", top1=72.976, top1_source=TIMM_RESULTS,
        params=2_223_872, feature_dim=1280,
        notes="MobileNet v2 1.0 trained by timm (RandAugment), not the TF-Slim checkpoint",
    ),
    "mobilenet_v2_140": TimmMatch(
        arch="mobilenetv2_140.ra_in1k", origin="timm", top1=76.520, top1_source=TIMM_RESULTS,
        params=4_315_776, feature_dim=1792,
        notes="MobileNet v2 1.4 trained by timm (RandAugment), not the TF-Slim checkpoint",
    ),
    "nasnet_a_mobile": TimmMatch(
        notes="NASNet-A Mobile: timm has only nasnetalarge and pnasnet5large",
    ),
    "nasnet_a_large": TimmMatch(
        arch="nasnetalarge.tf_in1k", origin="tf-slim", top1=82.626, top1_source=TIMM_RESULTS,
        params=84_720_150, feature_dim=4032,
        notes="TF-Slim nasnet_large checkpoint ported to PyTorch",
    ),
}  # fmt: skip


def _frac(percent: float | None) -> float | None:
    return None if percent is None else round(percent / 100.0, 5)


def _percent(cell: str) -> float | None:
    """A Table 3 top-1 cell: empty where the paper prints N/A (ResNet-152's original top-1)."""
    return float(cell) if cell else None


def _paper16_entry(row: dict[str, str], match: TimmMatch) -> CheckpointInfo:
    """The registry entry of one Table 3 row and the timm checkpoint mapped onto it."""
    name, image_size = row["model"], int(row["image_size"])
    top1_public = float(row["top1_public"])
    available = match.arch is not None
    return CheckpointInfo(
        name=name,
        arch=match.arch or "",
        imagenet_top1=_frac(match.top1 if available else top1_public),
        top1_source=(
            f"{match.top1_source}, {match.arch} at {image_size} px" if available else PAPER_PUBLIC
        ),
        params=match.params,
        feature_dim=match.feature_dim if available else int(row["features"]),
        input_size=image_size,
        available=available,
        notes=match.notes if available else f"unavailable: {match.notes}",
        extra={
            "paper_model": name,
            "top1_paper": _frac(_percent(row["top1_paper"])),
            "top1_public": _frac(top1_public),
            "top1_retrained": _frac(float(row["top1_retrained"])),
            "params_paper_m": float(row["parameters_m"]),
            "features_paper": int(row["features"]),
            "image_size_paper": image_size,
            "weights_origin": match.origin,
        },
    )


def _register_paper16() -> list[str]:
    """Register one entry per Table 3 row, in the paper's order; return their names."""
    rows = read_rows("table3.csv")
    keys = [row["model"] for row in rows]
    if set(keys) != set(PAPER16_TIMM):
        raise RuntimeError(  # a table3.csv edit that the timm mapping does not follow
            f"data/paper/table3.csv models {sorted(keys)} differ from the paper16 timm mapping "
            f"{sorted(PAPER16_TIMM)}"
        )
    for row in rows:
        register(_paper16_entry(row, PAPER16_TIMM[row["model"]]))
    return keys


PRESETS["paper16"] = _register_paper16()


@dataclass(frozen=True, kw_only=True)
class ModernCheckpoint:
    """A current timm checkpoint and timm's published evaluation of it."""

    top1: float  # percent
    top1_img_size: int
    params: int  # without the classifier
    feature_dim: int
    input_size: int  # pretrained_cfg input_size (what extraction uses)
    notes: str


#: timm name (a pinned pretrained tag) -> its published evaluation and shape.
MODERN: dict[str, ModernCheckpoint] = {
    "resnet50.a1_in1k": ModernCheckpoint(
        top1=81.214, top1_img_size=288, params=23_508_032, feature_dim=2048, input_size=224,
        notes="ResNet-50, 'ResNet strikes back' A1 recipe"),
    "resnet50.tv2_in1k": ModernCheckpoint(
        top1=80.850, top1_img_size=224, params=23_508_032, feature_dim=2048, input_size=176,
        notes="ResNet-50, torchvision v2 recipe"),
    "convnext_tiny.fb_in1k": ModernCheckpoint(
        top1=82.698, top1_img_size=288, params=27_820_128, feature_dim=768, input_size=224,
        notes="ConvNeXt-T"),
    "convnext_small.fb_in1k": ModernCheckpoint(
        top1=83.700, top1_img_size=288, params=49_454_688, feature_dim=768, input_size=224,
        notes="ConvNeXt-S"),
    "regnety_032.ra_in1k": ModernCheckpoint(
        top1=82.728, top1_img_size=288, params=17_923_338, feature_dim=1512, input_size=224,
        notes="RegNetY-3.2GF"),
    "efficientnet_b0.ra_in1k": ModernCheckpoint(
        top1=77.694, top1_img_size=224, params=4_007_548, feature_dim=1280, input_size=224,
        notes="EfficientNet-B0"),
    "tf_efficientnetv2_s.in1k": ModernCheckpoint(
        top1=83.900, top1_img_size=384, params=20_177_488, feature_dim=1280, input_size=300,
        notes="EfficientNetV2-S, TensorFlow weights"),
    "mobilenetv3_large_100.ra_in1k": ModernCheckpoint(
        top1=75.766, top1_img_size=224, params=4_202_032, feature_dim=1280, input_size=224,
        notes="MobileNet v3 large 1.0"),
    "deit_small_patch16_224.fb_in1k": ModernCheckpoint(
        top1=79.844, top1_img_size=224, params=21_665_664, feature_dim=384, input_size=224,
        notes="DeiT-S, ImageNet-1k only"),
    "vit_small_patch16_224.augreg_in21k_ft_in1k": ModernCheckpoint(
        top1=81.384, top1_img_size=224, params=21_665_664, feature_dim=384, input_size=224,
        notes="ViT-S/16, ImageNet-21k pretraining"),
    "vit_base_patch16_224.augreg2_in21k_ft_in1k": ModernCheckpoint(
        top1=85.096, top1_img_size=224, params=85_798_656, feature_dim=768, input_size=224,
        notes="ViT-B/16, ImageNet-21k pretraining"),
    "swin_tiny_patch4_window7_224.ms_in1k": ModernCheckpoint(
        top1=81.376, top1_img_size=224, params=27_519_354, feature_dim=768, input_size=224,
        notes="Swin-T"),
}  # fmt: skip

for _name, _m in MODERN.items():
    register(
        CheckpointInfo(
            name=_name,
            arch=_name,
            imagenet_top1=_frac(_m.top1),
            top1_source=f"{TIMM_RESULTS}, at {_m.top1_img_size} px",
            params=_m.params,
            feature_dim=_m.feature_dim,
            input_size=_m.input_size,
            notes=_m.notes,
            extra={"top1_img_size": _m.top1_img_size, "weights_origin": "timm hub"},
        )
    )

PRESETS["modern"] = list(MODERN)
