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
from fer_core.training.compare import (
    RECALL_COLUMNS,
    PairedPredictions,
    compare_arms,
    mean_and_sd,
    paired_bootstrap,
    recall_difference_frame,
    relabelled_accuracy,
    t_interval,
)
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
    assert result["verdict"].startswith("within noise: curated − raw leak-free accuracy is ")
    assert "both 95 % intervals contain 0" in result["verdict"]


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


def test_the_circular_figure_relabels_only_flagged_test_images_by_their_suggestion(monkeypatch):
    """The newest mislabel result's flagged images take its suggested label; the note says it is not valid."""
    import pandas as pd

    from fer_core.mislabels import results

    table = pd.DataFrame({"id": ["t0", "t1", "t2"], "suggested_label": ["happy", "sad", "fear"],
                          "is_label_issue": [True, False, True]})
    monkeypatch.setattr(results, "latest_result", lambda dataset, workspace: results.MislabelResult(table, {}))
    labels = np.array([EMOTIONS.index("angry")] * 3)
    curated = np.array([[EMOTIONS.index("happy"), EMOTIONS.index("sad"), EMOTIONS.index("angry")]])
    figure = compare_jobs.relabelled_figure(None, ["t0", "t1", "t2"], labels, curated, None)
    assert figure["relabelled_test_accuracy"] == pytest.approx(1 / 3)  # t0 now right, t2 now wrong, t1 unflagged
    assert figure["test_labels_changed"] == 2 and figure["note"].startswith("NOT A VALID MEASURE")
    monkeypatch.setattr(results, "latest_result", lambda dataset, workspace: None)
    assert compare_jobs.relabelled_figure(None, ["t0"], labels[:1], curated[:, :1], None)["note"].startswith(
        "cannot be computed")


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


# ---------------------------------------------------------------------------------------------
# The command, end to end with real worker processes (tiny model, one epoch, two seeds)


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    dataset, planted = make_synthetic(seed=2)
    return write_folders(dataset, tmp_path_factory.mktemp("compare_data")), dataset, planted


def folder_id(dataset, sample_id: str) -> str:
    """The id `load` gives a synthetic sample written by `write_folders`."""
    index = list(dataset.ids).index(sample_id)
    folder = "train" if dataset.usages[index] == "Training" else "test"
    return f"{folder}/{EMOTIONS[dataset.labels[index]]}/{dataset.usages[index]}_{index}.png"


def test_compare_queues_both_arms_waits_and_writes_compare_json(synthetic_data, workspace, capsys, monkeypatch):
    """The contract: first line the experiment id; both arms × seeds as one experiment; compare.json with
    the arms' run ids and figures, the leak-free difference and a verdict, scored on the original labels;
    the leak-free figure leaves out the leaked test image although the curated arm no longer has its copy."""
    from fer_core.cli import main
    from fer_core.curation import edits
    from fer_core.dataset.loading import load

    data_path, dataset, planted = synthetic_data
    loaded = load(data_path, workspace=workspace)
    edits.drop(loaded, [folder_id(dataset, planted.cross_split_copy[1])], "leak", workspace=workspace)
    monkeypatch.setenv(jobs.MAX_RUNS_ENV, "2")
    assert main(["compare", str(data_path), "--size", "tiny", "--epochs", "1", "--seeds", "2", "--wait",
                 "--workspace", str(workspace)]) == 0
    lines = capsys.readouterr().out.splitlines()
    experiment_id = lines[0]
    assert experiment_id.startswith("exp-")
    runs = jobs.list_runs(workspace, experiment_id=experiment_id)
    assert sorted((run.config["raw"], run.config["seed"]) for run in runs) == [(False, 0), (False, 1), (True, 0),
                                                                               (True, 1)]
    assert all(run.state == jobs.SUCCEEDED for run in runs)
    path = workspace / "experiments" / experiment_id / "compare.json"
    assert lines[-1] == f"wrote {path}"
    assert any(line.startswith("verdict: ") for line in lines)
    assert any("NOT A VALID MEASURE" in line and "cannot be computed" in line for line in lines)

    written = json.loads(path.read_text())
    for arm, raw in (("raw", True), ("curated", False)):
        assert written["arms"][arm]["run_ids"] == [run.run_id for run in sorted(runs, key=lambda r: r.config["seed"])
                                                   if run.config["raw"] == raw]
        for metric in ("accuracy", "leak_free_accuracy", "macro_f1"):
            assert 0 <= written["arms"][arm][metric]["mean"] <= 1 and written["arms"][arm][metric]["sd"] >= 0
    difference = written["difference"]["leak_free_accuracy"]
    assert difference["low"] <= difference["mean"] <= difference["high"]
    assert written["test_images"] == 6 and written["leaked_test_images"] == 1
    curated_metrics = [run.metrics for run in runs if not run.config["raw"]]
    assert all(metrics["leaked_test_images"] == 0 for metrics in curated_metrics)  # its own audit: no copy left
    assert written["verdict"] and written["not_a_valid_measure"]["relabelled_test_accuracy"] is None

    assert compare_jobs.read_comparison(experiment_id, workspace) == written
    out = workspace.parent / "comparison"
    assert main(["compare", "--experiment", experiment_id, "--out", str(out), "--workspace", str(workspace)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == experiment_id
    again = json.loads((out / "compare.json").read_text())
    assert {key: value for key, value in again.items() if key != "created_at"} == \
        {key: value for key, value in written.items() if key != "created_at"}
    assert main(["compare", "--experiment", experiment_id, "--model", "vit", "--workspace", str(workspace)]) == 2
    assert "--model only apply when queueing" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--seeds", "0"], "seeds must be 1..20, got 0"),
    (["--seeds", "21"], "seeds must be 1..20, got 21"),
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--sampling", "magic"], "unknown sampling 'magic'"),
    (["--size", "huge"], "unknown size 'huge'"),
    (["--epochs", "0"], "epochs must be a positive integer, got 0"),
    (["--out", "{file}"], "is a file, not a folder"),
    (["--out", "{workspace}/compare"], "lies inside the workspace"),
    (["--out", "{earlier}"], "holds the compare.json of experiment exp-older; choose another --out"),
])
def test_bad_input_is_one_line_and_queues_and_writes_nothing(options, message, workspace, tmp_path, capsys):
    from fer_core.cli import main

    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (tmp_path / "a_file").write_text("mine")
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "compare.json").write_text('{"experiment_id": "exp-older"}')
    places = {"file": tmp_path / "a_file", "workspace": workspace, "earlier": tmp_path / "earlier"}
    options = [option.format(**places) for option in options]
    assert main(["compare", str(data), *options, "--workspace", str(workspace)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1
    assert list(workspace.iterdir()) == []
    assert (tmp_path / "a_file").read_text() == "mine"
    assert (tmp_path / "earlier" / "compare.json").read_text() == '{"experiment_id": "exp-older"}'


def test_missing_data_or_an_unknown_experiment_is_refused(workspace, tmp_path, capsys):
    from fer_core.cli import main

    assert main(["compare", "--workspace", str(workspace)]) == 2
    assert "compare needs DATA (or --experiment ID" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "nowhere"), "--workspace", str(workspace)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["compare", "--experiment", "exp-nope", "--workspace", str(workspace)]) == 2
    assert "unknown experiment id 'exp-nope'" in capsys.readouterr().err
    assert jobs.list_runs(workspace) == []
