"""probes.metrics against independent references (scikit-learn, hand-worked VOC AP)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from probes import metrics
from probes.errors import ProbeInputError


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top1_and_mean_per_class_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # imbalanced classes, and predictions that include a class absent from y_true
    y_true = rng.choice(5, size=200, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 6, 200))
    assert metrics.top1(y_true, y_pred) == pytest.approx(accuracy_score(y_true, y_pred))
    with pytest.warns(UserWarning):  # sklearn warns about the class absent from y_true
        ref = balanced_accuracy_score(y_true, y_pred)
    assert metrics.mean_per_class(y_true, y_pred) == pytest.approx(ref)


def test_string_labels() -> None:
    y_true = np.array(["cat", "dog", "dog", "bird"])
    y_pred = np.array(["cat", "dog", "cat", "cat"])
    assert metrics.top1(y_true, y_pred) == pytest.approx(0.5)
    # recall: bird 0/1, cat 1/1, dog 1/2
    assert metrics.mean_per_class(y_true, y_pred) == pytest.approx((0 + 1 + 0.5) / 3)


def test_voc11_map_hand_worked() -> None:
    # Scores rank the six examples in order 0..5 for both classes.
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    # Class A: positives at ranks 1, 3, 6 (3 positives).
    #   (recall, precision) after each rank: (1/3, 1), (1/3, 1/2), (2/3, 2/3), (2/3, 1/2),
    #   (2/3, 2/5), (1, 1/2).
    #   t = 0, .1, .2, .3   -> max precision over all ranks        = 1    (4 thresholds)
    #   t = .4, .5, .6      -> ranks with recall >= t: 3..6, max   = 2/3  (3 thresholds)
    #   t = .7, .8, .9, 1   -> only rank 6 (recall 1)              = 1/2  (4 thresholds)
    #   AP = (4 * 1 + 3 * 2/3 + 4 * 1/2) / 11 = 8/11
    a = np.array([1, 0, 1, 0, 0, 1])
    # Class B: positives at ranks 2 and 5 (2 positives).
    #   after rank 2: (1/2, 1/2); after rank 5: (1, 2/5); rank 6: (1, 1/3)
    #   t = 0 .. .5 (6 thresholds) -> max precision = 1/2
    #   t = .6 .. 1 (5 thresholds) -> max(2/5, 1/3) = 2/5
    #   AP = (6 * 1/2 + 5 * 2/5) / 11 = 5/11
    b = np.array([0, 1, 0, 0, 1, 0])
    assert metrics.voc11_ap(a, scores) == pytest.approx(8 / 11)
    assert metrics.voc11_ap(b, scores) == pytest.approx(5 / 11)
    y = np.stack([a, b], axis=1)
    s = np.stack([scores, scores], axis=1)
    assert metrics.voc11_map(y, s) == pytest.approx((8 / 11 + 5 / 11) / 2)
    assert metrics.score("voc11_map", y, s) == pytest.approx(13 / 22)


def test_voc11_perfect_and_reversed_ranking() -> None:
    y = np.array([[1], [1], [0], [0]])
    assert metrics.voc11_map(y, np.array([[4.0], [3.0], [2.0], [1.0]])) == pytest.approx(1.0)
    # positives ranked last: recall reaches 1/2 at precision 1/3 and 1 at 2/4
    # t = 0..0.5 -> max(1/3, 1/2) = 1/2 (6 thresholds); t = 0.6..1 -> 1/2 (5 thresholds)
    assert metrics.voc11_map(y, np.array([[1.0], [2.0], [3.0], [4.0]])) == pytest.approx(0.5)


def test_voc11_skips_classes_without_positives() -> None:
    y = np.array([[1, 0], [0, 0], [1, 0]])
    s = np.array([[0.9, 0.1], [0.1, 0.2], [0.8, 0.3]])
    assert metrics.voc11_map(y, s) == pytest.approx(1.0)


def test_registry_and_score_dispatch() -> None:
    assert set(metrics.METRICS) == {"top1", "mean_per_class", "voc11_map"}
    y = np.array([0, 1, 2, 2])
    scores = np.array([[3.0, 0, 0], [0, 1, 0], [0, 2, 1], [0, 0, 5]])
    assert metrics.score("top1", y, scores) == pytest.approx(0.75)  # argmax of scores
    assert metrics.score("top1", y, np.array([0, 1, 1, 2])) == pytest.approx(0.75)
    assert metrics.score("mean_per_class", y, scores) == pytest.approx((1 + 1 + 0.5) / 3)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: metrics.top1([0, 1], [0]), "2 labels but y_pred has 1"),
        (lambda: metrics.mean_per_class([], []), "empty"),
        (lambda: metrics.voc11_map(np.ones((3, 2)), np.ones((3, 3))), "differ in shape"),
        (lambda: metrics.voc11_map(np.ones((2, 1)), np.array([[np.nan], [1.0]])), "NaN"),
        (lambda: metrics.voc11_map(np.zeros((2, 2)), np.ones((2, 2))), "no class has a positive"),
        (lambda: metrics.score("top5", [0], [0]), "unknown metric"),
    ],
)
def test_bad_input_raises(call, match: str) -> None:
    with pytest.raises(ProbeInputError, match=match):
        call()


def test_voc11_ignores_difficult_entries_like_the_devkit() -> None:
    """A difficult image ranked first: the devkit drops it (AP 1.0); as a negative it would
    cost precision (AP of ranks +,-,+ ... below 1)."""
    y = np.array([[0], [1], [1], [0]])
    s = np.array([[0.9], [0.8], [0.7], [0.1]])
    difficult = np.array([[1], [0], [0], [0]])
    as_negative = metrics.voc11_map(y, s)
    assert as_negative < 1.0
    assert metrics.voc11_map(y, s, difficult) == pytest.approx(1.0)
    assert metrics.score("voc11_map", y, s, ignore=difficult) == pytest.approx(1.0)
    # same as scoring with the difficult rows removed by hand
    assert metrics.voc11_map(y[1:], s[1:]) == pytest.approx(1.0)
    with pytest.raises(ProbeInputError, match="no ignore mask"):
        metrics.score("top1", np.array([0, 1]), np.array([0, 1]), ignore=np.zeros(2))
