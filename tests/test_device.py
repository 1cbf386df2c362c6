"""The device a run records (metrics.json `device`) names the GPU model, and the Train page's probe of it
says why when TensorFlow cannot start instead of hanging or raising."""

from fer_core.training import device
from fer_core.training.fit import configure_runtime


def test_a_gpu_is_recorded_by_its_model_name(monkeypatch):
    """Guards the GPU check's table: 'GPU: NVIDIA H100 80GB HBM3', not a bare 'GPU' or '/physical_device:GPU:0'."""
    import tensorflow as tf

    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [gpu] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda found: {"device_name": "NVIDIA H100 80GB HBM3", "compute_capability": (9, 0)})
    assert configure_runtime(0) == "GPU: NVIDIA H100 80GB HBM3"


def test_the_probe_says_why_tensorflow_did_not_start(monkeypatch):
    monkeypatch.setattr(device, "PROBE", "raise SystemExit('no libcuda')")
    assert device.probe_training_device() == "unknown (TensorFlow did not start: no libcuda)"
    monkeypatch.setattr(device, "PROBE", "import time; time.sleep(5)")
    assert device.probe_training_device(timeout_seconds=0.5) == "unknown (TimeoutExpired)"
