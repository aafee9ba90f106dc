"""probes.stats, each function checked against an independent computation (hand formulas, brute
force enumeration, an independent metric implementation, or published reference values)."""

from __future__ import annotations

import itertools
import math
import statistics
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import balanced_accuracy_score

from probes import stats

RNG = np.random.default_rng(12345)


def _table(n_models: int = 6, n_datasets: int = 5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    model_effect = rng.normal(0, 0.3, size=(n_models, 1))
    dataset_effect = rng.normal(1.0, 1.0, size=(1, n_datasets))
    x = model_effect + dataset_effect + rng.normal(0, 0.1, size=(n_models, n_datasets))
    return pd.DataFrame(
        1 / (1 + np.exp(-x)),
        index=[f"m{i}" for i in range(n_models)],
        columns=[f"d{j}" for j in range(n_datasets)],
    )


# ---------------------------------------------------------------------------- logit & summaries


def test_logit_matches_formula_and_round_trips() -> None:
    p = np.array([0.01, 0.25, 0.5, 0.9, 0.999])
    np.testing.assert_allclose(stats.logit(p), [math.log(v / (1 - v)) for v in p], rtol=1e-12)
    np.testing.assert_allclose(stats.inv_logit(stats.logit(p)), p, rtol=1e-12)


def test_logit_keeps_pandas_types() -> None:
    t = _table()
    out = stats.logit(t)
    assert isinstance(out, pd.DataFrame)
    assert out.index.equals(t.index) and out.columns.equals(t.columns)
    assert isinstance(stats.logit(t["d0"]), pd.Series)


@pytest.mark.parametrize("bad", [0.0, 1.0, 73.6, -0.1])
def test_logit_rejects_values_outside_open_unit_interval(bad: float) -> None:
    with pytest.raises(ValueError, match="fractions"):
        stats.logit(np.array([0.5, bad]))


def test_logit_eps_clips() -> None:
    out = stats.logit(np.array([0.0, 1.0]), eps=1e-3)
    np.testing.assert_allclose(out, [math.log(1e-3 / 0.999), math.log(0.999 / 1e-3)])


def test_mean_logit_matches_loop() -> None:
    t = _table()
    expected = {m: statistics.fmean(math.log(v / (1 - v)) for v in t.loc[m]) for m in t.index}
    got = stats.mean_logit(t)
    for m, v in expected.items():
        assert got[m] == pytest.approx(v, rel=1e-12)


def test_mean_logit_refuses_missing_cells() -> None:
    t = _table()
    t.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="missing"):
        stats.mean_logit(t)


def test_morey_se_matches_hand_computation() -> None:
    t = _table(n_models=5, n_datasets=7, seed=3)
    m_count, d_count = t.shape
    x = {(m, d): math.log(t.loc[m, d] / (1 - t.loc[m, d])) for m in t.index for d in t.columns}
    col_mean = {d: statistics.fmean(x[(m, d)] for m in t.index) for d in t.columns}
    got = stats.morey_se(t)
    for m in t.index:
        adjusted = [x[(m, d)] - col_mean[d] for d in t.columns]
        se = statistics.stdev(adjusted) / math.sqrt(d_count)
        assert got[m] == pytest.approx(se * math.sqrt(m_count / (m_count - 1)), rel=1e-12)


def test_morey_se_ignores_dataset_difficulty() -> None:
    """Shifting a dataset's log odds for every model leaves Morey errors unchanged."""
    t = _table(seed=4)
    shifted = stats.inv_logit(stats.logit(t) + np.array([0.0, 2.0, -1.5, 0.7, 3.0]))
    pd.testing.assert_series_equal(stats.morey_se(t), stats.morey_se(shifted), rtol=1e-9)


# ---------------------------------------------------------------------------- correlation


