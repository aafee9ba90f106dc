"""Settings studies: a family of tiny random-weight checkpoints declared in a study file,
really extracted and probed, then the study figure and per-recipe t-SNE read from the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.special import logit

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
imagenet_top1 = 0.702
top1_source = "made up for the test"

[[study.tiny_recipes.member]]
ckpt = "tiny_recipe_c"
recipe = "C"
"""


@pytest.fixture(scope="module")
def study_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object]:
    from featurestore.checkpoints import REGISTRY, load_checkpoint
    from featurestore.checkpoints.families import load_study_file, register_members
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore
    from probes.linear.sweep import run_probe
    from tests.fixtures_datasets import write_dtd, write_pets

    tmp = tmp_path_factory.mktemp("study")
    (tmp / "studies.toml").write_text(STUDY_TOML)
    study = load_study_file(tmp / "studies.toml")["tiny_recipes"]
    # registered here, or already by another test of the same process (the registry is global)
    register_members(study)
    assert [REGISTRY[c].extra["recipe"] for c in study.ckpts] == ["A", "B", "C"]
    datasets = [get_dataset("dtd", write_dtd(tmp / "dtd").root),
                get_dataset("pets", write_pets(tmp / "pets").root)]
    url = str(tmp / "s.zarr")
    fs = FeatureStore(url)
    for seed, ckpt in enumerate(study.ckpts):
        loaded = load_checkpoint(ckpt, "random", seed=seed)
        loaded.data_config["input_size"] = (3, 16, 16)
        for ds in datasets:
            extract_entry(fs, loaded, ds, device="cpu", num_workers=0, progress=False)
            assert run_probe(fs, ckpt, ds.name, "logreg", device="cpu").status == "done"
    return url, study


def test_study_file_format() -> None:
    """Percent and fraction top-1 both read as fractions; a bad file is one precise error."""
    import tempfile

    from featurestore.checkpoints.families import StudyFileError, load_study_file

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.toml"
        p.write_text(STUDY_TOML)
        study = load_study_file(p)["tiny_recipes"]
        assert [m.imagenet_top1 for m in study.members] == [pytest.approx(0.715), 0.702, None]
        assert study.recipe_of("tiny_recipe_b") == "B" and study.arch == "test_resnet"
        p.write_text('[study.x]\narch = "resnet50"\n[[study.x.member]]\nckpt = "a"\n')
        with pytest.raises(StudyFileError, match="at least two"):
            load_study_file(p)


def test_builtin_resnet50_recipes_come_from_timm() -> None:
    from featurestore.checkpoints.families import builtin_studies

    study = builtin_studies()["resnet50_recipes"]
    assert {"resnet50.a1_in1k", "resnet50.a2_in1k", "resnet50.a3_in1k", "resnet50.tv_in1k",
            "resnet50.tv2_in1k"} <= set(study.ckpts)
    assert not any("ig1b" in c or "yfcc" in c for c in study.ckpts)  # other data, not a recipe
    top1 = {m.ckpt: m.imagenet_top1 for m in study.members}
    assert top1["resnet50.a1_in1k"] == pytest.approx(0.81214)  # timm's published evaluation
    assert top1["resnet50.tv_in1k"] == pytest.approx(0.7613)


def test_study_figure_has_the_stores_numbers(study_store) -> None:
    from featurestore.store import FeatureStore
    from probes.analysis import tables as T
    from probes.analysis.figures import fig_settings_study

    url, study = study_store
    results = FeatureStore(url, read_only=True).results.frame()
    frame = T.settings_study_frame(results, study)
    assert len(frame) == 3 * 2 and set(frame["recipe"]) == {"A", "B", "C"}
    summary = T.settings_study_summary(frame)
    fig = fig_settings_study(frame, summary, "tiny recipes")
    assert fig.layout.meta["settings"] == ["logreg"]
    for _, r in results.iterrows():  # every stored result is a point at its log odds
        recipe = study.recipe_of(r["ckpt"])
        (trace,) = [t for t in fig.data if t.type == "scatter"
                    and t.name == T.dataset_label(r["dataset"])]
        ys = [y for x, y in zip(trace.x, trace.y, strict=True) if x == recipe]
        n = r["n_test"]
        want = logit(np.clip(r["test_metric"], 0.5 / n, 1 - 0.5 / n))
        assert ys == [pytest.approx(want)]
    (mean,) = [t for t in fig.data if t.name == "mean log odds"]
    by_recipe = frame.groupby("recipe")["log_odds"].mean()
    assert list(mean.y) == pytest.approx([by_recipe[x] for x in mean.x])
    (inset,) = [t for t in fig.data if t.type == "bar"]
    assert dict(zip(inset.x, inset.y, strict=True)) == pytest.approx({"A": 0.715, "B": 0.702})


def test_tsne_per_recipe(study_store) -> None:
    from probes.analysis import tables as T
    from probes.analysis.figures import fig_tsne

    url, study = study_store
    dataset, frames = T.tsne_panels(url, "dtd", ckpts=study.ckpts)
    assert dataset == "dtd" and list(frames) == study.ckpts
    fig = fig_tsne({study.recipe_of(c): f for c, f in frames.items()}, "t-SNE per recipe")
    assert fig.layout.meta["ckpts"] == ["A", "B", "C"]
    assert all(len(f) == 6 for f in frames.values())  # dtd's 6 test images, from the store
