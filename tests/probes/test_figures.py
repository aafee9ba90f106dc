"""probes.analysis.tables and probes.analysis.figures: the numbers behind every figure, checked
against the paper's published tables and against hand-built stores whose answers are known by
construction.

``build_store`` (also used by tests/test_notebooks.py) writes a small local store through the
public store API: synthetic feature entries via ``FeatureStore.writing`` / ``EntryWriter`` and
result rows with per-example predictions via ``store.results.append``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from featurestore.store import FeatureStore, SplitPlan
from probes import stats
from probes.analysis import figures as F
from probes.analysis import paper
from probes.analysis import tables as T

# ------------------------------------------------------------------------------ the test store

#: ckpt -> ImageNet top-1 written into its rows (None: the registry must supply it).
CKPTS: dict[str, float | None] = {
    "inception_v4": 0.80,  # a paper key: maps to the paper by name (and via the paper16 preset)
    "resnet50_v1": 0.76,
    "efficientnet_lite0": None,  # registry entry, top-1 0.751
    "tiny_net": 0.70,
}
#: dataset -> metric, as the store's dataset loaders name them.
DATASETS = {"cifar10": "top1", "flowers102": "mean_per_class", "dtd": "top1"}
MAIN_SETTINGS = ("logreg", "svm", "finetune", "scratch")
N_CLASSES, TEST_PER_CLASS, DIM = 10, 10, 16
EXTRACTED = ("inception_v4", "tiny_net")  # entries with features; the others only have results
DATA_SIZE_KS = (1, 2, 5)
CURVE_STEPS = (100, 300, 1000, 3000, 10000)


def _labels(split: str) -> np.ndarray:
    per_class = {"train": 6, "val": 2, "test": TEST_PER_CLASS}[split]
    return np.repeat(np.arange(N_CLASSES), per_class).astype(np.int32)


def _write_entry(store: FeatureStore, ckpt: str, dataset: str, seed: int) -> None:
    """Class-clustered Gaussian features for train/val/test (so t-SNE has structure)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(N_CLASSES, DIM))
    plans = [SplitPlan(s, len(_labels(s)), DIM, chunk_rows=64) for s in ("train", "val", "test")]
    prov = {
        "dataset": {"name": dataset, "label_names": [f"class {i}" for i in range(N_CLASSES)],
                    "metric": DATASETS[dataset], "multilabel": False},
        "feature_dim": DIM,
    }
    with store.writing(ckpt, dataset) as w:
        w.begin(plans, prov, {"synthetic": seed})
        for p in plans:
            y = _labels(p.name)
            x = centres[y] + rng.normal(0, 1, size=(len(y), DIM))
            w.write_split(p.name, x.astype(np.float32), y, [f"{p.name}/{i}" for i in range(p.n)])
        w.finish({})


def _predictions(y: np.ndarray, n_wrong: int, rng: np.random.Generator) -> np.ndarray:
    """``y`` with ``n_wrong`` randomly chosen examples moved to the next class."""
    pred = y.copy()
    idx = rng.choice(len(y), size=n_wrong, replace=False)
    pred[idx] = (pred[idx] + 1) % N_CLASSES
    return pred


