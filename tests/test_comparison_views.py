"""What the page, the report and the CLI say of a comparison (fer_core/views/comparison.py): differences in points
with their interval, one seed said as such, recall bars whose whiskers are the t interval, progress in words."""

import numpy as np
import pytest
from comparisons import planted_predictions

from fer_core.training.compare import compare_arms
from fer_core.views import comparison as views


@pytest.fixture(scope="module")
def gained() -> dict:
    return compare_arms(planted_predictions(3, np.random.default_rng(0)))


def test_the_headline_is_the_leak_free_difference_in_points_with_its_interval(gained):
    difference = gained["difference"]["leak_free_accuracy"]
    assert views.headline(gained) == (f"+{difference['mean'] * 100:.1f} points [+{difference['low'] * 100:.1f}, "
                                      f"+{difference['high'] * 100:.1f}] (95 %, paired over 3 seeds)")
    assert views.headline_label(gained) == "Leak-free accuracy, curated − raw"
    assert views.bracket(-0.0031, 0.027) == "[−0.3, +2.7]" and views.bracket(None, 0.1) == "n/a"


def test_one_seed_says_there_is_no_interval_over_seeds():
    """With one seed the t interval is not computed: the headline says so instead of printing a bare number."""
    one = compare_arms(planted_predictions(1, np.random.default_rng(1)))
    assert views.headline(one).endswith("points (one seed: no interval over seeds)")
    assert views.arm_table(one)["95 % over seeds (t)"].tolist() == ["n/a"] * 3
    assert views.bootstrap_line(one).startswith("Test-image bootstrap: [+")


def test_recall_bars_are_points_with_the_t_interval_as_whiskers(gained):
    figure = views.recall_difference_figure(gained)
    bar = figure.data[0]
    fear = gained["recall_difference"]["fear"]
    index = 2  # FER order: angry, disgust, fear
    assert bar.y[index] == pytest.approx(fear["difference"] * 100)
    assert bar.error_y.array[index] == pytest.approx((fear["high"] - fear["difference"]) * 100)
    assert bar.error_y.arrayminus[index] == pytest.approx((fear["difference"] - fear["low"]) * 100)
    assert bar.x[index] == f"fear<br>{fear['support']:,}"
    expected = views.GAINED if fear["low"] > 0 else views.UNSURE if fear["high"] >= 0 else views.LOST
    assert bar.marker.color[index] == expected
    assert figure.layout.yaxis.title.text == "recall difference (points)"
