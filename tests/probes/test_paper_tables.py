"""The transcribed Tables 3 and 6 and the paper's statistical claims recomputed from them.

Tolerances: r and r^2 to 0.01 (the paper prints two decimals); Spearman rho to 0.03; counts to
+-2. Where a claim reproduces only approximately the reason is stated at the test (see also
data/paper/README.md).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from featurestore import paperdata
from featurestore.datasets import REGISTRY as DATASETS
from featurestore.datasets.paper import PAPER12, TABLE1
from probes import stats
from probes.analysis import paper

PAPER_TXT = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "paper"
    / "do-better-imagenet-models-transfer-better.txt"
)

RETRAINED = paper.imagenet_top1("retrained")
LR = paper.load_table6("logistic_regression")
FT = paper.load_table6("fine_tuned")
SC = paper.load_table6("from_scratch")
TABLES = {"logistic_regression": LR, "fine_tuned": FT, "from_scratch": SC}

# Table 2 (Appendix A.1.2): r^2, r, rho, p.
TABLE2 = {
    "logistic_regression": (0.97, 0.99, 0.99),
    "fine_tuned": (0.91, 0.96, 0.97),
    "from_scratch": (0.30, 0.55, 0.59),
}


# ---------------------------------------------------------------------------- shape and content


def test_table6_shape_order_and_range() -> None:
    for table in TABLES.values():
        assert table.shape == (16, 12)
        assert list(table.index) == list(paper.MODEL_NAMES)
        assert list(table.columns) == list(paper.DATASETS)
        assert not table.isna().to_numpy().any()
        assert ((table > 0.45) & (table < 1.0)).to_numpy().all()


def test_table3_shape_and_columns() -> None:
    t3 = paper.load_table3()
    assert t3.shape == (16, 7)
    assert list(t3.index) == list(paper.MODEL_NAMES)
    assert dict(t3["name"]) == paper.MODEL_NAMES
    assert t3["top1_paper"].isna().sum() == 1 and np.isnan(t3.loc["resnet152_v1", "top1_paper"])
    assert t3.loc["nasnet_a_large", ["parameters_m", "features", "image_size"]].tolist() == [
        84.7,
        4032,
        331,
    ]
    assert set(t3["image_size"]) == {224, 299, 331}


#: The two cells of Table 1 that are misprinted, and what the datasets really have.
TABLE1_TYPOS = {("cifar100", "classes"): (10, 100), ("oxford_pets", "test"): (3_369, 3_669)}


def _parse_paper_table1(text: str) -> list[tuple[int, int, int, str]]:
    """(classes, train, test, accuracy measure) per row of Table 1 in the paper's text."""
    lines = text[: text.index("Table 1. Datasets examined")].split("\n")
    header = max(i for i, line in enumerate(lines) if line.startswith("Dataset\tClasses"))
    rows = []
    for line in lines[header + 1 : header + 13]:
        _, classes, sizes, measure = line.split("\t")
        train, test = (int(v.replace(",", "")) for v in sizes.split("/"))
        rows.append((int(classes), train, test, measure))
    return rows


@pytest.mark.skipif(not PAPER_TXT.is_file(), reason="shared/paper not present")
def test_table1_matches_the_paper_text_but_for_two_typos() -> None:
    printed = _parse_paper_table1(PAPER_TXT.read_text(encoding="utf-8"))
    measure = {"top-1": "top1", "mean per-class": "mean_per_class", "11-point mAP": "voc11_map"}
    rows = paperdata.read_rows("table1.csv")
    assert [r["dataset"] for r in rows] == list(paper.DATASETS) == list(LR.columns)
    fixed = []
    for row, (classes, train, test, metric) in zip(rows, printed, strict=True):
        theirs = {"classes": classes, "train": train, "test": test}
        for col, value in theirs.items():
            if int(row[col]) != value:
                assert TABLE1_TYPOS[row["dataset"], col] == (value, int(row[col]))
                fixed.append((row["dataset"], col))
        assert row["metric"] == measure[metric], row["dataset"]
    assert sorted(fixed) == sorted(TABLE1_TYPOS)
    # Section 3: "ranging in training set size from 2,040 to 75,750 images".
    assert (min(paper.TRAIN_SIZE.values()), max(paper.TRAIN_SIZE.values())) == (2_040, 75_750)


