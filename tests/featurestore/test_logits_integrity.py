"""The ``logits`` array of ``extract --with-logits`` has the features' integrity: each chunk's
crc32c is checked by ``featurestore verify`` and by ``load_logits``, and ``extract --repair``
(with or without ``--with-logits``) recomputes a damaged logits chunk byte-identical.

One entry is extracted with logits once per module through the installed command; each test
damages its own copy of that store on disk and drives the real CLI in subprocesses.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from featurestore.errors import DamagedEntryError
from featurestore.store import FeatureStore, integrity
from tests.conftest import FAST_CKPT, write_imagefolder
from tests.conftest import run_checked as run

ENTRY = f"{FAST_CKPT}/imagefolder"
# batch 1 x at most 16 batches per chunk: train (18 rows) has 2 row chunks of 9 rows
EXTRACT = ["extract", "--ckpt", FAST_CKPT, "--dataset", "imagefolder", "--weights", "random",
           "--batch-size", "1", "--workers", "0", "--no-progress", "--with-logits"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(images, store) of one clean extraction with logits; never modified by a test."""
    base = tmp_path_factory.mktemp("logits_integrity")
    images = write_imagefolder(base / "images")
    store = base / "clean.zarr"
    run(*EXTRACT, "--data-root", str(images), "--store", str(store))
    return images, store


@pytest.fixture
def store(clean: tuple[Path, Path], tmp_path: Path) -> Path:
    dst = tmp_path / "s.zarr"
    shutil.copytree(clean[1], dst)
    return dst


def logits_chunk(store: Path, split: str, k: int) -> Path:
    return store / ENTRY / split / "logits" / "c" / str(k) / "0"


def flip_bit(path: Path, byte: int = 100, bit: int = 3) -> None:
    data = bytearray(path.read_bytes())
    data[byte] ^= 1 << bit
    path.write_bytes(bytes(data))


def entry_files(store: Path) -> dict[str, bytes]:
    """Every file of the entry but its group attributes (timings and dates differ per run)."""
    base = store / ENTRY
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file() and p != base / "zarr.json"}


def test_a_flipped_logits_bit_is_listed_by_verify_and_refused_by_load_logits(
    store: Path,
) -> None:
    fs = FeatureStore(str(store), read_only=True)
    assert integrity.has_checksum(fs.root[f"{ENTRY}/train/logits"])
    assert json.loads(run("verify", "--store", str(store), "--json").stdout)[0]["integrity"] \
        == "verified"
    flip_bit(logits_chunk(store, "train", 1))
    p = run("verify", "--store", str(store), "--json", check=1)
    [c] = json.loads(p.stdout)
    assert c["integrity"] == "damaged"
    assert [(d["array"], d["chunk"], d["reason"].split(" (")[0]) for d in c["damage"]] == \
        [(f"{ENTRY}/train/logits", 1, "checksum mismatch")]
    fs = FeatureStore(str(store), read_only=True)
    with pytest.raises(DamagedEntryError, match=f"{ENTRY}/train/logits chunk 1"):
        fs.load_logits(FAST_CKPT, "imagefolder", "train")
    fs.load(FAST_CKPT, "imagefolder", "train")  # the features themselves are sound
    # the CLI that reads logits says the same in one line
    p = run("rank", "--estimator", "leep", "--store", str(store), "--device", "cpu", check=1)
    assert "damaged chunk" in p.stderr and "train/logits chunk 1" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("with_logits", [
    pytest.param(True, id="with-logits", marks=pytest.mark.slow),  # the same path, asked for
    pytest.param(False, id="plain"),
])
def test_repair_restores_a_damaged_logits_chunk_byte_identical(
    clean: tuple[Path, Path], store: Path, with_logits: bool
) -> None:
    """``--repair`` alone must also recompute logits: the entry has them, so dropping them (or
    leaving the damaged chunk) would lose what LEEP/NCE need."""
    images, clean_store = clean
    flip_bit(logits_chunk(store, "train", 1), byte=2000)
    (logits_chunk(store, "test", 0)).unlink()
    assert entry_files(store) != entry_files(clean_store)
    args = [a for a in EXTRACT if with_logits or a != "--with-logits"]
    p = run(*args, "--data-root", str(images), "--store", str(store), "--repair")
    line = [ln for ln in p.stdout.splitlines() if "repaired" in ln]
    # train chunk 1 holds rows 9-17 (9 images) and test has 12 rows in one chunk: 21 recomputed
    assert line and " 21 " in line[0], p.stdout
    assert entry_files(store) == entry_files(clean_store)
    fs = FeatureStore(str(store), read_only=True)
    assert integrity.check_entry(fs.root, FAST_CKPT, "imagefolder").integrity == "verified"
    assert fs.has_logits(FAST_CKPT, "imagefolder")
