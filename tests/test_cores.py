"""Using the cores there are (issue 25): TensorFlow's oneDNN switch and thread pools chosen for the CPUs a run may
use (a user's own values kept), the speed a running fit measures, and the speed measured before a run, cached per
machine, model, size and settings, on which the time estimates rest (else figures from another machine, said so).
"""

import json
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from fer_core.jobs import ray_runner
from fer_core.mislabels.config import MislabelConfig
from fer_core.training import calibration, device, estimates, speed
from fer_core.training.config import TrainConfig

TENSORFLOW_VARIABLES = (device.ONEDNN_ENV, device.INTRA_OP_ENV, device.INTER_OP_ENV, device.CPUS_ENV)
CPUINFO = """processor\t: 0
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx fma avx2 bmi2
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx fma avx2 bmi2
"""


@pytest.fixture
def eight_cpus(monkeypatch):
    """A process that joblib says may use 8 CPUs (affinity and cgroup quota), with no TensorFlow variable set."""
    import joblib

    monkeypatch.setattr(joblib, "cpu_count", lambda: 8)
    for name in TENSORFLOW_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_the_processor_is_read_by_its_model_and_speed_flags(tmp_path):
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    assert device.read_cpuinfo(tmp_path / "cpuinfo") == ("AMD EPYC 7B13", ("avx2", "fma"))
    assert device.read_cpuinfo(tmp_path / "missing") == ("unknown", ())


def test_onednn_is_switched_on_and_pools_fit_the_usable_cpus_unless_the_user_chose(eight_cpus, tmp_path):
    """An AVX2-only EPYC ran Eigen's float32 kernels at half the speed: TensorFlow turns oneDNN on by itself only
    with AVX-512 VNNI/BF16 or AMX. Pools are sized to the CPUs the process may use; a user's values are kept."""
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    chosen = device.choose_cpu_settings({}, tmp_path / "cpuinfo")
    assert (chosen.onednn, chosen.usable_cpus, chosen.intra_op_threads, chosen.inter_op_threads) == (True, 8, 8, 8)
    assert chosen.describe().startswith("CPU: AMD EPYC 7B13 (avx2 fma), oneDNN on, 8 of ")
    assert chosen.record()["cpu_flags"] == ["avx2", "fma"]

    environment = {device.CPUS_ENV: "3"}  # a Ray job's CPUs
    settings = device.prepare_tensorflow(environment)
    assert settings.usable_cpus == 3
    assert environment == {device.CPUS_ENV: "3", device.ONEDNN_ENV: "1", device.INTRA_OP_ENV: "3",
                           device.INTER_OP_ENV: "3"}
    users = {device.ONEDNN_ENV: "0", device.INTRA_OP_ENV: "1", device.CPUS_ENV: "64"}
    settings = device.prepare_tensorflow(users)
    assert (settings.onednn, settings.intra_op_threads, settings.inter_op_threads, settings.usable_cpus) == (
        False, 1, 8, 8)  # more CPUs granted than the process may use: the process's count wins
    assert users[device.ONEDNN_ENV] == "0" and users[device.INTRA_OP_ENV] == "1"
    with pytest.raises(ValueError, match=r"\$FER_AUDIT_CPUS must be a whole number of CPUs, 1 or more, got 'two'"):
        device.choose_cpu_settings({device.CPUS_ENV: "two"})


def test_the_record_says_what_tensorflow_itself_runs(monkeypatch):
    """An environment set after TensorFlow started changes nothing: the record asks TensorFlow."""
    import tensorflow as tf  # noqa: F401
    from tensorflow.python.util import _pywrap_util_port

    monkeypatch.setenv(device.ONEDNN_ENV, "1")
    monkeypatch.setattr(_pywrap_util_port, "IsMklEnabled", lambda: False)
    assert device.tensorflow_cpu_record()["onednn"] is False