def test_transfer_correlation_matches_textbook_formulas() -> None:
    t = _table(n_models=9, n_datasets=4, seed=5)
    top1 = pd.Series(np.linspace(0.70, 0.80, 9), index=t.index)
    top1 = top1 + RNG.normal(0, 0.01, 9)
    # Extra model only in top1, and a shuffled order: the function must align.
    top1_in = pd.concat([top1, pd.Series({"extra": 0.75})]).sample(frac=1.0, random_state=1)
    res = stats.transfer_correlation(top1_in, t)

    x = np.log(top1 / (1 - top1)).to_numpy()
    y = np.log(t / (1 - t)).mean(axis=1).to_numpy()
    xc, yc = x - x.mean(), y - y.mean()
    r = float(xc @ yc / math.sqrt((xc @ xc) * (yc @ yc)))
    n = len(x)
    tstat = r * math.sqrt((n - 2) / (1 - r * r))
    p = 2 * sps.t.sf(abs(tstat), n - 2)
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    rho = float(np.corrcoef(rx, ry)[0, 1])

    assert res["n"] == 9
    assert res["r"] == pytest.approx(r, rel=1e-10)
    assert res["r2"] == pytest.approx(r * r, rel=1e-10)
    assert res["p"] == pytest.approx(p, rel=1e-8)
    assert res["rho"] == pytest.approx(rho, rel=1e-10)


def test_bootstrap_band_matches_slow_loop() -> None:
    t = _table(n_models=8, n_datasets=4, seed=6)
    top1 = pd.Series(np.linspace(0.70, 0.81, 8), index=t.index)
    grid = np.linspace(0.8, 1.5, 7)
    band = stats.bootstrap_band(top1, t, n=300, seed=11, grid=grid)

    x = np.log(top1 / (1 - top1)).to_numpy()
    y = np.log(t / (1 - t)).mean(axis=1).to_numpy()
    idx = np.random.default_rng(11).integers(0, 8, size=(300, 8))
    lines = []
    for row in idx:
        if np.ptp(x[row]) == 0:
            continue
        b, a = np.polyfit(x[row], y[row], 1)
        lines.append(a + b * grid)
    lo, hi = np.percentile(np.array(lines), [2.5, 97.5], axis=0)
    b, a = np.polyfit(x, y, 1)

    assert list(band.columns) == ["x", "lo", "hi", "fit"]
    np.testing.assert_allclose(band["x"], grid)
    np.testing.assert_allclose(band["lo"], lo, rtol=1e-9)
    np.testing.assert_allclose(band["hi"], hi, rtol=1e-9)
    np.testing.assert_allclose(band["fit"], a + b * grid, rtol=1e-9)


def test_bootstrap_band_default_grid_and_exact_line() -> None:
    """Points exactly on a line: every resample recovers it, so the band has zero width."""
    top1 = pd.Series(np.linspace(0.70, 0.80, 6), index=[f"m{i}" for i in range(6)])
    y = 0.5 + 2.0 * stats.logit(top1)
    t = pd.DataFrame({"d0": stats.inv_logit(y), "d1": stats.inv_logit(y)})
    band = stats.bootstrap_band(top1, t, n=500)
    assert len(band) == 101
    assert band["x"].iloc[0] == pytest.approx(stats.logit(0.70))
    np.testing.assert_allclose(band["lo"], band["fit"], atol=1e-9)
    np.testing.assert_allclose(band["hi"], band["fit"], atol=1e-9)


def test_per_dataset_correlation_matches_corrcoef() -> None:
    t = _table(n_models=7, n_datasets=3, seed=8)
    top1 = pd.Series(np.linspace(0.7, 0.8, 7), index=t.index)
    got = stats.per_dataset_correlation(top1, t)
    x = np.log(top1 / (1 - top1))
    for d in t.columns:
        expected = np.corrcoef(x, np.log(t[d] / (1 - t[d])))[0, 1]
        assert got[d] == pytest.approx(expected, rel=1e-10)


# ---------------------------------------------------------------------------- paired tests


def _exact_swap_p(contrib: np.ndarray) -> float:
    """Two-sided p over all 2**N swap patterns (brute force)."""
    observed = abs(contrib.sum())
    hits = 0
    total = 0
    for signs in itertools.product((1.0, -1.0), repeat=len(contrib)):
        total += 1
        hits += abs(float(np.dot(signs, contrib))) >= observed - 1e-12
    return hits / total