def test_table1_is_what_both_layers_read() -> None:
    """One copy of Table 1: the dataset loaders' TABLE1 / paper12 and the analysis TRAIN_SIZE
    are the same rows, and each loader scores with the metric Table 1 names."""
    rows = paperdata.read_rows("table1.csv")
    assert PAPER12 == [r["store_name"] for r in rows]
    for row in rows:
        store = row["store_name"]
        assert TABLE1[store] == (int(row["classes"]), int(row["train"]), int(row["test"]))
        assert paper.TRAIN_SIZE[row["dataset"]] == TABLE1[store][1]
        assert paper.DATASET_NAMES[row["dataset"]] == row["name"]
        assert DATASETS[store].metric == row["metric"], store


def test_imagenet_top1_kinds() -> None:
    # Section 4: retrained networks range from 71.6% to 80.8% top-1.
    assert RETRAINED.min() == pytest.approx(0.716) and RETRAINED.max() == pytest.approx(0.808)
    assert RETRAINED.idxmax() == "nasnet_a_large"
    # Appendix A.3: NASNet-A Large 82.7% published vs 80.8% retrained.
    assert paper.imagenet_top1("paper")["nasnet_a_large"] == pytest.approx(0.827)
    assert "resnet152_v1" not in paper.imagenet_top1("paper").index
    assert len(paper.imagenet_top1("public")) == 16
    with pytest.raises(ValueError):
        paper.imagenet_top1("best")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        paper.load_table6("svm")  # type: ignore[arg-type]


def test_cells_quoted_elsewhere_in_the_paper() -> None:
    """Table 4 (best results) and Section 4.5 quote cells of Table 6."""
    v4 = FT.loc["inception_v4"]
    assert v4[["food101", "birdsnap", "sun397", "stanford_cars"]].tolist() == pytest.approx(
        [0.900, 0.784, 0.664, 0.933]
    )
    assert v4[["fgvc_aircraft", "voc2007", "dtd"]].tolist() == pytest.approx([0.890, 0.874, 0.781])
    assert v4["flowers102"] == pytest.approx(0.985, abs=0.0005)  # 98.45 printed in Table 6
    assert FT.loc["nasnet_a_large", "cifar10"] == pytest.approx(0.9804)  # Appendix H: 98.04%
    assert FT.loc["nasnet_a_large", "cifar100"] == pytest.approx(0.877)  # Appendix H: 87.7%
    assert FT.loc["resnet152_v1", "oxford_pets"] == pytest.approx(0.945)
    assert LR.loc["inception_resnet_v2", "caltech101"] == pytest.approx(0.9506)
    # The best model per dataset agrees with Table 4 (fine-tuned unless noted).
    assert FT["food101"].idxmax() == "inception_v4"
    assert FT["cifar10"].idxmax() == "nasnet_a_large"
    assert FT["oxford_pets"].idxmax() == "resnet152_v1"
    assert LR["caltech101"].max() > FT["caltech101"].max()
    # Section 4.5: Inception v4 from scratch vs fine-tuned on Cars and Aircraft.
    assert SC.loc["inception_v4", ["stanford_cars", "fgvc_aircraft"]].tolist() == pytest.approx(
        [0.927, 0.888]
    )
    assert SC["stanford_cars"].idxmax() == "inception_v4"


def _parse_paper_table6(text: str) -> dict[str, pd.DataFrame]:
    section = text[text.index("I. Numerical performance results") :]
    heads = {
        "logistic_regression": "Logistic regression\n",
        "fine_tuned": "Fine-tuned\n",
        "from_scratch": "Trained from random initialization\n",
    }
    out = {}
    for setting, head in heads.items():
        lines = section[section.index(head) :].split("\n")
        header = next(i for i, line in enumerate(lines) if line.startswith("Network\t"))
        rows = [line.split("\t") for line in lines[header + 1 : header + 17]]
        out[setting] = pd.DataFrame(
            [[float(v) for v in row[1:]] for row in rows], index=[row[0] for row in rows]
        )
    return out


