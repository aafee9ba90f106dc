"""Table 6's "not significantly worse than the best" cells, from a real tiny store.

Two random-weight checkpoints are extracted and probed (logistic regression) on digits and on
the VOC 2007 fixture: ``test_vit`` at 16 px and ``test_resnet`` at 8 px, whose features are far
worse. The colouring is computed from the stored per-example test predictions and checked
against the paper's tests written out here independently (exact two-sided binomial tail from
the discordant counts; VOC's cells from the fixture's own flag files, difficult left out).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from tests.fixtures_datasets import VOC_CLASSES, write_voc2007

pytestmark = pytest.mark.slow  # ~25 s: four extractions and probes

GOOD, BAD = ("test_vit", 16), ("test_resnet", 8)


@pytest.fixture(scope="module")
def sig_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object]:
    import torch

    from featurestore.checkpoints import load_checkpoint
    from featurestore.datasets import get_dataset
    from featurestore.extract import extract_entry
    from featurestore.store import FeatureStore
    from probes.linear.sweep import run_probe

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("sig")
    voc = write_voc2007(tmp / "voc", {"train": 24, "val": 12, "test": 16})
    url = str(tmp / "s.zarr")
    fs = FeatureStore(url)
    for dataset in (get_dataset("digits"), get_dataset("voc2007", voc.root)):
        for ckpt, px in (GOOD, BAD):
            loaded = load_checkpoint(ckpt, "random", seed=0)
            loaded.data_config["input_size"] = (3, px, px)
            extract_entry(fs, loaded, dataset, device="cpu", num_workers=0, progress=False,
                          batch_size=64)
            assert run_probe(fs, ckpt, dataset.name, "logreg", device="cpu").status == "done"
    torch.set_num_threads(threads)
    return url, voc


def _mcnemar_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided exact McNemar written from its definition: 2 x the smaller binomial tail."""
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    d = a_only + b_only
    return 1.0 if d == 0 else min(1.0, 2.0 * float(binom.cdf(min(a_only, b_only), d, 0.5)))


def test_clearly_worse_model_is_not_green_on_digits(sig_store: tuple[str, object]) -> None:
    from featurestore.store import FeatureStore
    from probes.analysis import tables as T

    url, _ = sig_store
    results = T.load_results(url)
    frame, skipped = T.significance_frame(url, results, "logreg")
    digits = frame[frame["dataset"] == "digits"].set_index("ckpt")
    assert "digits" not in skipped
    acc = digits["test_metric"]
    assert acc[GOOD[0]] - acc[BAD[0]] > 0.1  # the 8 px features really are worse
    assert bool(digits.at[GOOD[0], "best"]) and bool(digits.at[GOOD[0], "not_worse_than_best"])
    assert not bool(digits.at[BAD[0], "not_worse_than_best"])
    assert digits.at[BAD[0], "test"].startswith("exact McNemar")
    # the p-value is the exact McNemar of the stored predictions against the stored labels
    fs = FeatureStore(url, read_only=True)
    _, y = fs.load(GOOD[0], "digits", "test")
    rows = {r.ckpt: r for r in fs.results.rows() if r.dataset == "digits"}
    correct = {c: fs.results.predictions(r.result_id) == y for c, r in rows.items()}
    want = _mcnemar_reference(correct[GOOD[0]], correct[BAD[0]])
    assert digits.at[BAD[0], "p_vs_best"] == pytest.approx(want, rel=1e-9)
    assert want < 1e-6
    green, _ = T.green_per_dataset(url, results, "logreg")
    assert green["digits"] == {GOOD[0]}


def test_voc_is_tested_on_label_accuracy_without_difficult(sig_store) -> None:
    from featurestore.store import FeatureStore
    from probes.analysis import tables as T

    url, voc = sig_store
    frame, skipped = T.significance_frame(url, T.load_results(url), "logreg")
    assert "voc2007" not in skipped
    cells = frame[frame["dataset"] == "voc2007"].set_index("ckpt")
    assert set(cells.index) == {GOOD[0], BAD[0]}
    assert (cells["metric"] == "voc11_map").all()
    best = cells.index[cells["best"]][0]
    other = ({GOOD[0], BAD[0]} - {best}).pop()
    assert cells.at[best, "test_metric"] >= cells.at[other, "test_metric"]
    assert bool(cells.at[best, "not_worse_than_best"])
    assert "difficult excluded" in cells.at[other, "test"]
    # reference: thresholded decision values (0) vs the fixture's flags, difficult cells out
    fs = FeatureStore(url, read_only=True)
    ids = fs.load_ids(GOOD[0], "voc2007", "test")
    truth = np.array([[c in voc.labels[i] for c in VOC_CLASSES] for i in ids])
    keep = ~np.array([[c in voc.difficult[i] for c in VOC_CLASSES] for i in ids])
    assert (~keep).any()
    rows = {r.ckpt: r for r in fs.results.rows() if r.dataset == "voc2007"}
    correct = {c: ((fs.results.predictions(r.result_id) > 0) == truth)[keep]
               for c, r in rows.items()}
    want = _mcnemar_reference(correct[best], correct[other])
    assert cells.at[other, "p_vs_best"] == pytest.approx(want, rel=1e-9)
    at_least = correct[other].mean() >= correct[best].mean()
    assert bool(cells.at[other, "not_worse_than_best"]) == (want > 0.05 or at_least)


