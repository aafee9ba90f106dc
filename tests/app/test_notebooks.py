"""End to end: ``featurestore_app.report.report`` executes every notebook headless against (a) a
small local store built here and (b) no store at all (the data/paper fallback), and writes
offline HTML.

Each scenario runs the report once (module-scoped fixtures); the tests then read the executed
``.ipynb`` files it leaves beside the pages and inspect their plotly outputs
(``application/vnd.plotly.v1+json``): which figures were drawn, from which source, with which
traces. Kernel start-up dominates, so the notebooks run two at a time.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pandas as pd
import pytest

from featurestore.store import FeatureStore
from featurestore_app.report import (
    PLOTLY_MIME,
    ReportError,
    inject_store_url,
    notebook_paths,
    report,
)
from tests.probes.test_figures import CKPTS, DATASETS, EXTRACTED, build_store

pytestmark = pytest.mark.slow

NOTEBOOKS = [p.stem for p in notebook_paths()]


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], str]:
    root = tmp_path_factory.mktemp("populated")
    url = str(root / "store.zarr")
    build_store(url)
    out = root / "report"
    return out, report(url, out), url


@pytest.fixture(scope="module")
def fallback(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], str]:
    root = tmp_path_factory.mktemp("fallback")
    url = str(root / "empty-store.zarr")
    FeatureStore(url)  # a store without results: every panel comes from the paper
    out = root / "report"
    return out, report(url, out), url


def test_report_on_a_missing_store_fails_with_one_line(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("featurestore"))
    proc = subprocess.run([exe, "report", "--store", str(tmp_path / "typo.zarr"), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "typo.zarr" in lines[0] and lines[0].startswith("error:"), lines
    assert not (tmp_path / "out").exists() and not (tmp_path / "typo.zarr").exists()


def executed(out: Path, stem: str) -> Any:
    return nbformat.read(out / f"{stem}.ipynb", as_version=4)


def figures(out: Path, stem: str) -> list[dict[str, Any]]:
    """Every plotly figure a notebook displayed, in order."""
    return [o["data"][PLOTLY_MIME] for c in executed(out, stem).cells
            for o in c.get("outputs", []) if PLOTLY_MIME in o.get("data", {})]


def text_outputs(out: Path, stem: str) -> str:
    """All markdown / HTML / plain-text outputs of a notebook, joined (tables, notes)."""
    parts = []
    for c in executed(out, stem).cells:
        for o in c.get("outputs", []):
            data = o.get("data", {})
            for mime in ("text/markdown", "text/html", "text/plain"):
                if mime in data and PLOTLY_MIME not in data:
                    parts.append(str(data[mime]))
            if o.get("output_type") == "stream":
                parts.append(o["text"])
    return "\n".join(parts)


def by_title(figs: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [f for f in figs if f["layout"]["title"]["text"].startswith(prefix)]


def names(fig: dict[str, Any]) -> list[str]:
    return [t.get("name", "") for t in fig["data"]]


def values(v: Any) -> np.ndarray:
    """A trace's array: plain list, or plotly's typed-array encoding ({dtype, bdata})."""
    if isinstance(v, dict) and "bdata" in v:
        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
        return arr.reshape(v["shape"]) if "shape" in v else arr
    return np.asarray(v)


# ------------------------------------------------------------------------------ both scenarios


@pytest.mark.parametrize("scenario", ["populated", "fallback"])
def test_report_pages_are_standalone_and_offline(scenario: str,
                                                 request: pytest.FixtureRequest) -> None:
    out, paths, _ = request.getfixturevalue(scenario)
    assert paths == [out / "index.html", *(out / f"{s}.html" for s in NOTEBOOKS)]
    index = (out / "index.html").read_text()
    # plotly.js once per report, beside the pages; each page loads that file and nothing else
    assert re.match(r"/\*\*\n\* plotly\.js v\d", (out / "plotly.min.js").read_text()[:40])
    for stem in NOTEBOOKS:
        assert f'href="{stem}.html"' in index
        page = (out / f"{stem}.html").read_text()
        assert "plotly.js v" not in page and len(page) < 2_000_000
        assert re.findall(r"<script[^>]*\ssrc=\"([^\"]*)\"", page) == ["plotly.min.js"]
        assert re.search(r"<link[^>]*\shref=\"?https?:", page) is None
        assert "STORE_URL = os.environ" not in page  # code cells hidden by default
        # every figure of the executed notebook is drawn in the page
        assert page.count("Plotly.newPlot(") == len(figures(out, stem))
        assert "Traceback" not in page
        # no kernel warnings (or anything else) on the notebooks' stderr
        stderr = [o["text"] for c in executed(out, stem).cells for o in c.get("outputs", [])
                  if o.get("output_type") == "stream" and o.get("name") == "stderr"]
        assert stderr == [], (stem, stderr)


@pytest.mark.parametrize("scenario", ["populated", "fallback"])
def test_store_url_is_injected(scenario: str, request: pytest.FixtureRequest) -> None:
    out, _, url = request.getfixturevalue(scenario)
    nb = executed(out, "01_correlations")
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and repr(str(Path(url).resolve())) in injected[0].source
    assert str(Path(url).resolve()) in text_outputs(out, "01_correlations")


# ------------------------------------------------------------------------------ a populated store


def test_correlations_from_store(populated: tuple[Path, list[Path], str]) -> None:
    out, _, _ = populated
    figs = figures(out, "01_correlations")
    left = by_title(figs, "Figure 2 (left)")
    # the paper's panels stay; the store's appear beside them, each titled with its source
    assert [f["layout"]["title"]["text"] for f in left] == [
        f"Figure 2 (left): {s} (paper)" for s in
        ("Logistic regression", "Fine-tuned", "Trained from random initialization")
    ] + [
        f"Figure 2 (left): {s} (store)" for s in
        ("Logistic regression", "SVM", "Fine-tuned", "Trained from random initialization")
    ]
    assert all(len(f["layout"]["meta"]["datasets"]) == 12 for f in left[:3])
    for fig in left[3:]:  # per-dataset green from the stored predictions
        assert fig["layout"]["meta"]["datasets"] == ["cifar10", "dtd", "flowers102"]
        green = [t for t in fig["data"] if t.get("name") == "not worse than best"]
        assert len(green) == 3 and all("Inception v4" in t["text"] for t in green)
        assert names(fig).count("fit") == 3
    right = by_title(figs, "Figure 2 (right)")[0]
    assert right["layout"]["meta"]["panels"] == [
        "Logistic regression (paper)", "Fine-tuned (paper)", "From scratch (paper)",
        "Logistic regression (store)", "SVM (store)", "Fine-tuned (store)",
        "From scratch (store)"]
    assert right["layout"]["title"]["text"].endswith("(paper and store side by side)")
    assert "not worse than best" in names(right)
    fig1 = by_title(figs, "Figure 1")[0]
    assert fig1["layout"]["meta"]["panels"] == [
        "Logistic regression (paper)", "Fine-tuned (paper)", "Logistic regression (store)",
        "Fine-tuned (store)"]
    table2 = text_outputs(out, "01_correlations")
    assert "Logistic regression" in table2 and "store" in table2


def test_settings_from_store(populated: tuple[Path, list[Path], str]) -> None:
    out, _, _ = populated
    figs = figures(out, "02_settings")
    ref6, fig6 = by_title(figs, "Figure 6")
    assert ref6["layout"]["title"]["text"].endswith("(paper)")
    assert ref6["layout"]["meta"]["settings"] == ["logreg", "finetune", "scratch"]
    assert fig6["layout"]["title"]["text"].endswith("(store)")
    assert fig6["layout"]["meta"]["settings"] == ["logreg", "svm", "finetune", "scratch"]
    assert [t["type"] for t in fig6["data"]].count("bar") == 4
    ref7, fig7 = by_title(figs, "Figure 7")
    assert len(ref7["layout"]["meta"]["datasets"]) == 12
    assert fig7["layout"]["meta"]["datasets"] == ["cifar10", "dtd", "flowers102"]
    ref17, fig17 = by_title(figs, "Figure 17")
    assert len(ref17["layout"]["meta"]["pairs"]) == 3 and len(fig17["layout"]["meta"]["pairs"]) == 6
    # Figure 18 (SVM): the store alone; the test store has no augmented logistic regression
    assert [f["layout"]["title"]["text"] for f in by_title(figs, "Figure 18")] == [
        "Figure 18: SVM vs ImageNet top-1 (store)", "Figure 18: SVM vs other settings (store)"]
    assert "Fine-tuned > Logistic regression" in text_outputs(out, "02_settings")


def test_data_size_and_convergence_from_store(populated: tuple[Path, list[Path], str]) -> None:
    out, _, _ = populated
    figs = figures(out, "03_data_size_convergence")
    fig9 = by_title(figs, "Figure 9")[0]
    assert sorted(names(fig9)) == sorted(
        f"{s} · inception_v4" for s in ("Logistic regression", "Fine-tuned", "From scratch"))
    assert all(list(values(t["x"])) == [1, 2, 5] for t in fig9["data"])
    # hand-built rows have no step-budget family: Figure 8 says so, and the validation curves
    # of single runs are drawn separately, titled as not being Figure 8
    fig8 = by_title(figs, "Figure 8")[0]
    assert fig8["layout"]["meta"]["empty"]
    curve = by_title(figs, "Validation curve")[0]
    assert "not Figure 8" in curve["layout"]["title"]["text"]
    assert names(curve).count("90% of max odds") == 2 * len(CKPTS)


def test_report_writes_figure_data(populated: tuple[Path, list[Path], str]) -> None:
    out, _, _ = populated
    fig2 = pd.read_csv(out / "data" / "figure2.csv")
    assert set(fig2["source"]) == {"paper", "store"}
    store = fig2[fig2["source"] == "store"]
    assert sorted(set(store["ckpt"])) == sorted(CKPTS)
    assert len(store) == len(CKPTS) * len(DATASETS) * 4


def test_embeddings_from_store(populated: tuple[Path, list[Path], str]) -> None:
    out, _, _ = populated
    (fig4,) = figures(out, "04_embeddings")
    assert fig4["layout"]["meta"]["ckpts"] == list(EXTRACTED)
    assert "Oxford 102 Flowers" in fig4["layout"]["title"]["text"]
    assert len(fig4["data"]) == 10 * len(EXTRACTED)  # 10 classes per panel
    assert sum(len(values(t["x"])) for t in fig4["data"]) == 100 * len(EXTRACTED)


def test_ours_vs_paper_from_store(populated: tuple[Path, list[Path], str]) -> None:
    out, _, _ = populated
    (fig,) = figures(out, "05_ours_vs_paper")
    points = [t for t in fig["data"] if t.get("name") != "y = x"]
    # inception_v4 and resnet50_v1 are paper networks: 3 datasets x 3 paper settings each
    assert sum(len(values(t["x"])) for t in points) == 2 * len(DATASETS) * 3
    assert {t["name"] for t in points} == {"Logistic regression", "Fine-tuned",
                                           "Trained from random initialization"}
    text = text_outputs(out, "05_ours_vs_paper")
    assert "efficientnet_lite0" in text and "diff_log_odds" in text


# ------------------------------------------------------------------------------ no store: the paper


def test_correlations_fall_back_to_paper(fallback: tuple[Path, list[Path], str]) -> None:
    out, _, _ = fallback
    figs = figures(out, "01_correlations")
    left = by_title(figs, "Figure 2 (left)")
    assert [f["layout"]["title"]["text"] for f in left] == [
        f"Figure 2 (left): {s} (paper)" for s in
        ("Logistic regression", "Fine-tuned", "Trained from random initialization")
    ]
    for fig in left:
        assert len(fig["layout"]["meta"]["datasets"]) == 12
        assert "not worse than best" not in names(fig)  # no per-example data in the paper
        assert names(fig).count("bootstrap band") == 12
    fig1 = by_title(figs, "Figure 1")[0]
    green = [t for t in fig1["data"] if t.get("name") == "not worse than best"]
    assert sorted(green[0]["text"]) == ["Inception-ResNet v2", "NASNet-A Large"]
    text = text_outputs(out, "01_correlations")
    assert "no per-example predictions" in text
    assert re.search(r"0\.98\d", text)  # Table 2, logistic regression r (paper: 0.99)


def test_settings_fall_back_to_paper(fallback: tuple[Path, list[Path], str]) -> None:
    out, _, _ = fallback
    figs = figures(out, "02_settings")
    assert [f["layout"]["meta"]["settings"] for f in by_title(figs, "Figure 6")] == [
        ["logreg", "finetune", "scratch"]]
    assert len(by_title(figs, "Figure 7")[0]["layout"]["meta"]["datasets"]) == 12
    assert len(by_title(figs, "Figure 17")[0]["layout"]["meta"]["pairs"]) == 3
    assert "in 178 of 192 cells (1 ties)" in text_outputs(out, "02_settings")


def test_data_size_and_convergence_render_empty(fallback: tuple[Path, list[Path], str]) -> None:
    out, _, _ = fallback
    figs = figures(out, "03_data_size_convergence")
    assert [f["layout"]["title"]["text"].split(":")[0] for f in figs] == [
        "Figure 9", "Figure 8", "Validation curve along one run (store; not Figure 8)"]
    assert all(f["layout"]["meta"]["empty"] and not f["data"] for f in figs)


def test_embeddings_without_store_say_so(fallback: tuple[Path, list[Path], str]) -> None:
    out, _, _ = fallback
    assert figures(out, "04_embeddings") == []
    assert "no features to embed" in text_outputs(out, "04_embeddings")


def test_ours_vs_paper_without_results(fallback: tuple[Path, list[Path], str]) -> None:
    out, _, _ = fallback
    (fig,) = figures(out, "05_ours_vs_paper")
    assert fig["layout"]["meta"]["empty"]
    assert "the store has no results" in fig["layout"]["annotations"][0]["text"]


@pytest.mark.parametrize("scenario", ["populated", "fallback"])
def test_choosing_a_checkpoint_without_enough_checkpoints_says_so(
        scenario: str, request: pytest.FixtureRequest) -> None:
    """The populated store has 2 checkpoints per dataset, the fallback none: below the 3 a
    ranking needs, so the page says why it has no figure and the CSVs have headers only."""
    out, _, _ = request.getfixturevalue(scenario)
    assert figures(out, "06_choosing_a_checkpoint") == []
    text = text_outputs(out, "06_choosing_a_checkpoint")
    assert "has no dataset with at least 3 extracted checkpoints" in text
    if scenario == "populated":
        assert "DTD (2)" in text and "CIFAR-10 (2)" in text
    for key in ("transfer_scatter", "transfer_correlations", "transfer_timing"):
        frame = pd.read_csv(out / "data" / f"{key}.csv")
        assert frame.empty and "source" in frame.columns


# ------------------------------------------------------------------------------ failures


def test_failing_notebook_still_gets_a_page(tmp_path: Path) -> None:
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    (nb_dir / "01_broken.py").write_text(
        '# %% [markdown]\n# # Broken\n\n# %% tags=["parameters"]\nSTORE_URL = "x"\n\n'
        '# %%\nraise RuntimeError("deliberately broken for the test")\n'
    )
    FeatureStore(str(tmp_path / "s.zarr"))
    with pytest.raises(ReportError, match="01_broken") as info:
        report(str(tmp_path / "s.zarr"), tmp_path / "out", notebooks=notebook_paths(nb_dir))
    page = (tmp_path / "out" / "01_broken.html").read_text()
    assert "deliberately broken for the test" in page
    assert "failed" in (tmp_path / "out" / "index.html").read_text()
    assert info.value.paths[0] == tmp_path / "out" / "index.html"


def test_inject_store_url_is_idempotent() -> None:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os"),
        nbformat.v4.new_code_cell("STORE_URL = 'default'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(STORE_URL)"),
    ])
    inject_store_url(nb, "s3://bucket/a.zarr")
    inject_store_url(nb, "s3://bucket/b.zarr")
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert tags == [[], ["parameters"], ["injected-parameters"], []]
    assert nb.cells[2].source.endswith("STORE_URL = 's3://bucket/b.zarr'")


def test_plain_nbconvert_renders_the_figures(tmp_path: Path) -> None:
    """`jupyter nbconvert --execute --to html` (no featurestore report) draws the figures,
    offline: plotly.js once, inline, and no `<plotly figure: ...>` placeholders."""
    import jupytext

    FeatureStore(str(tmp_path / "s.zarr"))
    nb_path = tmp_path / "03.ipynb"
    jupytext.write(jupytext.read(notebook_paths()[2]), nb_path)
    exe = str(Path(sys.executable).with_name("jupyter"))
    env = {**os.environ, "FEATURESTORE_URL": str(tmp_path / "s.zarr")}
    proc = subprocess.run([exe, "nbconvert", "--execute", "--to", "html", str(nb_path)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "03.html").read_text()
    assert page.count("Plotly.newPlot(") == 3
    assert len(re.findall(r"\* plotly\.js v\d", page)) == 1
    assert "&lt;plotly figure" not in page
