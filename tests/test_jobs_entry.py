"""`python -m fer_core.jobs` (the entry point a user can rerun by hand) and how a background run ends when
something other than its own code stops it (issue 22): bad input is one line and exit 2 with nothing run;
a run that died of a full disk or diverged says so in its failure reason."""

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from synthetic import make_synthetic, write_folders

from fer_core import jobs
from fer_core.files import disk_full_message
from fer_core.jobs import kinds, local, records
from fer_core.jobs.__main__ import main
from fer_core.training.config import TrainConfig

QUICK = TrainConfig(model="cnn", sampling="none", epochs=2, size="tiny", batch_size=16)


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return write_folders(make_synthetic(seed=2)[0], tmp_path_factory.mktemp("jobs_entry_data"))


def run_options(workspace, out, kind="train", config_json=None):
    config_json = QUICK.to_json() if config_json is None else config_json
    return ["run", "--kind", kind, "--config-json", config_json, "--data", "/no/data", "--out", str(out),
            "--workspace", str(workspace)]


@pytest.mark.parametrize("change, message", [
    (dict(kind="os:system"), "unknown job kind 'os:system'; expected one of train, mislabels"),
    (dict(config_json="{nope"), "TrainConfig JSON is not valid JSON (Expecting property name enclosed in double"),
    (dict(config_json='{"colour": 1}'), "unknown TrainConfig field(s) 'colour'; expected some of model, sampling"),
    (dict(config_json='{"epochs": "1"}'), "epochs must be int or null, got '1'"),
    (dict(kind="mislabels", config_json='{"folds": 1}'), "folds must be an integer 2..20, got 1"),
])
def test_run_with_bad_input_is_one_line_and_runs_nothing(workspace, tmp_path, capsys, change, message):
    """Guards: each of these ended in a traceback (nothing ran, but a traceback is not an answer)."""
    out = tmp_path / "out"
    assert main(run_options(workspace, out, **change)) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {message}") and captured.err.count("\n") == 1, captured.err
    assert captured.out == "" and not out.exists()


@pytest.mark.parametrize("action", ["work", "launch"])
def test_work_or_launch_of_an_unknown_run_is_one_line_and_starts_nothing(workspace, capsys, action):
    """Guards: `work nonexistent` ended in a traceback; `launch nonexistent` too, after trying to open its log."""
    assert main([action, "nonexistent", "--workspace", str(workspace)]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: unknown run id 'nonexistent' (see `python -m fer_core jobs list`)\n"
    assert captured.out == "" and not (workspace / "runs").exists()


def test_work_in_a_workspace_that_is_not_there_creates_nothing(tmp_path, capsys):
    """Guards: a mistyped --workspace was created (an empty folder) before the run id was looked up."""
    missing = tmp_path / "no_such_workspace"
    assert main(["work", "r1", "--workspace", str(missing)]) == 2
    expected = f"error: --workspace {missing} is not a folder (a run's workspace holds its record)\n"
    assert capsys.readouterr().err == expected
    assert not missing.exists()


def test_the_module_entry_point_prints_one_line_and_exits_2(workspace, tmp_path):
    """Guards: `python -m fer_core.jobs run --kind os:system ...` printed a traceback (exit 1)."""
    options = run_options(workspace, tmp_path / "out", "os:system")
    result = subprocess.run([sys.executable, "-m", "fer_core.jobs", *options], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr == "error: unknown job kind 'os:system'; expected one of train, mislabels\n"


# ---------------------------------------------------------------------------------------------
# A full disk, a diverged run: the failure reason says which


@dataclass(frozen=True)
class NoConfig:
    """The config of the test kinds below: nothing to set."""


def filling_entry(data_path, config, context):
    raise ValueError(disk_full_message(context.out_dir / "model.keras", "No space left on device"))


def running_run(home, kind="train", config_json=None) -> str:
    """A run marked running (as `drain` leaves it for its worker), with its folder."""
    config_json = QUICK.to_json() if config_json is None else config_json
    records.insert_runs(home, [{"run_id": "r1", "kind": kind, "backend": jobs.LOCAL, "data_path": "/data",
                                "config_json": config_json, "out_dir": str(home / "runs" / "r1")}])
    (home / "runs" / "r1").mkdir(parents=True)
    assert records.claim_next_queued(home, 1) == "r1"
    return "r1"


def ended_process() -> int:
    """The pid of a process that has ended (a worker that is gone)."""
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(process.stdout)


def test_a_worker_whose_database_disk_is_full_leaves_the_reason_for_the_next_reconcile(workspace, monkeypatch,
                                                                                        capsys):
    """Guards: a worker that could not record its end (the database's disk full) died with a traceback, and
    the run was then failed as "killed or out of memory". Now it says why as its log's last line, and the
    reconcile reads the full disk from there."""
    home = workspace.resolve()
    monkeypatch.setitem(kinds.JOB_KINDS, "filling", kinds.JobKind("filling", "test_jobs_entry:NoConfig",
                                                                  "test_jobs_entry:filling_entry"))
    run_id = running_run(home, "filling", "{}")
    database_full = disk_full_message(home / "fer_audit.db", "database or disk is full")

    def refused(*args, **kwargs):
        raise ValueError(database_full)

    with monkeypatch.context() as patch:
        patch.setattr(records, "finish", refused)
        assert local.work(run_id, home) == 1
    log = capsys.readouterr().out
    assert log.strip().splitlines()[-1] == f"could not record the end of this run (failed): {database_full}"
    (home / "runs" / run_id / jobs.LOG_NAME).write_text(log)  # where the launcher sends the worker's output
    records.update_run(home, run_id, pid=ended_process())

    jobs.reconcile(home)
    record = jobs.get_run(run_id, home)
    assert record.state == jobs.FAILED
    assert record.error.startswith(f"the worker process (pid {record.pid}) ended without recording a result: the disk "
                                   f"was full (could not record the end of this run (failed): {database_full})")
    assert "killed or out of memory" not in record.error


def test_a_dead_worker_on_a_disk_without_space_is_failed_as_disk_full(workspace, monkeypatch):
    """Guards: a worker that died while its disk was full (its log could not even take the error) was failed
    as "killed or out of memory"."""
    home = workspace.resolve()
    run_id = running_run(home)
    records.update_run(home, run_id, pid=ended_process())
    monkeypatch.setattr("shutil.disk_usage", lambda path: SimpleNamespace(total=1 << 30, used=1 << 30, free=0))
    jobs.reconcile(home)
    record = jobs.get_run(run_id, home)
    assert record.state == jobs.FAILED
    assert record.error.startswith(f"the worker process (pid {record.pid}) ended without recording a result: the disk "
                                   f"holding {home / 'runs' / run_id} is full (0 bytes free); free some space")


def test_a_diverged_background_run_is_failed_with_the_reason(data_path, workspace):
    """Guards: a run whose loss was NaN every epoch (learning rate 1e308) was recorded as succeeded, with metrics."""
    diverging = TrainConfig(model="cnn", sampling="none", epochs=2, size="tiny", batch_size=16, learning_rate=1e308)
    run_id = jobs.submit(diverging, data_path, workspace)
    deadline = time.monotonic() + 120
    while not (record := jobs.get_run(run_id, workspace)).finished and time.monotonic() < deadline:
        time.sleep(0.3)
    assert record.state == jobs.FAILED, record.metrics and json.dumps(record.metrics)[:200]
    assert record.error.startswith("ValueError: training diverged: the loss became")
    assert record.metrics is None and not (workspace / "runs" / run_id / "metrics.json").exists()
