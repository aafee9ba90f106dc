"""Integrity of stored features: every chunk carries a crc32c, every read checks it, damage is
refused with one line naming the chunk, ``verify`` lists it and ``extract --repair`` mends it.

One entry is extracted once per session through the installed ``featurestore`` command; each
test damages its own copy of that store on disk and drives the real CLI in subprocesses.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from featurestore.datasets import get_dataset
from featurestore.errors import DamagedEntryError
from featurestore.extract import extract_entry
from featurestore.store import FeatureStore, integrity
from tests.conftest import FAST_CKPT, write_imagefolder
from tests.conftest import run_checked as run

ENTRY = f"{FAST_CKPT}/imagefolder"
# batch 1 x at most 16 batches per chunk: train (18 rows) has 2 row chunks of 9 rows
EXTRACT = ["extract", "--ckpt", FAST_CKPT, "--dataset", "imagefolder", "--weights", "random",
           "--batch-size", "1", "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(images, store) of one clean extraction; never modified by a test."""
    base = tmp_path_factory.mktemp("integrity")
    images = write_imagefolder(base / "images")
    store = base / "clean.zarr"
    run(*EXTRACT, "--data-root", str(images), "--store", str(store))
    return images, store


@pytest.fixture
def store(clean: tuple[Path, Path], tmp_path: Path) -> Path:
    """A private copy of the clean store, to damage."""
    dst = tmp_path / "s.zarr"
    shutil.copytree(clean[1], dst)
    return dst


def chunk(store: Path, split: str, array: str, k: int) -> Path:
    suffix = "/0" if array == "features" else ""  # 2-D rows x dim; the others are 1-D
    return store / ENTRY / split / array / "c" / f"{k}{suffix}"


