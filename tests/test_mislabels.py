"""The mislabel detector: planted label flips rank high, copies share one suggestion, the CSV contract,
the cache (hit, miss after an edit, resume after a cancel).

The synthetic classes are seven distinct light/dark layouts under noise, so the tiny cnn learns them in a
few epochs: a detector ranking at random would put about 2 of the 35 planted flips in its top 35.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fer_core.cli import main
from fer_core.curation import edits
from fer_core.dataset.loading import Dataset, load
from fer_core.labels import EMOTIONS
from fer_core.mislabels.config import MislabelConfig, MislabelsCancelled
from fer_core.mislabels.results import RESULT_COLUMNS, MislabelResult, cache_key, learning_warning
from fer_core.mislabels.run import find_mislabels, run_mislabels
from tests.synthetic import write_csv

FAST = dict(size="tiny", batch_size=8, learning_rate=3e-3, patience=5)


def texture_dataset(per_class: int, per_class_test: int, seed: int = 0) -> Dataset:
    """Seven learnable classes of coarse light/dark layouts (survive flips and small shifts) + noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:48]
    disc = (np.hypot(y - 24, x - 24) < 13) * 2 - 1.0
    patterns = [np.full((48, 48), -1.0), np.full((48, 48), 1.0), (y < 24) * 2 - 1.0, (y >= 24) * 2 - 1.0, disc, -disc,
                (abs(x - 23.5) < 8) * 2 - 1.0]
    usages = ["Training"] * per_class * 7 + ["PublicTest"] * per_class_test * 7 + ["PrivateTest"] * per_class_test * 7
    labels = np.concatenate([np.repeat(np.arange(7), count) for count in (per_class, per_class_test, per_class_test)])
    pixels = np.stack([128 + 60 * patterns[label] for label in labels]) + rng.normal(0, 12, (len(labels), 48, 48))
    return Dataset(ids=np.array([f"{usage}_{row}" for row, usage in enumerate(usages)]),
                   pixels=np.clip(pixels, 0, 255).astype(np.uint8), labels=labels.astype(np.int8),
                   usages=np.array(usages))


