"""The paper16 / modern checkpoint presets: contents, agreement with the paper's Table 3
(data/paper/table3.csv), honest unavailability, and metadata that matches the timm architectures.
"""

from __future__ import annotations

import math

import pytest
import timm
import torch

from featurestore.checkpoints import PRESETS, REGISTRY, load_checkpoint, presets, resolve
from featurestore.errors import UnknownCheckpointError, WeightsUnavailableError
from probes.analysis import paper

UNAVAILABLE = {"inception_v1", "bn_inception", "nasnet_a_mobile"}
#: Table 3 prints 1,024 features for these; the standard networks it counts parameters of have:
REAL_FEATURES = {"densenet169": 1664, "densenet201": 1920}


def _paper16() -> list:
    return [REGISTRY[n] for n in PRESETS["paper16"]]


def _available() -> list:
    return [i for i in _paper16() if i.available] + [REGISTRY[n] for n in PRESETS["modern"]]


def test_preset_contents() -> None:
    table3 = paper.load_table3()
    assert PRESETS["paper16"] == list(table3.index)  # the paper's order and keys
    assert {i.name for i in _paper16() if not i.available} == UNAVAILABLE
    assert len(PRESETS["modern"]) >= 4 and len(set(PRESETS["modern"])) == len(PRESETS["modern"])
    for name in PRESETS["modern"]:
        info = REGISTRY[name]
        assert info.available and info.arch == name and "." in name  # a pinned pretrained tag
        assert 0.7 < info.imagenet_top1 < 0.9 and "results-imagenet.csv" in info.top1_source


def test_paper16_matches_table3() -> None:
    table3 = paper.load_table3()
    for info in _paper16():
        row = table3.loc[info.name]
        extra = info.extra
        assert extra["paper_model"] == info.name and info.name in paper.MODEL_NAMES
        for col in ("top1_paper", "top1_public", "top1_retrained"):
            want = row[col]
            if math.isnan(want):
                assert extra[col] is None, (info.name, col)
            else:
                assert extra[col] == pytest.approx(want / 100, abs=1e-9), (info.name, col)
        assert extra["params_paper_m"] == row["parameters_m"]
        assert extra["features_paper"] == row["features"]
        assert info.input_size == row["image_size"] == extra["image_size_paper"]
        assert info.feature_dim == REAL_FEATURES.get(info.name, row["features"])
        if info.available:  # exact count, printed in millions to one decimal
            assert abs(info.params / 1e6 - row["parameters_m"]) <= 0.051, info.name
            assert 0.7 < info.imagenet_top1 < 0.85 and info.top1_source
        else:
            assert info.imagenet_top1 == pytest.approx(row["top1_public"] / 100)


def test_paper_numbers_come_from_table3_csv_only() -> None:
    """presets.py holds only the timm side (keyword data keyed by the Table 3 key); every number
    the paper prints reaches the registry from data/paper/table3.csv."""
    table3 = paper.load_table3()
    assert list(presets.PAPER16_TIMM) == list(table3.index)
    for key, match in presets.PAPER16_TIMM.items():
        assert not {"params_m", "features", "image_size", "top1_paper"} & set(vars(match))
        if match.arch is None:
            assert key in UNAVAILABLE and match.origin is match.top1 is match.params is None
        else:
            assert match.origin in {"tf-slim", "torchvision", "timm"} and "." in match.arch
            assert REGISTRY[key].arch == match.arch and REGISTRY[key].params == match.params


def test_ported_tf_slim_checkpoints_reproduce_the_public_column() -> None:
    """timm's TF-Slim ports are the checkpoints Table 3's public column measured: the top-1 timm
    reports must agree with the paper's to within evaluation noise."""
    ported = [i for i in _paper16() if i.extra["weights_origin"] == "tf-slim"]
    assert {i.name for i in ported} == {"inception_v3", "inception_v4", "inception_resnet_v2",
                                        "nasnet_a_large"}
    for info in ported:
        assert info.imagenet_top1 == pytest.approx(info.extra["top1_public"], abs=0.0025)


@pytest.mark.parametrize("name", sorted(UNAVAILABLE))
def test_unavailable_entries_refuse_to_load(name: str) -> None:
    info = resolve(name)
    assert not info.available and "unavailable" in info.notes
    with pytest.raises(WeightsUnavailableError, match="no public equivalent"):
        load_checkpoint(name)
    with pytest.raises(WeightsUnavailableError):
        load_checkpoint(name, weights="random")


@pytest.mark.parametrize("info", _available(), ids=lambda i: i.name)
def test_metadata_matches_the_timm_architecture(info) -> None:
    """Built on the meta device (no weights, no memory): feature width, parameter count without
    the classifier, and the input size timm's pretrained config gives extraction."""
    assert info.arch in timm.list_models(pretrained=True)
    with torch.device("meta"):
        model = timm.create_model(info.arch, pretrained=False)
    width = int(getattr(model, "head_hidden_size", None) or model.num_features)
    assert width == info.feature_dim
    n_head = sum(p.numel() for p in model.get_classifier().parameters())
    assert sum(p.numel() for p in model.parameters()) - n_head == info.params
    assert model.pretrained_cfg["input_size"][1] == info.input_size


def test_resolve_still_takes_any_timm_name() -> None:
    assert resolve("inception_v4").arch == "inception_v4.tf_in1k"  # the paper16 entry
    assert resolve("inception_v4.tf_in1k").notes == "timm architecture"  # an explicit tag
    assert resolve("resnet50.a1_in1k") is REGISTRY["resnet50.a1_in1k"]
    assert resolve("resnet18").arch == "resnet18"
    assert resolve("convnext_tiny.fb_in22k").arch == "convnext_tiny.fb_in22k"
    with pytest.raises(UnknownCheckpointError):
        resolve("inception_v9")