def test_report_table6_data_carries_the_colouring(sig_store) -> None:
    """``data/table6.csv`` (what the report writes) has the colouring on every store cell."""
    from probes.analysis import report_data as R

    url, _ = sig_store
    t6 = R.figure_data(url)["table6"]
    store = t6[t6["source"] == "store"].set_index(["dataset", "ckpt"])
    assert set(store.index) == {(d, c) for d in ("digits", "voc2007")
                                for c in (GOOD[0], BAD[0])}
    assert store.loc[("digits", GOOD[0]), "not_worse_than_best"] == True  # noqa: E712
    assert store.loc[("digits", BAD[0]), "not_worse_than_best"] == False  # noqa: E712
    assert store["significance_test"].notna().all()
    assert t6.loc[t6["source"] == "paper", "not_worse_than_best"].isna().all()


def test_styled_table_colours_green_and_bolds_the_best(sig_store) -> None:
    from probes.analysis import tables as T

    url, _ = sig_store
    results = T.load_results(url)
    table = T.wide_tables(results)["logreg"]
    frame, _ = T.significance_frame(url, results, "logreg")
    html = T.styled_table(table, frame, caption="Table 6 (store)").to_html()
    good = f"{table.at[GOOD[0], 'digits'] * 100:.1f}"
    bad = f"{table.at[BAD[0], 'digits'] * 100:.1f}"
    assert good in html and bad in html and "Table 6 (store)" in html
    styles = pd.Series(T.styled_table(table, frame)._compute().ctx)
    greens = [k for k, v in styles.items() if ("background-color", "#c8ecc8") in v]
    bolds = [k for k, v in styles.items() if ("font-weight", "bold") in v]
    row = {m: i for i, m in enumerate(table.index)}
    col = list(table.columns).index("digits")
    assert (row[GOOD[0]], col) in greens and (row[GOOD[0]], col) in bolds
    assert (row[BAD[0]], col) not in greens


def test_printed_tables_state_their_source(sig_store) -> None:
    from probes.analysis import printed_tables as P
    from probes.analysis import tables as T

    url, _ = sig_store
    rt = T.results_tables(url)
    printed = [*P.table1(rt), *P.table2(rt), *P.table3(rt), *P.table4(), *P.table6(rt),
               *P.appendix_d(rt)]
    ids = {(t.id, t.source) for t in printed}
    assert {("table1", "paper"), ("table1", "store"), ("table2", "paper"), ("table2", "store"),
            ("table3", "paper"), ("table3", "store"), ("table4", "paper"), ("table6", "paper"),
            ("table6", "store"), ("appendix_d", "paper")} <= ids
    for t in printed:
        assert f"source: {t.source}" in t.caption
        assert t.caption in t._repr_html_()
    store1 = next(t for t in printed if t.id == "table1" and t.source == "store").frame
    assert store1.loc["digits", "Size (test)"] == 539  # the digits test split the rows scored
    # the paper's Appendix D: from scratch, log size vs Fisher z gives p = 0.0002
    scratch = next(t for t in printed if t.id == "appendix_d" and t.source == "paper"
                   and "random initialization" in t.caption)
    p_size = float(scratch.caption.rsplit("p = ", 1)[1])
    assert p_size == pytest.approx(0.0002, abs=1e-4) and len(scratch.frame) == 12
    store6 = next(t for t in printed if t.id == "table6" and t.source == "store")
    assert "#c8ecc8" in store6._repr_html_()


def test_report_page_shows_the_coloured_table6(sig_store, tmp_path) -> None:
    """``featurestore report`` renders Table 6 (store, coloured) and the paper's tables."""
    import subprocess

    from tests.app.conftest import featurestore_exe

    url, _ = sig_store
    out = tmp_path / "report"
    proc = subprocess.run([featurestore_exe(), "report", "--store", url, "--out", str(out),
                           "--notebook", "05"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    page = (out / "05_ours_vs_paper.html").read_text()
    for caption in ("Table 1: datasets (source: paper", "Table 3: ImageNet networks (source: "
                    "paper", "Table 4: previous state of the art", "Table 6: Logistic "
                    "regression (source: store", "Table 6: Fine-tuned (source: paper"):
        assert caption in page, caption
    assert "#c8ecc8" in page  # the green cells
    t6 = pd.read_csv(out / "data" / "table6.csv")
    store = t6[(t6["source"] == "store") & (t6["dataset"] == "digits")].set_index("ckpt")
    assert store.loc[GOOD[0], "not_worse_than_best"] and not store.loc[BAD[0],
                                                                       "not_worse_than_best"]
