"""Background training runs: records and per-epoch progress in SQLite, each run in its own process.

Local backend (default): a run is a detached OS process (`python -m fer_core.jobs work RUN_ID`)
in its own session, so it outlives a browser reload and a restart of the Streamlit server. It
writes an event after every epoch and its artifacts to `<workspace>/runs/<run_id>/`. At most
`max_concurrent_runs()` run at once ($FER_AUDIT_MAX_RUNS, default 1); the rest wait queued and
are started in order by whichever process notices free capacity: `submit`, any read
(`list_runs`, `get_run`), and every worker as it finishes — so a queue drains with nobody
watching. A running record whose process is gone is marked failed on the next read.

Ray backend: with $FER_AUDIT_RAY_ADDRESS set, a run is submitted to that Ray cluster through
the Jobs API with the `train` CLI as its entrypoint; state, progress and logs come from Ray.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .edits import connect_database
from .train_config import EpochProgress, TrainConfig, format_epoch_line, parse_epoch_lines
from .workspace import resolve_workspace

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
LOCAL, RAY = "local", "ray"
RAY_ADDRESS_ENV = "FER_AUDIT_RAY_ADDRESS"
MAX_RUNS_ENV = "FER_AUDIT_MAX_RUNS"
# A run is marked running just before its process starts; give the launch this long to record a pid.
LAUNCH_GRACE_SECONDS = 30.0
LOG_NAME = "log.txt"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT,
    state        TEXT NOT NULL,
    backend      TEXT NOT NULL,
    data_path    TEXT NOT NULL,
    config_json  TEXT NOT NULL,
    out_dir      TEXT NOT NULL,
    pid          INTEGER,
    pid_started  REAL,
    external_id  TEXT,
    stage        TEXT,
    error        TEXT,
    metrics_json TEXT
);
CREATE TABLE IF NOT EXISTS run_events (
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    epoch        INTEGER NOT NULL,
    epochs       INTEGER NOT NULL,
    loss         REAL,
    accuracy     REAL,
    val_loss     REAL,
    val_accuracy REAL,
    seconds      REAL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
"""


@dataclass(frozen=True)
class RunRecord:
    """One training run as the database knows it, with its latest progress."""

    run_id: str
    state: str
    backend: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    data_path: str
    config: dict
    out_dir: str
    pid: int | None
    external_id: str | None
    stage: str | None
    error: str | None
    metrics: dict | None
    events: list[dict] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def log_text(self, max_chars: int = 20_000) -> str:
        """The tail of the run's log (worker output, or Ray's job logs copied there)."""
        path = Path(self.out_dir) / LOG_NAME
        if not path.exists():
            return ""
        text = path.read_text(errors="replace")
        return text[-max_chars:]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def _connect(workspace) -> Iterator[sqlite3.Connection]:
    """The workspace database (checked to be FER Audit's), with the run tables; closed on exit."""
    connection = connect_database(workspace)
    try:
        connection.executescript(SCHEMA)
        yield connection
    finally:
        connection.close()