def _score(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    if metric == "top1":
        return float(np.mean(pred == y))
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def n_wrong(ckpt: str, setting: str) -> int:
    """Errors on a 100-example test set: better ImageNet checkpoints err less, fine-tuning
    least, from scratch most; ``inception_v4`` is best everywhere and ``tiny_net`` (30 errors
    more) is far enough behind to be significantly worse (McNemar)."""
    base = {"inception_v4": 6, "resnet50_v1": 10, "efficientnet_lite0": 12, "tiny_net": 36}[ckpt]
    return base + {"logreg": 4, "svm": 5, "finetune": 0, "scratch": 10}[setting]


def build_store(url: str) -> FeatureStore:
    """The test store: 2 extracted checkpoints, result rows for 4 checkpoints x 3 datasets x
    4 settings, data-size rows (k x 3 subset seeds), and curve_steps on fine-tune/scratch."""
    store = FeatureStore(url)
    for i, (ckpt, dataset) in enumerate(itertools.product(EXTRACTED, DATASETS)):
        _write_entry(store, ckpt, dataset, seed=i)
    y = _labels("test")
    rng = np.random.default_rng(0)
    for ckpt, dataset, setting in itertools.product(CKPTS, DATASETS, MAIN_SETTINGS):
        pred = _predictions(y, n_wrong(ckpt, setting), rng)
        row = {"ckpt": ckpt, "dataset": dataset, "setting": setting,
               "metric": DATASETS[dataset], "test_metric": _score(DATASETS[dataset], y, pred),
               "imagenet_top1": CKPTS[ckpt], "test_ids_sha256": "same-test-set"}
        if setting in ("finetune", "scratch") and dataset == "cifar10":
            final = row["test_metric"]
            speed = 300 if setting == "finetune" else 3000
            row["curve_steps"] = [
                {"step": s, "val_metric": final * (1 - np.exp(-s / speed)) + 0.1 / (1 + s)}
                for s in CURVE_STEPS
            ]
        store.results.append(row, pred)
    for k, seed, setting in itertools.product(DATA_SIZE_KS, range(3), ("logreg", "finetune",
                                                                       "scratch")):
        acc = {"logreg": 0.5, "finetune": 0.45, "scratch": 0.2}[setting] + 0.05 * k + 0.01 * seed
        pred = _predictions(y, int(round((1 - acc) * len(y))), rng)
        store.results.append(
            {"ckpt": "inception_v4", "dataset": "cifar10", "setting": setting,
             "variant": f"k={k},subset_seed={seed}", "metric": "top1",
             "test_metric": _score("top1", y, pred), "imagenet_top1": 0.80},
            pred,
        )
    return store


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("figures") / "store.zarr")
    build_store(url)
    return url


@pytest.fixture(scope="module")
def rt(store_url: str) -> T.ResultTables:
    return T.results_tables(store_url)


def trace_names(fig: go.Figure) -> list[str]:
    return [str(t.name) for t in fig.data]


# ------------------------------------------------------------------------------ paper fallback


def test_paper_fallback_without_store_and_error_on_missing_store(tmp_path: Path) -> None:
    from featurestore.errors import FeatureStoreError

    missing = str(tmp_path / "nothing-here.zarr")
    with pytest.raises(FeatureStoreError, match="nothing-here.zarr"):
        T.results_tables(missing)  # a typo must not become a paper-only report
    assert not Path(missing).exists(), "reading results must not create a store"
    rt = T.results_tables(None)
    assert rt.source == {"logreg": "paper", "finetune": "paper", "scratch": "paper"}
    assert not rt.has_store_results
    lr = rt.tables["logreg"]
    assert lr.shape == (16, 12)
    # store dataset names, paper values
    assert {"cars", "aircraft", "pets"} <= set(lr.columns)
    assert lr.loc["inception_v4", "cars"] == pytest.approx(0.642)
    assert rt.imagenet_top1["nasnet_a_large"] == pytest.approx(0.808)  # retrained column


def test_table2_from_paper_matches_published() -> None:
    t2 = T.correlation_table(T.results_tables(None))
    assert t2.loc["logreg", "r"] == pytest.approx(0.99, abs=0.01)
    assert t2.loc["finetune", "r"] == pytest.approx(0.96, abs=0.01)
    assert t2.loc["scratch", "r"] == pytest.approx(0.55, abs=0.01)
    assert (t2["n"] == 16).all() and (t2["datasets"] == 12).all()
    assert set(t2["source"]) == {"paper"}