def test_mcnemar_exact_matches_hand_binomial_and_enumeration() -> None:
    a = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
    b = np.array([0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0], dtype=bool)
    a_only, b_only = 6, 1
    d = a_only + b_only
    hand = min(1.0, 2 * sum(math.comb(d, k) for k in range(min(a_only, b_only) + 1)) / 2**d)
    assert stats.mcnemar_exact(a, b) == pytest.approx(hand, rel=1e-12)
    # The permutation test of Appendix A.1.1, enumerated exactly, gives the same p.
    assert stats.mcnemar_exact(a, b) == pytest.approx(
        _exact_swap_p(a.astype(float) - b.astype(float)), rel=1e-12
    )


def test_mcnemar_exact_edge_cases() -> None:
    same = np.array([True, False, True])
    assert stats.mcnemar_exact(same, same) == 1.0
    with pytest.raises(ValueError, match="shape"):
        stats.mcnemar_exact(same, same[:2])
    # 2-D (VOC cells) is flattened.
    a = RNG.random((50, 20)) < 0.9
    b = RNG.random((50, 20)) < 0.85
    assert stats.mcnemar_exact(a, b) == stats.mcnemar_exact(a.ravel(), b.ravel())


def _labels(n: int, k: int, acc_a: float, acc_b: float, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    a = np.where(rng.random(n) < acc_a, y, (y + rng.integers(1, k, n)) % k)
    b = np.where(rng.random(n) < acc_b, y, (y + rng.integers(1, k, n)) % k)
    return y, a, b


@pytest.mark.parametrize(
    ("name", "func"),
    [
        ("top1", lambda y, p: float(np.mean(p == y))),
        ("mean_per_class", lambda y, p: float(balanced_accuracy_score(y, p))),
    ],
)
def test_permutation_fast_path_equals_generic_callable(name: str, func) -> None:
    """Same seed, same swap masks: the vectorised path and the per-permutation loop using an
    independent metric implementation (sklearn's balanced accuracy) must agree exactly."""
    y, a, b = _labels(300, 7, 0.80, 0.74, seed=1)
    y[:40] = 0  # unbalanced classes, so mean per-class differs from top-1
    fast = stats.permutation_test(a, b, y, name, n=150, seed=3)
    slow = stats.permutation_test(a, b, y, func, n=150, seed=3)
    assert fast == slow
    assert 0 < fast <= 1


def test_permutation_mean_per_class_matches_exhaustive_enumeration() -> None:
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    a = np.array([0, 0, 0, 0, 0, 1, 1, 1, 0, 2, 2, 0])
    b = np.array([0, 1, 1, 0, 1, 1, 1, 0, 0, 2, 0, 0])
    counts = np.bincount(y)
    w = 1.0 / (len(counts) * counts[y])
    exact = _exact_swap_p(w * ((a == y).astype(float) - (b == y).astype(float)))
    p = stats.permutation_test(a, b, y, "mean_per_class", n=20_000, seed=0)
    assert p == pytest.approx(exact, abs=0.015)


def test_permutation_top1_agrees_with_exact_mcnemar() -> None:
    y, a, b = _labels(2000, 10, 0.80, 0.77, seed=2)
    exact = stats.mcnemar_exact(a == y, b == y)
    p = stats.permutation_test(a, b, y, "top1", n=10_000, seed=0)
    se = math.sqrt(exact * (1 - exact) / 10_000)
    assert abs(p - exact) < 4 * se + 2e-4


def test_permutation_identical_predictions_give_p_one() -> None:
    y, a, _ = _labels(100, 5, 0.8, 0.8, seed=4)
    assert stats.permutation_test(a, a, y, "mean_per_class", n=100) == 1.0


def test_permutation_multilabel_cells() -> None:
    """VOC: [N, C] predictions swap per (example, label) cell; label_accuracy is per-cell
    accuracy, agreeing with a generic callable and with exact McNemar on cells."""
    rng = np.random.default_rng(5)
    y = (rng.random((200, 20)) < 0.1).astype(np.uint8)
    a = np.where(rng.random(y.shape) < 0.95, y, 1 - y)
    b = np.where(rng.random(y.shape) < 0.94, y, 1 - y)
    fast = stats.permutation_test(a, b, y, "label_accuracy", n=300, seed=9)
    slow = stats.permutation_test(a, b, y, lambda t, p: float(np.mean(p == t)), n=300, seed=9)
    assert fast == slow
    p = stats.permutation_test(a, b, y, "label_accuracy", n=10_000, seed=1)
    exact = stats.mcnemar_exact(a == y, b == y)
    assert abs(p - exact) < 4 * math.sqrt(exact * (1 - exact) / 10_000) + 2e-4


def test_permutation_speed() -> None:
    """10,000 permutations on 6,000 examples must take < 2 s (the paper's test-set scale)."""
    y, a, b = _labels(6000, 100, 0.70, 0.66, seed=6)
    t0 = time.perf_counter()
    stats.permutation_test(a, b, y, "mean_per_class", n=10_000, seed=0)
    assert time.perf_counter() - t0 < 2.0


def test_permutation_rejects_bad_input() -> None:
    y, a, b = _labels(50, 3, 0.8, 0.8, seed=7)
    with pytest.raises(ValueError, match="shape"):
        stats.permutation_test(a, b[:10], y)
    with pytest.raises(ValueError, match="1-D"):
        stats.permutation_test(np.stack([a, a], 1), np.stack([b, b], 1), y, "top1")


def test_not_worse_than_best_mcnemar() -> None:
    rng = np.random.default_rng(8)
    n = 3000
    correct = {
        "best": rng.random(n) < 0.90,
        "close": rng.random(n) < 0.895,
        "far": rng.random(n) < 0.80,
    }
    expected = {"best"} | {
        m
        for m in ("close", "far")
        if sps.binomtest(
            int((correct["best"] & ~correct[m]).sum()),
            int((correct["best"] ^ correct[m]).sum()),
        ).pvalue
        > 0.05
    }
    assert max(correct, key=lambda m: correct[m].mean()) == "best"
    assert stats.not_worse_than_best(correct) == expected
    assert "far" not in expected


def test_not_worse_than_best_permutation() -> None:
    y, a, close = _labels(1500, 5, 0.85, 0.845, seed=9)
    _, _, far = _labels(1500, 5, 0.85, 0.70, seed=9)
    preds = {"a": a, "close": close, "far": far}
    # Sanity of the fixture by an independent test (exact McNemar on per-example correctness).
    assert stats.mcnemar_exact(a == y, close == y) > 0.2
    assert stats.mcnemar_exact(a == y, far == y) < 1e-6
    got = stats.not_worse_than_best_permutation(preds, y, "mean_per_class", n=2000)
    assert got == {"a", "close"}
    # An independent metric implementation picks the same best and the same set.
    got2 = stats.not_worse_than_best_permutation(
        preds, y, lambda t, p: float(balanced_accuracy_score(t, p)), n=100
    )
    assert got2 == {"a", "close"}


# ---------------------------------------------------------------------------- across datasets


def test_paired_t_series_matches_hand_formula() -> None:
    t = _table(n_models=2, n_datasets=12, seed=12)
    a, b = t.loc["m0"], t.loc["m1"]
    d = np.log(a / (1 - a)) - np.log(b / (1 - b))
    tstat = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    p = 2 * sps.t.sf(abs(tstat), len(d) - 1)
    res = stats.paired_t_across_datasets(a, b)
    assert res["t"] == pytest.approx(tstat, rel=1e-10)
    assert res["p"] == pytest.approx(p, rel=1e-8)
    assert res["df"] == 11
    assert res["mean_diff"] == pytest.approx(d.mean(), rel=1e-12)


def test_paired_t_tables_pair_every_cell() -> None:
    a, b = _table(seed=13), _table(seed=14)
    res = stats.paired_t_across_datasets(a, b)
    d = (np.log(a / (1 - a)) - np.log(b / (1 - b))).to_numpy().ravel()
    assert res["df"] == d.size - 1
    assert res["t"] == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(d.size)), rel=1e-10)
    with pytest.raises(TypeError):
        stats.paired_t_across_datasets(a, b.iloc[0])


