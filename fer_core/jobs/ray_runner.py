"""The Ray backend: with $FER_AUDIT_RAY_ADDRESS set, a run is a job on that cluster (Ray Jobs API).

The entrypoint is `python -m fer_core.jobs run --kind K --config-json JSON ...`: the config
travels as its one JSON form, so every field arrives (re-built flags used to lose some). The
job prints one epoch line per epoch and writes its artifacts into the run folder (the cluster
shares the file system); state, progress and logs are pulled back by `refresh`.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from fer_core.jobs import records
from fer_core.jobs.kinds import JobContext, job_kind
from fer_core.jobs.records import CANCELLED, FAILED, FINISHED, LOG_NAME, QUEUED, RUNNING, SUCCEEDED
from fer_core.training.config import format_epoch_line, parse_epoch_lines
from fer_core.training.device import CPUS_ENV, prepare_tensorflow

RAY_ADDRESS_ENV = "FER_AUDIT_RAY_ADDRESS"
RAY_CPUS_ENV = "FER_AUDIT_RAY_CPUS"  # CPUs each run reserves on the cluster; its TensorFlow sizes its pools to them
RAY_STATES = {"PENDING": QUEUED, "RUNNING": RUNNING, "SUCCEEDED": SUCCEEDED, "FAILED": FAILED, "STOPPED": CANCELLED}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def ray_address() -> str | None:
    return os.environ.get(RAY_ADDRESS_ENV) or None


def _client():
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(os.environ[RAY_ADDRESS_ENV])


def entrypoint_command(record: records.RunRecord, home: Path) -> list[str]:
    """The job's command line: the generic runner with the config as JSON (what a user can rerun by hand)."""
    return [sys.executable, "-m", "fer_core.jobs", "run", "--kind", record.kind,
            "--config-json", json.dumps(record.config, sort_keys=True), "--data", record.data_path,
            "--out", record.out_dir, "--workspace", str(home)]


def submit(home: Path, record: records.RunRecord) -> None:
    """Submit a queued run to the cluster; a refused submission marks the run failed with the reason."""
    entrypoint = f"cd {shlex.quote(str(PROJECT_ROOT))} && " + shlex.join(entrypoint_command(record, home))
    try:
        job_id = _client().submit_job(entrypoint=entrypoint, submission_id=f"fer-audit-{record.run_id}",
                                      **reserved_cpus())
    except Exception as error:  # any client or cluster error: the run cannot start
        records.finish(home, record.run_id, FAILED, error=f"Ray submission to {ray_address()} failed: {error}")
        return
    records.update_run(home, record.run_id, external_id=job_id)


def reserved_cpus() -> dict:
    """With $FER_AUDIT_RAY_CPUS set: the CPUs a run reserves on the cluster, and $FER_AUDIT_CPUS in its
    environment so that TensorFlow sizes its thread pools to them, not to the node's count."""
    cpus = os.environ.get(RAY_CPUS_ENV, "").strip()
    if not cpus:
        return {}
    if not cpus.isdigit() or int(cpus) < 1:
        raise ValueError(f"${RAY_CPUS_ENV} must be a whole number of CPUs, 1 or more, got {cpus!r}")
    return {"entrypoint_num_cpus": int(cpus), "runtime_env": {"env_vars": {CPUS_ENV: cpus}}}


def stop(record: records.RunRecord) -> None:
    if record.external_id:
        _client().stop_job(record.external_id)


def refresh(home: Path, record: records.RunRecord) -> None:
    """Copy a Ray job's state, log and per-epoch lines into the run's record."""
    if not record.external_id:
        return
    client = _client()
    ray_state = RAY_STATES.get(str(client.get_job_status(record.external_id)).split(".")[-1], RUNNING)
    logs = client.get_job_logs(record.external_id)
    (Path(record.out_dir) / LOG_NAME).write_text(logs)
    for progress in parse_epoch_lines(logs):
        records.insert_event(home, record.run_id, progress)
    if ray_state == RUNNING and record.state == QUEUED:
        records.mark_running(home, record.run_id)
    if ray_state in FINISHED:
        metrics_path = Path(record.out_dir) / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if ray_state == SUCCEEDED and metrics_path.exists() else None
        error = None
        if ray_state == FAILED:
            tail = " | ".join(logs.strip().splitlines()[-3:])
            error = (client.get_job_info(record.external_id).message or "") + " | " + tail
        records.finish(home, record.run_id, ray_state, metrics=metrics, error=error)


def run_entry(kind_name: str, config_json: str, data_path: str, out_dir: str, workspace: str) -> int:
    """The Ray job's body: run a kind's entry on a JSON config, printing stages and epoch lines.

    The kind, the config and --out are checked first (one-line ValueError), so bad input runs nothing."""
    from fer_core.files import make_folder, write_json_atomically
    from fer_core.paths import check_output_folder

    kind = job_kind(kind_name)
    config = kind.read_config(config_json)
    out = make_folder(check_output_folder(out_dir, "--out"))
    print(f"run ({kind.name}): {config_json}", flush=True)
    print(prepare_tensorflow().describe(), flush=True)  # before TensorFlow starts: oneDNN, thread pools
    context = JobContext(run_id=out.name, workspace=Path(workspace), out_dir=out,
                         set_stage=lambda stage: print(f"stage: {stage}", flush=True),
                         record_epoch=lambda progress: print(format_epoch_line(progress), flush=True))
    metrics = kind.load_entry()(data_path, config, context)
    if not (out / "metrics.json").exists():
        write_json_atomically(out / "metrics.json", metrics)
    return 0
