"""The ``paper16`` and ``modern`` checkpoint presets.

``paper16`` maps the paper's sixteen networks (Kornblith, Shlens & Le 2019, Table 3) onto the
closest public timm checkpoints. The paper's main results use the authors' *retrained*,
unregularised models, which were never released; what can be loaded is a public checkpoint of
the same architecture, so each entry says which one and carries all three of Table 3's ImageNet
numbers in ``extra`` (fractions): ``top1_paper`` (original publication; None for ResNet-152),
``top1_public`` (the TF-Slim / Keras checkpoint the paper evaluated in Appendix B) and
``top1_retrained`` (the x-axis of the paper's main results). ``extra["paper_model"]`` is the
Table 3 key (``probes.analysis.paper``), which is also the entry's name.

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

from typing import NamedTuple

from featurestore.checkpoints.registry import PRESETS, CheckpointInfo, register

TIMM_RESULTS = (
    "timm results-imagenet.csv (huggingface/pytorch-image-models@0173a139a2c6)"
)
TIMM_README_MNV1 = (
    "timm README, 'MobileNet-V1 and EfficientNet-B0 baseline challenges' table (July 2024)"
)
PAPER_PUBLIC = "paper Table 3, public checkpoint column (no timm equivalent)"


class _Paper(NamedTuple):
    """One row of Table 3 (percent as printed) plus its timm mapping."""

    name: str
    params_m: float
    features: int
    image_size: int
    top1_paper: float | None
    top1_public: float
    top1_retrained: float
    arch: str  # "" where no public equivalent exists
    origin: str
    timm_top1: float | None  # percent, at the arch's own input size
    timm_source: str
    params: int | None  # exact, without the classifier
    feature_dim: int | None
    notes: str


_PAPER16: tuple[_Paper, ...] = (
    _Paper("inception_v1", 5.6, 1024, 224, 73.2, 69.8, 73.6, "", "", None, "", None, None,
           "TF-Slim Inception v1 (GoogLeNet with batch norm): no timm architecture or weights; "
           "torchvision's googlenet is not a timm model"),
    _Paper("bn_inception", 10.2, 1024, 224, 74.8, 74.0, 75.3, "", "", None, "", None, None,
           "BN-Inception (TF-Slim 'inception_v2'): no timm architecture or weights"),
    _Paper("inception_v3", 21.8, 2048, 299, 78.8, 78.0, 78.6, "inception_v3.tf_in1k",
           "tf-slim", 77.862, TIMM_RESULTS, 21_785_568, 2048,
           "TF-Slim inception_v3 checkpoint ported to PyTorch"),
    _Paper("inception_v4", 41.1, 1536, 299, 80.0, 80.2, 79.9, "inception_v4.tf_in1k",
           "tf-slim", 80.156, TIMM_RESULTS, 41_142_816, 1536,
           "TF-Slim inception_v4 checkpoint ported to PyTorch"),
    _Paper("inception_resnet_v2", 54.3, 1536, 299, 80.1, 80.4, 80.3,
           "inception_resnet_v2.tf_in1k", "tf-slim", 80.462, TIMM_RESULTS, 54_306_464, 1536,
           "TF-Slim inception_resnet_v2 checkpoint ported to PyTorch"),
    _Paper("resnet50_v1", 23.5, 2048, 224, 76.4, 75.2, 76.9, "resnet50.tv_in1k",
           "torchvision", 76.130, TIMM_RESULTS, 23_508_032, 2048,
           "torchvision v1 weights (v1.5 block, as the paper's retrained ResNets); the paper's "
           "public column is TF-Slim's ResNet v1"),
    _Paper("resnet101_v1", 42.5, 2048, 224, 77.9, 76.4, 78.6, "resnet101.tv_in1k",
           "torchvision", 77.376, TIMM_RESULTS, 42_500_160, 2048,
           "torchvision v1 weights (v1.5 block); the paper's public column is TF-Slim's v1"),
    _Paper("resnet152_v1", 58.1, 2048, 224, None, 76.8, 79.3, "resnet152.tv_in1k",
           "torchvision", 78.322, TIMM_RESULTS, 58_143_808, 2048,
           "torchvision v1 weights (v1.5 block); the paper's public column is TF-Slim's v1"),
    _Paper("densenet121", 7.0, 1024, 224, 75.0, 74.8, 75.6, "densenet121.tv_in1k",
           "torchvision", 74.764, TIMM_RESULTS, 6_953_856, 1024,
           "torchvision weights; the paper's public column is the Keras checkpoint"),
    _Paper("densenet169", 12.5, 1024, 224, 76.2, 76.2, 76.7, "densenet169.tv_in1k",
           "torchvision", 75.900, TIMM_RESULTS, 12_484_480, 1664,
           "torchvision weights; 1,664 features (Table 3 prints 1,024)"),
    _Paper("densenet201", 18.1, 1024, 224, 77.4, 77.3, 77.1, "densenet201.tv_in1k",
           "torchvision", 77.286, TIMM_RESULTS, 18_092_928, 1920,
           "torchvision weights; 1,920 features (Table 3 prints 1,024)"),
    _Paper("mobilenet_v1", 3.2, 1024, 224, 70.6, 70.7, 72.4,
           "mobilenetv1_100.ra4_e3600_r224_in1k", "timm", 75.382, TIMM_README_MNV1,
           3_206_976, 1024,
           "MobileNet v1 1.0 trained by timm (2024 recipe), not the TF-Slim checkpoint"),
    _Paper("mobilenet_v2", 2.2, 1280, 224, 72.0, 71.8, 71.6, "mobilenetv2_100.ra_in1k",
           "timm", 72.976, TIMM_RESULTS, 2_223_872, 1280,
           "MobileNet v2 1.0 trained by timm (RandAugment), not the TF-Slim checkpoint"),
    _Paper("mobilenet_v2_140", 4.3, 1792, 224, 74.7, 75.0, 74.7, "mobilenetv2_140.ra_in1k",
           "timm", 76.520, TIMM_RESULTS, 4_315_776, 1792,
           "MobileNet v2 1.4 trained by timm (RandAugment), not the TF-Slim checkpoint"),
    _Paper("nasnet_a_mobile", 4.2, 1056, 224, 74.0, 74.0, 73.6, "", "", None, "", None, None,
           "NASNet-A Mobile: timm has only nasnetalarge and pnasnet5large"),
    _Paper("nasnet_a_large", 84.7, 4032, 331, 82.7, 82.7, 80.8, "nasnetalarge.tf_in1k",
           "tf-slim", 82.626, TIMM_RESULTS, 84_720_150, 4032,
           "TF-Slim nasnet_large checkpoint ported to PyTorch"),
)


def _frac(percent: float | None) -> float | None:
    return None if percent is None else round(percent / 100.0, 5)


for _p in _PAPER16:
    _available = bool(_p.arch)
    register(
        CheckpointInfo(
            name=_p.name,
            arch=_p.arch,
            imagenet_top1=_frac(_p.timm_top1 if _available else _p.top1_public),
            top1_source=(
                f"{_p.timm_source}, {_p.arch} at {_p.image_size} px" if _available else PAPER_PUBLIC
            ),
            params=_p.params,
            feature_dim=_p.feature_dim if _available else _p.features,
            input_size=_p.image_size,
            available=_available,
            notes=_p.notes if _available else f"unavailable: {_p.notes}",
            extra={
                "paper_model": _p.name,
                "top1_paper": _frac(_p.top1_paper),
                "top1_public": _frac(_p.top1_public),
                "top1_retrained": _frac(_p.top1_retrained),
                "params_paper_m": _p.params_m,
                "features_paper": _p.features,
                "image_size_paper": _p.image_size,
                "weights_origin": _p.origin or None,
            },
        )
    )

PRESETS["paper16"] = [p.name for p in _PAPER16]


class _Modern(NamedTuple):
    """A current timm checkpoint and timm's published evaluation of it."""

    name: str
    top1: float  # percent
    top1_img_size: int
    params: int  # without the classifier
    feature_dim: int
    input_size: int  # pretrained_cfg input_size (what extraction uses)
    notes: str