@pytest.mark.skipif(not PAPER_TXT.is_file(), reason="shared/paper not present")
def test_every_cell_matches_the_paper_text() -> None:
    text = PAPER_TXT.read_text(encoding="utf-8")
    parsed = _parse_paper_table6(text)
    for setting, table in TABLES.items():
        theirs = parsed[setting]
        assert list(theirs.index) == list(paper.MODEL_NAMES.values())
        np.testing.assert_allclose(table.to_numpy() * 100, theirs.to_numpy(), atol=1e-9)

    start = text.index("Model\tParameters")
    rows = text[start:].split("\n")[2:18]
    t3 = paper.load_table3()
    for key, line in zip(paper.MODEL_NAMES, rows, strict=True):
        cells = line.split("\t")
        name = re.sub(r"\s*(\^[a-e])?\s*\[[0-9, ]+\]$", "", cells[0]).strip()
        assert name == t3.loc[key, "name"]
        assert float(cells[1].rstrip("M")) == t3.loc[key, "parameters_m"]
        assert [int(cells[2]), int(cells[3])] == [
            t3.loc[key, "features"],
            t3.loc[key, "image_size"],
        ]
        numbers = [c for c in cells[4:] if c]
        assert len(numbers) == 3
        expected = [np.nan if numbers[0] == "N/A" else float(numbers[0])] + [
            float(v) for v in numbers[1:]
        ]
        np.testing.assert_array_equal(
            t3.loc[key, ["top1_paper", "top1_public", "top1_retrained"]].to_numpy(float), expected
        )


# ---------------------------------------------------------------------------- Table 2


@pytest.mark.parametrize("setting", list(TABLE2))
def test_table2_pearson(setting: str) -> None:
    r2, r, _ = TABLE2[setting]
    res = stats.transfer_correlation(RETRAINED, TABLES[setting])
    assert res["n"] == 16
    assert res["r"] == pytest.approx(r, abs=0.01)
    assert res["r2"] == pytest.approx(r2, abs=0.01)


def test_table2_p_values() -> None:
    assert stats.transfer_correlation(RETRAINED, LR)["p"] < 1e-11
    assert stats.transfer_correlation(RETRAINED, SC)["p"] == pytest.approx(0.03, abs=0.005)


def test_table2_p_fine_tuned_at_the_rounding_boundary() -> None:
    """Paper: p < 1e-8. The printed tables give r = 0.9540 and p = 1.06e-8: the boundary p = 1e-8
    falls at r = 0.9543 for 16 models, and any r that prints as 0.96 (>= 0.955) is below it, so
    the difference is the rounding of the printed accuracies, not a transcription error."""
    res = stats.transfer_correlation(RETRAINED, FT)
    assert res["p"] == pytest.approx(1e-8, rel=0.1)

    def p_of(r: float) -> float:
        return float(2 * sps.t.sf(r * np.sqrt(14 / (1 - r * r)), 14))

    assert p_of(res["r"]) == pytest.approx(res["p"], rel=1e-6)
    assert p_of(0.955) < 1e-8


@pytest.mark.parametrize("setting", ["logistic_regression", "fine_tuned"])
def test_table2_spearman(setting: str) -> None:
    rho = TABLE2[setting][2]
    assert stats.transfer_correlation(RETRAINED, TABLES[setting])["rho"] == pytest.approx(
        rho, abs=0.03
    )


def test_table2_spearman_from_scratch_within_rounding() -> None:
    """From the printed tables rho = 0.560, vs the paper's 0.59. The retrained top-1 values are
    printed to 0.1% and tie twice (Inception v1 = NASNet-A Mobile = 73.6, Inception v3 =
    ResNet-101 = 78.6); the paper ranked unrounded values. The paper's rho must lie within the
    range spanned by breaking those ties (0.532 .. 0.585), give or take 0.01 for the rounding of
    the transfer accuracies themselves."""
    rho = stats.transfer_correlation(RETRAINED, SC)["rho"]
    assert rho == pytest.approx(0.59, abs=0.035)
    tie_pairs = [
        ("inception_v1", "nasnet_a_mobile"),
        ("inception_v3", "resnet101_v1"),
    ]
    for a, b in tie_pairs:
        assert RETRAINED[a] == RETRAINED[b]
    rhos = []
    for signs in itertools.product((-1, 1), repeat=len(tie_pairs)):
        top1 = RETRAINED.copy()
        for sign, (a, _) in zip(signs, tie_pairs, strict=True):
            top1[a] += sign * 1e-4
        rhos.append(stats.transfer_correlation(top1, SC)["rho"])
    assert min(rhos) - 0.01 <= 0.59 <= max(rhos) + 0.01


def test_table2_public_checkpoint_row_not_reproducible_here() -> None:
    """Documenting a limit: Table 2's public-checkpoint row needs per-dataset results for public
    checkpoints, which the paper gives only as Figure 10. The top-1 numbers exist, though."""
    assert paper.imagenet_top1("public").between(0.69, 0.83).all()


# ---------------------------------------------------------------------------- Sections 4.2-4.5


