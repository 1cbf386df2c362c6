"""AppTest for the Train and Results pages: guards, a launch click path, and two real tiny runs.

The finished runs are trained once per module (two 1-epoch tiny CNNs side by side on the synthetic
folder, about half a minute on a busy two-core machine) in their own workspace, and reused.
"""

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from synthetic import make_synthetic, write_folders
from test_pages import open_page, texts

from fer_core import jobs
from fer_core.labels import EMOTIONS
from fer_core.views import predictions
from fer_core.training.config import DEFAULT_EPOCHS
from fer_core.training.fit import TrainConfig

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 60
TRAIN, RESULTS = "pages/4_Train.py", "pages/5_Results.py"
TINY = TrainConfig(model="cnn", sampling="none", epochs=1, size="tiny", batch_size=16)
RUN_TIMEOUT = 240


def wait_until_finished(workspace, timeout=RUN_TIMEOUT) -> list[jobs.RunRecord]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = jobs.list_runs(workspace)
        if all(record.finished for record in records):
            return records
        time.sleep(1)
    raise AssertionError(f"runs did not finish within {timeout}s: {[r.state for r in jobs.list_runs(workspace)]}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data folder, workspace) holding two succeeded runs: curated (newest) and raw."""
    root = tmp_path_factory.mktemp("trained")
    data = write_folders(make_synthetic()[0], root / "fer")
    home = root / "workspace"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(jobs.MAX_RUNS_ENV, "2")
        jobs.submit(TrainConfig(**{**TINY.__dict__, "raw": True}), data, home)
        jobs.submit(TINY, data, home)
    records = wait_until_finished(home)
    assert [record.state for record in records] == ["succeeded", "succeeded"], [r.error for r in records]
    return data, home


def trained_app_home(app: AppTest) -> str:
    import os

    return os.environ["FER_AUDIT_HOME"]


@pytest.fixture
def trained_app(trained, monkeypatch):
    data, home = trained
    monkeypatch.setenv("FER_DATA", str(data))
    monkeypatch.setenv("FER_AUDIT_HOME", str(home))
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def test_train_without_data_shows_the_guard(app_without_data):
    app = open_page(app_without_data, TRAIN)
    assert "No data chosen yet" in texts(app)
    assert not app.get("form")


def test_results_without_runs_points_to_train(app):
    app = open_page(app, RESULTS)
    assert "No finished run yet" in texts(app)
    assert not app.get("plotly_chart")


def test_mislabel_jobs_show_their_kind_and_are_not_runs_with_results(app, workspace, synthetic_folder):
    """Issue 24: a cancelled suspected-mislabels job read "cancelled · cnn · 0 / 12" in the Train page's
    table, as a training run; a finished one was offered on Results as a run with scores."""
    from dataclasses import asdict

    from fer_core.jobs import records
    from fer_core.jobs.kinds import serialize_config
    from fer_core.mislabels.config import MislabelConfig

    config = serialize_config(MislabelConfig())
    records.insert_runs(workspace, [{"run_id": run_id, "kind": "mislabels", "backend": "local",
                                     "data_path": str(synthetic_folder), "config_json": config,
                                     "out_dir": str(workspace / "runs" / run_id)} for run_id in ("m1", "m2")])
    records.finish(workspace, "m1", jobs.CANCELLED)
    records.finish(workspace, "m2", jobs.SUCCEEDED, metrics={"flagged": 3, "settings": asdict(MislabelConfig())})
    app = open_page(app, TRAIN)
    queue = app.dataframe[0].value.set_index("run")
    assert queue.loc["m1", ["kind", "state", "epoch"]].tolist() == ["suspected mislabels", "cancelled", "—"]
    assert "See the results" not in [link.proto.label for link in app.get("page_link")]
    app = open_page(app, RESULTS)
    assert "No finished run yet" in texts(app)


def test_the_limit_field_says_it_limits_training_images_only(app):
    """Issue 24: "Limit (images, stratified)" also shrank the test splits; it limits the Training images and
    says that every run is scored on the whole test split."""
    app = open_page(app, TRAIN)
    limit = app.number_input(key="train_limit")
    assert "Training images" in limit.label and "whole PrivateTest" in limit.help


def test_train_page_defaults_to_the_fast_size_with_an_estimate_and_shows_variants_for_cnn_lstm(app):
    app = open_page(app, TRAIN)
    assert app.radio(key="train_size").value == "fast" and app.number_input(key="train_epochs").value is None
    assert app.selectbox(key="train_batch_size").value == 128
    assert "Estimated time:" in texts(app) and f"{DEFAULT_EPOCHS['fast']} for fast" in app.number_input(key="train_epochs").placeholder
    assert not [box for box in app.selectbox if box.key == "train_variant"]
    app.selectbox(key="train_model").set_value("cnn_lstm").run()
    assert app.selectbox(key="train_variant").options[:2] == ["bilstm_rows", "bilstm_rows_2layers"]
    assert "xception" in app.selectbox(key="train_model").options


def test_grid_mode_queues_one_experiment_of_every_cell(app, workspace):
    app = open_page(app, TRAIN)
    app.radio(key="train_mode").set_value("Grid (models × samplings × data)").run()
    app.multiselect(key="train_grid_models").set_value(["cnn", "xception"])
    app.multiselect(key="train_grid_samplings").set_value(["none", "ros"])
    app.multiselect(key="train_grid_data").set_value(["raw"])
    app.radio(key="train_size").set_value("tiny").run()
    assert "for 4 runs, one after another" in texts(app)
    app.button(key="train_launch").click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    records = jobs.list_runs(workspace)
    try:
        assert len(records) == 4 and len({record.experiment_id for record in records}) == 1
        assert sorted((r.config["model"], r.config["sampling"]) for r in records) == [
            ("cnn", "none"), ("cnn", "ros"), ("xception", "none"), ("xception", "ros")]
        assert all(record.config["raw"] and record.config["size"] == "tiny" for record in records)
    finally:
        for record in records:
            jobs.cancel(record.run_id, workspace)


def test_launch_from_the_train_page_records_a_run(app, workspace):
    app = open_page(app, TRAIN)
    assert "No runs yet" in texts(app)
    app.radio(key="train_size").set_value("tiny")
    app.number_input(key="train_epochs").set_value(1)
    app.selectbox(key="train_batch_size").set_value(16)
    app.radio(key="train_data").set_value("raw")
    app.button(key="train_launch").click().run()
    assert not app.exception, [exception.value for exception in app.exception]
    records = jobs.list_runs(workspace)
    try:
        assert len(records) == 1
        assert {key: records[0].config[key] for key in ("model", "size", "epochs", "batch_size", "raw")} == {
            "model": "cnn", "size": "tiny", "epochs": 1, "batch_size": 16, "raw": True}
        assert "queued" in texts(app)
        assert records[0].run_id in app.dataframe[0].value["run"].tolist()
    finally:
        jobs.cancel(records[0].run_id, workspace)  # do not train in the background of the other tests


def test_train_page_lists_finished_runs(trained_app):
    app = open_page(trained_app, TRAIN)
    queue = app.dataframe[0].value
    assert sorted(queue["run"]) == sorted(record.run_id for record in jobs.list_runs(trained_app_home(trained_app)))
    assert queue["state"].tolist() == ["succeeded", "succeeded"] and queue["progress"].tolist() == [100.0, 100.0]
    assert queue["epoch"].tolist() == ["1 / 1", "1 / 1"]
    assert not app.error


def test_results_shows_a_finished_runs_confusion_matrix_and_a_comparison(trained_app, trained):
    app = open_page(trained_app, RESULTS)
    assert not app.error, [error.value for error in app.error]
    runs, per_class, changes = (frame.value for frame in app.dataframe)  # runs, one run, comparison
    assert sorted(runs["data"]) == ["curated · 0 edits in effect", "raw"]
    charts = {chart.key: json.loads(chart.proto.spec) for chart in app.get("plotly_chart")}
    assert set(charts) == {"results_confusion", "results_curves", "results_before_confusion",
                           "results_after_confusion", "results_difference"}
    confusion = charts["results_confusion"]["data"][0]
    assert confusion["type"] == "heatmap" and confusion["x"] == list(EMOTIONS) and confusion["text"][0][0].endswith("%")
    assert per_class["emotion"].tolist()[0] == "angry" and len(per_class) == 7
    assert "recall_change" in changes.columns
    before, after = app.selectbox(key="results_before"), app.selectbox(key="results_after")
    assert before.value != after.value
    app.toggle(key="results_normalized").set_value(False).run()
    assert not app.exception
    counts = json.loads(next(c for c in app.get("plotly_chart") if c.key == "results_confusion").proto.spec)["data"][0]
    shown = jobs.list_runs(trained[1])[0].metrics  # the newest run is picked first
    assert sum(int(text) for row in counts["text"] for text in row) == shown["test_images"] == sum(map(sum, shown["confusion"]))
    assert len(app.get("download_button")) == 2


def test_results_shows_test_set_size_cell_images_and_greys_tiny_rows(trained_app, trained):
    app = open_page(trained_app, RESULTS)
    newest = jobs.list_runs(trained[1])[0]
    assert f"on {newest.metrics['test_images']:,} PrivateTest images" in texts(app)
    assert any("scored on only" in warning.value for warning in app.warning)  # synthetic test sets are tiny
    assert "macro-F1" in texts(app) and "%" in texts(app).split("macro-F1")[1][:12]  # one unit: percent
    difference = json.loads(next(c for c in app.get("plotly_chart") if c.key == "results_difference").proto.spec)
    heatmap = difference["data"][0]
    assert all(value is None for row in heatmap["z"] for value in row)  # every row under 30 images: greyed
    assert all(text.lstrip("+-").isdigit() for row in heatmap["text"] for text in row)  # counts in the cells
    app.selectbox(key="results_cell_true").set_value("angry")
    app.selectbox(key="results_cell_predicted").set_value("angry").run()
    assert not app.exception
    cell = predictions.misclassified(predictions.read_predictions(newest), "angry", "angry")
    assert f"{len(cell):,} PrivateTest images filed as angry and predicted angry" in texts(app)
    assert len(app.get("imgs")) == (1 if len(cell) else 0)


def test_the_estimate_counts_the_training_images_of_the_data_audited(app, synthetic_folder):
    """The Train page's estimate counted FER-2013's 28,709 Training images whatever the data; once the data's
    audit is in, it counts the data's own."""
    from fer_core.dataset.loading import load
    training = int((load(synthetic_folder).usages == "Training").sum())
    app = open_page(app, "pages/3_Review.py")  # waits for the audit of the data
    app = open_page(app, TRAIN)
    assert f"epochs of {training:,} training images" in texts(app)
    assert "28,709" not in texts(app)
