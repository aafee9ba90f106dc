"""``python -m benchmarks.probes --store``: our logistic path vs scikit-learn's warm-started
lbfgs path on the real entries of a feature store (issue 14).

The store is written by the store's own writer (``benchmarks.distributed``'s synthetic entries,
tiny), so the benchmark reads what ``extract`` would have left; the reported accuracies are
checked against independent fits at the reported lambdas.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from benchmarks import probes as bench
from benchmarks.distributed import write_synthetic_entries
from featurestore.store import FeatureStore
from probes.linear.logistic import LogisticProbe

N, D, C = 400, 32, 4  # train/val/test = 240/80/80 rows per entry


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("bench") / "store.zarr")
    write_synthetic_entries(url, 2, N, D, C)
    return url


def _val_top1(model: object, xva: np.ndarray, yva: np.ndarray) -> float:
    return float(np.mean(model.predict(xva) == yva))  # type: ignore[attr-defined]


def test_store_table_rows_match_independent_fits(store_url: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bench.main(["--store", store_url, "--device", "cpu"])
    out = capsys.readouterr().out
    rows = {m.group(1): m.group(0).split() for m in
            re.finditer(r"^(synthetic_\d/synthetic) +240 x 32 .*$", out, re.M)}
    assert set(rows) == {"synthetic_0/synthetic", "synthetic_1/synthetic"}
    assert "best val top-1 agrees on 2 of 2 entries" in out
    assert "load average" in out and "path/gemm" in out

    fs = FeatureStore(store_url, read_only=True)
    xtr, ytr = fs.load("synthetic_0", "synthetic", "train")
    xva, yva = fs.load("synthetic_0", "synthetic", "val")
    r = rows["synthetic_0/synthetic"]
    # entry, n, x, D, classes, ours_s, sklearn_s, speedup, ours_lam, ours_val, sk_lam, sk_val, ...
    assert r[4] == str(C)
    ours_lam, ours_val = float(r[8]), float(r[9].rstrip("%"))
    sk_lam, sk_val = float(r[10]), float(r[11].rstrip("%"))
    assert ours_val == sk_val
    # the printed lambdas are on the grid (3 significant digits) and their val top-1 is what a
    # cold, tightly converged fit there gets
    ours_lam = bench.DEFAULT_LAMBDAS[np.argmin(abs(np.log(bench.DEFAULT_LAMBDAS / ours_lam)))]
    sk_lam = bench.DEFAULT_LAMBDAS[np.argmin(abs(np.log(bench.DEFAULT_LAMBDAS / sk_lam)))]
    probe = LogisticProbe(lam=ours_lam, tol=1e-7, device="cpu").fit(xtr, ytr)
    assert 100 * _val_top1(probe, xva, yva) == pytest.approx(ours_val, abs=0.01)
    ref = LogisticRegression(C=1 / (2 * sk_lam), tol=1e-8, max_iter=5000).fit(xtr, ytr)
    assert 100 * _val_top1(ref, xva, yva) == pytest.approx(sk_val, abs=0.01)


def test_compare_entry_selection_rule_and_max_iter_count(store_url: str) -> None:
    fs = FeatureStore(store_url, read_only=True)
    row = bench.compare_entry(fs, "synthetic_1", "synthetic", device="cpu", max_iter=1)
    # every one of the 45 warm-started fits stops at max_iter=1
    assert row.sk_maxit == len(bench.DEFAULT_LAMBDAS)
    xtr, ytr = fs.load("synthetic_1", "synthetic", "train")
    xva, yva = fs.load("synthetic_1", "synthetic", "val")
    # scikit-learn's path by hand, warm-started, strongest regularisation first
    clf = LogisticRegression(warm_start=True, max_iter=1)
    vals = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for lam in sorted(bench.DEFAULT_LAMBDAS, reverse=True):
            vals.append((_val_top1(clf.set_params(C=1 / (2 * lam)).fit(xtr, ytr), xva, yva), lam))
    best = max(v for v, _ in vals)
    assert row.sk_val == best
    assert row.sk_lam == next(lam for v, lam in vals if v == best)  # ties: strongest first
    assert (row.n_train, row.d, row.classes, row.n_val) == (240, D, C, 80)


def test_entries_option_picks_and_refuses(store_url: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bench.main(["--store", store_url, "--entries", "synthetic_1/synthetic", "--ours-only"])
    out = capsys.readouterr().out
    assert "synthetic_1/synthetic" in out and "synthetic_0/synthetic" not in out
    with pytest.raises(SystemExit) as e:
        bench.main(["--store", store_url, "--entries", "nope/synthetic"])
    assert e.value.code == 2
    assert "no complete entry 'nope/synthetic'" in capsys.readouterr().err
