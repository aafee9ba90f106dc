"""The report page "Choosing a checkpoint" (notebooks/06) and its ``data/transfer_*.csv``, run
through the installed ``featurestore report`` on a store the real extraction and probe wrote:
3 random-weight tiny timm models on a class-stratified slice of digits, with logits, each probed
by logistic regression. What the page and its CSVs say is checked against ``featurestore rank``
(the same estimators through another command) and scipy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from scipy import stats as sps

from featurestore.extract import extract_entry
from featurestore.store import FeatureStore
from featurestore_app.report import PLOTLY_MIME
from probes.linear.sweep import run_probe
from probes.stats import logit
from tests.app.test_rank import RANDOM_CKPTS, DigitsSlice

FEATURESTORE = str(Path(sys.executable).with_name("featurestore"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
PAGE = "06_choosing_a_checkpoint"
ESTIMATORS = ["logme", "hscore", "knn", "centroid", "leep", "nce"]

pytestmark = pytest.mark.slow  # three extractions, three probes and one notebook kernel


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([FEATURESTORE, *args], env=ENV, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, (p.stdout, p.stderr)
    return p


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(report folder, store URL) of one report of notebook 06 on a 3-checkpoint store."""
    root = tmp_path_factory.mktemp("choice")
    url = str(root / "store.zarr")
    fs = FeatureStore(url)
    for ckpt in RANDOM_CKPTS:
        extract_entry(fs, ckpt, DigitsSlice(), weights="random", batch_size=20, num_workers=0,
                      progress=False, with_logits=True)
        run_probe(fs, ckpt, "digits", "logreg", device="cpu")
    out = root / "report"
    run_cli("report", "--store", url, "--out", str(out), "--notebook", "06")
    return out, url


def data(out: Path, key: str) -> pd.DataFrame:
    return pd.read_csv(out / "data" / f"{key}.csv")


def test_scatter_and_correlations_match_rank_and_scipy(reported: tuple[Path, str]) -> None:
    out, url = reported
    ranked = json.loads(run_cli("rank", "--dataset", "digits", "--store", url, "--json",
                                "--device", "cpu").stdout)
    rows = {r["ckpt"]: r for r in ranked["rows"]}
    scatter = data(out, "transfer_scatter")
    assert set(scatter["source"]) == {"store"} and set(scatter["setting"]) == {"logreg"}
    assert sorted(set(scatter["ckpt"])) == sorted(RANDOM_CKPTS)
    assert len(scatter) == len(RANDOM_CKPTS) * len(ESTIMATORS)
    for _, r in scatter.iterrows():
        want = rows[r["ckpt"]]
        # deterministic estimators agree to float precision; the two commands ran separately
        assert r["score"] == pytest.approx(want[r["estimator"]], rel=1e-6, abs=1e-9)
        assert r["score_rank"] == want[f"{r['estimator']}_rank"]
        assert r["test_metric"] == pytest.approx(want["logreg"])
        assert r["measured_rank"] == want["logreg_rank"]
        assert r["test_log_odds"] == pytest.approx(float(logit(want["logreg"], eps=1e-4)))

    corr = data(out, "transfer_correlations")
    assert set(corr["scope"]) == {"digits", "pooled"}
    assert set(corr["estimator"]) == set(ESTIMATORS)
    digits = corr[(corr["scope"] == "digits") & (corr["setting"] == "logreg")]
    for _, c in digits.iterrows():
        pts = scatter[scatter["estimator"] == c["estimator"]].sort_values("ckpt")
        a, b = pts["score"].to_numpy(), pts["test_metric"].to_numpy()
        assert c["n"] == 3
        if len(set(a)) > 1 and len(set(b)) > 1:
            assert c["kendall_tau"] == pytest.approx(sps.kendalltau(a, b).statistic)
            assert c["spearman_rho"] == pytest.approx(sps.spearmanr(a, b).statistic)
    assert (corr[corr["setting"] == "finetune"]["n"] == 0).all()  # nothing fine-tuned here


def test_timing_has_every_estimator_and_the_probe_it_predicts(
    reported: tuple[Path, str],
) -> None:
    out, url = reported
    timing = data(out, "transfer_timing")
    est = timing[timing["kind"] == "estimator"]
    assert sorted(set(est["method"])) == sorted(ESTIMATORS)
    assert len(est) == len(RANDOM_CKPTS) * len(ESTIMATORS) and (est["seconds"] > 0).all()
    probe = timing[timing["kind"] == "probe"].set_index("ckpt")
    results = FeatureStore(url, read_only=True).results.frame().set_index("ckpt")
    assert sorted(probe.index) == sorted(RANDOM_CKPTS)
    for ckpt in RANDOM_CKPTS:
        assert probe.loc[ckpt, "method"] == "logreg"
        assert probe.loc[ckpt, "seconds"] == pytest.approx(
            results.loc[ckpt, "timings"]["total_s"])


def test_page_draws_the_scatter_table_and_timing(reported: tuple[Path, str]) -> None:
    out, _ = reported
    nb = nbformat.read(out / f"{PAGE}.ipynb", as_version=4)
    figs = [o["data"][PLOTLY_MIME] for c in nb.cells for o in c.get("outputs", [])
            if PLOTLY_MIME in o.get("data", {})]
    titles = [f["layout"]["title"]["text"] for f in figs]
    assert titles == ["Estimate vs measured transfer: digits",
                      "Time to estimate vs time to measure"]
    scatter_fig, timing_fig = figs
    assert scatter_fig["layout"]["meta"]["estimators"] == ESTIMATORS
    assert len(scatter_fig["data"]) == len(ESTIMATORS)  # one logreg trace per panel
    assert timing_fig["layout"]["meta"]["methods"] == [*ESTIMATORS, "logreg"]
    page = (out / f"{PAGE}.html").read_text()
    assert "Choosing a checkpoint" in page and "Traceback" not in page
    assert "kendall_tau" in page and "spearman_rho" in page
    assert page.count("Plotly.newPlot(") == 2
    index = (out / "index.html").read_text()
    assert all(f'href="data/{k}.csv"' in index
               for k in ("transfer_scatter", "transfer_correlations", "transfer_timing"))