def test_settings_comparison_from_paper_matches_section_4() -> None:
    tabs = T.paper_tables()
    ft_lr = T.setting_comparison(tabs["finetune"], tabs["logreg"])
    assert (ft_lr["pairs"], ft_lr["a_better"], ft_lr["ties"]) == (192, 178, 1)  # "179 of 192"
    w = ft_lr["wilcoxon"]
    assert w.loc["caltech101", "p"] > 0.5 and (w.drop("caltech101")["p"] < 0.01).all()
    assert T.setting_comparison(tabs["finetune"], tabs["scratch"])["a_better"] == 189


def test_paper_green_across_datasets_is_the_top_two() -> None:
    """Section 4.1: Inception-ResNet v2 and NASNet-A Large tie for first (logistic regression);
    fig_mean_log_odds draws exactly those in green."""
    rt = T.results_tables(None)
    fig = F.fig_mean_log_odds([("LR", rt.tables["logreg"], rt.top1_for("logreg"))], "t",
                              n_boot=200)
    green = [t for t in fig.data if t.name == "not worse than best"]
    assert len(green) == 1
    assert sorted(green[0].text) == ["Inception-ResNet v2", "NASNet-A Large"]
    models = next(t for t in fig.data if t.name == "models")
    assert len(models.x) == 14 and models.error_y.array is not None
    # points sit at logit(top-1) and the mean log odds; error bars are Morey's
    lr = rt.tables["logreg"]
    mean = stats.mean_logit(lr)
    se = stats.morey_se(lr)
    for t in (green[0], models):
        for x, y, e, name in zip(t.x, t.y, t.error_y.array, t.text, strict=True):
            key = next(k for k, v in paper.MODEL_NAMES.items() if v == name)
            assert x == pytest.approx(stats.logit(rt.top1_for("logreg")[key]))
            assert y == pytest.approx(mean[key]) and e == pytest.approx(se[key])


# ------------------------------------------------------------------------------ tables from a store


def test_wide_tables_from_store(rt: T.ResultTables) -> None:
    assert rt.source == {"logreg": "store", "svm": "store", "finetune": "store",
                         "scratch": "store"}
    lr = rt.tables["logreg"]
    assert list(lr.columns) == ["cifar10", "dtd", "flowers102"]  # paper order: DTD before Flowers
    assert sorted(lr.index) == sorted(CKPTS)
    assert lr.loc["inception_v4", "cifar10"] == pytest.approx(1 - n_wrong("inception_v4",
                                                                          "logreg") / 100)
    # data-size variants never leak into the main tables
    assert lr.shape == (4, 3)
    top1 = rt.imagenet_top1
    assert top1["efficientnet_lite0"] == pytest.approx(0.751)  # from the registry
    assert top1["tiny_net"] == pytest.approx(0.70)  # from the rows


def test_latest_row_wins_and_perfect_scores_are_clipped() -> None:
    rows = pd.DataFrame([
        {"ckpt": "a", "dataset": "d", "setting": "logreg", "variant": "", "test_metric": 0.5,
         "n_test": 10, "created": "2024-01-01", "result_id": "1"},
        {"ckpt": "a", "dataset": "d", "setting": "logreg", "variant": "", "test_metric": 1.0,
         "n_test": 10, "created": "2024-02-01", "result_id": "2"},
    ])
    table = T.wide_tables(rows)["logreg"]
    assert table.loc["a", "d"] == pytest.approx(1 - 0.05)  # newest row, half an example inside


def test_complete_block_drops_emptiest_first() -> None:
    t = pd.DataFrame({"d1": [0.5, 0.6, 0.7], "d2": [0.5, np.nan, 0.7], "d3": [np.nan] * 2 + [0.9]},
                     index=["a", "b", "c"])
    block = T.complete_block(t)
    assert list(block.columns) == ["d1", "d2"] and list(block.index) == ["a", "c"]


def test_comparable_keeps_one_source(rt: T.ResultTables) -> None:
    tabs, source = rt.comparable(["logreg", "finetune", "scratch"])
    assert source == "store" and set(tabs) == {"logreg", "finetune", "scratch"}
    partial = T.ResultTables(
        {"logreg": rt.tables["logreg"], "finetune": T.paper_tables()["finetune"]},
        {"logreg": "store", "finetune": "paper"}, rt.top1, rt.results,
    )
    tabs, source = partial.comparable(["logreg", "finetune"])
    assert source == "paper" and tabs["logreg"].shape == (16, 12)


