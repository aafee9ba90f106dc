"""``featurestore report`` writes ``data/<id>.csv``: the tidy data behind every figure and table,
each row saying its source (store or paper).

The store is the end-to-end fixture's (tests/app/conftest.py): real tiny jobs of every setting,
no hand-written row. The report runs once through the installed CLI (one notebook, to keep the
test short: the data files do not depend on which notebooks run).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from probes.analysis import paper
from tests.app.conftest import BUDGETS, CKPT, DATASET, K, featurestore_exe

# one worker builds the shared end-to-end store (tests/app/conftest.py) for all its readers
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e_store")]

#: Every id the report writes (table4 only once data/paper/table4.csv exists).
IDS = {"table1", "table2", "table3", "table6", "figure1", "figure2", "figure2_right",
       "figure6", "figure7", "figure8", "figure8_val_curve", "figure9", "figure10", "figure11",
       "figure16", "figure17", "figure18", "section4_3", "settings_study",
       "transfer_scatter", "transfer_correlations", "transfer_timing"}
RESULT_COLUMNS = ["ckpt", "dataset", "setting", "n_train"]


@pytest.fixture(scope="module")
def report_dir(e2e_store: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report") / "out"
    proc = subprocess.run([featurestore_exe(), "report", "--store", e2e_store, "--out", str(out),
                           "--notebook", "03"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stderr


def data(out: Path, key: str) -> pd.DataFrame:
    return pd.read_csv(out / "data" / f"{key}.csv")


def test_every_id_is_written_with_a_source(report_dir: tuple[Path, str]) -> None:
    out, _ = report_dir
    written = {p.stem for p in (out / "data").glob("*.csv")}
    assert IDS <= written
    assert written - IDS <= {"table4"}
    for key in written:
        frame = data(out, key)
        assert "source" in frame.columns, key
        assert set(frame["source"].dropna()) <= {"store", "paper"}, key
    index = (out / "index.html").read_text()
    assert all(f'href="data/{k}.csv"' in index for k in IDS)


def test_store_rows_carry_their_result(report_dir: tuple[Path, str], e2e_store: str) -> None:
    out, _ = report_dir
    for key in ("figure2", "table6", "figure7", "figure8", "figure9", "figure10", "figure17",
                "figure18"):
        frame = data(out, key)
        store = frame[frame["source"] == "store"]
        assert not store.empty, key
        assert store[RESULT_COLUMNS + ["result_id"]].notna().all().all(), key
        assert set(store["ckpt"]) == {CKPT} and set(store["dataset"]) == {DATASET}, key
    cells = data(out, "figure2")
    store = cells[cells["source"] == "store"]
    assert set(store["setting"]) == {"logreg", "svm", "logreg_aug", "finetune", "scratch"}
    # each store value is the row's own test metric, looked up by its result id
    from featurestore.store import FeatureStore

    rows = {r.result_id: r for r in FeatureStore(e2e_store, read_only=True).results.rows()}
    for r in store.itertuples():
        assert r.test_metric == pytest.approx(rows[r.result_id].test_metric)
        assert r.n_train == rows[r.result_id].n_train


def test_paper_rows_stay_beside_the_store(report_dir: tuple[Path, str]) -> None:
    """The store holds only random-weight test_resnet: the paper's 16 x 12 panels stay, the
    store's appear beside them, and nothing is swapped."""
    out, _ = report_dir
    cells = data(out, "figure2")
    ref = cells[cells["source"] == "paper"]
    for setting in ("logreg", "finetune", "scratch"):
        block = ref[ref["setting"] == setting]
        assert block.shape[0] == 16 * 12 and block["ckpt"].nunique() == 16
    assert (ref["n_train"] == ref["dataset"].map(
        lambda d: paper.TRAIN_SIZE[{"cars": "stanford_cars", "aircraft": "fgvc_aircraft",
                                    "pets": "oxford_pets"}.get(d, d)])).all()
    # no ImageNet top-1 for a random-weight checkpoint: Figure 1 is the paper's alone
    assert set(data(out, "figure1")["source"]) == {"paper"}
    assert set(data(out, "table2")["source"]) == {"paper", "store"}
    fig16 = data(out, "figure16")
    scratch = fig16[(fig16["source"] == "paper") & (fig16["setting"] == "scratch")]
    assert scratch["p_size"].iloc[0] == pytest.approx(0.0002, abs=1e-4)  # the paper's p
    small_large = data(out, "section4_3")
    ref43 = small_large[(small_large["source"] == "paper") & (small_large["setting"] == "scratch")]
    assert ref43.set_index("group")["r"].round(2).to_dict() == {"small": 0.29, "large": 0.86}


def test_figure8_and_figure9_data_from_the_jobs(report_dir: tuple[Path, str]) -> None:
    out, _ = report_dir
    fig8 = data(out, "figure8")
    assert set(fig8["source"]) == {"store"}
    assert sorted(zip(fig8["setting"], fig8["steps"], strict=True)) == sorted(
        (s, b) for s in ("finetune", "scratch") for b in BUDGETS)
    fig9 = data(out, "figure9")
    assert set(fig9["setting"]) == {"logreg", "finetune", "scratch"}
    assert (fig9["n_train"] == K * 10).all() and (fig9["k"] == K).all()


def test_report_progress_and_pages(report_dir: tuple[Path, str]) -> None:
    out, stderr = report_dir
    assert "03_data_size_convergence running" in stderr
    assert "03_data_size_convergence done" in stderr
    assert "WARNING" not in stderr and "Traceback" not in stderr  # no kernel warnings
    page = (out / "03_data_size_convergence.html").read_text()
    assert re.findall(r'<script[^>]*\ssrc="([^"]*)"', page) == ["plotly.min.js"]
    assert "plotly.js v" not in page and (out / "plotly.min.js").stat().st_size > 1_000_000
    assert len(page) < 1_000_000
    assert "T.data_size_frame(results)" not in page  # code hidden by default
    assert "Figure 8: accuracy vs training steps (store)" in page