def test_section_4_3_split_by_dataset_size() -> None:
    """From scratch: r = 0.29 for the 7 datasets with < 10,000 training examples, 0.86 for the
    5 larger ones."""
    small = [d for d, n in paper.TRAIN_SIZE.items() if n < 10_000]
    large = [d for d, n in paper.TRAIN_SIZE.items() if n >= 10_000]
    assert len(small) == 7
    assert stats.transfer_correlation(RETRAINED, SC[small])["r"] == pytest.approx(0.29, abs=0.01)
    assert stats.transfer_correlation(RETRAINED, SC[large])["r"] == pytest.approx(0.86, abs=0.01)


def test_section_4_2_fine_tuning_beats_logistic_regression() -> None:
    """179 of 192 in the paper. The printed tables give 178 strict wins and one exact tie at the
    printed precision (MobileNet v2 (1.4) on DTD, 73.0 both); counting it gives 179."""
    wins = int((FT > LR).to_numpy().sum())
    ties = int((FT == LR).to_numpy().sum())
    assert FT.size == 192
    assert abs(wins - 179) <= 2
    assert (wins, ties) == (178, 1)
    assert FT.loc["mobilenet_v2_140", "dtd"] == LR.loc["mobilenet_v2_140", "dtd"]


def test_section_4_2_wilcoxon_all_datasets_but_caltech() -> None:
    res = stats.wilcoxon_per_dataset(FT, LR)
    others = res.drop(index="caltech101")
    assert (others["p"] < 0.01).all()
    assert (others["a_better"] >= 14).all()
    assert res.loc["caltech101", "p"] > 0.05


def test_section_4_5_fine_tuning_beats_from_scratch() -> None:
    wins = int((FT > SC).to_numpy().sum())
    assert abs(wins - 189) <= 2
    assert wins == 189
    # The three exceptions are on FGVC Aircraft (Section 4.5: the gap there is small).
    losses = (FT <= SC).sum()
    assert losses["fgvc_aircraft"] == 3 and losses.sum() == 3


def test_section_4_1_top_two_statistically_tied() -> None:
    """Logistic regression: Inception-ResNet v2 and NASNet-A Large tied for first (t-test across
    datasets, p > 0.05), all others significantly worse."""
    assert stats.not_worse_than_best_across_datasets(LR) == {
        "inception_resnet_v2",
        "nasnet_a_large",
    }


def test_average_log_odds_quoted_in_appendices() -> None:
    # Appendix G.1: logistic regression averages 1.32 log odds over the 192 pairs.
    assert float(stats.logit(LR).to_numpy().mean()) == pytest.approx(1.32, abs=0.005)
    # Appendix B: best retrained model, Inception-ResNet v2, averages 1.58 log odds.
    ml = stats.mean_logit(LR)
    assert ml.idxmax() == "inception_resnet_v2"
    assert ml.max() == pytest.approx(1.58, abs=0.01)


def test_appendix_d_dataset_size_predicts_from_scratch_correlation() -> None:
    """Figure 16: Fisher z of per-dataset r against log training size. Significant from scratch
    (paper p = 0.0002), not in the transfer settings."""
    log_size = np.log(pd.Series(paper.TRAIN_SIZE))
    ps = {}
    for setting, table in TABLES.items():
        z = stats.fisher_z(stats.per_dataset_correlation(RETRAINED, table))
        ps[setting] = sps.pearsonr(log_size[z.index], z).pvalue
    assert ps["from_scratch"] == pytest.approx(0.0002, abs=0.0001)
    assert ps["logistic_regression"] > 0.05 and ps["fine_tuned"] > 0.05


def test_figure2_band_and_error_bars_on_paper_data() -> None:
    band = stats.bootstrap_band(RETRAINED, LR, n=2000, seed=0)
    assert (band["lo"] <= band["fit"] + 1e-12).all() and (band["fit"] <= band["hi"] + 1e-12).all()
    se = stats.morey_se(FT)
    assert se.index.equals(FT.index) and (se > 0).all() and (se < 0.2).all()


def test_missing_data_dir_gives_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Both layers find data/paper through featurestore.paperdata, and both say where it was."""
    monkeypatch.setattr(paperdata, "data_dir", lambda: tmp_path / "nowhere")
    paper._table3.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="data/paper"):
            paper.load_table3()
        with pytest.raises(FileNotFoundError, match="nowhere/table1.csv"):
            paperdata.read_rows("table1.csv")
    finally:
        paper._table3.cache_clear()


def test_data_dir_is_the_repositorys_data_paper() -> None:
    assert paper.data_dir() == paperdata.data_dir() == Path(__file__).parents[2] / "data" / "paper"
