"""The local backend: each run is a detached OS process (`python -m fer_core.jobs work RUN_ID`).

The worker runs in its own session, so it outlives a browser reload and a restart of the
Streamlit server that submitted it. It reads its config (JSON) from the runs table, records its
stage and every epoch there, writes its artifacts to `<workspace>/runs/<run_id>/`, and calls
`drain` as it ends, so a queue empties with nobody watching.

A worker that cannot record its end (the database's disk is full) says why as the last line of
its log, and `death_reason` reads it there: such a run is failed with "the disk was full", not
"killed or out of memory".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path

from fer_core.files import disk_is_full, free_bytes, write_text_atomically
from fer_core.jobs import records
from fer_core.jobs.kinds import JobContext, job_kind, serialize_config
from fer_core.jobs.records import CANCELLED, FAILED, LOG_NAME, RUNNING, SUCCEEDED
from fer_core.training.config import EpochProgress, format_epoch_line
from fer_core.training.device import prepare_tensorflow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# A run is marked running just before its process starts; give the launch this long to record a pid.
LAUNCH_GRACE_SECONDS = 30.0
UNRECORDED_END = "could not record the end of this run"
# How a full disk shows in a worker's log: fer_core.files' and the store's line, the system's, SQLite's.
DISK_FULL_MARKERS = ("disk full", "No space left on device", "Disk quota exceeded", "database or disk is full")
DISK_FULL_LOG_LINES = 20  # how far up the log's end a marker counts (a traceback of the failed write)


def launch_worker(home: Path, run_id: str) -> None:
    """Start the worker detached, through a short-lived launcher process that prints the worker's pid.

    The launcher exits at once, so the worker is adopted by init: it is nobody's zombie, and it
    keeps running when the process that submitted it (a Streamlit server, a CLI) goes away.
    """
    launcher = [sys.executable, "-m", "fer_core.jobs", "launch", run_id, "--workspace", str(home)]
    result = subprocess.run(launcher, capture_output=True, text=True, cwd=PROJECT_ROOT)
    if result.returncode != 0:
        records.finish(home, run_id, FAILED, error=f"could not start the worker: {last_line(result.stderr)}")
        return
    pid = int(result.stdout.strip())
    records.update_run(home, run_id, pid=pid, pid_started=process_start_time(pid))
    write_text_atomically(home / "runs" / run_id / "pid", str(pid))


def last_line(text: str) -> str:
    """The last non-empty line of an error output, whole (a traceback ends with the error itself)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


def spawn_detached(run_id: str, home: Path) -> int:
    """The launcher's job: start the worker in a new session, its output appended to the run's log."""
    out_dir = home / "runs" / run_id
    with open(out_dir / LOG_NAME, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "fer_core.jobs", "work", run_id, "--workspace", str(home)],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=PROJECT_ROOT)
    return process.pid


class RunCancelled(Exception):
    """Raised in the worker by SIGTERM (cancel), so the work unwinds and the run is recorded."""


def _raise_cancelled(signum, frame) -> None:
    raise RunCancelled()


def work(run_id: str, workspace: Path) -> int:
    """The worker: run the run's kind on its config, recording progress; then drain the queue."""
    from fer_core.jobs.scheduler import drain

    home = Path(workspace)
    record = records.read_run(home, run_id)
    if record.state != RUNNING:  # cancelled between the claim and the start
        return 0
    signal.signal(signal.SIGTERM, _raise_cancelled)
    try:
        kind = job_kind(record.kind)
        config = kind.config_from_dict(record.config)
        print(f"run {run_id} ({kind.name}): {serialize_config(config)}", flush=True)
        print(prepare_tensorflow().describe(), flush=True)  # before TensorFlow starts: oneDNN, thread pools
        context = JobContext(run_id=run_id, workspace=home, out_dir=Path(record.out_dir),
                             set_stage=lambda stage: records.update_run(home, run_id, stage=stage),
                             record_epoch=lambda progress: _record_epoch(home, run_id, progress))
        metrics = kind.load_entry()(record.data_path, config, context)
        records.finish(home, run_id, SUCCEEDED, metrics=metrics)
        recorded, code = True, 0
    except RunCancelled:
        print("cancelled", flush=True)
        recorded, code = _record_end(home, run_id, CANCELLED), 0
    except BaseException as error:  # a failed run keeps its error; the traceback goes to its log
        traceback.print_exc()
        recorded, code = _record_end(home, run_id, FAILED, error=f"{type(error).__name__}: {error}"), 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if recorded:  # a database that refused the end would refuse the next claim too
        drain(home)
    return code


def _record_end(home: Path, run_id: str, state: str, **values) -> bool:
    """Record the run's end; when the database refuses it (a full disk: one-line ValueError from the
    store), print why as the log's last line for `death_reason`, and return False."""
    try:
        records.finish(home, run_id, state, **values)
    except ValueError as error:
        print(f"{UNRECORDED_END} ({state}): {error}", flush=True)
        return False
    return True


def _record_epoch(home: Path, run_id: str, progress: EpochProgress) -> None:
    records.insert_event(home, run_id, progress)
    records.update_run(home, run_id, stage=f"training: epoch {progress.epoch}/{progress.epochs} done")
    print(format_epoch_line(progress), flush=True)


def stop(record: records.RunRecord) -> None:
    """Send the worker SIGTERM (it leads its own process group), if it is still ours and alive."""
    if record.state == RUNNING and record.pid and process_alive(record.pid, record.pid_started):
        try:
            os.killpg(record.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------------------------------------
# Is the worker still there?


def process_start_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def process_alive(pid: int | None, started: float | None) -> bool:
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


def worker_is_gone(record: records.RunRecord) -> bool:
    """A running local run whose process has ended (or never recorded a pid within the launch grace)."""
    if process_alive(record.pid, record.pid_started):
        return False
    if record.pid or not record.started_at:
        return True
    started = datetime.fromisoformat(record.started_at)
    return (datetime.now(timezone.utc) - started).total_seconds() >= LAUNCH_GRACE_SECONDS


def death_reason(record: records.RunRecord) -> str:
    """Why a worker ended without recording a result: a full disk when its log or its disk says so,
    else killed or out of memory; with the log's last lines."""
    log = Path(record.out_dir) / LOG_NAME
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    tail = " | ".join(lines[-3:]) if lines else "no output"
    ended = f"the worker process (pid {record.pid}) ended without recording a result"
    full = next((line.strip() for line in reversed(lines[-DISK_FULL_LOG_LINES:])
                 if any(marker in line for marker in DISK_FULL_MARKERS)), None)
    if full is not None:
        return f"{ended}: the disk was full ({full}); free some space and start the run again"
    if disk_is_full(record.out_dir):
        return (f"{ended}: the disk holding {record.out_dir} is full ({free_bytes(record.out_dir):,} bytes free); "
                f"free some space and start the run again; last log lines: {tail}")
    return f"{ended} — killed or out of memory; last log lines: {tail}"
