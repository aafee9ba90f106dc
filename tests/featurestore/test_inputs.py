"""Inputs that used to be mangled or crash extraction, through the installed ``featurestore``.

Each case checks what a user sees (one ``error:`` line, the exit status) and what is on disk
afterwards (features equal to a reference, or no complete entry).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from featurestore.store import FeatureStore
from tests.conftest import (
    FAST_CKPT,
    one_error_line,
    run_cli,
    write_imagefolder,
)


def extract_args(data_root: Path, store: Path, *extra: str) -> list[str]:
    return ["extract", "--ckpt", FAST_CKPT, "--dataset", "imagefolder", "--data-root",
            str(data_root), "--weights", "random", "--store", str(store), "--no-progress",
            "--workers", "0", *extra]


def test_16bit_png_and_float_tiff_give_the_features_of_their_8bit_version(tmp_path: Path) -> None:
    """Before: a 16-bit PNG decoded 99.6% white and a float TIFF binarised, and the entry was
    marked complete. Now their rows equal the rows of the same picture saved as 8-bit PNG."""
    root = write_imagefolder(tmp_path / "images", classes=2, train=3, test=1, size=32, fmt="PNG")
    rng = np.random.default_rng(1)
    pictures = [rng.integers(0, 256, (32, 32), dtype=np.uint8) for _ in range(2)]
    pictures[1][:, :16] = 0  # one half-dark picture: clipping to white would erase its structure
    for i, g8 in enumerate(pictures):
        d = root / "test" / f"class_{i}"
        Image.fromarray(g8, mode="L").save(d / "pic_8bit.png")
        g16 = g8.astype(np.uint16) * 257  # the same intensities on the 16-bit scale
        Image.fromarray(g16).save(d / "pic_16bit.png")
        assert Image.open(d / "pic_16bit.png").mode == "I;16"
        Image.fromarray(g8.astype(np.float32) / 255).save(d / "pic_float.tif")
        assert Image.open(d / "pic_float.tif").mode == "F"
    store = tmp_path / "store.zarr"
    p = run_cli(*extract_args(root, store), cwd=tmp_path)
    assert p.returncode == 0, p.stderr

    fs = FeatureStore(str(store), read_only=True)
    x, _ = fs.load(FAST_CKPT, "imagefolder", "test")
    rows = {name: i for i, name in enumerate(fs.load_ids(FAST_CKPT, "imagefolder", "test"))}
    for c in range(2):
        ref = x[rows[f"test/class_{c}/pic_8bit.png"]]
        for other in ("pic_16bit.png", "pic_float.tif"):
            np.testing.assert_allclose(x[rows[f"test/class_{c}/{other}"]], ref, rtol=1e-5,
                                       atol=1e-5)
    # The two pictures are told apart (a decoder that made everything white would not).
    a, b = (x[rows[f"test/class_{c}/pic_8bit.png"]] for c in range(2))
    assert np.abs(a - b).max() > 1e-3


def test_float_tiff_outside_intensity_range_is_refused(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "images", classes=2, train=3, test=1)
    bad = root / "test" / "class_0" / "depth.tif"
    Image.fromarray(np.full((8, 8), 1e4, np.float32)).save(bad)
    store = tmp_path / "store.zarr"
    p = run_cli(*extract_args(root, store), cwd=tmp_path)
    assert p.returncode == 1
    line = one_error_line(p)
    assert str(bad) in line and "[1e+04, 1e+04]" in line
    assert not FeatureStore(str(store), read_only=True).has_complete(FAST_CKPT, "imagefolder")


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width x height`` pixels, with one tiny IDAT: a decompression
    bomb as far as the header goes, a few dozen bytes on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_decompression_bomb_is_one_line_and_max_pixels_raises_the_limit(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "images", classes=2, train=3, test=1)
    bomb = root / "test" / "class_1" / "bomb.png"
    _png_header_only(bomb, 20_000, 20_000)  # 400 MP
    store = tmp_path / "store.zarr"

    p = run_cli(*extract_args(root, store), cwd=tmp_path)
    assert p.returncode == 1
    line = one_error_line(p)
    assert str(bomb) in line and "400,000,000 pixels" in line and "--max-pixels" in line

    # Raised past 400 MP, the header is accepted and decoding reaches the (truncated) pixel data.
    p = run_cli(*extract_args(root, store, "--max-pixels", "500000000"), cwd=tmp_path)
    assert p.returncode == 1
    line = one_error_line(p)
    assert str(bomb) in line and "cannot decode image" in line and "pixels" not in line
    assert not FeatureStore(str(store), read_only=True).has_complete(FAST_CKPT, "imagefolder")


def test_split_that_would_be_empty_is_refused_before_any_store(tmp_path: Path) -> None:
    """Before: one train image per class left val empty, the entry stuck ``in_progress`` and a
    RuntimeError traceback. Now: one line with the counts, and no store is created."""
    root = write_imagefolder(tmp_path / "images", classes=3, train=1, test=2)
    store = tmp_path / "store.zarr"
    p = run_cli(*extract_args(root, store), cwd=tmp_path)
    assert p.returncode == 1
    line = one_error_line(p)
    assert "val would be empty" in line and "train 3, val 0, test 6" in line
    assert not store.exists()


def test_weights_giving_nan_features_are_refused_naming_weights_and_row(tmp_path: Path) -> None:
    import timm
    import torch

    model = timm.create_model(FAST_CKPT, pretrained=False)
    state = model.state_dict()
    key = next(k for k, v in state.items() if v.dtype.is_floating_point and v.ndim == 4)
    state[key] = torch.full_like(state[key], float("nan"))  # the stem: every image goes NaN
    weights = tmp_path / "nan_weights.pt"
    torch.save(state, weights)

    root = write_imagefolder(tmp_path / "images", classes=2, train=3, test=1)
    store = tmp_path / "store.zarr"
    args = extract_args(root, store)
    args[args.index("--weights") + 1] = str(weights)
    p = run_cli(*args, cwd=tmp_path)
    assert p.returncode == 1
    line = one_error_line(p)
    assert str(weights.resolve()) in line and "NaN/inf" in line
    assert "first bad row 0 of test_convnext/imagefolder/train" in line
    assert "(id train/class_0/img_000.jpg)" in line
    fs = FeatureStore(str(store), read_only=True)
    assert not fs.has_complete(FAST_CKPT, "imagefolder")
    done = np.asarray(fs.root[f"{FAST_CKPT}/imagefolder/train/done"][...])
    assert not done.any()  # no chunk of non-finite features was written
