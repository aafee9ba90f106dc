"""Shared fixtures: tiny on-disk datasets and stores (no network, no downloads)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Never let a test reach for the Hugging Face hub: fail fast instead of waiting on DNS.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FAST_CKPT = "test_convnext"  # the fastest tiny timm model on this CPU (~200 img/s at 160 px)


#: The installed command, as a user runs it (error paths are tested through it).
FEATURESTORE = str(Path(sys.executable).with_name("featurestore"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FEATURESTORE, *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=300)


def one_error_line(p: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (asserts there is exactly one, no traceback)."""
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def write_imagefolder(
    root: Path, classes: int = 3, train: int = 8, test: int = 4, size: int = 24, seed: int = 0,
    fmt: str = "JPEG",
) -> Path:
    """``<root>/{train,test}/<class>/img_NNN.jpg`` with class-dependent colours, so features of a
    random network still separate the classes a little."""
    rng = np.random.default_rng(seed)
    ext = "jpg" if fmt == "JPEG" else fmt.lower()
    for split, n in (("train", train), ("test", test)):
        for c in range(classes):
            d = root / split / f"class_{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = np.zeros((size, size, 3), np.uint8)
                base[..., c % 3] = 160
                noise = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
                Image.fromarray(base + noise).save(d / f"img_{i:03d}.{ext}", fmt)
    return root


@pytest.fixture
def imagefolder(tmp_path: Path) -> Path:
    return write_imagefolder(tmp_path / "images")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return str(tmp_path / "store.zarr")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``make test`` runs ``pytest -n 2 --dist loadgroup``: each test file is one group, so its
    module-scoped fixtures (extracted stores) are built once, on one worker; files that share a
    session fixture name a common ``xdist_group`` themselves. Runs before xdist reads the marks."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
