"""Raw against curated (issue 23): the statistics on hand-made predictions, the comparison experiment end to
end with real job processes, and bad input refused before anything is queued or written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic import make_synthetic, write_folders

from fer_core import jobs
from fer_core.jobs import compare as compare_jobs
from fer_core.jobs.records import RunRecord
from fer_core.labels import EMOTIONS
from fer_core.training.compare import (RECALL_COLUMNS, PairedPredictions, compare_arms, mean_and_sd, paired_bootstrap,
                                       recall_difference_frame, relabelled_accuracy, t_interval)
from fer_core.training.config import TrainConfig

SEEDS = (0, 1, 2)


def predictions_with_accuracy(labels: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """One row per seed: each image right with probability `accuracy`, else the next emotion."""
    right = rng.random((len(SEEDS), len(labels))) < accuracy
    return np.where(right, labels, (labels + 1) % len(EMOTIONS))


def test_a_planted_gain_is_found_and_both_intervals_exclude_zero():
    """Guards the verdict's direction: ten points of planted accuracy read as a gain, not as noise."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(EMOTIONS), 3000)
    leaked = rng.random(3000) < 0.05
    paired = PairedPredictions(labels, leaked, predictions_with_accuracy(labels, 0.55, rng),
                               predictions_with_accuracy(labels, 0.65, rng), SEEDS)
    result = compare_arms(paired)
    difference = result["difference"]["leak_free_accuracy"]
    assert 0.08 < difference["mean"] < 0.12
    assert 0 < difference["low"] < difference["mean"] < difference["high"]
    assert 0 < difference["bootstrap_low"] < difference["mean"] < difference["bootstrap_high"]
    assert result["verdict"].startswith("curation gained ")
    assert "over 3 seeds" in result["verdict"]
    assert set(result["arms"]) == {"raw", "curated"}
    for arm in result["arms"].values():
        assert set(arm) == {"accuracy", "leak_free_accuracy", "macro_f1"}
        assert all(set(figure) == {"mean", "sd", "per_seed"} for figure in arm.values())
    assert result["test_images"] == 3000 and result["leaked_test_images"] == int(leaked.sum())


def test_a_zero_difference_is_within_noise():
    """The same models in the other seed order: every difference averages to exactly 0, so no gain is claimed."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, len(EMOTIONS), 500)
    raw = predictions_with_accuracy(labels, 0.6, rng)
    result = compare_arms(PairedPredictions(labels, np.zeros(500, bool), raw, raw[[1, 2, 0]], SEEDS))
    difference = result["difference"]["accuracy"]
    assert difference["mean"] == pytest.approx(0, abs=1e-9)
    assert difference["low"] < 0 < difference["high"]
    assert difference["bootstrap_low"] == pytest.approx(0, abs=1e-9) == difference["bootstrap_high"]
    assert result["verdict"].startswith("within noise")


def test_leaked_images_are_left_out_of_the_leak_free_difference():
    """A curated arm that loses only on leaked images (their Training copies dropped) loses accuracy but not
    leak-free accuracy: the verdict, on the leak-free figure, is not a loss."""
    labels = np.arange(100) % len(EMOTIONS)
    leaked = np.arange(100) < 10
    raw = np.tile(labels, (3, 1))
    curated = np.where(leaked, (labels + 1) % len(EMOTIONS), labels)[np.newaxis].repeat(3, axis=0)
    result = compare_arms(PairedPredictions(labels, leaked, raw, curated, SEEDS))
    assert result["difference"]["accuracy"]["mean"] == pytest.approx(-0.10)
    assert result["difference"]["leak_free_accuracy"]["mean"] == 0
    assert result["arms"]["curated"]["leak_free_accuracy"]["mean"] == 1.0
    assert result["leak_free_test_images"] == 90
    assert result["verdict"].startswith("within noise")


def test_the_t_interval_is_the_textbook_one():
    """d̄ ± t(0.975, S−1)·s/√S on three differences (t = 4.302653 with two degrees of freedom)."""
    interval = t_interval(np.array([0.01, 0.03, 0.02]))
    assert interval["mean"] == pytest.approx(0.02) and interval["sd"] == pytest.approx(0.01)
    half_width = 4.302653 * 0.01 / np.sqrt(3)
    assert interval["low"] == pytest.approx(0.02 - half_width, abs=1e-6)
    assert interval["high"] == pytest.approx(0.02 + half_width, abs=1e-6)
    assert t_interval(np.array([0.05]))["low"] is None  # one seed: no interval over seeds
    assert mean_and_sd([0.5]) == {"mean": 0.5, "sd": None, "per_seed": [0.5]}


def test_the_bootstrap_is_seeded_and_paired():
    """Same seed, same interval; the resample is shared by both arms, so identical arms give exactly [0, 0]."""
    rng = np.random.default_rng(2)
    raw, curated = rng.random((3, 400)) < 0.5, rng.random((3, 400)) < 0.6
    assert paired_bootstrap(raw, curated, seed=7) == paired_bootstrap(raw, curated, seed=7)
    low, high = paired_bootstrap(raw, curated, resamples=500)
    observed = (curated.mean(axis=1) - raw.mean(axis=1)).mean()
    assert low < observed < high
    assert paired_bootstrap(raw, raw) == (0.0, 0.0)


def test_recall_difference_per_emotion_and_its_figure_table():
    """Curation that fixes only fear shows in fear's recall alone; an emotion without test images is NaN."""
    labels = np.array([EMOTIONS.index(emotion) for emotion in ("angry", "fear", "fear", "happy", "happy")] * 20)
    fear = labels == EMOTIONS.index("fear")
    raw = np.where(fear, EMOTIONS.index("sad"), labels)[np.newaxis].repeat(2, axis=0)
    curated = raw.copy()
    curated[:, np.flatnonzero(fear)[::2]] = EMOTIONS.index("fear")  # half the fear images now right
    result = compare_arms(PairedPredictions(labels, np.zeros(len(labels), bool), raw, curated, (0, 1)))
    recall = result["recall_difference"]
    assert recall["fear"]["difference"] == 0.5 and recall["fear"]["support"] == 40
    assert recall["angry"]["difference"] == 0 == recall["happy"]["difference"]
    assert recall["disgust"] == {"support": 0, "raw_recall": None, "curated_recall": None, "difference": None,
                                 "low": None, "high": None}
    frame = recall_difference_frame(result)
    assert list(frame.columns) == list(RECALL_COLUMNS) and list(frame["emotion"]) == list(EMOTIONS)
    assert frame.loc[frame["emotion"] == "fear", "difference"].item() == 0.5
    assert np.isnan(frame.loc[frame["emotion"] == "disgust", "difference"].item())