def test_green_per_dataset_from_predictions(store_url: str, rt: T.ResultTables) -> None:
    green, skipped = T.green_per_dataset(store_url, rt.results, "logreg", n_permutations=2000)
    assert skipped == {}
    assert set(green) == set(DATASETS)
    for dataset, models in green.items():
        assert "inception_v4" in models, dataset
        assert "tiny_net" not in models, dataset  # 30 more errors out of 100: p << 0.05
    # the top-1 datasets go through the exact McNemar test: recompute one by hand
    results = T.load_results(store_url)
    rows = results[(results.setting == "logreg") & (results.dataset == "cifar10")
                   & (results.variant == "")]
    table = FeatureStore(store_url, read_only=True).results
    y = _labels("test")
    correct = {r.ckpt: table.predictions(r.result_id) == y for r in rows.itertuples()}
    assert green["cifar10"] == stats.not_worse_than_best(correct)


def test_green_per_dataset_says_why_it_skips(store_url: str) -> None:
    results = T.load_results(store_url)
    one = results[results.ckpt == "inception_v4"]
    green, skipped = T.green_per_dataset(store_url, one, "logreg")
    assert green == {} and set(skipped.values()) == {"only one model"}
    assert T.green_per_dataset(None, results, "logreg") == ({}, {})


def test_data_size_frame(rt: T.ResultTables) -> None:
    frame = T.data_size_frame(rt.results)
    assert set(frame["setting"]) == {"logreg", "finetune", "scratch"}
    assert sorted(set(frame["k"])) == list(DATA_SIZE_KS)
    assert (frame["n_subsets"] == 3).all()
    raw = rt.results[rt.results.variant.str.startswith("k=2,")]
    raw = raw[raw.setting == "logreg"]["test_metric"].astype(float)
    row = frame[(frame.setting == "logreg") & (frame.k == 2)].iloc[0]
    assert row["mean"] == pytest.approx(raw.mean())
    assert row["se"] == pytest.approx(raw.std(ddof=1) / np.sqrt(3))
    assert T.parse_variant("k=10,subset_seed=0") == {"k": "10", "subset_seed": "0"}
    assert T.parse_variant("augmented") == {}


def test_convergence_summary(rt: T.ResultTables) -> None:
    curves = T.convergence_frame(rt.results)
    assert set(curves["setting"]) == {"finetune", "scratch"}
    assert len(curves) == len(CKPTS) * 2 * len(CURVE_STEPS)
    summary = T.convergence_summary(curves)
    for r in summary.itertuples():
        g = curves[(curves.ckpt == r.ckpt) & (curves.setting == r.setting)]
        expected = stats.steps_to_fraction_of_max_odds(
            pd.Series(g["val_metric"].to_numpy(), index=g["step"]))
        assert r.steps_to_threshold == expected
    speed = T.convergence_speedup(summary)
    assert speed.loc["scratch", "speedup_vs_scratch"] == pytest.approx(1.0)
    assert speed.loc["finetune", "speedup_vs_scratch"] > 1  # fine-tuning converges sooner


def test_ours_vs_paper(rt: T.ResultTables) -> None:
    cmp = T.ours_vs_paper(rt.results)
    assert len(cmp) == len(T._latest(rt.results))  # every latest row, matched or not
    hit = cmp[(cmp.ckpt == "inception_v4") & (cmp.dataset == "flowers102")
              & (cmp.setting == "finetune")].iloc[0]
    assert hit["paper"] == pytest.approx(paper.load_table6("fine_tuned").loc["inception_v4",
                                                                           "flowers102"])
    assert hit["diff"] == pytest.approx(hit["ours"] - hit["paper"])
    assert cmp[cmp.setting == "svm"]["paper"].isna().all()  # the paper prints no SVM table
    assert cmp[cmp.ckpt == "tiny_net"]["paper"].isna().all()
    assert T.paper_model_for("inception_v4.tf_in1k") == "inception_v4"
    assert T.paper_model_for("tiny_net") is None
    assert T.paper_dataset_for("cars") == "stanford_cars" and T.paper_dataset_for("digits") is None


