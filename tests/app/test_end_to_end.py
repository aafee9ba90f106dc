"""Every setting as a real job, from images to the figures' data.

Random-weight ``test_resnet`` on scikit-learn's digits (inputs resized to 32 px so extraction and
training take seconds), a few steps of each training setting: probe logistic regression and SVM,
the data-size study (``-k 5``: logistic regression through the installed CLI, fine-tuning and
from scratch), fine-tuning, from scratch, logistic regression with augmentation, and Figure 8's
step budgets through the installed CLI (``--steps 2,4``). The jobs are the session fixture
``e2e_store`` of ``tests/app/conftest.py`` (shared with ``test_report_data.py``). The rows the
jobs wrote are the only input of the analysis tables and figure builders checked here; no row is
written by hand.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from probes.analysis import figures as F
from probes.analysis import tables as T
from tests.app.conftest import BUDGETS, CKPT, DATASET, SUBSET_SEEDS, K, featurestore_exe

# the jobs (tests/app/conftest.py) take ~40-100 s on 2 busy cores; one worker builds them for all
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e_store")]


@pytest.fixture(scope="module")
def store_url(e2e_store: str) -> str:
    return e2e_store


def test_every_setting_reaches_the_tables(store_url: str) -> None:
    results = T.load_results(store_url)
    budgets = results["family"].notna() if "family" in results else False
    # the full-data row of each setting, the k=5 data-size rows (logistic regression at three
    # subset seeds, fine-tuning and scratch at seed 0)
    assert sorted(results.loc[~budgets, "setting"]) == sorted(
        ["logreg", "svm", "finetune", "scratch", "logreg_aug"]
        + ["logreg"] * len(SUBSET_SEEDS) + ["finetune", "scratch"])
    wide = T.wide_tables(results)
    for setting in ("logreg", "svm", "logreg_aug", "finetune", "scratch"):
        assert wide[setting].loc[CKPT, DATASET] == pytest.approx(
            float(results[(results.setting == setting) & (results.variant == "")]
                  ["test_metric"].iloc[0]))
    rt = T.results_tables(store_url)
    assert {rt.source[s] for s in ("logreg", "finetune", "scratch")} == {"store"}
    summary = T.settings_summary(rt.tables)
    assert set(summary["setting"]) >= {"logreg", "svm", "logreg_aug", "finetune", "scratch"}
    assert F.fig_settings_bars(summary, rt.tables, "Figure 6").data
    # every row says what it was computed from
    for r in results.itertuples():
        assert r.features["kind"] == ("cached" if r.setting in ("logreg", "svm") else "images")


def test_data_size_rows_train_on_the_subset_alone(store_url: str) -> None:
    """Figure 9 / Appendix A.2: no setting refits on val, so n_train is k x classes (50)."""
    results = T.load_results(store_url)
    sizes = T.data_size_frame(results)
    assert set(sizes["setting"]) == {"logreg", "finetune", "scratch"}
    assert (sizes["k"] == K).all() and (sizes["n_train"] == K * 10).all()
    rows = results[results["variant"] == f"k={K},subset_seed=0"]
    assert sorted(rows["n_train"]) == [K * 10] * 3
    assert all(r["n"] == K * 10 for r in rows["subset"])
    fig = F.fig_data_size(sizes, "Figure 9")
    ys = [y for t in fig.data for y in (t.y if t.y is not None else [])]
    assert np.allclose(sorted(ys), sorted(sizes["mean"]))


def test_figure8_reads_the_trainer_curves(store_url: str) -> None:
    """The fine-tune writer's curve_steps reach Figure 8 (they once never did)."""
    results = T.load_results(store_url)
    curves = T.convergence_frame(results)
    assert {"finetune", "scratch"} <= set(curves["setting"])
    assert set(curves.loc[curves.variant == "", "step"]) == {2.0}
    ft = results[(results.setting == "finetune") & (results.variant == "")].iloc[0]
    got = curves[(curves.setting == "finetune") & (curves.variant == "")]
    assert list(got["val_metric"]) == [a for _, a in ft["curve_steps"]]
    summary = T.convergence_summary(curves)
    fig = F.fig_convergence(curves, summary, "Figure 8")
    names = [str(t.name) for t in fig.data]
    assert f"Fine-tuned · {CKPT}" in names and f"From scratch · {CKPT}" in names


def test_step_budgets_are_independent_runs_of_one_family(store_url: str) -> None:
    """Figure 8 as the paper made it: `finetune --steps 2,4` (through the CLI) wrote one row
    per budget, each its own grid and train+val run, sharing one family name."""
    results = T.load_results(store_url)
    frame = T.step_budget_frame(results)
    assert sorted(zip(frame["setting"], frame["steps"], strict=True)) == sorted(
        (s, float(b)) for s in ("finetune", "scratch") for b in BUDGETS)
    assert set(frame["family"]) == {"step_budgets:" + "/".join(map(str, BUDGETS))}
    rows = results[results["family"].notna()]
    for r in rows.itertuples():
        assert r.hyperparams["steps"] == r.step_budget  # each run trained for its own budget
        assert r.n_train == 1258  # refit on train+val (digits: 1008 + 250)
        assert len(r.val_curve) == 1 and r.final_curve is not None  # own grid, own final run
    assert len(set(rows["job"])) == len(rows)  # independent jobs, never one run's checkpoints
    fig = F.fig_step_budgets(frame, "Figure 8")
    lines = {t.name: list(t.x) for t in fig.data if t.mode == "lines+markers"}
    assert lines == {f"Fine-tuned · {CKPT}": list(map(float, BUDGETS)),
                     f"From scratch · {CKPT}": list(map(float, BUDGETS))}
    # y is the logit of each run's test accuracy
    ft = frame[frame.setting == "finetune"].sort_values("steps")
    got = next(t for t in fig.data if t.name == f"Fine-tuned · {CKPT}")
    assert np.allclose(got.y, np.log(ft["test_metric"] / (1 - ft["test_metric"])))


def test_bad_step_budgets_fail_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([featurestore_exe(), "finetune", "--ckpt", CKPT, "--dataset", DATASET,
                           "--steps", "2,x", "--store", str(tmp_path / "s.zarr")],
                          capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: --steps takes positive integers") and "'2,x'" in lines[0]
    assert not (tmp_path / "s.zarr").exists()