def test_bfloat16_only_where_onednn_runs(monkeypatch):
    """With oneDNN off (a user's TF_ENABLE_ONEDNN_OPTS=0), Eigen's emulated bfloat16 trained a fast cnn at 5
    images/s on an AMX Xeon against 165: such a run keeps float32."""
    import keras
    import tensorflow as tf

    from fer_core.training import fit

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])  # a CPU, also on a GPU machine
    monkeypatch.setattr(fit, "cpu_computes_bfloat16", lambda: True)
    for active, policy in ((False, "float32"), (True, "mixed_bfloat16"), (None, "mixed_bfloat16")):
        monkeypatch.setattr(fit, "onednn_active", lambda: active)
        assert fit.configure_runtime(0) == "CPU" and keras.mixed_precision.global_policy().name == policy


def test_a_ray_run_reserves_its_cpus_and_tells_tensorflow(monkeypatch, workspace):
    monkeypatch.delenv(ray_runner.RAY_CPUS_ENV, raising=False)
    assert ray_runner.reserved_cpus() == {}
    monkeypatch.setenv(ray_runner.RAY_CPUS_ENV, "4")
    submitted = {}
    monkeypatch.setattr(ray_runner, "_client", lambda: SimpleNamespace(
        submit_job=lambda **arguments: submitted.update(arguments) or "job-1"))
    monkeypatch.setattr(ray_runner.records, "update_run", lambda *arguments, **values: None)
    record = SimpleNamespace(run_id="r1", kind="train", config={}, data_path="/data", out_dir="/out")
    ray_runner.submit(workspace, record)
    assert submitted["entrypoint_num_cpus"] == 4
    assert submitted["runtime_env"] == {"env_vars": {device.CPUS_ENV: "4"}}


# ---------------------------------------------------------------------------------------------
# The speed of a running fit


def test_a_running_fit_reports_its_speed_and_the_images_left_after_the_warm_up(monkeypatch):
    """100 images in batches of 32 (the last one 4), 2 epochs; each look at the clock finds it 2 s later. Reports
    come 3 s or more apart and at each epoch's end, timed from the end of the 2 warm-up batches (t = 2 s), then
    from the second epoch's start (t = 10 s: the first epoch's end validated, tracing a graph)."""
    ticks = iter(np.arange(0.0, 100.0, 2.0))
    monkeypatch.setattr(speed.time, "perf_counter", lambda: float(next(ticks)))
    reports = []
    meter = speed.speed_meter(100, 32, 2, reports.append, every_seconds=3, warmup_batches=2)
    for epoch in range(2):
        meter.on_epoch_begin(epoch)
        for batch in range(4):
            meter.on_train_batch_end(batch)
        meter.on_epoch_end(epoch)
    assert [(report.epoch, report.batch, report.images_done, report.seconds, report.images_left)
            for report in reports] == [(1, 4, 36, 4.0, 100), (1, 4, 36, 6.0, 100), (2, 1, 32, 2.0, 68),
                                       (2, 3, 96, 6.0, 4), (2, 4, 100, 10.0, 0)]
    assert reports[2].describe() == ("epoch 2/2, batch 1/4, 16 training images/s measured, about 5 s left "
                                     "(early stopping can end it sooner)")  # 68 images at 16 images/s
    assert [speed.images_in_batch(batch, 32, 100) for batch in range(5)] == [32, 32, 32, 4, 0]


def test_a_mislabel_job_says_the_time_left_to_its_last_fold():
    """Its folds train one after another: the time left counts the later folds' epochs too."""
    from fer_core.mislabels.config import MislabelProgress
    from fer_core.mislabels.folds import _speed_reporter

    sent = []
    report = _speed_reporter(0, MislabelConfig(folds=3, epochs=2), later_images=2 * 2 * 600, on_progress=sent.append)
    report(speed.SpeedReport(epoch=1, epochs=2, batch=5, batches=10, images_done=600, seconds=60.0, images_left=900))
    assert sent[0].describe() == ("fold 1/3, epoch 1/2, batch 5/10, 10 training images/s measured, about 6 min left "
                                  "(early stopping can end it sooner)")  # (900 + 2,400) images at 10 images/s
    assert MislabelProgress("epoch", 1, 3, epoch=1, epochs=2, val_accuracy=0.5).describe().endswith("0.500")