def test_one_seed_judges_on_the_bootstrap_and_says_so():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, len(EMOTIONS), 2000)
    raw = predictions_with_accuracy(labels, 0.5, rng)[:1]
    curated = predictions_with_accuracy(labels, 0.7, rng)[:1]
    result = compare_arms(PairedPredictions(labels, np.zeros(2000, bool), raw, curated, (0,)))
    assert result["difference"]["leak_free_accuracy"]["low"] is None
    assert result["verdict"].startswith("curation gained") and "one seed" in result["verdict"]


def test_the_circular_figure_rewards_relabelling_towards_the_model():
    """Why it is NOT A VALID MEASURE: relabel every test image to what the model says and it scores 100 %."""
    curated = np.array([[0, 1, 2, 3], [0, 1, 2, 4]])
    assert relabelled_accuracy(np.array([0, 1, 2, 3]), curated) == pytest.approx(0.875)
    assert relabelled_accuracy(curated[0], curated[:1]) == 1.0


def test_mismatched_shapes_are_one_line_errors():
    labels = np.zeros(4, int)
    with pytest.raises(ValueError, match=r"raw predictions have shape \(2, 4\), expected \(3, 4\)"):
        PairedPredictions(labels, np.zeros(4, bool), np.zeros((2, 4), int), np.zeros((3, 4), int), SEEDS)


# ---------------------------------------------------------------------------------------------
# Runs: which experiment is a comparison, and which runs failed


def record(run_id: str, state: str = jobs.SUCCEEDED, error: str | None = None, **config) -> RunRecord:
    settings = TrainConfig(size="tiny", **config)
    return RunRecord(run_id=run_id, state=state, backend="local", created_at="", started_at=None, finished_at=None,
                     data_path="/data", config=settings.to_dict(), out_dir="/nowhere", pid=None, external_id=None,
                     stage=None, error=error, metrics=None, experiment_id="exp-1")


def test_only_an_experiment_of_paired_raw_and_curated_seeds_is_a_comparison():
    runs = [record("a", raw=True, seed=0), record("b", seed=0), record("c", raw=True, seed=1), record("d", seed=1)]
    arms = compare_jobs.comparison_arms(runs[::-1])
    assert [run.run_id for run in arms["raw"]] == ["a", "c"] and [run.run_id for run in arms["curated"]] == ["b", "d"]
    with pytest.raises(ValueError, match="is not a comparison: its runs differ in model"):
        compare_jobs.comparison_arms([*runs, record("e", model="vit", seed=2), record("f", raw=True, seed=2)])
    with pytest.raises(ValueError, match=r"seeds do not pair up \(raw \[0, 1\], curated \[0\]\)"):
        compare_jobs.comparison_arms(runs[:3])
    with pytest.raises(ValueError, match="has no curated run"):
        compare_jobs.comparison_arms([runs[0]])


def test_failed_and_unfinished_runs_are_named_and_nothing_is_compared():
    runs = [record("a", raw=True), record("b", state=jobs.FAILED, error="out of memory")]
    with pytest.raises(ValueError, match=r"1 of 2 runs did not succeed.*b \(curated, seed 0\) failed: out of memory"):
        compare_jobs.check_all_succeeded(runs)
    with pytest.raises(ValueError, match="is not finished: 1 of 2 runs queued or running; pass --wait"):
        compare_jobs.check_all_succeeded([runs[0], record("c", state=jobs.RUNNING)])


def test_compare_configs_pair_each_seed_and_refuse_a_bad_count():
    configs = compare_jobs.compare_configs(TrainConfig(seed=5), 2)
    assert [(config.seed, config.raw) for config in configs] == [(5, True), (5, False), (6, True), (6, False)]
    for seeds in (0, 21, True):
        with pytest.raises(ValueError, match="seeds must be 1..20"):
            compare_jobs.compare_configs(TrainConfig(), seeds)