def flip_labels(dataset: Dataset, rows: np.ndarray, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    labels = dataset.labels.copy()
    labels[rows] = (labels[rows] + rng.integers(1, 7, len(rows))) % 7
    return dataset.with_labels(labels)


def test_planted_flips_rank_high_and_copies_share_one_suggestion():
    clean = texture_dataset(per_class=100, per_class_test=6)
    training = np.flatnonzero(clean.usages == "Training")
    flipped = np.random.default_rng(1).choice(training, 35, replace=False)
    noisy = flip_labels(clean, flipped, seed=2)
    # A conflicting copy: the pixels of a clean Training image, filed under another emotion.
    original = int(np.setdiff1d(training, flipped)[0])
    wrong = (int(clean.labels[original]) + 3) % 7
    data = Dataset(ids=np.append(noisy.ids, "Training_copy"),
                   pixels=np.concatenate([noisy.pixels, noisy.pixels[[original]]]),
                   labels=np.append(noisy.labels, wrong).astype(np.int8), usages=np.append(noisy.usages, "Training"))
    progress = []

    result = find_mislabels(data, MislabelConfig(folds=2, epochs=5, pooling="exact", **FAST),
                            on_progress=progress.append)

    table = result.table
    assert list(table.columns[:len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS) and len(table) == len(data)
    top = table.sort_values("mislabel_score", ascending=False).head(len(flipped)).index.to_numpy()
    assert np.isin(flipped, top).sum() >= 20  # random: about 2
    flagged = np.flatnonzero(table["is_label_issue"].to_numpy())
    assert np.isin(flagged, flipped).mean() >= 0.7
    suggested = table["suggested_label"].to_numpy()
    correct = suggested[flipped] == np.array(EMOTIONS)[clean.labels[flipped]]
    assert correct.mean() >= 0.7
    assert table["mislabel_score"].between(0, 1).all() and table["suggested_confidence"].between(0, 1).all()

    pair = table.iloc[[original, len(data) - 1]]
    assert pair["suggested_label"].nunique() == 1 and pair["suggested_confidence"].nunique() == 1
    assert pair["suggested_label"].iloc[0] == EMOTIONS[clean.labels[original]]
    assert pair["mislabel_score"].iloc[1] > pair["mislabel_score"].iloc[0]
    assert pair["group"].notna().all() and pair["group"].nunique() == 1

    stages = [(event.stage, event.fold) for event in progress if event.stage not in ("epoch", "speed")]
    assert stages == [("fold", 1), ("fold_done", 1), ("fold", 2), ("fold_done", 2), ("ranking", 2), ("done", 2)]
    assert sum(event.stage == "epoch" for event in progress) >= 2
    summary = result.summary
    assert summary["flagged"] == len(flagged) == sum(summary["flagged_by_emotion"].values())
    assert sum(sum(row.values()) for row in summary["given_by_suggested"].values()) == len(flagged)
    training_labels = data.labels[data.usages == "Training"]
    assert summary["majority_share"] == round(np.bincount(training_labels).max() / len(training_labels), 4)
    assert learning_warning(result) is None  # these fold models learned


def test_a_warning_when_the_fold_models_barely_beat_guessing_the_commonest_emotion():
    table = pd.DataFrame({"label": ["happy"] * 3 + ["sad"] * 5 + ["angry"] * 4,
                          "usage": ["Training"] * 8 + ["PublicTest"] * 4})

    def result(**summary):
        return MislabelResult(table, summary)

    warning = learning_warning(result(out_of_fold_accuracy=0.249, majority_share=0.2513))
    assert "barely learned" in warning and "24.9%" in warning and "25.1%" in warning
    assert learning_warning(result(out_of_fold_accuracy=0.569, majority_share=0.2513)) is None
    # a result stored before the summary had majority_share: the share comes from its table (sad: 5 of 8)
    assert "62.5%" in learning_warning(result(out_of_fold_accuracy=0.6))
    assert learning_warning(result(out_of_fold_accuracy=0.7)) is None
    # one fold's model failed while the others learned (the mean still looks fine)
    folds = [{"fold": 1, "held_out_accuracy": 0.966, "held_out_images": 295},
             {"fold": 3, "held_out_accuracy": 0.214, "held_out_images": 294}]
    warning = learning_warning(result(out_of_fold_accuracy=0.71, majority_share=0.1459, folds=folds))
    assert "fold 3 (21.4% on its 294 images)" in warning and "fold 1" not in warning
    assert learning_warning(result(out_of_fold_accuracy=0.71, majority_share=0.1459, folds=folds[:1])) is None


def test_folds_keep_copies_together_and_are_stratified():
    from fer_core.mislabels.folds import assign_folds

    labels = np.repeat(np.arange(7), 30)
    group_of = np.full(len(labels), -1)
    group_of[[0, 40, 80]] = 5  # three copies of one photo, under three emotions
    fold_of = assign_folds(labels, group_of, folds=3, seed=0)
    assert len(set(fold_of[[0, 40, 80]])) == 1
    for label in range(7):
        assert set(np.bincount(fold_of[labels == label], minlength=3)) <= {9, 10, 11}


def few_of_one_emotion(kept: int) -> Dataset:
    """The texture classes with only `kept` Training images of disgust (`kept=None`: happy images only)."""
    data = texture_dataset(per_class=10, per_class_test=2)
    if kept is None:
        return data.select(np.flatnonzero(data.labels == EMOTIONS.index("happy")))
    disgust = np.flatnonzero((data.usages == "Training") & (data.labels == EMOTIONS.index("disgust")))
    return data.select(np.setdiff1d(np.arange(len(data)), disgust[kept:]))


@pytest.mark.parametrize("kept, message", [
    (2, r"^dataset: too few Training images of disgust 2; 3-fold cross-validation needs at least 3 of each emotion present"),
    (None, r"^dataset: all 10 Training images are happy; suspected mislabels need at least two emotions to tell apart$"),
])
def test_data_the_folds_cannot_split_is_refused_before_any_model_trains(monkeypatch, kept, message):
    """Fewer images of an emotion than folds, or one emotion only, failed after every fold model had
    trained, in scikit-learn's or cleanlab's words ("Labels must contain at least 2 classes")."""
    import fer_core.mislabels.run as run_module

    def no_training(*_, **__):
        raise AssertionError("a fold model started training")

    monkeypatch.setattr(run_module, "cross_validated_probabilities", no_training)
    with pytest.raises(ValueError, match=message):
        find_mislabels(few_of_one_emotion(kept), MislabelConfig(folds=3, epochs=1, **FAST))


@pytest.mark.parametrize("settings, message", [({"folds": 1}, "folds"), ({"pooling": "all"}, "pooling"),
                                               ({"size": "huge"}, "size"), ({"epochs": 0}, "epochs")])
def test_config_rejects_bad_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        MislabelConfig(**settings)


def test_time_estimate_grows_with_the_passes_over_training():
    from fer_core.training.estimates import reference_images_per_second

    config = MislabelConfig()
    base = config.estimated_seconds(28_709)
    passes = (config.folds - 1) * config.epochs * 28_709
    assert base > passes / reference_images_per_second(config.size, config.model)  # training, plus overhead
    assert MislabelConfig(epochs=2 * config.epochs).estimated_seconds(28_709) - base == pytest.approx(
        passes / reference_images_per_second(config.size, config.model))
    assert MislabelConfig(folds=config.folds + 1).estimated_seconds(28_709) > base
    assert config.estimated_seconds(1_000) < base


def test_cache_hit_miss_after_edit_and_resume_after_cancel(workspace):
    data = texture_dataset(per_class=12, per_class_test=2)
    config = MislabelConfig(folds=2, epochs=1, **FAST)
    folds_seen = []

    def stop_after_first_fold(events=folds_seen):
        return any(event == "fold_done" for event in events)

    with pytest.raises(MislabelsCancelled):
        run_mislabels(data, config, workspace=workspace, on_progress=lambda event: folds_seen.append(event.stage),
                      should_stop=stop_after_first_fold)
    assert folds_seen.count("fold") == 1
    resumed = []
    first = run_mislabels(data, config, workspace=workspace, on_progress=resumed.append)
    assert [event.fold for event in resumed if event.stage == "fold"] == [2]  # fold 1 came from the partial cache
    assert not (workspace / "cache" / "mislabels" / f"{cache_key(data, config)}.folds").exists()

    again = run_mislabels(data, config, workspace=workspace, should_stop=lambda: pytest.fail("recomputed"))
    assert again.table[list(RESULT_COLUMNS)].equals(first.table[list(RESULT_COLUMNS)])
    assert again.summary["from_cache"] is True

    edits.relabel(data, "Training_0", "happy", "test", workspace=workspace)
    curated = edits.curated_dataset(data, workspace)
    assert cache_key(curated, config) != cache_key(data, config)
    with pytest.raises(MislabelsCancelled):  # a new curation is not served from the old result
        run_mislabels(data, config, workspace=workspace, should_stop=lambda: True)


def test_cli_writes_the_csv_contract_and_summary(tmp_path, workspace, capsys):
    source = write_csv(texture_dataset(per_class=10, per_class_test=2), tmp_path / "fer2013.csv")
    out = tmp_path / "out"

    code = main(["mislabels", str(source), "--out", str(out), "--folds", "2", "--size", "tiny", "--epochs", "1",
                 "--workspace", str(workspace), "--quiet"])

    assert code == 0
    with open(out / "mislabels.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(RESULT_COLUMNS)
    dataset = load(source, workspace=workspace)
    assert [row[0] for row in rows[1:]] == dataset.ids.tolist()
    for row in rows[1:]:
        assert row[1] in EMOTIONS and row[3] in EMOTIONS and row[2] in ("Training", "PublicTest", "PrivateTest")
        assert 0 <= float(row[4]) <= 1 and 0 <= float(row[5]) <= 1 and row[6] in ("true", "false")
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["flagged_by_emotion"]) == set(EMOTIONS)
    assert summary["settings"]["folds"] == 2 and summary["settings"]["size"] == "tiny"
    assert summary["flagged"] == sum(row[6] == "true" for row in rows[1:])
    assert "seconds" in summary and "given_by_suggested" in summary
    assert "flagged as suspected mislabels" in capsys.readouterr().out


@pytest.mark.parametrize("arguments, message", [
    (["--folds", "1"], "folds"),
    (["--epochs", "0"], "epochs"),
    (["--data", "missing"], "missing"),
])
def test_cli_bad_arguments_exit_2_with_one_error_line_and_write_nothing(tmp_path, workspace, capsys, arguments,
                                                                        message):
    source = write_csv(texture_dataset(per_class=3, per_class_test=1), tmp_path / "fer2013.csv")
    data = str(tmp_path / arguments[1]) if arguments[0] == "--data" else str(source)
    options = [] if arguments[0] == "--data" else arguments
    out = tmp_path / "out"

    code = main(["mislabels", data, "--out", str(out), "--workspace", str(workspace), *options])

    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: ") and message in error[0]
    assert not out.exists()


def test_cli_refuses_an_out_path_that_is_a_file(tmp_path, workspace, capsys):
    source = write_csv(texture_dataset(per_class=3, per_class_test=1), tmp_path / "fer2013.csv")
    out = tmp_path / "taken"
    out.write_text("keep me")

    assert main(["mislabels", str(source), "--out", str(out), "--workspace", str(workspace)]) == 2
    assert "not a folder" in capsys.readouterr().err and out.read_text() == "keep me"


def test_pooling_averages_within_each_group_and_leaves_the_rest():
    from fer_core.mislabels.ranking import pool_probabilities

    probabilities = np.eye(7)[[0, 1, 2, 3, 4, 5]]
    pooled = pool_probabilities(probabilities, np.array([4, -1, 4, 9, 4, 9]))
    np.testing.assert_allclose(pooled[[0, 2, 4]], np.tile((np.eye(7)[0] + np.eye(7)[2] + np.eye(7)[4]) / 3, (3, 1)))
    np.testing.assert_allclose(pooled[[3, 5]], np.tile((np.eye(7)[3] + np.eye(7)[5]) / 2, (2, 1)))
    np.testing.assert_allclose(pooled[1], np.eye(7)[1])


def test_near_groups_pool_only_when_every_pair_is_close(monkeypatch):
    """A chain A–B–C (A and C too far apart) falls back to exact copies; a tight pair stays pooled."""
    from fer_core.duplicates import hashing
    from fer_core.mislabels.ranking import find_pooling_groups

    data = texture_dataset(per_class=1, per_class_test=0)  # 7 distinct images
    pixels = data.pixels.copy()
    pixels[1] = pixels[0]  # rows 0 and 1: exact copies
    data = Dataset(ids=data.ids, pixels=pixels, labels=data.labels, usages=data.usages)
    chain = [0, 0, 0b111111, 0b111111111111]  # rows 0,1 (copies) – 2 – 3: 6 bits per link, 12 end to end
    tight = [0xFFFF000000000000, 0xFFFF000000000003]  # rows 4, 5: 2 bits apart, far from the rest
    hashes = np.array(chain + tight + [0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    monkeypatch.setattr(hashing, "phash_batch", lambda pixels: hashes)

    group_of = find_pooling_groups(data, MislabelConfig(pooling="near", near_threshold=6))

    assert group_of[0] == group_of[1] != -1  # the exact copies inside the chain still pool
    assert group_of[2] == -1 and group_of[3] == -1 and group_of[6] == -1
    assert group_of[4] == group_of[5] != -1 and group_of[4] != group_of[0]


def stored_result(dataset: Dataset, suspects: dict[str, tuple[int, float]], workspace,
                  config: MislabelConfig = MislabelConfig()) -> MislabelResult:
    """A result as run_mislabels stores it (no training): every image 0.88 likely its given emotion,
    except `suspects`, id → (the emotion the model prefers, the probability left to the given one)."""
    from fer_core.mislabels.ranking import rank_label_issues, summarize
    from fer_core.mislabels.results import write_cached_result

    probabilities = np.full((len(dataset), 7), 0.02)
    probabilities[np.arange(len(dataset)), dataset.labels] = 0.88
    for sample_id, (emotion, given) in suspects.items():
        row = dataset.index_of(sample_id)
        probabilities[row] = 0.01
        probabilities[row, dataset.labels[row]] = given
        probabilities[row, emotion] = 0.95 - given
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    table = rank_label_issues(dataset, probabilities, np.full(len(dataset), -1), config)
    summary = summarize(table, config, dataset, probabilities, [], 0.0)
    summary.update(raw_fingerprint=dataset.fingerprint, created_at="2026-01-01T00:00:00+00:00")
    result = MislabelResult(table, summary)
    write_cached_result(cache_key(dataset, config), result, workspace)
    return result


def test_review_queue_accept_writes_one_relabel_undo_brings_it_back_reject_removes_it(workspace):
    from fer_core.mislabels.results import latest_result
    from fer_core.mislabels.review import accept_suggestions, reject_suggestions, review_queue

    data = texture_dataset(per_class=4, per_class_test=1)
    # confidently another emotion, the first more so
    stored_result(data, {"Training_0": (3, 0.03), "Training_5": (6, 0.06)}, workspace)

    result = latest_result(data, workspace)
    queue = review_queue(result, data, edits.read_state(workspace))
    assert queue["id"].tolist() == ["Training_0", "Training_5"]
    assert queue["suggested_label"].tolist() == ["happy", "neutral"]

    written = accept_suggestions(data, queue.head(1), workspace=workspace)
    assert len(written) == 1 and written[0].action == "relabel" and written[0].new_label == "happy"
    assert written[0].reason == f"suggested by model (score {queue['mislabel_score'].iloc[0]:.2f})"
    relabels = [edit for edit in edits.read_edits(workspace) if edit.action == "relabel"]
    assert len(relabels) == 1
    assert latest_result(data, workspace) is not None  # still served after the curation changed
    assert review_queue(result, data, edits.read_state(workspace))["id"].tolist() == ["Training_5"]

    edits.undo(written[0].edit_id, workspace=workspace)
    assert edits.curated_dataset(data, workspace).labels[0] == data.labels[0]
    assert review_queue(result, data, edits.read_state(workspace))["id"].tolist() == ["Training_0", "Training_5"]

    both = accept_suggestions(data, queue, workspace=workspace)  # bulk: one batch, one undo
    assert [(edit.sample_id, edit.new_label) for edit in both] == [("Training_0", "happy"), ("Training_5", "neutral")]
    assert len({edit.batch_id for edit in both}) == 1
    low, high = sorted(queue["mislabel_score"])
    assert both[0].reason == f"suggested by model (score {low:.2f}–{high:.2f})"
    assert review_queue(result, data, edits.read_state(workspace)).empty
    edits.undo_batch(both[0].batch_id, workspace=workspace)
    assert len(review_queue(result, data, edits.read_state(workspace))) == 2

    reject_suggestions(data, ["Training_5"], workspace=workspace)
    assert review_queue(result, data, edits.read_state(workspace))["id"].tolist() == ["Training_0"]
    assert latest_result(texture_dataset(per_class=4, per_class_test=1, seed=9), workspace) is None


def test_job_runs_in_the_background_reports_folds_and_can_be_cancelled(tmp_path, workspace):
    """The `mislabels` job kind: progress per fold as the run's stage, the result cached where the app
    looks, files in the run folder; a cancelled job stops and is recorded as cancelled."""
    from test_jobs import wait_for

    from fer_core import jobs
    from fer_core.mislabels.run import find_cached_result

    source = write_csv(texture_dataset(per_class=10, per_class_test=2), tmp_path / "fer2013.csv")
    quick = MislabelConfig(folds=2, epochs=1, **FAST)
    run_id = jobs.submit(quick, source, workspace)
    record = wait_for(lambda: (r := jobs.get_run(run_id, workspace)).finished and r)
    assert record.state == jobs.SUCCEEDED, record.error
    assert record.kind == "mislabels" and record.metrics["settings"]["folds"] == 2
    assert {"mislabels.csv", "summary.json"} <= {path.name for path in Path(record.out_dir).iterdir()}
    assert find_cached_result(load(source, workspace=workspace), quick, workspace=workspace) is not None

    slow = MislabelConfig(folds=2, epochs=500, **{**FAST, "patience": 500})
    running = jobs.submit(slow, source, workspace)
    # progress per fold: the run's stage reads "fold 1/2, epoch …" while the first fold trains
    record = wait_for(lambda: (r := jobs.get_run(running, workspace)).stage and r.stage.startswith("fold 1/2") and r)
    assert jobs.cancel(running, workspace).state == jobs.CANCELLED
    wait_for(lambda: not jobs.process_alive(record.pid, None), timeout=30)
    assert jobs.get_run(running, workspace).state == jobs.CANCELLED