# ------------------------------------------------------------------------------ figure builders


def test_logit_ticks_are_accuracies_at_log_odds() -> None:
    vals, text = F.logit_ticks(0.716, 0.808)  # the paper's retrained ImageNet range
    assert text == ["72%", "74%", "76%", "78%", "80%"]
    assert vals == pytest.approx([float(stats.logit(float(t[:-1]) / 100)) for t in text])
    _, wide = F.logit_ticks(0.2, 0.999)  # wide: spaced in log odds, reaching into the tail
    assert wide == ["20%", "50%", "80%", "95%", "98%", "99.5%", "99.9%"]
    assert len(F.logit_ticks(0.7011, 0.7012)[0]) >= 2


def test_fig_transfer_vs_imagenet_band_and_green(store_url: str, rt: T.ResultTables) -> None:
    green, _ = T.green_per_dataset(store_url, rt.results, "logreg", n_permutations=500)
    fig = F.fig_transfer_vs_imagenet(rt.tables["logreg"], rt.top1_for("logreg"), "t",
                                     green=green, n_boot=300)
    assert fig.layout.meta["figure"] == "fig2_left"
    names = trace_names(fig)
    assert names.count("fit") == 3 and names.count("bootstrap band") == 3
    greens = [t for t in fig.data if t.name == "not worse than best"]
    assert all("Inception v4" in t.text for t in greens) and len(greens) == 3
    # the fit is probes.stats.bootstrap_band's, per dataset
    band = stats.bootstrap_band(rt.top1_for("logreg"), rt.tables["logreg"][["cifar10"]], n=300)
    fit = next(t for t in fig.data if t.name == "fit")
    np.testing.assert_allclose(fit.y, band["fit"])


def test_fig_transfer_vs_imagenet_thin_data() -> None:
    table = pd.DataFrame({"d": [0.6, 0.7]}, index=["a", "b"])
    fig = F.fig_transfer_vs_imagenet(table, pd.Series({"a": 0.7, "b": 0.8}), "two models")
    assert "fit" not in trace_names(fig) and "models" in trace_names(fig)
    empty = F.fig_transfer_vs_imagenet(table, pd.Series(dtype=float), "no top-1")
    assert empty.layout.meta["empty"] and not empty.data


def test_fig_settings(rt: T.ResultTables) -> None:
    tabs, _ = rt.comparable(list(rt.tables))
    summary = T.settings_summary(tabs)
    row = summary[(summary.setting == "finetune") & (summary.dataset == "dtd")].iloc[0]
    assert row["mean"] == pytest.approx(tabs["finetune"]["dtd"].mean())
    assert row["n"] == 4
    fig6 = F.fig_settings_bars(summary, tabs, "fig6")
    assert [t.type for t in fig6.data].count("bar") == 4
    fig7 = F.fig_setting_scatter_by_dataset(tabs["scratch"], tabs["finetune"], "scratch",
                                            "finetune", "fig7")
    assert fig7.layout.meta["datasets"] == ["cifar10", "dtd", "flowers102"]
    points = [t for t in fig7.data if t.name != "y = x"]
    assert len(points) == 4 * 3
    assert all(t.y[0] > t.x[0] for t in points)  # fine-tuning always wins here
    pairs = list(itertools.combinations(tabs, 2))
    fig17 = F.fig_setting_pairs(tabs, pairs, "fig17")
    assert len(fig17.layout.meta["pairs"]) == 6
    assert trace_names(fig17).count("y = x") == 6


