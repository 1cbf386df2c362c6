"""AppTest for curated vs raw (issue 23): the Train page's launcher (device, hours of a full model on a CPU,
the queued experiment followed live) and the Results page's Compare view (headline interval, verdict, recall
bars, arms, the circular figure under its warning; progress while running; failed runs named).

No model is trained: workers are not started (the launch is recorded, the runs stay queued) and the
finished comparison is recorded with a compare.json from the real statistics on planted predictions.
"""

import time

import pytest
from comparisons import record_comparison
from test_pages import open_page, texts

from fer_app import compare as compare_glue
from fer_core import jobs
from fer_core.jobs import records
from fer_core.training import device, estimates
from fer_core.training.config import TrainConfig

TRAIN, RESULTS = "pages/4_Train.py", "pages/5_Results.py"


@pytest.fixture
def no_workers(monkeypatch):
    """Queued runs stay queued (a claimed one stays 'running' within the launch grace): nothing trains."""
    monkeypatch.setattr(jobs.scheduler.local, "launch_worker", lambda home, run_id: None)


@pytest.fixture
def cpu_only(monkeypatch):
    """The device probe answers "CPU" at once, in a fresh probe (no TensorFlow started by the test)."""
    monkeypatch.setattr(device, "probe_training_device", lambda: "CPU")
    compare_glue._device_probe.clear()
    yield
    compare_glue._device_probe.clear()


def run_until(app, text: str, tries: int = 20):
    """Rerun the page until `text` shows (the device probe answers from a background thread)."""
    for _ in range(tries):
        if text in texts(app):
            return app
        time.sleep(0.1)
        app.run()
    raise AssertionError(f"{text!r} never showed: {texts(app)}")


def table_with(app, column: str):
    """The one table on the page with `column` (AppTest does not expose a dataframe's key)."""
    tables = [frame.value for frame in app.dataframe if column in frame.value.columns]
    assert len(tables) == 1, [list(frame.value.columns) for frame in app.dataframe]
    return tables[0]


def test_the_launcher_queues_raw_and_curated_per_seed_as_one_experiment_and_follows_it(app, workspace, no_workers,
                                                                                        cpu_only):
    app = open_page(app, TRAIN)
    app.radio(key="train_mode").set_value("Curated vs raw, N seeds").run()
    assert app.number_input(key="train_seeds").value == 3
    app.number_input(key="train_seeds").set_value(2)
    app.radio(key="train_size").set_value("tiny")
    app.number_input(key="train_seed").set_value(5).run()
    assert "for 4 runs, one after another" in texts(app)
    app.button(key="train_launch").click().run()
    assert not app.exception, [exception.value for exception in app.exception]

    runs = jobs.list_runs(workspace)
    assert len(runs) == 4 and len({run.experiment_id for run in runs}) == 1
    assert sorted((run.config["raw"], run.config["seed"]) for run in runs) == [(False, 5), (False, 6), (True, 5),
                                                                              (True, 6)]
    assert all(run.config["size"] == "tiny" and run.config["model"] == "cnn" for run in runs)
    experiment_id = runs[0].experiment_id
    shown = texts(app)
    assert f"Experiment {experiment_id} queued: 4 runs (raw and curated × 2 seeds)" in shown
    assert f"{experiment_id}** · cnn · none · size tiny" in shown and "0 of 4 runs finished" in shown
    progress = table_with(app, "arm")
    assert list(progress["arm"]) == ["raw", "raw", "curated", "curated"] and list(progress["seed"]) == [5, 6, 5, 6]


def test_the_device_shows_and_a_full_model_on_a_cpu_says_its_hours_before_launching(app, workspace, cpu_only):
    """The hours are the estimate × runs (here 6: raw and curated × 3 seeds), said before anything is queued."""
    app = open_page(app, TRAIN)
    app.radio(key="train_mode").set_value("Curated vs raw, N seeds").run()
    app = run_until(app, "Runs on this machine train on: **CPU**")
    assert not app.warning
    app.radio(key="train_size").set_value("full").run()
    seconds = 6 * estimates.estimate_run_seconds(TrainConfig(size="full"))[0]
    assert f"Size full on a CPU: about **{seconds / 3600:,.1f} hours**" in texts(app)
    assert jobs.list_runs(workspace) == []


def test_the_compare_view_opens_with_the_interval_and_the_verdict(app, workspace, synthetic_folder):
    experiment_id, comparison = record_comparison(synthetic_folder.resolve(), workspace)
    app = open_page(app, RESULTS)
    shown = texts(app)
    difference = comparison["difference"]["leak_free_accuracy"]
    low, high = (f"{value * 100:+.1f}".replace("-", "−") for value in (difference["low"], difference["high"]))
    assert f"points [{low}, {high}] (95 %, paired over 3 seeds)" in shown
    assert "Test-image bootstrap: [" in shown and "2,000 resamples" in shown
    assert f"Verdict: {comparison['verdict']}" in shown and comparison["verdict"].startswith("curation gained")
    assert app.selectbox(key="results_comparison").value == experiment_id
    arms = table_with(app, "score")
    assert list(arms["score"]) == ["accuracy", "leak-free accuracy", "macro-F1"]
    assert arms["raw"].str.fullmatch(r"\d+\.\d%\u00a0±\u00a0\d+\.\d").all()  # never broken across lines
    figure = [chart for chart in app.get("plotly_chart") if "Recall per emotion" in chart.proto.spec]
    assert len(figure) == 1
    circular = [expander for expander in app.expander if "NOT A VALID MEASURE" in expander.label]
    assert len(circular) == 1 and "curated accuracy 71.2 % if the 57 test labels" in \
        circular[0].warning[0].value.replace("\\", "")


def test_a_running_comparison_shows_progress_and_a_failed_run_is_named(app, workspace, synthetic_folder,
                                                                       no_workers):
    running, _ = record_comparison(synthetic_folder.resolve(), workspace, seeds=2, default_state=records.QUEUED)
    app = open_page(app, RESULTS)
    assert "0 of 4 runs finished · 4 queued" in texts(app) or "0 of 4 runs finished · 1 running · 3 queued" in \
        texts(app)
    assert not [chart for chart in app.get("plotly_chart") if "Recall per emotion" in chart.proto.spec]
    for run in jobs.list_runs(workspace, experiment_id=running):
        jobs.cancel(run.run_id, workspace)

    failed, _ = record_comparison(synthetic_folder.resolve(), workspace, seeds=2,
                                  end={(False, 1): (records.FAILED, "out of memory")})
    app.run()
    app.selectbox(key="results_comparison").set_value(failed).run()
    shown = texts(app)
    assert "(curated, seed 1) failed: out of memory" in shown
    assert "No comparison: it needs every run of both arms to succeed" in shown