def test_fit_reports_its_measured_speed(monkeypatch):
    """The wiring: fit_model hands the meter's reports to `on_speed` (every batch here and at the epoch's end)."""
    from fer_core.dataset.loading import Dataset
    from fer_core.training.fit import configure_runtime, fit_model
    from fer_core.training.models import build_model
    from fer_core.training.sampling import TrainingSet

    monkeypatch.setattr(speed, "REPORT_EVERY_SECONDS", 0.0)
    generator = np.random.default_rng(0)
    pixels, labels = generator.integers(0, 256, (64, 48, 48), dtype=np.uint8), np.arange(64) % 7
    validation = Dataset(ids=np.array([f"v{index}" for index in range(14)]), pixels=pixels[:14],
                         labels=labels[:14].astype(np.int8), usages=np.array(["PublicTest"] * 14))
    configure_runtime(0)
    config = TrainConfig(size="tiny", epochs=1, batch_size=16)
    reports = []
    fit_model(build_model("cnn", "tiny", seed=0), TrainingSet(pixels, labels), validation, config,
              on_speed=reports.append)
    assert [report.batch for report in reports] == [3, 4, 4] and reports[-1].images_left == 0  # 2 batches, the end
    assert all(report.images_per_second > 0 for report in reports)


# ---------------------------------------------------------------------------------------------
# The speed measured before a run, and the estimates


def test_a_measurement_is_kept_per_machine_model_size_and_settings(tmp_path, monkeypatch, eight_cpus):
    def key_of(model="cnn", size="fast", batch_size=128, **environment):
        return calibration.speed_key(model, size, batch_size, environ=environment)

    key = key_of()
    assert key_of() == key
    others = {key_of(size="tiny"), key_of(model="vit"), key_of(batch_size=64), key_of(TF_ENABLE_ONEDNN_OPTS="0"),
              key_of(FER_AUDIT_CPUS="2")}
    assert key not in others and len(others) == 5

    calls = []

    def measured_process(command, **options):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, stdout='log line\n{"images_per_second": 123.4, "batches": 7}\n',
                                           stderr="")

    monkeypatch.setattr(calibration.subprocess, "run", measured_process)
    assert calibration.read_measured_speed(tmp_path, calibration.speed_key("cnn", "fast", 128)) is None
    stored = calibration.measure_and_remember(tmp_path, "cnn", "fast", 128)
    assert calls[0][-6:] == ["--model", "cnn", "--size", "fast", "--batch-size", "128"]
    assert calibration.read_measured_speed(tmp_path, calibration.speed_key("cnn", "fast", 128)) == stored
    assert stored["images_per_second"] == 123.4
    path = calibration.speed_path(tmp_path, stored["key"])
    for damaged in ({"key": "other"}, {"images_per_second": 0}, None):
        path.write_text("{not json" if damaged is None else json.dumps({**stored, **damaged}))
        assert calibration.read_measured_speed(tmp_path, stored["key"]) is None  # measured again, never trusted

    monkeypatch.setattr(calibration.subprocess, "run", lambda command, **options: subprocess.CompletedProcess(
        command, 1, stdout="", stderr="Traceback …\nRuntimeError: out of memory\n"))
    with pytest.raises(ValueError, match="measuring the training speed failed: RuntimeError: out of memory"):
        calibration.measure_and_remember(tmp_path, "cnn", "full", 128)


def finished_run(images_per_second: float, cpu: dict | None) -> SimpleNamespace:
    metrics = {"images_per_second": images_per_second, **({"cpu": cpu} if cpu is not None else {})}
    return SimpleNamespace(metrics=metrics, config={"model": "cnn", "size": "fast"})