def test_fig_data_size_convergence_tsne_and_empty(store_url: str, rt: T.ResultTables) -> None:
    fig9 = F.fig_data_size(T.data_size_frame(rt.results), "fig9")
    assert len(fig9.data) == 3 and all(list(t.x) == list(DATA_SIZE_KS) for t in fig9.data)
    curves = T.convergence_frame(rt.results)
    fig8 = F.fig_convergence(curves, T.convergence_summary(curves), "fig8")
    assert trace_names(fig8).count("90% of max odds") == 2 * len(CKPTS)
    empty9 = F.fig_data_size(T.data_size_frame(T.load_results(None)), "Figure 9")
    assert empty9.layout.meta["empty"] and "k=K,subset_seed=S" in empty9.layout.annotations[0].text
    dataset, frames = T.tsne_panels(store_url, n_classes=5)
    assert dataset == "flowers102" and set(frames) == set(EXTRACTED)
    assert all(sorted(set(f["label"])) == list(range(5)) for f in frames.values())
    fig4 = F.fig_tsne(frames, "fig4")
    assert len(fig4.data) == 5 * len(EXTRACTED)
    assert T.tsne_panels(None) == (None, {})


def test_show_emits_the_plotly_mime_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    F.show(F.empty_figure("nothing", "why"))
    bundle = shown[0]
    assert bundle[F.PLOTLY_MIME]["layout"]["title"]["text"] == "nothing"
    assert "nothing" in bundle["text/plain"]


def test_fig_mean_log_odds_cuts_partial_tables_to_a_complete_block() -> None:
    table = pd.DataFrame(
        {"d1": [0.6, 0.7, 0.8, 0.65], "d2": [0.5, 0.55, 0.7, np.nan], "d3": [0.9, 0.92, 0.95, 0.9]},
        index=["a", "b", "c", "no_top1"],
    )
    top1 = pd.Series({"a": 0.7, "b": 0.75, "c": 0.8})  # "no_top1" has none: dropped first
    fig = F.fig_mean_log_odds([("p", table, top1)], "t", n_boot=100)
    points = [t for t in fig.data if t.name in ("models", "not worse than best")]
    assert sum(len(t.x) for t in points) == 3
    expected = stats.mean_logit(table.loc[["a", "b", "c"]])  # all three datasets survive
    for t in points:
        for name, y in zip(t.text, t.y, strict=True):
            assert y == pytest.approx(expected[name])
    rt = T.ResultTables({"logreg": table}, {"logreg": "store"}, {"store": top1}, pd.DataFrame())
    assert rt.describe().loc["logreg", "without_imagenet_top1"] == "no_top1"


def test_paired_t_with_identical_differences_is_exact_and_silent() -> None:
    """A model behind the best by the same log odds on every dataset (as in the test store):
    infinitely significant, without scipy's catastrophic-cancellation warning in the report."""
    import warnings

    a = pd.Series([0.9, 0.8, 0.7], index=["d1", "d2", "d3"])
    b = pd.Series(stats.inv_logit(stats.logit(a.to_numpy()) - 0.5), index=a.index)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = stats.paired_t_across_datasets(a, b)
        same = stats.paired_t_across_datasets(a, a)
    assert res["p"] == 0.0 and res["t"] == np.inf and res["mean_diff"] == pytest.approx(0.5)
    assert same["p"] == 1.0 and np.isnan(same["t"])


def test_figure6_draws_table4_previous_state_of_the_art() -> None:
    from probes.analysis import report_data as R

    sota = R.previous_sota()
    if sota.empty:
        pytest.skip("data/paper/table4.csv not transcribed yet")
    tabs = T.paper_tables()
    fig = F.fig_settings_bars(T.settings_summary(tabs), tabs, "Figure 6", previous_sota=sota)
    (line,) = [t for t in fig.data if t.name == "previous state of the art"]
    expected = dict(zip(sota["dataset"], sota["sota_acc"] / 100, strict=True))
    got = dict(zip(line.x, line.y, strict=True))
    assert got == {paper.DATASET_NAMES[k]: pytest.approx(v) for k, v in expected.items()}
