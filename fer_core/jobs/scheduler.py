"""Submitting, listing, cancelling runs, and `drain`: the one place that starts queued work.

Reading runs (`list_runs`, `get_run`) never starts, stops or changes anything. `drain` brings
states up to date (a local worker that died is marked failed, Ray states are pulled) and starts
queued local runs while fewer than `max_concurrent_runs()` run ($FER_AUDIT_MAX_RUNS, default 1).
It is called by `submit`, by every worker as it ends, and by whoever polls (the app's Train and
Results pages, `python -m fer_core jobs drain`).
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from fer_core.jobs import local, ray_runner, records
from fer_core.jobs.kinds import kind_of_config, serialize_config
from fer_core.jobs.records import CANCELLED, LOCAL, QUEUED, RAY, RUNNING, RunRecord
from fer_core.workspace import resolve_workspace

MAX_RUNS_ENV = "FER_AUDIT_MAX_RUNS"


def max_concurrent_runs() -> int:
    value = os.environ.get(MAX_RUNS_ENV, "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"${MAX_RUNS_ENV}={value!r}: expected a positive integer")
    return int(value)


def selected_backend() -> str:
    return RAY if ray_runner.ray_address() else LOCAL


def _home(workspace: str | os.PathLike | None) -> Path:
    return resolve_workspace(workspace).resolve()


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


# ---------------------------------------------------------------------------------------------
# Writes


def submit(config: Any, data_path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> str:
    """Queue a run of `config`'s kind and start it when there is capacity; returns the run id at once."""
    return submit_many([config], data_path, workspace)[0]


def submit_many(configs: Sequence[Any], data_path: str | os.PathLike, workspace: str | os.PathLike | None = None,
                experiment_id: str | None = None) -> list[str]:
    """Queue several runs in one transaction (an experiment when `experiment_id` is given), then drain."""
    data = Path(data_path)
    if not data.exists():
        raise ValueError(f"no such file or folder: {data}")
    home = _home(workspace)
    backend = selected_backend()
    runs = []
    for config in configs:
        run_id = new_run_id()
        runs.append({"run_id": run_id, "kind": kind_of_config(config).name, "backend": backend,
                     "data_path": str(data.resolve()), "config_json": serialize_config(config),
                     "out_dir": str(home / "runs" / run_id), "experiment_id": experiment_id})
    records.insert_runs(home, runs)  # first, so a read-only or damaged workspace fails before any folder is made
    for run in runs:
        Path(run["out_dir"]).mkdir(parents=True)
    if backend == RAY:
        for run in runs:
            ray_runner.submit(home, records.read_run(home, run["run_id"]))
    drain(home)
    return [run["run_id"] for run in runs]


def cancel(run_id: str, workspace: str | os.PathLike | None = None) -> RunRecord:
    """Stop a queued or running run and mark it cancelled; a finished run is left as it is."""
    home = _home(workspace)
    record = records.read_run(home, run_id)
    if record.finished:
        return record
    if record.backend == RAY:
        ray_runner.stop(record)
    else:
        local.stop(record)  # the worker records the cancel and drains the queue as it unwinds
    records.finish(home, run_id, CANCELLED)
    return records.read_run(home, run_id)


def drain(workspace: str | os.PathLike | None = None) -> list[str]:
    """Bring run states up to date, then start queued local runs while there is capacity; the ids started."""
    home = _home(workspace)
    reconcile(home)
    started = []
    while (run_id := records.claim_next_queued(home, max_concurrent_runs())) is not None:
        local.launch_worker(home, run_id)
        started.append(run_id)
    return started


def reconcile(workspace: str | os.PathLike | None = None) -> None:
    """Mark running local runs whose worker is gone as failed, and pull the states of Ray runs; starts nothing."""
    home = _home(workspace)
    for record in records.read_runs(home):
        if record.backend == LOCAL and record.state == RUNNING and local.worker_is_gone(record):
            records.finish(home, record.run_id, records.FAILED, error=local.death_reason(record))
        elif record.backend == RAY and record.state in (QUEUED, RUNNING) and ray_runner.ray_address():
            ray_runner.refresh(home, record)


# ---------------------------------------------------------------------------------------------
# Reads (never start anything)


def list_runs(workspace: str | os.PathLike | None = None, experiment_id: str | None = None) -> list[RunRecord]:
    """Every run (or one experiment's), newest first, as recorded; see `drain` to bring states up to date."""
    return records.read_runs(_home(workspace), experiment_id=experiment_id)


def get_run(run_id: str, workspace: str | os.PathLike | None = None) -> RunRecord:
    """One run; ValueError naming the id when there is no such run."""
    return records.read_run(_home(workspace), run_id)
