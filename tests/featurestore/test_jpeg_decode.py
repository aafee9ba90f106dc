"""JPEG decoding as tensors in extraction (featurestore.jpeg_decode), run on CPU with
``decode_jpeg(..., device="cpu")``: the same pipeline the CUDA path runs with nvJPEG, checked
against the PIL path on generated images. The nvJPEG decode itself runs in
benchmarks/gpu_check.py on a GPU machine; nothing here claims to test it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from featurestore.datasets import get_dataset
from featurestore.errors import CorruptImageError, DeviceError
from featurestore.extract import extract_entry
from featurestore.jpeg_decode import choose_decoder
from featurestore.store import FeatureStore
from tests.conftest import FAST_CKPT


def _images(root: Path) -> Path:
    """Smooth gradients + noise at three sizes (down- and upscaled to 160 px), one PNG per
    test class (the PIL fallback inside the tensor path)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 3)):
        for c in range(2):
            d = root / split / f"class_{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                w, h = [(200, 150), (120, 90), (170, 230)][i % 3]
                yy, xx = np.mgrid[0:h, 0:w]
                img = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 80 + c * 90)], -1)
                img = np.clip(img + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
                fmt = "PNG" if split == "test" and i == 0 else "JPEG"
                Image.fromarray(img).save(d / f"img_{i}.{fmt.lower()}", fmt)
    return root


def _extract(tmp_path: Path, root: Path, decoder: str) -> FeatureStore:
    fs = FeatureStore(str(tmp_path / f"{decoder}.zarr"))
    extract_entry(fs, FAST_CKPT, get_dataset("imagefolder", root), weights="random",
                  batch_size=4, num_workers=0, progress=False, decoder=decoder)
    return fs


def test_tensor_decoder_agrees_with_pil_and_is_recorded(tmp_path: Path) -> None:
    root = _images(tmp_path / "img")
    pil, tensor = _extract(tmp_path, root, "pil"), _extract(tmp_path, root, "tensor")
    for split in ("trainval", "test"):
        a = pil.load(FAST_CKPT, "imagefolder", split)[0]
        b = tensor.load(FAST_CKPT, "imagefolder", split)[0]
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        # Measured here (test_convnext, random weights, |features| up to 2.65): max abs diff
        # 0.0133 (trainval) / 0.0073 (test), min cosine 0.999989: libjpeg vs PIL's IDCT and
        # torch vs PIL resamplers, close but not bit-identical.
        assert np.abs(a - b).max() < 0.05
        assert cos.min() > 0.9999
    ids = tensor.load_ids(FAST_CKPT, "imagefolder", "test")
    png = [i for i, s in enumerate(ids) if s.endswith(".png")]
    assert len(png) == 2  # PNGs take PIL inside the tensor path: the very same numbers
    np.testing.assert_array_equal(pil.load(FAST_CKPT, "imagefolder", "test")[0][png],
                                  tensor.load(FAST_CKPT, "imagefolder", "test")[0][png])
    assert pil.provenance(FAST_CKPT, "imagefolder")["extraction"]["decoder"] == "PIL"
    assert tensor.provenance(FAST_CKPT, "imagefolder")["extraction"]["decoder"] == (
        "torchvision.io.decode_jpeg on cpu for JPEG files, PIL for the others")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_jpeg_raises_the_same_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    root = _images(tmp_path / "img")
    bad = root / "train" / "class_1" / "img_2.jpeg"
    data = bad.read_bytes()
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    else:  # a valid header, then noise: the tensor decoder refuses it, PIL has the last word
        noise = np.random.default_rng(1).integers(0, 256, len(data) - 400, dtype=np.uint8)
        bad.write_bytes(data[:400] + noise.tobytes() + b"\xff\xd9")
    messages = []
    for decoder in ("pil", "tensor"):
        with pytest.raises(CorruptImageError) as err:
            _extract(tmp_path, root, decoder)
        messages.append(str(err.value))
    assert str(bad) in messages[0]
    assert messages[0] == messages[1]


def test_decoder_rule() -> None:
    """The rule of featurestore.jpeg_decode (decision only: no CUDA is touched)."""
    assert choose_decoder(torch.device("cuda")) == "tensor"
    assert choose_decoder(torch.device("cpu")) == "pil"
    assert choose_decoder(torch.device("cpu"), "tensor") == "tensor"
    assert choose_decoder(torch.device("cuda"), "pil") == "pil"
    with pytest.raises(DeviceError, match=r"unknown image decoder 'nvjpeg'"):
        choose_decoder(torch.device("cpu"), "nvjpeg")