_MODERN: tuple[_Modern, ...] = (
    _Modern("resnet50.a1_in1k", 81.214, 288, 23_508_032, 2048, 224,
            "ResNet-50, 'ResNet strikes back' A1 recipe"),
    _Modern("resnet50.tv2_in1k", 80.850, 224, 23_508_032, 2048, 176,
            "ResNet-50, torchvision v2 recipe"),
    _Modern("convnext_tiny.fb_in1k", 82.698, 288, 27_820_128, 768, 224, "ConvNeXt-T"),
    _Modern("convnext_small.fb_in1k", 83.700, 288, 49_454_688, 768, 224, "ConvNeXt-S"),
    _Modern("regnety_032.ra_in1k", 82.728, 288, 17_923_338, 1512, 224, "RegNetY-3.2GF"),
    _Modern("efficientnet_b0.ra_in1k", 77.694, 224, 4_007_548, 1280, 224, "EfficientNet-B0"),
    _Modern("tf_efficientnetv2_s.in1k", 83.900, 384, 20_177_488, 1280, 300,
            "EfficientNetV2-S, TensorFlow weights"),
    _Modern("mobilenetv3_large_100.ra_in1k", 75.766, 224, 4_202_032, 1280, 224,
            "MobileNet v3 large 1.0"),
    _Modern("deit_small_patch16_224.fb_in1k", 79.844, 224, 21_665_664, 384, 224,
            "DeiT-S, ImageNet-1k only"),
    _Modern("vit_small_patch16_224.augreg_in21k_ft_in1k", 81.384, 224, 21_665_664, 384, 224,
            "ViT-S/16, ImageNet-21k pretraining"),
    _Modern("vit_base_patch16_224.augreg2_in21k_ft_in1k", 85.096, 224, 85_798_656, 768, 224,
            "ViT-B/16, ImageNet-21k pretraining"),
    _Modern("swin_tiny_patch4_window7_224.ms_in1k", 81.376, 224, 27_519_354, 768, 224,
            "Swin-T"),
)

for _m in _MODERN:
    register(
        CheckpointInfo(
            name=_m.name,
            arch=_m.name,
            imagenet_top1=_frac(_m.top1),
            top1_source=f"{TIMM_RESULTS}, at {_m.top1_img_size} px",
            params=_m.params,
            feature_dim=_m.feature_dim,
            input_size=_m.input_size,
            notes=_m.notes,
            extra={"top1_img_size": _m.top1_img_size, "weights_origin": "timm hub"},
        )
    )

PRESETS["modern"] = [m.name for m in _MODERN]