def test_wilcoxon_per_dataset_matches_exact_enumeration() -> None:
    """Few models, no ties: the exact signed-rank p by brute force over all sign patterns."""
    a, b = _table(n_models=8, n_datasets=3, seed=15), _table(n_models=8, n_datasets=3, seed=16)
    res = stats.wilcoxon_per_dataset(a, b)
    for d in a.columns:
        diff = (np.log(a[d] / (1 - a[d])) - np.log(b[d] / (1 - b[d]))).to_numpy()
        ranks = sps.rankdata(np.abs(diff))
        w_plus = ranks[diff > 0].sum()
        w_obs = min(w_plus, ranks.sum() - w_plus)
        null = [
            min(s := float(np.dot(signs, ranks)), ranks.sum() - s)
            for signs in itertools.product((0, 1), repeat=len(ranks))
        ]
        exact = float(np.mean(np.array(null) <= w_obs + 1e-9))
        assert res.loc[d, "statistic"] == pytest.approx(w_obs)
        assert res.loc[d, "p"] == pytest.approx(exact, rel=1e-9)
        assert res.loc[d, "a_better"] == int((a[d] > b[d]).sum())
        assert res.loc[d, "n_models"] == 8


def test_not_worse_than_best_across_datasets() -> None:
    base = _table(n_models=3, n_datasets=12, seed=17)
    lg = stats.logit(base.loc["m0"])
    rng = np.random.default_rng(1)
    t = pd.DataFrame(
        {
            "best": stats.inv_logit(lg + 0.5),
            "tied": stats.inv_logit(lg + 0.5 - rng.normal(0.0, 0.3, 12)),
            "worse": stats.inv_logit(lg + rng.normal(0.0, 0.05, 12)),
        }
    ).T
    expected = {"best"} | {
        m
        for m in ("tied", "worse")
        if sps.ttest_rel(stats.logit(t.loc["best"]), stats.logit(t.loc[m])).pvalue > 0.05
    }
    assert stats.not_worse_than_best_across_datasets(t) == expected
    assert "worse" not in expected