def test_the_estimate_rests_on_this_machine_first_and_says_what_it_rests_on():
    here, elsewhere = {"cpu_model": "this one", "onednn": True}, {"cpu_model": "another", "onednn": False}
    measured = {"images_per_second": 200.0, "batches": 12}
    config = TrainConfig(model="cnn", size="fast", epochs=2, limit=1000)
    runs = [finished_run(500.0, here), finished_run(900.0, elsewhere), finished_run(700.0, None)]

    seconds, basis = estimates.estimate_run_seconds(config, runs, measured=measured, this_machine=here)
    assert seconds == pytest.approx(estimates.RUN_OVERHEAD_SECONDS + 2 * 1000 / 500)
    assert "1 finished run(s) like it on this machine" in basis
    seconds, basis = estimates.estimate_run_seconds(config, runs[1:], measured=measured, this_machine=here)
    assert seconds == pytest.approx(estimates.RUN_OVERHEAD_SECONDS + 2 * 1000 / 200)
    assert basis.startswith("at 200 training images/s, measured on this machine (12 batches of cnn fast)")
    seconds, basis = estimates.estimate_run_seconds(config, runs[1:], this_machine=here)
    assert seconds == pytest.approx(estimates.RUN_OVERHEAD_SECONDS + 2 * 1000 / 800)  # median of 900 and 700
    assert "2 finished run(s) like it here" in basis
    seconds, basis = estimates.estimate_run_seconds(config, this_machine=here)
    assert seconds == pytest.approx(estimates.RUN_OVERHEAD_SECONDS + 2 * 1000 / 373)
    assert "an estimate from another machine" in basis

    folds = MislabelConfig()
    passes = (folds.folds - 1) * folds.epochs * 20_000
    assert folds.estimated_seconds(20_000, 100.0) - folds.estimated_seconds(20_000, 200.0) == pytest.approx(
        passes / 100 - passes / 200)


# ---------------------------------------------------------------------------------------------
# The Train page


def test_the_train_page_measures_this_machines_speed_once_and_estimates_from_it(workspace, tmp_path, monkeypatch):
    """A real measurement of the tiny cnn (a TensorFlow process of a few seconds), then the estimate rests on it;
    before it, on another machine's figures, said so."""
    import time
    from pathlib import Path

    from streamlit.testing.v1 import AppTest
    from synthetic import make_synthetic, write_folders

    from fer_app import compare as compare_glue
    from fer_app import speed as speed_glue
    from fer_core.views.runs import format_duration

    def texts(app):
        return "\n".join(str(element.value) for element in [*app.markdown, *app.caption]).replace("\\", "")

    monkeypatch.setenv("FER_DATA", str(write_folders(make_synthetic()[0], tmp_path / "fer")))
    monkeypatch.setenv(speed_glue.MEASURE_ENV, "0")
    monkeypatch.setattr(device, "probe_training_device", lambda: "CPU")
    for cached in (compare_glue._device_probe, speed_glue._measurements):
        cached.clear()
    app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60)
    app.switch_page("pages/4_Train.py")
    app.run()
    app.radio(key="train_size").set_value("tiny").run()
    assert "an estimate from another machine" in texts(app) and speed_glue.MEASURING_NOTE not in texts(app)

    monkeypatch.setenv(speed_glue.MEASURE_ENV, "1")
    app.run()
    assert speed_glue.MEASURING_NOTE in texts(app)
    deadline = time.monotonic() + 180
    while "measured on this machine" not in texts(app) and time.monotonic() < deadline:
        time.sleep(1)
        app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    stored = list((workspace / "cache" / calibration.SPEED_FOLDER).glob("*.json"))
    assert len(stored) == 1, texts(app)
    measured = json.loads(stored[0].read_text())
    assert measured["model"] == "cnn" and measured["size"] == "tiny" and measured["batches"] >= calibration.MIN_BATCHES
    assert measured["cpu"] == device.choose_cpu_settings().record() | {"onednn": measured["cpu"]["onednn"]}
    seconds, basis = estimates.estimate_run_seconds(TrainConfig(size="tiny"), measured=measured)
    assert f"Estimated time: **{format_duration(seconds)}** for one run, {basis}" in texts(app)
    assert speed_glue.MEASURING_NOTE not in texts(app)
    monkeypatch.setenv(speed_glue.MEASURE_ENV, "0")
    app.radio(key="train_size").set_value("fast").run()
    assert "an estimate from another machine" in texts(app)
    app.radio(key="train_size").set_value("tiny").run()  # the stored measurement, read back
    assert f"{basis}" in texts(app)
    for cached in (compare_glue._device_probe, speed_glue._measurements):
        cached.clear()
