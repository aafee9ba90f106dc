"""Figure 9 from real data-size rows: ``probe -k K --subset-seeds 0,1,2`` (the end-to-end
fixture's one command) gives three rows, and the figure's error bars are the standard error
over those subsets, recomputed here from the rows' own test metrics."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.app.conftest import CKPT, DATASET, SUBSET_SEEDS, K, featurestore_exe

# the end-to-end jobs (tests/app/conftest.py) run first, on the worker that holds their store
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e_store")]


def test_one_command_writes_one_row_per_subset_seed(e2e_store: str) -> None:
    from featurestore.store import FeatureStore

    rows = [r for r in FeatureStore(e2e_store, read_only=True).results.rows()
            if r.setting == "logreg" and r.subset is not None]
    assert sorted(r.subset.subset_seed for r in rows) == list(SUBSET_SEEDS)
    assert all(r.subset.k == K and r.n_train == K * 10 for r in rows)  # never refit on val
    # different subsets: different training ids
    assert len({r.subset.indices_sha256 for r in rows}) == len(SUBSET_SEEDS)


def test_figure9_error_bars_are_the_standard_error_over_subsets(e2e_store: str) -> None:
    from featurestore.store import FeatureStore
    from probes.analysis import tables as T
    from probes.analysis.figures import fig_data_size

    results = FeatureStore(e2e_store, read_only=True).results.frame()
    frame = T.data_size_frame(results)
    point = frame[(frame["setting"] == "logreg") & (frame["ckpt"] == CKPT)
                  & (frame["dataset"] == DATASET) & (frame["k"] == K)].iloc[0]
    metrics = np.array([r["test_metric"] for _, r in results.iterrows()
                        if r["setting"] == "logreg" and str(r["variant"]).startswith(f"k={K},")])
    assert len(metrics) == 3 and point["n_subsets"] == 3
    se = np.sqrt(np.sum((metrics - metrics.mean()) ** 2) / 2) / np.sqrt(3)
    assert point["mean"] == pytest.approx(metrics.mean())
    assert point["se"] == pytest.approx(se)
    fig = fig_data_size(frame, "Figure 9")
    name = f"{T.setting_label('logreg', short=True)} · {CKPT}"
    (trace,) = [t for t in fig.data if t.name == name]
    assert list(trace.error_y.array) == pytest.approx([se])


def test_subset_seeds_needs_k(e2e_store: str, tmp_path: Path) -> None:
    proc = subprocess.run([featurestore_exe(), "probe", "--ckpt", CKPT, "--dataset", DATASET,
                           "--subset-seeds", "0,1", "--store", e2e_store, "--device", "cpu"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--subset-seeds" in proc.stderr
    proc = subprocess.run([featurestore_exe(), "probe", "--ckpt", CKPT, "--dataset", DATASET,
                           "-k", "2", "--subset-seeds", "0,x", "--store", e2e_store,
                           "--device", "cpu"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.strip().startswith("error: --subset-seeds")