# ---------------------------------------------------------------------------- correlations


def test_fisher_z() -> None:
    r = np.array([-0.9, 0.0, 0.37, 0.99])
    np.testing.assert_allclose(stats.fisher_z(r), 0.5 * np.log((1 + r) / (1 - r)), rtol=1e-12)


def test_dependent_correlations_reference_values() -> None:
    """Reference values from Silver, Hittner & May's DEPCOR program (2006) and Raghunathan et al.
    (1996, p. 180), as reproduced by the cocor package's test suite."""
    kw = {"r_jk": 0.3, "r_hm": 0.4, "r_jh": 0.5, "r_kh": 0.6, "r_km": 0.7, "r_jm": 0.8, "n": 100}
    z, p = stats.dependent_correlations_test(**kw)  # silver2004 is the default
    assert round(z, 4) == -1.0737 and round(p, 4) == 0.2830
    z, p = stats.dependent_correlations_test(**kw, method="steiger1980")
    assert round(z, 4) == -1.0744 and round(p, 4) == 0.2827
    z, p = stats.dependent_correlations_test(**kw, method="dunn1969")
    assert round(z, 4) == -1.0723 and round(p, 4) == 0.2836
    z, p = stats.dependent_correlations_test(0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 100, method="dunn1969")
    assert round(z, 2) == -1.06 and round(p, 10) == 0.2892685563
    z, _ = stats.dependent_correlations_test(0.38, 0.25, 0.45, 0.53, 0.31, 0.55, 603, "dunn1969")
    assert round(z, 6) == 2.869174