def flip_bit(path: Path, byte: int = 100, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[byte] ^= 1 << bit
    path.write_bytes(bytes(data))


def results_rows(store: Path) -> int:
    return len(FeatureStore(str(store), read_only=True).results.frame())


def test_every_chunk_of_every_array_carries_crc32c_that_zarr_checks(store: Path) -> None:
    fs = FeatureStore(str(store))
    for split in ("train", "val", "test"):
        for a in ("features", "labels", "ids", "done"):
            codecs = fs.root[f"{ENTRY}/{split}/{a}"].metadata.codecs
            assert type(codecs[-1]).__name__ == "Crc32cCodec", (split, a, codecs)
    [info] = fs.entries()
    assert info.integrity == "verified"
    # a plain Zarr reader (no featurestore code) refuses the flipped bit as well
    flip_bit(chunk(store, "train", "features", 1), byte=8, bit=3)
    with pytest.raises(ValueError, match="checksum"):
        zarr.open_array(store / ENTRY / "train" / "features", mode="r")[...]


@pytest.mark.parametrize(
    ("damage", "where"),
    [
        ("delete", ("train", "features", 1)),
        ("flip", ("train", "features", 0)),
        ("truncate", ("test", "ids", 0)),
        ("flip", ("val", "labels", 0)),
    ],
)
def test_probe_refuses_damage_with_one_line_and_writes_no_row(
    store: Path, damage: str, where: tuple[str, str, int]
) -> None:
    path = chunk(store, *where)
    if damage == "delete":
        path.unlink()
    elif damage == "flip":
        flip_bit(path, byte=4 if where[1] == "labels" else 401, bit=1)  # one mantissa bit
    else:
        path.write_bytes(path.read_bytes()[:-7])
    split, array, k = where
    p = run("probe", "--ckpt", FAST_CKPT, "--dataset", "imagefolder", "--store", str(store),
            "--device", "cpu", check=1)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert f"{ENTRY}/{split}/{array} chunk {k}" in lines[0]
    assert "Traceback" not in p.stderr + p.stdout
    assert results_rows(store) == 0
    # the library refuses as well; verify=False skips only the checksum, never a missing chunk
    fs = FeatureStore(str(store), read_only=True)
    read = (lambda **kw: fs.load_ids(FAST_CKPT, "imagefolder", split)) if array == "ids" else (
        lambda **kw: fs.load(FAST_CKPT, "imagefolder", split, **kw))
    with pytest.raises(DamagedEntryError, match=f"{array} chunk {k}"):
        read()
    if damage == "delete":  # the lazy xarray view too: Zarr alone would read zeros here
        with pytest.raises(DamagedEntryError, match=f"{array} chunk {k}: chunk missing"):
            fs.open(FAST_CKPT, "imagefolder")
    if damage == "flip":
        X, y = fs.load(FAST_CKPT, "imagefolder", split, verify=False)
        assert len(X) == len(y) == fs.entry(FAST_CKPT, "imagefolder").splits[split]


def test_sweep_refuses_a_damaged_chunk(store: Path) -> None:
    flip_bit(chunk(store, "test", "features", 0), byte=2001)
    p = run("sweep", "--store", str(store), "--device", "cpu", check=1)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"{ENTRY}/test/features chunk 0: checksum mismatch" in errors[0]
    assert "Traceback" not in p.stderr
    assert results_rows(store) == 0


def test_sweep_reports_a_damaged_entry_and_probes_the_rest(store: Path) -> None:
    shutil.copytree(store / FAST_CKPT, store / "zz_healthy")  # swept after the damaged one
    flip_bit(chunk(store, "train", "features", 1), byte=2001)
    p = run("sweep", "--store", str(store), "--device", "cpu", check=1)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"{ENTRY}/train/features chunk 1: checksum mismatch" in errors[0]
    assert "Traceback" not in p.stderr
    rows = {ln.split()[0]: ln.split()[3] for ln in p.stdout.splitlines()
            if ln.split()[:1] in ([FAST_CKPT], ["zz_healthy"])}
    assert rows == {FAST_CKPT: "failed", "zz_healthy": "done"}
    frame = FeatureStore(str(store), read_only=True).results.frame()
    assert list(frame["ckpt"]) == ["zz_healthy"]


def test_verify_lists_every_damaged_chunk(store: Path) -> None:
    chunk(store, "train", "features", 1).unlink()
    flip_bit(chunk(store, "val", "ids", 0), byte=20)
    p = run("verify", "--store", str(store), "--json", check=1)
    [c] = json.loads(p.stdout)
    assert c["integrity"] == "damaged"
    got = {(d["array"], d["chunk"], d["reason"].split(" (")[0]) for d in c["damage"]}
    assert got == {(f"{ENTRY}/train/features", 1, "chunk missing"),
                   (f"{ENTRY}/val/ids", 0, "checksum mismatch")}
    table = run("verify", "--store", str(store), "--ckpt", FAST_CKPT, check=1).stdout
    assert "damaged" in table and "--repair" in table


def _entry_files(store: Path) -> dict[str, bytes]:
    """Every file of the entry but its group attributes (timings and dates differ per run)."""
    base = store / ENTRY
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file() and p != base / "zarr.json"}


@pytest.mark.slow  # a real extraction of the damaged chunks through the CLI
def test_repair_recomputes_only_damage_and_ends_byte_identical(
    clean: tuple[Path, Path], store: Path
) -> None:
    images, clean_store = clean
    chunk(store, "train", "features", 1).unlink()
    flip_bit(chunk(store, "val", "features", 0), byte=777, bit=5)
    path = chunk(store, "test", "ids", 0)
    path.write_bytes(path.read_bytes()[:5])
    assert _entry_files(store) != _entry_files(clean_store)
    p = run(*EXTRACT, "--data-root", str(images), "--store", str(store), "--repair")
    assert "repaired" in p.stdout
    # train chunk 1 holds rows 9-17 (9 images), val 6, test 12: 27 recomputed, not 36
    assert " 27 " in [ln for ln in p.stdout.splitlines() if "repaired" in ln][0]
    assert _entry_files(store) == _entry_files(clean_store)
    fs = FeatureStore(str(store))
    assert fs.entry(FAST_CKPT, "imagefolder").complete
    assert integrity.check_entry(fs.root, FAST_CKPT, "imagefolder").integrity == "verified"
    again = extract_entry(fs, FAST_CKPT, get_dataset("imagefolder", images), weights="random",
                          batch_size=1, num_workers=0, progress=False, repair=True)
    assert again.status == "intact"


