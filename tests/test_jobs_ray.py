"""The Ray backend against a real local Ray head, started here and stopped at the end."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synthetic import make_synthetic, write_folders

from fer_core import jobs
from fer_core.training.fit import TrainConfig

pytest.importorskip("ray.job_submission", reason="ray[default] is not installed (see requirements.txt)")
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    if not Path(RAY).exists() and not shutil.which("ray"):
        pytest.skip("the `ray` command is not installed")
    dashboard = free_port()
    temp_dir = tmp_path_factory.mktemp("ray")
    start = [RAY, "start", "--head", f"--port={free_port()}", f"--dashboard-port={dashboard}",
             "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--num-cpus=2", "--disable-usage-stats",
             f"--temp-dir={temp_dir}"]
    # The test machine is shared: Ray's own OOM killer (95 % of the node's memory, other processes
    # included) would kill a tiny job for what others use; the kernel still guards the machine.
    environment = {**os.environ, "RAY_memory_monitor_refresh_ms": "0"}
    subprocess.run(start, check=True, capture_output=True, timeout=180, env=environment)
    try:
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)


def wait_for_ray(run_id, workspace, timeout=300):
    """Poll as the app does: drain (pulls Ray's state into the record), then read."""
    deadline = time.monotonic() + timeout
    while not (record := jobs.get_run(run_id, workspace)).finished and time.monotonic() < deadline:
        jobs.drain(workspace)
        time.sleep(2)
    return record


def test_run_through_ray_jobs_reports_state_progress_and_metrics(ray_address, workspace, tmp_path, monkeypatch):
    monkeypatch.setenv(jobs.RAY_ADDRESS_ENV, ray_address)
    data = write_folders(make_synthetic(seed=4)[0], tmp_path / "data")
    run_id = jobs.submit(TrainConfig(model="cnn", sampling="none", epochs=2, size="tiny", batch_size=16), data,
                         workspace)
    record = wait_for_ray(run_id, workspace)
    assert record.backend == jobs.RAY and record.external_id
    assert record.state == jobs.SUCCEEDED, record.error
    assert [event["epoch"] for event in record.events] == [1, 2]
    assert record.metrics["accuracy"] >= 0 and len(record.metrics["confusion"]) == 7
    assert "epoch 2/2" in record.log_text()


def test_cancel_through_ray(ray_address, workspace, tmp_path, monkeypatch):
    monkeypatch.setenv(jobs.RAY_ADDRESS_ENV, ray_address)
    data = write_folders(make_synthetic(seed=4)[0], tmp_path / "data")
    run_id = jobs.submit(TrainConfig(model="cnn", sampling="none", epochs=500, size="tiny", batch_size=16,
                                     patience=1000), data, workspace)
    jobs.cancel(run_id, workspace)
    deadline = time.monotonic() + 120
    while (record := jobs.get_run(run_id, workspace)).state != jobs.CANCELLED and time.monotonic() < deadline:
        jobs.drain(workspace)
        time.sleep(2)
    assert record.state == jobs.CANCELLED


def test_every_config_field_reaches_the_ray_job(ray_address, workspace, tmp_path, monkeypatch):
    from test_train_config import non_default_config

    monkeypatch.setenv(jobs.RAY_ADDRESS_ENV, ray_address)
    data = write_folders(make_synthetic(seed=4)[0], tmp_path / "data")
    config = non_default_config(epochs=1, limit=40, batch_size=8, sampling="ros")
    run_id = jobs.submit(config, data, workspace)
    record = wait_for_ray(run_id, workspace)
    assert record.state == jobs.SUCCEEDED, record.error
    assert {name: record.metrics[name] for name in config.to_dict()} == config.to_dict()
