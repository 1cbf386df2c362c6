"""Job lifecycle with real worker processes training a tiny model on a small synthetic dataset."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from synthetic import make_synthetic, write_folders

from fer_core import jobs
from fer_core.training.device import ONEDNN_ENV, parse_switch
from fer_core.training.fit import TrainConfig

QUICK = TrainConfig(model="cnn", sampling="none", epochs=2, size="tiny", batch_size=16)
LONG = TrainConfig(model="cnn", sampling="none", epochs=500, size="tiny", batch_size=16, patience=1000)
TIMEOUT = 120


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return write_folders(make_synthetic(seed=2)[0], tmp_path_factory.mktemp("jobs_data"))


def raw_states(workspace) -> dict[str, str]:
    """Run states read straight from SQLite, as another program would."""
    with sqlite3.connect(workspace / "fer_audit.db") as connection:
        return dict(connection.execute("SELECT run_id, state FROM runs"))


def wait_for(condition, timeout=TIMEOUT, every=0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s")


def test_run_goes_queued_running_succeeded_and_survives_reopening(data_path, workspace):
    run_id = jobs.submit(QUICK, data_path, workspace)
    assert jobs.get_run(run_id, workspace).state in (jobs.QUEUED, jobs.RUNNING)
    record = wait_for(lambda: (r := jobs.get_run(run_id, workspace)).finished and r)
    assert record.state == jobs.SUCCEEDED, record.error
    assert [event["epoch"] for event in record.events] == [1, 2]
    assert record.metrics["model"] == "cnn" and len(record.metrics["confusion"]) == 7
    assert {"metrics.json", "history.json", "model.keras", "log.txt"} <= set(os.listdir(record.out_dir))
    # the worker set TensorFlow's CPU settings before TensorFlow started (oneDNN on unless the environment says
    # otherwise), and the run records them as TensorFlow itself reports them
    cpu, onednn = record.metrics["cpu"], parse_switch(os.environ.get(ONEDNN_ENV), True)
    assert cpu["onednn"] is onednn and cpu["intra_op_threads"] >= 1 and "cpu_flags" in cpu
    assert f"oneDNN {'on' if onednn else 'off'}" in Path(record.out_dir, "log.txt").read_text()
    # a new process opening the database sees the same record
    code = "import json, sys; from fer_core import jobs; print(json.dumps([r.state for r in jobs.list_runs(sys.argv[1])]))"
    result = subprocess.run([sys.executable, "-c", code, str(workspace)], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == [jobs.SUCCEEDED]


def test_second_run_waits_queued_then_starts_by_itself(data_path, workspace):
    first = jobs.submit(QUICK, data_path, workspace)
    second = jobs.submit(QUICK, data_path, workspace)
    assert raw_states(workspace)[second] == jobs.QUEUED
    # nobody calls jobs.* from here on: the first worker starts the second when it ends
    wait_for(lambda: set(raw_states(workspace).values()) == {jobs.SUCCEEDED})
    first_record, second_record = jobs.get_run(first, workspace), jobs.get_run(second, workspace)
    assert second_record.started_at >= first_record.finished_at


def test_failed_run_keeps_error_and_log(data_path, workspace, tmp_path):
    broken = tmp_path / "broken"
    (broken / "train" / "happy").mkdir(parents=True)
    (broken / "train" / "happy" / "x.png").write_bytes(b"not a png")
    run_id = jobs.submit(QUICK, broken, workspace)
    record = wait_for(lambda: (r := jobs.get_run(run_id, workspace)).finished and r)
    assert record.state == jobs.FAILED
    assert "empty dataset" in record.error
    assert "Traceback" in record.log_text()


def test_cancel_queued_and_running_runs(data_path, workspace):
    running = jobs.submit(LONG, data_path, workspace)
    queued = jobs.submit(QUICK, data_path, workspace)
    assert jobs.cancel(queued, workspace).state == jobs.CANCELLED
    record = wait_for(lambda: (r := jobs.get_run(running, workspace)).pid and r)
    assert jobs.cancel(running, workspace).state == jobs.CANCELLED
    wait_for(lambda: not jobs.process_alive(record.pid, None), timeout=30)
    assert raw_states(workspace) == {running: jobs.CANCELLED, queued: jobs.CANCELLED}


def test_worker_killed_with_sigkill_becomes_failed(data_path, workspace):
    run_id = jobs.submit(LONG, data_path, workspace)
    record = wait_for(lambda: (r := jobs.get_run(run_id, workspace)).pid and r)
    os.kill(record.pid, signal.SIGKILL)
    wait_for(lambda: not jobs.process_alive(record.pid, None), timeout=30)
    assert jobs.get_run(run_id, workspace).state == jobs.RUNNING  # a read changes nothing ...
    jobs.drain(workspace)  # ... the app's poll (or `jobs list`) notices the dead worker
    failed = jobs.get_run(run_id, workspace)
    assert failed.state == jobs.FAILED
    assert "killed or out of memory" in failed.error


def test_unknown_run_id_is_a_clear_error(workspace):
    with pytest.raises(ValueError, match="unknown run id 'nope'"):
        jobs.get_run("nope", workspace)


def test_parse_epoch_lines_reads_the_train_cli_output():
    import contextlib
    import io

    from fer_core.cli.train import print_epoch
    from fer_core.training.fit import EpochProgress

    buffer = io.StringIO()
    progress = EpochProgress(3, 10, 1.25, 0.5, 1.5, 0.4, 12.3)
    with contextlib.redirect_stdout(buffer):
        print_epoch(progress)
    (parsed,) = jobs.parse_epoch_lines("noise\n" + buffer.getvalue())
    assert (parsed.epoch, parsed.epochs) == (3, 10)
    assert parsed.val_accuracy == pytest.approx(0.4, abs=1e-4)


def test_jobs_cli_submit_list_show_cancel(data_path, workspace, capsys):
    from fer_core.cli import main

    assert main(["jobs", "submit", str(data_path), "--model", "cnn", "--sampling", "none", "--epochs", "500",
                 "--size", "tiny", "--workspace", str(workspace)]) == 0
    run_id = capsys.readouterr().out.strip()
    assert main(["jobs", "list", "--json", "--workspace", str(workspace)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [record["run_id"] for record in listed] == [run_id]
    assert listed[0]["config"]["model"] == "cnn"
    assert main(["jobs", "cancel", run_id, "--workspace", str(workspace)]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert main(["jobs", "show", run_id, "--workspace", str(workspace)]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert main(["jobs", "show", "nope", "--workspace", str(workspace)]) == 2
    assert "unknown run id 'nope'" in capsys.readouterr().err
    assert main(["jobs", "submit", str(data_path), "--model", "cnn", "--sampling", "bogus", "--epochs", "1",
                 "--workspace", str(workspace)]) == 2
    assert len(jobs.list_runs(workspace)) == 1


def test_run_outlives_the_process_that_submitted_it(data_path, workspace):
    """As when the Streamlit server that launched a run is stopped or restarted."""
    code = ("import sys; from fer_core import jobs; from fer_core.training.fit import TrainConfig; "
            "print(jobs.submit(TrainConfig(model='cnn', sampling='none', epochs=2, size='tiny', batch_size=16), "
            "sys.argv[1], sys.argv[2]), flush=True); import time; time.sleep(600)")
    submitter = subprocess.Popen([sys.executable, "-c", code, str(data_path), str(workspace)],
                                 stdout=subprocess.PIPE, text=True, start_new_session=True)
    run_id = submitter.stdout.readline().strip()
    os.killpg(submitter.pid, signal.SIGKILL)  # the submitting process and its group die at once
    submitter.wait()
    wait_for(lambda: raw_states(workspace)[run_id] in jobs.FINISHED)
    assert jobs.get_run(run_id, workspace).state == jobs.SUCCEEDED


def test_listing_runs_starts_nothing(data_path, workspace, capsys):
    from fer_core.cli import main
    from fer_core.jobs import records

    run_id = "20260101-000000-queued"
    records.insert_runs(workspace.resolve(), [{
        "run_id": run_id, "kind": "train", "backend": jobs.LOCAL, "data_path": str(data_path),
        "config_json": QUICK.to_json(), "out_dir": str(workspace / "runs" / run_id)}])
    (workspace / "runs" / run_id).mkdir(parents=True)
    assert [record.state for record in jobs.list_runs(workspace)] == [jobs.QUEUED]
    assert jobs.get_run(run_id, workspace).pid is None
    assert main(["jobs", "list", "--workspace", str(workspace)]) == 0
    assert main(["jobs", "show", run_id, "--workspace", str(workspace)]) == 0
    capsys.readouterr()
    time.sleep(1)
    record = jobs.get_run(run_id, workspace)
    assert (record.state, record.pid, record.started_at) == (jobs.QUEUED, None, None)
    assert not (workspace / "runs" / run_id / "log.txt").exists()  # no worker ever wrote there
    assert jobs.drain(workspace) == [run_id]  # the explicit call does start it
    finished = wait_for(lambda: (r := jobs.get_run(run_id, workspace)).finished and r)
    assert finished.state == jobs.SUCCEEDED, finished.error


def test_every_config_field_reaches_the_local_worker(data_path, workspace):
    from test_train_config import non_default_config

    config = non_default_config(epochs=1, limit=40, batch_size=8, sampling="ros")
    run_id = jobs.submit(config, data_path, workspace)
    record = wait_for(lambda: (r := jobs.get_run(run_id, workspace)).finished and r)
    assert record.state == jobs.SUCCEEDED, record.error
    assert TrainConfig.from_dict(record.config) == config
    # what the worker actually trained with, as it wrote it into metrics.json
    assert {name: record.metrics[name] for name in config.to_dict()} == config.to_dict()


def test_a_worker_that_cannot_start_keeps_the_whole_last_line_of_its_error(workspace, monkeypatch):
    from fer_core.jobs import local, records

    message = "RuntimeError: " + "could not start because the interpreter is misconfigured " * 12
    monkeypatch.setattr(local.sys, "executable", sys.executable)
    home = workspace.resolve()
    records.insert_runs(home, [{"run_id": "r1", "kind": "train", "backend": jobs.LOCAL, "data_path": "/data",
                                "config_json": QUICK.to_json(), "out_dir": str(home / "runs" / "r1")}])
    failing = subprocess.CompletedProcess([], 1, stdout="", stderr=f"Traceback (most recent call last):\n  ...\n{message}\n")
    monkeypatch.setattr(local.subprocess, "run", lambda *args, **kwargs: failing)
    local.launch_worker(home, "r1")
    record = jobs.get_run("r1", workspace)
    assert record.state == jobs.FAILED
    assert record.error == f"could not start the worker: {message.strip()}"


def test_a_sweep_queues_one_experiment_whose_grid_has_every_cell(data_path, workspace, capsys, monkeypatch):
    from fer_core.cli import main
    from fer_core.jobs import experiments

    monkeypatch.setenv(jobs.MAX_RUNS_ENV, "2")
    assert main(["jobs", "sweep", str(data_path), "--models", "cnn", "--samplings", "none,ros", "--data", "raw,curated",
                 "--epochs", "1", "--size", "tiny", "--batch-size", "16", "--limit", "40", "--learning-rate", "0.002",
                 "--workspace", str(workspace)]) == 0
    experiment_id, *run_ids = capsys.readouterr().out.split()
    assert experiment_id.startswith("exp-") and len(run_ids) == 4
    wait_for(lambda: all(jobs.get_run(run_id, workspace).finished for run_id in run_ids), timeout=400)

    assert main(["jobs", "grid", experiment_id, "--json", "--workspace", str(workspace)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(list(row) == list(experiments.GRID_COLUMNS) for row in rows)
    assert [(row["sampling"], row["data"]) for row in rows] == [("none", "raw"), ("none", "curated"),
                                                                ("ros", "raw"), ("ros", "curated")]
    for row in rows:
        assert row["state"] == jobs.SUCCEEDED and row["model"] == "cnn"
        assert all(0 <= row[name] <= 1 for name in ("accuracy", "macro_f1", "leak_free_accuracy"))
    swept = jobs.get_run(rows[1]["run_id"], workspace)
    submitted = TrainConfig(model="cnn", sampling="none", epochs=1, size="tiny", batch_size=16, limit=40,
                            learning_rate=0.002, raw=False)
    assert TrainConfig.from_dict(swept.config) == submitted
    given = {name: value for name, value in submitted.to_dict().items() if value is not None}  # None: resolved
    assert {name: swept.metrics[name] for name in given} == given

    table = experiments.grid_table(jobs.list_runs(workspace, experiment_id=experiment_id))
    assert table.shape == (1, 4) and not table.isna().any().any()
    assert main(["jobs", "grid", experiment_id, "--workspace", str(workspace)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 5  # header + four runs
    assert main(["jobs", "grid", "exp-nope", "--workspace", str(workspace)]) == 2
    assert "unknown experiment id 'exp-nope'" in capsys.readouterr().err


def test_a_sweep_with_one_bad_value_queues_nothing(data_path, workspace, capsys):
    from fer_core.cli import main

    assert main(["jobs", "sweep", str(data_path), "--models", "cnn,resnet", "--samplings", "none", "--epochs", "1",
                 "--workspace", str(workspace)]) == 2
    assert "unknown model 'resnet'" in capsys.readouterr().err
    assert main(["jobs", "sweep", str(data_path), "--models", "cnn", "--samplings", "none", "--data", "raw,cooked",
                 "--epochs", "1", "--workspace", str(workspace)]) == 2
    assert "unknown data variant 'cooked'" in capsys.readouterr().err
    assert jobs.list_runs(workspace) == []


@dataclass(frozen=True)
class EchoConfig:
    """A second job kind's config, for the registry test."""

    word: str = "hello"
    repeat: int = 1


def echo_entry(data_path, config, context):
    context.set_stage("echoing")
    return {"echo": config.word * config.repeat, "data": data_path}


def test_a_job_kind_is_one_registration(tmp_path, monkeypatch, capsys):
    from fer_core.jobs import kinds, ray_runner

    monkeypatch.setitem(kinds.JOB_KINDS, "echo", kinds.JobKind("echo", "test_jobs:EchoConfig", "test_jobs:echo_entry"))
    assert kinds.kind_of_config(EchoConfig()).name == "echo"
    out = tmp_path / "out"
    assert ray_runner.run_entry("echo", '{"word": "ab", "repeat": 2}', "/data", str(out), str(tmp_path)) == 0
    assert json.loads((out / "metrics.json").read_text()) == {"echo": "abab", "data": "/data"}
    assert "stage: echoing" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown EchoConfig field.*'colour'"):
        kinds.job_kind("echo").read_config('{"colour": 1}')
    with pytest.raises(ValueError, match="unknown job kind 'nope'; expected one of train"):
        kinds.job_kind("nope")