def test_repair_with_another_batch_size_is_refused(clean: tuple[Path, Path], store: Path) -> None:
    flip_bit(chunk(store, "train", "features", 0))
    args = [*EXTRACT, "--data-root", str(clean[0]), "--store", str(store), "--repair"]
    args[args.index("--batch-size") + 1] = "2"
    p = run(*args, check=1)
    assert "error:" in p.stderr and "cannot repair" in p.stderr and "--force" in p.stderr
    assert "Traceback" not in p.stderr
    with pytest.raises(DamagedEntryError):  # still refused, not half-repaired
        FeatureStore(str(store)).load(FAST_CKPT, "imagefolder", "train")


@pytest.mark.slow  # five CLI runs and one real probe
def test_damaged_metadata_is_listed_and_never_breaks_the_rest(store: Path) -> None:
    for name in ("broken_json", "missing_array"):
        shutil.copytree(store / FAST_CKPT, store / name)
    (store / "broken_json" / "imagefolder" / "zarr.json").write_text("{not json")
    shutil.rmtree(store / "missing_array" / "imagefolder" / "val" / "labels")
    rows = {e["ckpt"]: e for e in json.loads(run("ls", "--store", str(store), "--json").stdout)}
    assert rows[FAST_CKPT]["status"] == "complete"
    assert rows["broken_json"]["status"] == "damaged"
    assert "unreadable metadata" in rows["broken_json"]["reason"]
    assert rows["missing_array"]["status"] == "damaged"
    assert "val/labels" in rows["missing_array"]["reason"]
    run("results", "--store", str(store))
    fs = FeatureStore(str(store), read_only=True)
    assert {c: integrity.check_entry(fs.root, c, "imagefolder").integrity for c in rows} == {
        FAST_CKPT: "verified", "broken_json": "damaged", "missing_array": "damaged"}
    p = run("probe", "--ckpt", "broken_json", "--dataset", "imagefolder", "--store", str(store),
            "--device", "cpu", check=1)
    assert p.stderr.startswith("error: ") and "damaged" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    # the sweep probes the healthy entry and leaves the damaged ones alone
    run("sweep", "--store", str(store), "--device", "cpu")
    frame = FeatureStore(str(store), read_only=True).results.frame()
    assert list(frame["ckpt"]) == [FAST_CKPT]


def test_entries_written_before_checksums_read_and_are_flagged_unverified(store: Path) -> None:
    fs = FeatureStore(str(store))
    want = fs.load(FAST_CKPT, "imagefolder", "trainval")
    ids = fs.load_ids(FAST_CKPT, "imagefolder", "test")
    for split in ("train", "val", "test"):  # rewrite each array as the old writer did
        for a in ("features", "labels", "ids", "done"):
            path = store / ENTRY / split / a
            old = zarr.open_array(path, mode="r")
            zarr.create_array(path, data=old[...], chunks=old.chunks, overwrite=True,
                              compressors=None if a != "ids" else "auto")
    fs = FeatureStore(str(store))
    [info] = fs.entries()
    assert info.integrity == "unverified"
    got = fs.load(FAST_CKPT, "imagefolder", "trainval")
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert fs.load_ids(FAST_CKPT, "imagefolder", "test") == ids
    assert "unverified" in run("ls", "--store", str(store)).stdout
    [c] = json.loads(run("verify", "--store", str(store), "--json").stdout)
    assert c["integrity"] == "unverified"
    # a missing features chunk is still refused, even without checksums
    (store / ENTRY / "train" / "features" / "c" / "1" / "0").unlink()
    with pytest.raises(DamagedEntryError, match="train/features chunk 1: chunk missing"):
        fs.load(FAST_CKPT, "imagefolder", "train")
