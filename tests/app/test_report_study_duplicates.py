"""``featurestore report --study FILE --duplicates PAIRS``: the settings-study section of the
settings page (figure, t-SNE per recipe, ``data/settings_study.csv``) and the near-duplicates
page (thumbnails read back from the dataset root in the store's provenance).

One store, filled by real jobs: three checkpoints of a user study (random-weight test_resnet
under three names and seeds) and two of timm's ResNet-50 recipes (random weights: only their
names matter to the built-in study) extracted on the DTD fixture and probed; the pairs file is
written by ``featurestore duplicates``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.app.conftest import featurestore_exe

pytestmark = pytest.mark.slow  # ~40 s: extractions, probes, one notebook and the CLI

STUDY_TOML = """
[study.tiny_recipes]
arch = "test_resnet"
description = "three seeds standing in for three recipes"

[[study.tiny_recipes.member]]
ckpt = "tiny_recipe_a"
recipe = "A"
imagenet_top1 = 71.5

[[study.tiny_recipes.member]]
ckpt = "tiny_recipe_b"
recipe = "B"

[[study.tiny_recipes.member]]
ckpt = "tiny_recipe_c"
recipe = "C"
"""
BUILTIN = ("resnet50.a1_in1k", "resnet50.tv_in1k")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([featurestore_exe(), *args], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def study_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    import torch

    from featurestore.checkpoints import load_checkpoint
    from featurestore.checkpoints.families import load_study_file, register_members
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore
    from probes.linear.sweep import run_probe
    from tests.fixtures_datasets import write_dtd

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("study_report")
    study_file = tmp / "studies.toml"
    study_file.write_text(STUDY_TOML)
    study = load_study_file(study_file)["tiny_recipes"]
    register_members(study)
    fx = write_dtd(tmp / "dtd")
    ds = get_dataset("dtd", fx.root)
    url = str(tmp / "s.zarr")
    fs = FeatureStore(url)
    for seed, ckpt in enumerate([*study.ckpts, *BUILTIN]):
        loaded = load_checkpoint(ckpt, "random", seed=seed)
        loaded.data_config["input_size"] = (3, 16, 16)
        extract_entry(fs, loaded, ds, device="cpu", num_workers=0, progress=False)
        assert run_probe(fs, ckpt, "dtd", "logreg", device="cpu").status == "done"
    torch.set_num_threads(threads)
    pairs = tmp / "pairs.csv"
    proc = _cli("duplicates", "--ckpt", "tiny_recipe_a", "--dataset", "dtd", "--threshold", "0.5",
                "--out", str(pairs), "--store", url)
    assert proc.returncode == 0, proc.stderr
    found = pd.read_csv(pairs)
    assert len(found) >= 2  # the fixture's class-coloured images are near-duplicates
    # one image of the top pair goes missing: that side becomes a note, the rest still shows
    top = found.sort_values("similarity", ascending=False).iloc[0]
    missing = f"{top['query_id']}"
    (Path(fx.root) / "dtd" / missing).unlink()
    out = tmp / "report"
    proc = _cli("report", "--store", url, "--out", str(out), "--notebook", "02", "--study",
                str(study_file), "--duplicates", str(pairs))
    assert proc.returncode == 0, proc.stderr
    return {"url": url, "study": study, "out": out, "pairs": found, "missing": missing,
            "stderr": proc.stderr}


def test_study_data_has_the_user_and_builtin_studies(study_report) -> None:
    from featurestore.store import FeatureStore

    out, study = study_report["out"], study_report["study"]
    data = pd.read_csv(out / "data" / "settings_study.csv")
    assert set(data["source"]) == {"store"}
    assert set(data["study"]) == {"tiny_recipes", "resnet50_recipes"}
    mine = data[data["study"] == "tiny_recipes"].set_index("ckpt")
    assert list(mine.index) == study.ckpts and list(mine["recipe"]) == ["A", "B", "C"]
    assert mine.loc["tiny_recipe_a", "imagenet_top1"] == pytest.approx(0.715)
    builtin = data[data["study"] == "resnet50_recipes"]
    assert set(builtin["ckpt"]) == set(BUILTIN) and set(builtin["recipe"]) == {"a1", "tv"}
    rows = {r.ckpt: r for r in FeatureStore(study_report["url"], read_only=True).results.rows()}
    for r in data.itertuples():  # every value is its job's test metric
        assert r.test_metric == pytest.approx(rows[r.ckpt].test_metric)
        assert r.n_train == rows[r.ckpt].n_train


def test_settings_page_draws_the_study_and_its_tsne(study_report) -> None:
    page = (study_report["out"] / "02_settings.html").read_text()
    assert "Settings study tiny_recipes: transfer per recipe (store)" in page
    assert "Settings study resnet50_recipes: transfer per recipe (store)" in page
    assert "Figure 4 per recipe (tiny_recipes): t-SNE of DTD (store)" in page
    assert "Traceback" not in page and "Warning" not in page


def test_duplicates_page_shows_thumbnails_and_notes_the_unreadable(study_report) -> None:
    out, pairs = study_report["out"], study_report["pairs"]
    page = (out / "duplicates.html").read_text()
    shown = pd.read_csv(out / "data" / "duplicates.csv")
    assert len(shown) == min(len(pairs), 24) and set(shown["source"]) == {"store"}
    assert shown["similarity"].is_monotonic_decreasing
    assert shown["similarity"].iloc[0] == pytest.approx(pairs["similarity"].max(), abs=1e-6)
    missing = study_report["missing"]
    assert shown.loc[shown["query_id"] == missing, "query_note"].str.contains(
        "not readable").all()
    readable = shown["query_note"].isna() & shown["match_note"].isna()
    assert readable.any()
    n_images = int(readable.sum()) * 2 + int((~readable).sum())
    assert page.count('<img src="data:image/png;base64,') == n_images
    assert "could not be read" in page and 'href="duplicates.html"' in (
        out / "index.html").read_text()
    # a shown thumbnail is the stored image itself, decoded from the page
    import base64
    import io

    from PIL import Image

    uri = page.split('<img src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    thumb = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))))
    assert thumb.ndim == 3 and max(thumb.shape[:2]) <= 128


def test_bad_study_or_pairs_file_is_one_error_line(study_report, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[study.x]\narch = "resnet50"\n')
    proc = _cli("report", "--store", study_report["url"], "--out", str(tmp_path / "r"),
                "--study", str(bad))
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error:") and "at least two" in proc.stderr
    proc = _cli("report", "--store", study_report["url"], "--out", str(tmp_path / "r"),
                "--duplicates", str(tmp_path / "nope.csv"))
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    assert not (tmp_path / "r" / "index.html").exists()