def max_concurrent_runs() -> int:
    value = os.environ.get(MAX_RUNS_ENV, "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"${MAX_RUNS_ENV}={value!r}: expected a positive integer")
    return int(value)


def selected_backend() -> str:
    return RAY if os.environ.get(RAY_ADDRESS_ENV) else LOCAL


# ---------------------------------------------------------------------------------------------
# Public API


def submit(config: TrainConfig, data_path: str | os.PathLike, workspace=None) -> str:
    """Queue a training run and start it when there is capacity; returns the run id at once."""
    data = Path(data_path)
    if not data.exists():
        raise ValueError(f"no such file or folder: {data}")
    home = resolve_workspace(workspace).resolve()
    run_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    out_dir = home / "runs" / run_id
    out_dir.mkdir(parents=True)
    backend = selected_backend()
    with _connect(home) as connection:
        connection.execute(
            "INSERT INTO runs (run_id, created_at, state, backend, data_path, config_json, out_dir) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, _now(), QUEUED, backend, str(data.resolve()), config.to_json(), str(out_dir)))
    if backend == RAY:
        _ray_submit(home, run_id)
    else:
        start_queued_runs(home)
    return run_id


def list_runs(workspace=None) -> list[RunRecord]:
    """Every run, newest first, after bringing states up to date (dead workers, queue, Ray)."""
    home = resolve_workspace(workspace).resolve()
    refresh(home)
    with _connect(home) as connection:
        rows = connection.execute("SELECT * FROM runs ORDER BY created_at DESC, run_id DESC").fetchall()
        columns = [description[0] for description in connection.execute("SELECT * FROM runs LIMIT 0").description]
        events = _events_by_run(connection)
    return [_record(dict(zip(columns, row)), events.get(row[0], [])) for row in rows]


def get_run(run_id: str, workspace=None) -> RunRecord:
    """One run; ValueError naming the id when there is no such run."""
    for record in list_runs(workspace):
        if record.run_id == run_id:
            return record
    raise ValueError(f"unknown run id {run_id!r} (see `python -m fer_core jobs list`)")


def cancel(run_id: str, workspace=None) -> RunRecord:
    """Stop a queued or running run and mark it cancelled; a finished run is left as it is."""
    home = resolve_workspace(workspace).resolve()
    record = get_run(run_id, home)
    if record.finished:
        return record
    if record.backend == RAY and record.external_id:
        _ray_client().stop_job(record.external_id)
    elif record.state == RUNNING and record.pid and _process_alive(record.pid, None):
        try:
            os.killpg(record.pid, signal.SIGTERM)  # the worker leads its own session/process group
        except ProcessLookupError:
            pass
    with _connect(home) as connection:
        connection.execute("UPDATE runs SET state = ?, finished_at = ?, error = NULL WHERE run_id = ? AND state IN (?, ?)",
                           (CANCELLED, _now(), run_id, QUEUED, RUNNING))
    start_queued_runs(home)
    return get_run(run_id, home)


def refresh(workspace=None) -> None:
    """Mark runs whose worker died as failed, pull Ray states, and start queued runs."""
    home = resolve_workspace(workspace).resolve()
    with _connect(home) as connection:
        running = connection.execute(
            "SELECT run_id, backend, pid, pid_started, started_at, out_dir, external_id FROM runs WHERE state = ?",
            (RUNNING,)).fetchall()
        queued_ray = connection.execute("SELECT run_id FROM runs WHERE state = ? AND backend = ?",
                                        (QUEUED, RAY)).fetchall()
    for run_id, backend, pid, pid_started, started_at, out_dir, _ in running:
        if backend == LOCAL and not _process_alive(pid, pid_started) and not _in_launch_grace(pid, started_at):
            _mark_failed(home, run_id, _death_reason(pid, Path(out_dir)))
    for run_id in [row[0] for row in running if row[1] == RAY] + [row[0] for row in queued_ray]:
        _ray_refresh(home, run_id)
    start_queued_runs(home)


def start_queued_runs(workspace=None) -> list[str]:
    """Start the oldest queued local runs while fewer than the limit are running; returns those started."""
    home = resolve_workspace(workspace).resolve()
    started = []
    while True:
        with _connect(home) as connection:
            connection.execute("BEGIN IMMEDIATE")  # one claimant at a time across processes
            try:
                running = connection.execute("SELECT COUNT(*) FROM runs WHERE state = ? AND backend = ?",
                                             (RUNNING, LOCAL)).fetchone()[0]
                next_run = None
                if running < max_concurrent_runs():
                    next_run = connection.execute(
                        "SELECT run_id FROM runs WHERE state = ? AND backend = ? ORDER BY created_at, run_id LIMIT 1",
                        (QUEUED, LOCAL)).fetchone()
                if next_run:
                    connection.execute("UPDATE runs SET state = ?, started_at = ? WHERE run_id = ?",
                                       (RUNNING, _now(), next_run[0]))
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        if not next_run:
            return started
        _launch_worker(home, next_run[0])
        started.append(next_run[0])


# ---------------------------------------------------------------------------------------------
# Local worker


def _launch_worker(home: Path, run_id: str) -> None:
    """Start `python -m fer_core.jobs work RUN_ID` detached, through a short-lived launcher.

    The launcher exits at once, so the worker is adopted by init: it is nobody's zombie, and it
    keeps running when the process that submitted it (a Streamlit server, a CLI) goes away.
    """
    out_dir = home / "runs" / run_id
    launcher = [sys.executable, "-m", "fer_core.jobs", "launch", run_id, "--workspace", str(home)]
    result = subprocess.run(launcher, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if result.returncode != 0:
        _mark_failed(home, run_id, f"could not start the worker: {result.stderr.strip()[-500:]}")
        return
    pid = int(result.stdout.strip())
    with _connect(home) as connection:
        connection.execute("UPDATE runs SET pid = ?, pid_started = ? WHERE run_id = ?",
                           (pid, _process_start_time(pid), run_id))
    (out_dir / "pid").write_text(str(pid))


def _spawn_detached(run_id: str, home: Path) -> int:
    out_dir = home / "runs" / run_id
    log = open(out_dir / LOG_NAME, "ab")
    process = subprocess.Popen([sys.executable, "-m", "fer_core.jobs", "work", run_id, "--workspace", str(home)],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True, cwd=Path(__file__).resolve().parents[1])
    return process.pid


def work(run_id: str, workspace=None) -> int:
    """The worker: train the run's config, recording each epoch; then start the next queued run."""
    from .dataset import load
    from .training import train_and_evaluate

    home = resolve_workspace(workspace).resolve()
    with _connect(home) as connection:
        row = connection.execute("SELECT data_path, config_json, out_dir FROM runs WHERE run_id = ?",
                                 (run_id,)).fetchone()
    if row is None:
        raise ValueError(f"unknown run id {run_id!r}")
    data_path, config_json, out_dir = row
    signal.signal(signal.SIGTERM, _raise_cancelled)
    try:
        _set_stage(home, run_id, "loading data")
        config = TrainConfig.from_json(config_json)
        print(f"run {run_id}: {config}", flush=True)
        dataset = load(data_path, workspace=home)
        _set_stage(home, run_id, "preparing the model (first epoch includes compilation)")
        metrics = train_and_evaluate(dataset, config, out_dir, on_epoch=lambda p: _record_epoch(home, run_id, p),
                                     workspace=home)
        _finish(home, run_id, SUCCEEDED, metrics=metrics)
        code = 0
    except RunCancelled:
        print("cancelled", flush=True)
        _finish(home, run_id, CANCELLED)
        code = 0
    except BaseException as error:  # a failed run keeps its error; the traceback goes to its log
        traceback.print_exc()
        _finish(home, run_id, FAILED, error=f"{type(error).__name__}: {error}")
        code = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    start_queued_runs(home)
    return code


class RunCancelled(Exception):
    """Raised in the worker by SIGTERM (cancel), so training unwinds and the run is recorded."""


def _raise_cancelled(signum, frame) -> None:
    raise RunCancelled()


def _set_stage(home: Path, run_id: str, stage: str) -> None:
    """What the worker is doing now, for the Train page before the first epoch ends."""
    with _connect(home) as connection:
        connection.execute("UPDATE runs SET stage = ? WHERE run_id = ?", (stage, run_id))


def _record_epoch(home: Path, run_id: str, progress: EpochProgress) -> None:
    _insert_event(home, run_id, progress)
    _set_stage(home, run_id, f"training: epoch {progress.epoch}/{progress.epochs} done")
    print(format_epoch_line(progress), flush=True)


def _finish(home: Path, run_id: str, state: str, metrics: dict | None = None, error: str | None = None) -> None:
    """Record the end of a run, unless it already ended (a cancel wins over a late success)."""
    with _connect(home) as connection:
        connection.execute(
            "UPDATE runs SET state = ?, finished_at = ?, error = ?, metrics_json = ? WHERE run_id = ? AND state IN (?, ?)",
            (state, _now(), error, json.dumps(metrics) if metrics else None, run_id, QUEUED, RUNNING))


def _mark_failed(home: Path, run_id: str, reason: str) -> None:
    _finish(home, run_id, FAILED, error=reason)


def _process_start_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _process_alive(pid: int | None, started: float | None) -> bool:
    """Whether `pid` is still our worker: running, not a zombie, and not a reused pid."""
    import psutil

    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(process.create_time() - started) < 1.0
    except psutil.Error:
        return False


def _in_launch_grace(pid: int | None, started_at: str | None) -> bool:
    if pid or not started_at:
        return False
    return (datetime.now(timezone.utc) - datetime.fromisoformat(started_at)).total_seconds() < LAUNCH_GRACE_SECONDS


def _death_reason(pid: int | None, out_dir: Path) -> str:
    log = (out_dir / LOG_NAME).read_text(errors="replace").strip().splitlines() if (out_dir / LOG_NAME).exists() else []
    tail = " | ".join(log[-3:]) if log else "no output"
    return (f"the worker process (pid {pid}) ended without recording a result — killed or out of memory; "
            f"last log lines: {tail}")


# ---------------------------------------------------------------------------------------------
# Ray backend


def _ray_client():
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(os.environ[RAY_ADDRESS_ENV])


def _train_command(data_path: str, config: dict, out_dir: str, home: Path) -> list[str]:
    """The `train` CLI for a config: the Ray entrypoint (and what a user can rerun by hand)."""
    command = [sys.executable, "-m", "fer_core", "train", data_path, "--model", config["model"],
               "--sampling", config["sampling"], "--epochs", str(config["epochs"]), "--size", config["size"],
               "--batch-size", str(config["batch_size"]), "--seed", str(config["seed"]),
               "--workspace", str(home), "--out", out_dir]
    if config.get("limit"):
        command += ["--limit", str(config["limit"])]
    if config.get("raw"):
        command.append("--raw")
    return command


def _ray_submit(home: Path, run_id: str) -> None:
    import shlex

    with _connect(home) as connection:
        data_path, config_json, out_dir = connection.execute(
            "SELECT data_path, config_json, out_dir FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    project = Path(__file__).resolve().parents[1]
    entrypoint = f"cd {shlex.quote(str(project))} && " + shlex.join(
        _train_command(data_path, json.loads(config_json), out_dir, home))
    try:
        job_id = _ray_client().submit_job(entrypoint=entrypoint, submission_id=f"fer-audit-{run_id}")
    except Exception as error:
        _mark_failed(home, run_id, f"Ray submission to {os.environ.get(RAY_ADDRESS_ENV)} failed: {error}")
        return
    with _connect(home) as connection:
        connection.execute("UPDATE runs SET external_id = ? WHERE run_id = ?", (job_id, run_id))


RAY_STATES = {"PENDING": QUEUED, "RUNNING": RUNNING, "SUCCEEDED": SUCCEEDED, "FAILED": FAILED, "STOPPED": CANCELLED}


def _ray_refresh(home: Path, run_id: str) -> None:
    """Copy a Ray job's state, log and per-epoch lines into the run's record."""
    with _connect(home) as connection:
        external_id, out_dir, state = connection.execute(
            "SELECT external_id, out_dir, state FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    if not external_id:
        return
    client = _ray_client()
    ray_state = RAY_STATES.get(str(client.get_job_status(external_id)).split(".")[-1], RUNNING)
    logs = client.get_job_logs(external_id)
    (Path(out_dir) / LOG_NAME).write_text(logs)
    for progress in parse_epoch_lines(logs):
        _insert_event(home, run_id, progress)
    with _connect(home) as connection:
        if ray_state == RUNNING and state == QUEUED:
            connection.execute("UPDATE runs SET state = ?, started_at = ? WHERE run_id = ?", (RUNNING, _now(), run_id))
    if ray_state in FINISHED:
        metrics_path = Path(out_dir) / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if ray_state == SUCCEEDED and metrics_path.exists() else None
        error = None
        if ray_state == FAILED:
            error = (client.get_job_info(external_id).message or "") + " | " + " | ".join(logs.strip().splitlines()[-3:])
        _finish(home, run_id, ray_state, metrics=metrics, error=error)


def _insert_event(home: Path, run_id: str, progress: EpochProgress) -> None:
    with _connect(home) as connection:
        connection.execute(
            "INSERT OR REPLACE INTO run_events (run_id, epoch, epochs, loss, accuracy, val_loss, val_accuracy, "
            "seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, progress.epoch, progress.epochs, progress.loss, progress.accuracy, progress.val_loss,
             progress.val_accuracy, progress.seconds, _now()))


# ---------------------------------------------------------------------------------------------
# Records


def _events_by_run(connection: sqlite3.Connection, run_id: str | None = None) -> dict[str, list[dict]]:
    query = "SELECT run_id, epoch, epochs, loss, accuracy, val_loss, val_accuracy, seconds, created_at FROM run_events"
    rows = connection.execute(query + (" WHERE run_id = ?" if run_id else "") + " ORDER BY run_id, epoch",
                              (run_id,) if run_id else ()).fetchall()
    grouped: dict[str, list[dict]] = {}
    keys = ("epoch", "epochs", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "created_at")
    for row in rows:
        grouped.setdefault(row[0], []).append(dict(zip(keys, row[1:])))
    return grouped


def _record(row: dict[str, Any], run_events: list[dict]) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"], state=row["state"], backend=row["backend"], created_at=row["created_at"],
        started_at=row["started_at"], finished_at=row["finished_at"], data_path=row["data_path"],
        config=json.loads(row["config_json"]), out_dir=row["out_dir"], pid=row["pid"],
        external_id=row["external_id"], stage=row["stage"], error=row["error"],
        metrics=json.loads(row["metrics_json"]) if row["metrics_json"] else None, events=run_events)


def _main(argv: list[str]) -> int:
    """Internal entry points: `launch RUN_ID` (start a detached worker, print its pid) and `work RUN_ID`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fer_core.jobs")
    parser.add_argument("action", choices=("launch", "work"))
    parser.add_argument("run_id")
    parser.add_argument("--workspace", required=True)
    args = parser.parse_args(argv)
    if args.action == "launch":
        print(_spawn_detached(args.run_id, Path(args.workspace)))
        return 0
    return work(args.run_id, args.workspace)


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
