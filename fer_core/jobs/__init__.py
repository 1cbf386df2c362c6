"""Background runs (training, and any other registered job kind): records and progress in SQLite.

Imports the layers below (training and mislabels run as job kinds); never `report` or `cli`.

- records.py    the runs/run_events tables: RunRecord, reads, writes
- kinds.py      job kinds: kind -> config class + entry function (one registration adds a kind)
- scheduler.py  submit, list, cancel, and `drain`, the one call that starts queued work
- local.py      the local backend: a detached worker process per run
- ray_runner.py the Ray backend ($FER_AUDIT_RAY_ADDRESS): a Ray job per run, config passed as JSON
"""

from fer_core.jobs.kinds import JOB_KINDS, JobContext, JobKind, job_kind
from fer_core.jobs.local import process_alive
from fer_core.jobs.ray_runner import RAY_ADDRESS_ENV
from fer_core.jobs.records import (CANCELLED, FAILED, FINISHED, LOCAL, LOG_NAME, QUEUED, RAY, RUNNING, STATES,
                                   SUCCEEDED, RunRecord)
from fer_core.jobs.scheduler import (MAX_RUNS_ENV, cancel, drain, get_run, list_runs, max_concurrent_runs, reconcile,
                                     selected_backend, submit, submit_many)
from fer_core.training.config import parse_epoch_lines

__all__ = ["CANCELLED", "FAILED", "FINISHED", "JOB_KINDS", "LOCAL", "LOG_NAME", "MAX_RUNS_ENV", "QUEUED", "RAY",
           "RAY_ADDRESS_ENV", "RUNNING", "STATES", "SUCCEEDED", "JobContext", "JobKind", "RunRecord", "cancel",
           "drain", "get_run", "job_kind", "list_runs", "max_concurrent_runs", "parse_epoch_lines", "process_alive",
           "reconcile", "selected_backend", "submit", "submit_many"]
