"""fer_core.views.runs on hand-made run records: matrices, ETA, tables, figures and downloads."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from fer_core.curation.edits import Edit
from fer_core.jobs import RunRecord
from fer_core.labels import EMOTIONS
from fer_core.training import estimates
from fer_core.training.config import DEFAULT_EPOCHS, TrainConfig
from fer_core.views import confusion, predictions, study
from fer_core.views import runs as results

CONFUSION = np.diag([10, 2, 8, 20, 9, 6, 12]).tolist()
CONFUSION[0][6] = 10  # half of the angry images predicted neutral


def make_record(run_id="20260101-000000-aaaaaa", state="succeeded", raw=False, confusion=CONFUSION, events=(),
                out_dir="/nonexistent", created_at="2026-01-01T00:00:00+00:00", **metrics) -> RunRecord:
    per_class = {emotion: {"precision": 0.5, "recall": 0.25 + index / 10, "f1": 0.4, "support": 10}
                 for index, emotion in enumerate(EMOTIONS)}
    base = {"accuracy": 0.6, "macro_f1": 0.5, "leak_free_accuracy": 0.55, "device": "CPU", "seconds": 75.0,
            "per_class": per_class, "confusion": confusion, "epochs_run": 2, "train_images_before_sampling": 100}
    return RunRecord(run_id=run_id, state=state, backend="local", created_at=created_at,
                     started_at="2026-01-01T00:00:05+00:00", finished_at="2026-01-01T00:01:20+00:00",
                     data_path="/data", config={"model": "cnn", "sampling": "none", "epochs": 5, "size": "tiny",
                                                "raw": raw, "seed": 0, "limit": None},
                     out_dir=out_dir, pid=None, external_id=None, stage=None, error=None,
                     metrics={**base, **metrics} if state == "succeeded" else None, events=list(events))


def test_normalize_rows_on_a_hand_made_matrix():
    matrix = np.array([[2, 2, 0], [0, 0, 0], [1, 0, 3]])
    expected = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0], [0.25, 0.0, 0.75]])
    np.testing.assert_allclose(confusion.normalize_rows(matrix), expected)


def test_difference_matrix_is_after_minus_before_row_normalized():
    before = np.array([[8, 2], [5, 5]])
    after = np.array([[18, 2], [1, 9]])  # another test size: compared as shares
    np.testing.assert_allclose(confusion.difference_matrix(before, after), [[0.1, -0.1], [-0.4, 0.4]])
    np.testing.assert_array_equal(confusion.difference_matrix(before, after, normalized=False), [[10, 0], [-4, 4]])
    with pytest.raises(ValueError, match="shape"):
        confusion.difference_matrix(before, np.zeros((3, 3)))


def test_eta_skips_the_compiling_first_epoch_and_is_none_before_it():
    assert estimates.estimate_remaining_seconds([], 10) is None
    assert estimates.estimate_remaining_seconds([30.0], 4) == 90.0
    assert estimates.estimate_remaining_seconds([30.0, 2.0, 4.0, 3.0], 10) == 6 * 3.0
    assert estimates.estimate_remaining_seconds([30.0, 2.0], 2) == 0.0
    assert [results.format_duration(s) for s in (None, 42, 185, 3720)] == ["—", "42 s", "3 min 05 s", "1 h 02 min"]


def test_queue_table_shows_epoch_progress_and_eta_of_a_running_run():
    events = [{"epoch": 1, "epochs": 5, "loss": 2.0, "accuracy": 0.2, "val_loss": 1.9, "val_accuracy": 0.25,
               "seconds": 20.0}, {"epoch": 2, "epochs": 5, "loss": 1.5, "accuracy": 0.4, "val_loss": 1.6,
                                  "val_accuracy": 0.35, "seconds": 10.0}]
    running = make_record(state="running", events=events)
    running = RunRecord(**{**running.__dict__, "finished_at": None, "stage": "training: epoch 2/5 done"})
    queued = RunRecord(**{**make_record(state="queued").__dict__, "started_at": None, "finished_at": None})
    now = results.parse_time("2026-01-01T00:00:50+00:00")
    table = results.queue_table([running, queued], now=now)
    first = table.iloc[0]
    assert (first["epoch"], first["val_accuracy"], first["elapsed"], first["eta"]) == ("2 / 5", 0.35, "45 s", "30 s")
    assert first["progress"] == pytest.approx(40) and first["stage"] == "training: epoch 2/5 done"
    assert (table.iloc[1]["elapsed"], table.iloc[1]["eta"], table.iloc[1]["stage"]) == (
        "—", "—", "waiting for a free worker")


def test_runs_table_counts_the_edits_in_effect_before_each_curated_run():
    """Issue 23: one count everywhere, edits in effect (an undone drop and its undo count nothing), as the
    Overview shows, not rows of the log."""
    def edit(edit_id, sample, when, action="drop", undoes=None):
        return Edit(edit_id, f"b{edit_id}", sample, action, None, None, "r", "me", when, "f", undoes)

    log = [edit(1, "s1", "2025-12-31T23:59:59.500+00:00"), edit(2, "s2", "2025-12-31T23:59:59.600+00:00"),
           edit(3, "s2", "2025-12-31T23:59:59.700+00:00", "undo", undoes=2),
           edit(4, "s3", "2026-01-01T00:00:00.000+00:00"), edit(5, "s4", "2026-01-01T00:00:00.001+00:00")]
    table = results.runs_table([make_record(), make_record(run_id="b", raw=True)], log)
    assert table["data"].tolist() == ["curated · 2 edits in effect", "raw"]
    assert table.loc[0, ["accuracy", "leak_free_accuracy", "macro_f1", "device", "duration", "epochs"]].tolist() == [
        0.6, 0.55, 0.5, "CPU", "1 min 15 s", "2 / 5"]


def test_finished_runs_and_the_default_comparison_prefer_raw_before_and_curated_after():
    curated, raw, failed = make_record("c"), make_record("r", raw=True), make_record("f", state="failed")
    assert [r.run_id for r in results.finished_with_metrics([curated, failed, raw])] == ["c", "r"]
    assert results.default_comparison([curated, raw]) == ("r", "c")
    assert results.default_comparison([make_record("new"), make_record("old")]) == ("old", "new")


def test_per_class_table_and_recall_changes():
    before, after = make_record().metrics, make_record().metrics
    after = {**after, "per_class": {**after["per_class"], "fear": {**after["per_class"]["fear"], "recall": 0.9}}}
    table = confusion.per_class_table(before)
    assert table["emotion"].tolist() == list(EMOTIONS)
    changes = confusion.recall_changes(before, after).set_index("emotion")
    assert changes.loc["fear", "recall_change"] == pytest.approx(0.9 - 0.45)
    assert changes.drop(index="fear")["recall_change"].abs().max() == 0


def test_confusion_figures_carry_emotion_names_counts_and_shares():
    matrix = confusion.confusion_of(make_record().metrics)
    counts = confusion.confusion_figure(matrix).data[0]
    assert list(counts.x) == list(EMOTIONS) and list(counts.y) == list(EMOTIONS)
    assert counts.text[0][6] == "10" and counts.text[0][0] == "10"
    shares = confusion.confusion_figure(matrix, normalized=True).data[0]
    assert shares.text[0][0] == "50%" and shares.zmax == 1
    assert shares.colorbar.tickformat == ".0%" and counts.colorbar.title.text == "images"  # one unit per figure
    markers = confusion.confusion_figure(matrix, clickable=True).data[1]  # what a click selects: one per cell
    assert len(markers.x) == 49 and (markers.y[6], markers.x[6], markers.customdata[6]) == ("angry", "neutral", 10)
    after = np.diag([20, 2, 8, 200, 9, 6, 12])
    after[3, 6] = 40
    change = confusion.difference_figure(matrix, after, min_support=10).data[0]
    assert change.text[0][0] == "+10" and change.text[0][6] == "-10" and change.zmid == 0  # images, not shares
    assert change.z[0][0] == pytest.approx(0.5)  # colour: angry's share on the diagonal, 50 % → 100 %
    assert change.z[1] == [None] * 7  # disgust: 2 test images, under the 10 asked for: greyed out
    assert change.z[3][6] == pytest.approx(40 / 240) and change.text[3][6] == "+40"
    with pytest.raises(ValueError, match="confusion"):
        confusion.confusion_of({"confusion": [[1, 2]]})


def test_history_from_history_json_else_from_events(tmp_path):
    events = [{"epoch": 1, "epochs": 2, "loss": 2.0, "accuracy": 0.2, "val_loss": 1.9, "val_accuracy": 0.25,
               "seconds": 3.0, "created_at": "x"}]
    from_events = results.read_history(make_record(events=events, out_dir=str(tmp_path)))
    assert from_events.to_dict("records") == [{"epoch": 1, "loss": 2.0, "accuracy": 0.2, "val_loss": 1.9,
                                               "val_accuracy": 0.25}]
    (tmp_path / "history.json").write_text(json.dumps({"epoch": [1, 2], "loss": [2, 1], "accuracy": [.1, .3],
                                                       "val_loss": [2, 1.5], "val_accuracy": [.2, .4], "seconds": [1, 1]}))
    history = results.read_history(make_record(events=events, out_dir=str(tmp_path)))
    assert history["val_accuracy"].tolist() == [0.2, 0.4]
    figure = results.curves_figure(history)
    assert {trace.name for trace in figure.data} == {"train", "validation"} and len(figure.data) == 4


def test_downloads_hold_the_metrics():
    record = make_record()
    lines = results.metrics_csv(record).decode().splitlines()
    header = lines[0].split(",")
    assert len(lines) == 1 + len(EMOTIONS)
    assert header[:3] == ["run_id", "model", "sampling"] and "predicted_neutral" in header and "recall" in header
    angry = dict(zip(header, lines[1].split(",")))
    assert (angry["emotion"], angry["predicted_neutral"], angry["accuracy"]) == ("angry", "10", "0.6")
    payload = json.loads(results.metrics_json(record))
    assert payload["metrics"]["confusion"] == CONFUSION and payload["run_id"] == record.run_id
    assert results.download_name(record, "csv").endswith(f"{record.run_id}_metrics.csv")


def test_study_table_puts_raw_and_curated_side_by_side_with_the_change():
    grid = [{"model": "cnn", "sampling": "none", "data": "raw", "run_id": "a", "state": "succeeded",
             "accuracy": 0.60, "macro_f1": 0.50, "leak_free_accuracy": 0.58},
            {"model": "cnn", "sampling": "none", "data": "curated", "run_id": "b", "state": "succeeded",
             "accuracy": 0.63, "macro_f1": 0.55, "leak_free_accuracy": 0.62},
            {"model": "vit", "sampling": "ros", "data": "raw", "run_id": "c", "state": "running",
             "accuracy": None, "macro_f1": None, "leak_free_accuracy": None}]
    table = study.study_table(grid)
    assert table[["model", "sampling"]].values.tolist() == [["cnn", "none"], ["vit", "ros"]]
    first = table.iloc[0]
    assert (first["accuracy raw"], first["accuracy curated"]) == (0.60, 0.63)
    assert first["accuracy change"] == pytest.approx(0.03) and first["leak-free change"] == pytest.approx(0.04)
    assert first["state"] == "raw succeeded / curated succeeded"
    assert np.isnan(table.iloc[1]["accuracy raw"]) and np.isnan(table.iloc[1]["macro-F1 curated"])
    assert study.study_csv(table).decode().splitlines()[0].startswith("model,sampling,accuracy raw,accuracy curated")


def test_estimated_run_time_from_finished_runs_else_the_reference_speed():
    config = TrainConfig(model="cnn", size="fast", epochs=None, sampling="ros", limit=None)
    seconds, basis = estimates.estimate_run_seconds(config)
    expected = DEFAULT_EPOCHS["fast"] * 50_505 / estimates.reference_images_per_second("fast", "cnn")
    assert seconds == pytest.approx(estimates.RUN_OVERHEAD_SECONDS + expected) and "no finished cnn fast run" in basis
    done = make_record(images_per_second=500.0)
    done.config.update(size="fast")
    seconds, basis = estimates.estimate_run_seconds(
        dataclasses.replace(config, sampling="none", epochs=2, limit=1000), [done])
    assert seconds == pytest.approx(estimates.RUN_OVERHEAD_SECONDS + 2 * 1000 / 500) and "1 finished run" in basis


def test_test_set_warnings_for_small_sets_and_different_test_images(tmp_path):
    big = make_record(run_id="big", test_images=3589)
    assert predictions.test_set_warnings([big]) == [] and predictions.test_set_note(big) == "3,589 PrivateTest images"
    small = make_record(run_id="small", test_images=120)
    assert "only 120 PrivateTest images" in predictions.test_set_warnings([small])[0]
    other = make_record(run_id="other", test_images=3500)
    assert any("different PrivateTest images" in warning for warning in predictions.test_set_warnings([big, other]))
    for name, ids in (("one", ["x", "y"]), ("two", ["x", "z"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "predictions.csv").write_text(
            "id,usage,label,predicted\n" + "".join(f"{i},PrivateTest,angry,angry\n" for i in ids))
    same_size = [make_record(run_id=name, out_dir=str(tmp_path / name), test_images=3589) for name in ("one", "two")]
    assert any("different PrivateTest images" in warning for warning in predictions.test_set_warnings(same_size))


def test_misclassified_cell_most_confident_first_and_worst_cell():
    import pandas as pd

    table = pd.DataFrame({"id": ["a", "b", "c", "d"], "usage": ["PrivateTest"] * 3 + ["PublicTest"],
                                "label": ["angry", "angry", "happy", "angry"],
                                "predicted": ["neutral", "neutral", "neutral", "neutral"],
                                "p_neutral": [0.4, 0.9, 0.8, 0.99]})
    assert predictions.misclassified(table, "angry", "neutral")["id"].tolist() == ["b", "a"]
    assert predictions.worst_cell(make_record().metrics) == ("angry", "neutral")


def test_a_mislabel_job_is_named_by_its_kind_and_is_not_a_training_run():
    """Issue 24: the Train page's table showed a cancelled suspected-mislabels job as a training run
    ("cancelled · cnn · 0 / 12"), and a finished one counted among the runs with scores; its kind is shown,
    and only training runs are runs."""
    from fer_core.mislabels.config import MislabelConfig

    job = RunRecord(**{**make_record("m", state="cancelled").__dict__, "kind": "mislabels",
                       "config": dataclasses.asdict(MislabelConfig()), "stage": "fold 1/3, epoch 2/12"})
    row = results.queue_table([job, make_record("t")]).set_index("run")
    assert row.loc["m", ["kind", "epoch", "eta", "stage"]].tolist() == [
        "suspected mislabels", "—", "—", "fold 1/3, epoch 2/12"]
    assert pd.isna(row.loc["m", "progress"])
    assert row.loc["t", ["kind", "epoch"]].tolist() == ["training", "0 / 5"]
    summary = RunRecord(**{**job.__dict__, "state": "succeeded", "metrics": {"flagged": 12, "seconds": 60.0}})
    assert [record.run_id for record in results.finished_with_metrics([summary, make_record("t")])] == ["t"]


def test_a_limited_run_on_a_whole_test_set_is_not_called_small():
    """Issue 24: `--limit` no longer shrinks the test splits, so a limited run scored on 3,589 PrivateTest
    images is not warned about as a small test set (a small count still is, whatever its cause)."""
    limited = make_record(run_id="limited", test_images=3589)
    limited = RunRecord(**{**limited.__dict__, "config": {**limited.config, "limit": 2000}})
    assert predictions.test_set_warnings([limited]) == []
    assert predictions.test_set_warnings([make_record(run_id="old", test_images=300)])
