"""Run records in the workspace database: the `runs` and `run_events` tables and every read and write of them.

Reads here never start, stop or reconcile anything (scheduler.drain does that); every write is
one short `store.transaction`, the same policy as the edit log's.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fer_core import store
from fer_core.training.config import EpochProgress

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
LOCAL, RAY = "local", "ray"
LOG_NAME = "log.txt"
EVENT_FIELDS = ("epoch", "epochs", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "created_at")

RUNS_SCHEMA = store.Schema("jobs", ("runs", "run_events"), """
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    state         TEXT NOT NULL,
    backend       TEXT NOT NULL,
    data_path     TEXT NOT NULL,
    config_json   TEXT NOT NULL,
    out_dir       TEXT NOT NULL,
    pid           INTEGER,
    pid_started   REAL,
    external_id   TEXT,
    stage         TEXT,
    error         TEXT,
    metrics_json  TEXT,
    kind          TEXT NOT NULL DEFAULT 'train',
    experiment_id TEXT
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
""", added_columns=(("runs", "kind", "TEXT NOT NULL DEFAULT 'train'"), ("runs", "experiment_id", "TEXT")))


@dataclass(frozen=True)
class RunRecord:
    """One run as the database knows it, with its per-epoch progress."""

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
    kind: str = "train"
    experiment_id: str | None = None
    pid_started: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def settings(self) -> Any:
        """The run's config as its kind's frozen dataclass (a TrainConfig for training runs), so rules such
        as the epochs a run plans are the config's own; None when the stored JSON no longer parses (a run
        recorded by an older version)."""
        from fer_core.jobs.kinds import job_kind

        try:
            return job_kind(self.kind).config_from_dict(self.config)
        except (ValueError, TypeError):
            return None

    def log_text(self, max_chars: int = 20_000) -> str:
        """The tail of the run's log (worker output, or Ray's job logs copied there)."""
        path = Path(self.out_dir) / LOG_NAME
        if not path.exists():
            return ""
        return path.read_text(errors="replace")[-max_chars:]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def writing(home: Path):
    """The workspace database for writing, with the run tables (a context manager)."""
    return store.writing(home, RUNS_SCHEMA)


# ---------------------------------------------------------------------------------------------
# Reads


def read_runs(home: Path, run_id: str | None = None, experiment_id: str | None = None) -> list[RunRecord]:
    """Runs newest first (one run, or one experiment's), with their events; [] when there are none yet."""
    with store.reading(home) as connection:
        if "runs" not in store.table_names(connection):
            return []
        connection.row_factory = sqlite3.Row
        columns = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
        where, parameters = [], []
        if run_id is not None:
            where.append("run_id = ?")
            parameters.append(run_id)
        if experiment_id is not None:
            if "experiment_id" not in columns:
                return []
            where.append("experiment_id = ?")
            parameters.append(experiment_id)
        query = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = connection.execute(query + " ORDER BY created_at DESC, run_id DESC", parameters).fetchall()
        events = _events_by_run(connection, run_id)
    return [_record(dict(row), events.get(row["run_id"], [])) for row in rows]


def read_run(home: Path, run_id: str) -> RunRecord:
    """One run; ValueError naming the id when there is no such run."""
    found = read_runs(home, run_id=run_id)
    if not found:
        raise ValueError(f"unknown run id {run_id!r} (see `python -m fer_core jobs list`)")
    return found[0]


def _events_by_run(connection: sqlite3.Connection, run_id: str | None) -> dict[str, list[dict]]:
    query = f"SELECT run_id, {', '.join(EVENT_FIELDS)} FROM run_events"
    rows = connection.execute(query + (" WHERE run_id = ?" if run_id else "") + " ORDER BY run_id, epoch",
                              (run_id,) if run_id else ()).fetchall()
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(dict(zip(EVENT_FIELDS, tuple(row)[1:])))
    return grouped


def _record(row: dict[str, Any], run_events: list[dict]) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"], state=row["state"], backend=row["backend"], created_at=row["created_at"],
        started_at=row["started_at"], finished_at=row["finished_at"], data_path=row["data_path"],
        config=json.loads(row["config_json"]), out_dir=row["out_dir"], pid=row["pid"],
        external_id=row["external_id"], stage=row["stage"], error=row["error"],
        metrics=json.loads(row["metrics_json"]) if row["metrics_json"] else None, events=run_events,
        kind=row.get("kind") or "train", experiment_id=row.get("experiment_id"), pid_started=row["pid_started"])


# ---------------------------------------------------------------------------------------------
# Writes


def insert_runs(home: Path, runs: list[dict[str, Any]]) -> None:
    """Queue runs (dicts of run_id, kind, backend, data_path, config_json, out_dir, experiment_id) in one transaction."""
    with writing(home) as connection, store.transaction(connection):
        for run in runs:
            connection.execute(
                "INSERT INTO runs (run_id, created_at, state, backend, data_path, config_json, out_dir, kind, "
                "experiment_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run["run_id"], now(), QUEUED, run["backend"], run["data_path"], run["config_json"], run["out_dir"],
                 run["kind"], run.get("experiment_id")))


def claim_next_queued(home: Path, max_running: int) -> str | None:
    """Mark the oldest queued local run running when fewer than `max_running` are; its id, or None."""
    with writing(home) as connection, store.transaction(connection):  # one claimant at a time across processes
        running = connection.execute("SELECT COUNT(*) FROM runs WHERE state = ? AND backend = ?",
                                     (RUNNING, LOCAL)).fetchone()[0]
        if running >= max_running:
            return None
        next_run = connection.execute(
            "SELECT run_id FROM runs WHERE state = ? AND backend = ? ORDER BY created_at, run_id LIMIT 1",
            (QUEUED, LOCAL)).fetchone()
        if next_run:
            connection.execute("UPDATE runs SET state = ?, started_at = ? WHERE run_id = ?", (RUNNING, now(), next_run[0]))
        return next_run[0] if next_run else None


def update_run(home: Path, run_id: str, **values: Any) -> None:
    """Set columns of one run (stage, pid, pid_started, external_id, ...)."""
    assignments = ", ".join(f"{column} = ?" for column in values)
    with writing(home) as connection, store.transaction(connection):
        connection.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", (*values.values(), run_id))


def mark_running(home: Path, run_id: str) -> None:
    """A run another system started (Ray) is now running."""
    with writing(home) as connection, store.transaction(connection):
        connection.execute("UPDATE runs SET state = ?, started_at = ? WHERE run_id = ? AND state = ?",
                           (RUNNING, now(), run_id, QUEUED))


def finish(home: Path, run_id: str, state: str, metrics: dict | None = None, error: str | None = None) -> None:
    """Record the end of a run, unless it already ended (a cancel wins over a late success)."""
    with writing(home) as connection, store.transaction(connection):
        connection.execute(
            "UPDATE runs SET state = ?, finished_at = ?, error = ?, metrics_json = ? WHERE run_id = ? AND state IN (?, ?)",
            (state, now(), error, json.dumps(metrics) if metrics else None, run_id, QUEUED, RUNNING))


def insert_event(home: Path, run_id: str, progress: EpochProgress) -> None:
    with writing(home) as connection, store.transaction(connection):
        connection.execute(
            "INSERT OR REPLACE INTO run_events (run_id, epoch, epochs, loss, accuracy, val_loss, val_accuracy, "
            "seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, progress.epoch, progress.epochs, progress.loss, progress.accuracy, progress.val_loss,
             progress.val_accuracy, progress.seconds, now()))