def test_dependent_correlations_hand_derived_uncorrelated_case() -> None:
    """With all cross-correlations 0 the two Fisher z's are independent (c = 0), so
    z = (Z_jk - Z_hm) / sqrt(2 / (n - 3)), for every pooling method."""
    r_jk, r_hm, n = 0.99, 0.37, 16
    expected = (math.atanh(r_jk) - math.atanh(r_hm)) / math.sqrt(2 / (n - 3))
    for method in ("silver2004", "steiger1980", "dunn1969"):
        z, p = stats.dependent_correlations_test(r_jk, r_hm, 0, 0, 0, 0, n, method=method)
        assert z == pytest.approx(expected, rel=1e-12)
        assert p == pytest.approx(math.erfc(abs(expected) / math.sqrt(2)), rel=1e-9)


def test_dependent_correlations_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        stats.dependent_correlations_test(1.0, 0.3, 0, 0, 0, 0, 16)
    with pytest.raises(ValueError):
        stats.dependent_correlations_test(0.5, 0.3, 0, 0, 0, 0, 3)
    with pytest.raises(ValueError, match="method"):
        stats.dependent_correlations_test(0.5, 0.3, 0, 0, 0, 0, 16, method="fisher")


# ---------------------------------------------------------------------------- convergence


def test_steps_to_fraction_of_max_odds_hand_example() -> None:
    # Max accuracy 0.9 -> max odds 9 -> threshold odds 8.1 -> accuracy 8.1 / 9.1 = 0.89011.
    curve = [(800, 0.90), (100, 0.50), (400, 0.8905), (200, 0.80)]  # unsorted on purpose
    assert stats.steps_to_fraction_of_max_odds(curve) == 400
    curve_below = [(100, 0.5), (200, 0.8), (400, 0.8900), (800, 0.9)]
    assert stats.steps_to_fraction_of_max_odds(curve_below) == 800
    s = pd.Series([0.5, 0.8, 0.8905, 0.9], index=[100, 200, 400, 800])
    assert stats.steps_to_fraction_of_max_odds(s) == 400
    df = pd.DataFrame({"steps": [100, 200, 400, 800], "accuracy": [0.5, 0.8, 0.8905, 0.9]})
    assert stats.steps_to_fraction_of_max_odds(df) == 400


def test_steps_fraction_threshold_is_in_odds() -> None:
    """fraction=0.5 of max odds 9 is odds 4.5 (accuracy 0.818), not accuracy 0.45."""
    df = pd.DataFrame({"steps": [100, 200, 300, 400], "accuracy": [0.5, 0.81, 0.82, 0.9]})
    assert stats.steps_to_fraction_of_max_odds(df, fraction=0.5) == 300
    assert stats.steps_to_fraction_of_max_odds(df, fraction=1.0) == 400


def test_geometric_mean() -> None:
    v = [267.0, 1151.0, 4882.0]
    assert stats.geometric_mean(v) == pytest.approx(math.exp(statistics.fmean(map(math.log, v))))
    with pytest.raises(ValueError):
        stats.geometric_mean([1.0, 0.0])


def test_permutation_named_metric_is_looked_up_in_probes_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Names other than the vectorised ones go to probes.metrics.score (imported lazily)."""
    import sys
    import types

    calls: list[str] = []

    def score(name: str, y_true: np.ndarray, pred: np.ndarray) -> float:
        calls.append(name)
        return float(np.mean(pred == y_true))

    fake = types.ModuleType("probes.metrics")
    fake.score = score  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "probes.metrics", fake)
    import probes

    monkeypatch.setattr(probes, "metrics", fake, raising=False)
    y, a, b = _labels(200, 4, 0.8, 0.7, seed=11)
    named = stats.permutation_test(a, b, y, "my_accuracy", n=100, seed=2)
    assert named == stats.permutation_test(a, b, y, "top1", n=100, seed=2)
    assert set(calls) == {"my_accuracy"}


def test_permutation_unknown_metric_is_refused() -> None:
    y, a, b = _labels(50, 3, 0.8, 0.8, seed=12)
    with pytest.raises(ValueError, match="unknown metric"):
        stats.permutation_test(a, b, y, "no_such_metric", n=10)
