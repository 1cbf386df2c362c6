"""Training: config validation, metrics against hand-computed values, curated data, leaks, determinism."""

import json

import numpy as np
import pandas as pd
import pytest

from fer_core.dataset.loading import Dataset
from fer_core.labels import EMOTIONS, USAGES
from fer_core.training.fit import (EpochProgress, TrainConfig, classification_metrics, find_leaked_test_rows,
                                   leak_free_metrics, select_training_data, train_and_evaluate)


def make_dataset(seed: int = 0) -> Dataset:
    """Noise faces, 10 per emotion in Training and 3 per emotion in each test usage, with planted leaks.

    PrivateTest row 0 is an exact copy of Training row 0, PrivateTest row 1 a brightened (near)
    copy of Training row 1, PublicTest row 0 an exact copy of Training row 2.
    """
    rng = np.random.default_rng(seed)
    per_usage = {"Training": 10, "PublicTest": 3, "PrivateTest": 3}
    labels = np.concatenate([np.repeat(np.arange(7), per_usage[usage]) for usage in USAGES]).astype(np.int8)
    usages = np.concatenate([[usage] * (7 * per_usage[usage]) for usage in USAGES])
    pixels = rng.integers(30, 220, size=(len(labels), 48, 48), dtype=np.uint8)
    private, public = np.flatnonzero(usages == "PrivateTest"), np.flatnonzero(usages == "PublicTest")
    pixels[private[0]] = pixels[0]
    pixels[private[1]] = pixels[1] + 3
    pixels[public[0]] = pixels[2]
    labels[[private[0], private[1], public[0]]] = labels[[0, 1, 2]]
    return Dataset(ids=np.array([f"{usage}_{i}" for i, usage in enumerate(usages)]), pixels=pixels,
                   labels=labels, usages=usages, source="synthetic")


@pytest.mark.parametrize("field, value, message", [
    ("model", "resnet", "unknown model 'resnet'; expected one of cnn, cnn_lstm, vit, cnn_attention, xception"),
    ("sampling", "adasyn", "unknown sampling 'adasyn'; expected one of none, class_weight, ros, smote"),
    ("size", "huge", "unknown size 'huge'; expected one of tiny, fast, full"),
    ("epochs", 0, "epochs must be a positive integer, got 0"),
    ("batch_size", -1, "batch_size must be a positive integer"),
    ("limit", 0, "limit must be a positive integer"),
    ("near_threshold", 33, "near threshold 33 out of range; expected 0..10 bits"),
    ("near_mode", "fuzzy", "unknown near mode 'fuzzy'; expected one of verified, hash"),
    ("learning_rate", 0.0, "learning_rate must be positive"),
])
def test_invalid_config_is_refused_with_the_allowed_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_config_defaults_are_valid_and_frozen():
    config = TrainConfig()
    assert (config.model, config.sampling, config.size, config.raw) == ("cnn", "none", "full", False)
    with pytest.raises(AttributeError):
        config.epochs = 3  # type: ignore[misc]


def test_metrics_match_a_hand_computed_confusion_matrix():
    true = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 5, 6, 6])
    predicted = np.array([0, 0, 3, 1, 0, 2, 3, 3, 3, 6, 4, 2, 6, 3])
    expected = np.zeros((7, 7), dtype=int)
    for row, column, count in [(0, 0, 2), (0, 3, 1), (1, 1, 1), (1, 0, 1), (2, 2, 1), (3, 3, 3), (3, 6, 1),
                               (4, 4, 1), (5, 2, 1), (6, 6, 1), (6, 3, 1)]:
        expected[row, column] = count
    metrics = classification_metrics(true, predicted)
    assert metrics["confusion"] == expected.tolist()
    assert metrics["accuracy"] == round(9 / 14, 4)
    # angry: 2 of 3 predicted angry are right (precision 2/3), 2 of 3 true angry found (recall 2/3)
    assert metrics["per_class"]["angry"] == {"precision": 0.6667, "recall": 0.6667, "f1": 0.6667, "support": 3}
    # happy: predicted 5 times, 3 right; 4 true → precision 3/5, recall 3/4, F1 2pr/(p+r) = 2/3
    assert metrics["per_class"]["happy"] == {"precision": 0.6, "recall": 0.75, "f1": 0.6667, "support": 4}
    # surprise: never predicted, one true → all zero
    assert metrics["per_class"]["surprise"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    f1_by_class = [2 / 3, 2 / 3, 2 / 3, 2 / 3, 1.0, 0.0, 0.5]  # fear: p 1/2, r 1 → 2/3; neutral: p 1/2, r 1/2
    assert metrics["macro_f1"] == round(sum(f1_by_class) / 7, 4)


def test_leak_free_accuracy_leaves_out_leaked_images():
    true = np.array([0, 1, 2, 3])
    predicted = np.array([0, 1, 0, 0])
    result = leak_free_metrics(true, predicted, np.array([True, False, False, True]))
    assert result == {"leak_free_accuracy": 0.5, "leaked_test_images": 2, "leak_free_test_images": 2}
    assert leak_free_metrics(true, predicted, np.ones(4, dtype=bool))["leak_free_accuracy"] is None


def test_training_reads_the_curated_view_unless_raw(workspace):
    from fer_core.curation.edits import drop, relabel

    dataset = make_dataset()
    drop(dataset, ["Training_3", "Training_4"], "not a face", workspace=workspace)
    relabel(dataset, "Training_5", "happy", "mislabelled", workspace=workspace)
    curated = select_training_data(dataset, TrainConfig(), workspace)
    assert len(curated) == len(dataset) - 2 and not curated.has_id("Training_3")
    assert curated.labels[curated.index_of("Training_5")] == 3
    raw = select_training_data(dataset, TrainConfig(raw=True), workspace)
    assert len(raw) == len(dataset) and raw.labels[raw.index_of("Training_5")] == 0


def test_leaks_include_mirrored_copies_in_verified_mode_only(workspace):
    planted = make_dataset()
    pixels = planted.pixels.copy()
    private = np.flatnonzero(planted.usages == "PrivateTest")
    pixels[private[2]] = pixels[3][:, ::-1]  # a mirrored copy of Training row 3
    dataset = Dataset(ids=planted.ids, pixels=pixels, labels=planted.labels, usages=planted.usages, source="synthetic")
    verified = find_leaked_test_rows(dataset, 6, "verified", workspace)
    hashed = find_leaked_test_rows(dataset, 6, "hash", workspace)
    assert np.flatnonzero(verified).tolist() == [0, 1, 2]
    assert np.flatnonzero(hashed).tolist() == [0, 1]


def test_a_runs_view_counts_the_whole_audits_pairs_while_both_images_are_in_it(workspace):
    """Issue 23: after leak removal the Overview said 0 leaked test images but the curated run "1 leaked test
    image left out" (it audited its view anew). A run's view now counts the whole audit's pairs that are live."""
    planted = make_dataset()
    pixels = planted.pixels.copy()
    private = np.flatnonzero(planted.usages == "PrivateTest")
    pixels[private[2]] = pixels[3][:, ::-1]  # a mirrored copy of Training row 3
    dataset = Dataset(ids=planted.ids, pixels=pixels, labels=planted.labels, usages=planted.usages, source="synthetic")
    view = dataset.select(np.flatnonzero(np.arange(len(dataset)) != 3))  # the Training copy dropped
    assert np.flatnonzero(find_leaked_test_rows(dataset, 6, "verified", workspace, view=view)).tolist() == [0, 1]
    assert np.flatnonzero(find_leaked_test_rows(dataset, 6, "verified", workspace, view=dataset)).tolist() == [0, 1, 2]


def test_same_seed_gives_same_metrics_and_leaks_are_left_out(tmp_path, workspace):
    dataset = make_dataset()
    config = TrainConfig(model="cnn", sampling="ros", epochs=2, size="tiny", batch_size=16, seed=7, patience=5,
                         deterministic=True)
    events: list[EpochProgress] = []
    first = train_and_evaluate(dataset, config, tmp_path / "first", on_epoch=events.append, workspace=workspace)
    second = train_and_evaluate(dataset, config, tmp_path / "second", workspace=workspace)

    timing = {"seconds", "train_seconds", "images_per_second"}
    assert {k: v for k, v in first.items() if k not in timing} == {k: v for k, v in second.items() if k not in timing}
    history = json.loads((tmp_path / "first" / "history.json").read_text())
    assert history["loss"] == json.loads((tmp_path / "second" / "history.json").read_text())["loss"]
    assert [event.epoch for event in events] == [1, 2] and {event.epochs for event in events} == {2}
    assert [event.val_accuracy for event in events] == pytest.approx(history["val_accuracy"])

    assert first["device"] == "CPU"
    assert first["leaked_test_images"] == 2  # the exact and the near copy; the PublicTest copy does not count
    assert first["leak_free_test_images"] == 19
    assert first["test_images"] == 21 and np.sum(first["confusion"]) == 21
    assert first["train_class_counts"] == {emotion: 10 for emotion in first["labels"]}
    saved = json.loads((tmp_path / "first" / "metrics.json").read_text())
    assert saved["accuracy"] == first["accuracy"] and (tmp_path / "first" / "model.keras").is_file()
    assert not list((tmp_path / "first").glob("*.tmp"))


def test_predictions_csv_has_one_row_per_scored_test_image_with_probabilities(tmp_path, workspace):
    dataset = make_dataset(1)
    config = TrainConfig(model="xception", sampling="none", epochs=1, size="tiny", batch_size=16)
    metrics = train_and_evaluate(dataset, config, tmp_path / "run", workspace=workspace)
    table = pd.read_csv(tmp_path / "run" / "predictions.csv")

    assert list(table.columns) == ["id", "usage", "label", "predicted", "p_angry", "p_disgust", "p_fear", "p_happy",
                                   "p_sad", "p_surprise", "p_neutral"]
    tested = dataset.usages != "Training"
    assert sorted(table["id"]) == sorted(dataset.ids[tested])
    assert table.groupby("usage").size().to_dict() == {"PrivateTest": 21, "PublicTest": 21}
    truth = dict(zip(dataset.ids, np.asarray(EMOTIONS)[dataset.labels]))
    assert (table["label"] == table["id"].map(truth)).all()
    probabilities = table[[f"p_{emotion}" for emotion in EMOTIONS]].to_numpy()
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (table["predicted"] == np.asarray(EMOTIONS)[probabilities.argmax(axis=1)]).all()
    private = table[table["usage"] == "PrivateTest"]
    assert round(float((private["label"] == private["predicted"]).mean()), 4) == metrics["accuracy"]
    assert metrics["epochs_planned"] == 1 and metrics["variant"] == "standard"


def test_epochs_default_per_size_and_fast_recipe_schedule():
    from fer_core.training.config import DEFAULT_EPOCHS
    from fer_core.training.fit import learning_rate_schedule

    assert TrainConfig(size="fast").epochs_to_run == DEFAULT_EPOCHS["fast"]
    assert TrainConfig(size="fast", epochs=2).epochs_to_run == 2
    schedule = learning_rate_schedule(1e-3, steps_per_epoch=10, epochs=5)
    rates = [float(schedule(step)) for step in range(50)]
    assert rates[0] == pytest.approx(1e-4) and rates[10] == pytest.approx(1e-3)  # warm-up over the first epoch
    assert all(later <= earlier for earlier, later in zip(rates[10:], rates[11:]))  # then only down
    assert rates[-1] < 2e-5


def test_early_stopping_waits_for_the_second_half_of_the_schedule():
    """A validation accuracy that never improves stops a run only once the schedule's second half has
    begun (a dip while the learning rate is high used to end runs at epoch 2), and the reported best
    epoch is the one whose weights were restored."""
    from fer_core.training.fit import configure_runtime, fit_model
    from fer_core.training.models import build_model
    from fer_core.training.sampling import TrainingSet

    data = make_dataset()
    training = data.select(np.flatnonzero((data.usages == "Training") & (data.labels != 0)))
    # Validation: angry faces only, an emotion the model never sees, so its accuracy stays 0 every epoch.
    validation = data.select(np.flatnonzero(data.usages == "PublicTest")).with_labels(np.zeros(21, dtype=np.int8))
    config = TrainConfig(model="cnn", sampling="none", epochs=8, size="tiny", batch_size=16, patience=1)
    configure_runtime(config.seed)
    history, _ = fit_model(build_model("cnn", "tiny", seed=0), TrainingSet(training.pixels, training.labels),
                           validation, config)
    assert set(history["val_accuracy"]) == {0.0}
    assert len(history["epoch"]) == 8 // 2 + 2  # watched from epoch 5; no gain at epoch 6 with patience 1
    assert history["best_epoch"] == 5


def test_a_diverged_run_fails_with_the_reason_and_writes_nothing(tmp_path, workspace):
    """Guards (issue 22): a run whose loss became NaN every epoch (learning rate 1e308) was reported as
    succeeded, with metrics of a model that answers one emotion for everything. Keras' TerminateOnNaN stops it
    at the first bad batch; the run then ends in a ValueError with the reason, before anything is written."""
    dataset = make_dataset()
    config = TrainConfig(model="cnn", sampling="none", epochs=3, size="tiny", batch_size=16, learning_rate=1e308)
    events: list[EpochProgress] = []
    with pytest.raises(ValueError, match=r"^training diverged: the loss became -?(nan|inf) in epoch 1 \(learning rate "
                                         r"1e\+308\); no model or metrics were written: use a lower learning rate$"):
        train_and_evaluate(dataset, config, tmp_path / "run", on_epoch=events.append, workspace=workspace)
    assert [event.epoch for event in events] == [1]  # stopped in the first epoch, not run to the end
    assert not (tmp_path / "run").exists()


def test_a_limited_run_trains_on_fewer_training_images_and_is_scored_on_every_test_image(tmp_path, workspace):
    """Issue 24: `limit` also shrank the test splits, so two runs with a limit were scored on different test
    images. It limits the Training images only: predictions.csv holds every PublicTest and PrivateTest image."""
    dataset = make_dataset(2)
    tested = sorted(dataset.ids[dataset.usages != "Training"])
    for limit in (21, 35):
        limited = select_training_data(dataset, TrainConfig(raw=True, limit=limit))
        assert sorted(limited.ids[limited.usages != "Training"]) == tested
    config = TrainConfig(model="cnn", sampling="none", epochs=1, size="tiny", batch_size=16, limit=21, raw=True)
    metrics = train_and_evaluate(dataset, config, tmp_path / "run", workspace=workspace)
    assert metrics["train_images"] == 21 and metrics["test_images"] == 21
    assert sorted(pd.read_csv(tmp_path / "run" / "predictions.csv")["id"]) == tested
