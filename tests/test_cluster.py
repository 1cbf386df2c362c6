"""The heavy stages on a Ray cluster (fer_core.parallel): a real local head with two worker CPUs, started here.

With $FER_AUDIT_RAY_ADDRESS set, decoding and the face stage run as Ray Data `map_batches` and the mislabel
folds as parallel Ray tasks; each must give what the local path gives. Without it, ray is never imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_jobs_ray import RAY, free_port

from fer_core import parallel

pytest.importorskip("ray.data", reason="ray[data] is not installed (see requirements.txt)")
CLUSTER_ENVIRONMENT = {"RAY_memory_monitor_refresh_ms": "0", "RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A local head with 2 CPUs: the Jobs API's address (what users set) and the address drivers join."""
    if not Path(RAY).exists() and not shutil.which("ray"):
        pytest.skip("the `ray` command is not installed")
    port, dashboard = free_port(), free_port()
    start = [RAY, "start", "--head", f"--port={port}", f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1",
             "--num-cpus=2", "--disable-usage-stats", f"--temp-dir={tmp_path_factory.mktemp('ray')}"]
    # Ray's own OOM killer counts other processes on this shared machine (see test_jobs_ray.py); token
    # authentication would be switched on by a token some local `ray.init()` left in ~/.ray.
    environment = {**os.environ, **CLUSTER_ENVIRONMENT}
    subprocess.run(start, check=True, capture_output=True, timeout=180, env=environment)
    try:
        yield f"http://127.0.0.1:{dashboard}", f"127.0.0.1:{port}"
    finally:
        import ray

        ray.shutdown()
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)


@pytest.fixture
def on_cluster(ray_head, monkeypatch):
    """Within the test, the heavy stages go to the local head."""
    dashboard, gcs = ray_head
    monkeypatch.setenv(parallel.RAY_ADDRESS_ENV, dashboard)
    monkeypatch.setenv("RAY_ADDRESS", gcs)
    for name, value in CLUSTER_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module


def process_of(batch: list) -> list:
    """Which process handled each item (and the item, to check the order)."""
    return [(item, os.getpid()) for item in batch]


def timed_sleep(seconds: float) -> tuple[float, float]:
    started = time.time()
    time.sleep(seconds)
    return started, time.time()


def test_without_the_variable_ray_is_never_imported(monkeypatch, tmp_path):
    """The local path of every hooked stage imports no ray (it costs seconds and a cluster is optional)."""
    monkeypatch.delenv(parallel.RAY_ADDRESS_ENV, raising=False)
    script = ("import sys\n"
              "sys.path.insert(0, 'tests')\n"
              "from synthetic import make_synthetic, write_folders\n"
              "import fer_core.dataset.loading, fer_core.outliers.faces, fer_core.mislabels.folds\n"
              "from fer_core import parallel\n"
              f"data = write_folders(make_synthetic(seed=4)[0], __import__('pathlib').Path({str(tmp_path)!r}))\n"
              "assert len(fer_core.dataset.loading.load(data, use_cache=False)) > 40\n"
              "assert list(parallel.map_batches(len, list(range(10)), 3, local_processes=2)) == [3, 3, 3, 1]\n"
              "assert parallel.run_tasks(sum, [([1, 2],), ([3],)]) == [3, 3]\n"
              "print(sorted(name for name in sys.modules if name == 'ray' or name.startswith('ray.')))\n")
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                           cwd=Path(__file__).resolve().parents[1])
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def test_local_map_keeps_the_order_and_refuses_a_bad_batch_size():
    assert list(parallel.map_batches(sum, [1, 2, 3, 4, 5], 2)) == [3, 7, 5]
    assert [list(batch) for batch in parallel.map_batches(list, np.arange(5), 2)] == [[0, 1], [2, 3], [4]]
    assert list(parallel.map_batches(len, [], 4)) == []
    with pytest.raises(ValueError, match="batch_size"):
        parallel.map_batches(len, [1], 0)


def test_a_cluster_that_cannot_be_reached_is_one_line(monkeypatch):
    """What the CLI prints as `error: ...` (exit 2) when the variable is set and no Ray node answers."""
    import ray

    monkeypatch.setenv(parallel.RAY_ADDRESS_ENV, "http://127.0.0.1:1")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def refuse(**settings):
        assert settings["address"] == "auto"  # the Jobs API's http address is not a driver's address
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(ValueError, match=r"^FER_AUDIT_RAY_ADDRESS is set but no Ray cluster was reached at 'auto': "
                                         r"set RAY_ADDRESS .*Could not find any running Ray instance"):
        list(parallel.map_batches(len, [1, 2], 1))


def test_an_address_nobody_answers_is_one_line_within_seconds(monkeypatch):
    """Guards RAY_ADDRESS=HOST:PORT with nothing listening there: ray.init retried for minutes (the audit hung)."""
    import time

    import ray

    monkeypatch.setenv(parallel.RAY_ADDRESS_ENV, "http://127.0.0.1:1")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **settings: pytest.fail("ray.init was called for a dead address"))
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"^FER_AUDIT_RAY_ADDRESS is set but no Ray cluster answers at '127.0.0.1:1'"):
        list(parallel.map_batches(len, [1, 2], 1))
    assert time.monotonic() - started < 10


def test_work_fans_out_to_the_clusters_workers_in_order(on_cluster):
    """Batches come back in the input's order from worker processes; two tasks run at the same time."""
    batches = list(parallel.map_batches(process_of, list(range(12)), 3))
    assert [item for batch in batches for item, _ in batch] == list(range(12))
    assert os.getpid() not in {pid for batch in batches for _, pid in batch}

    (first_start, first_end), (second_start, second_end) = parallel.run_tasks(timed_sleep, [(2.0,), (2.0,)])
    assert max(first_start, second_start) < min(first_end, second_end)  # they overlapped: two workers


@pytest.fixture(scope="module")
def real_frames(real_data) -> np.ndarray:
    """48 real FER-2013 training faces, 8 of each of six emotions."""
    from fer_core.dataset.loading import decode_image

    paths = [path for emotion in ("angry", "fear", "happy", "sad", "surprise", "neutral")
             for path in sorted((real_data / "train" / emotion).glob("*.jpg"))[:8]]
    return np.stack([decode_image(path.read_bytes())[0] for path in paths])


def test_decoding_on_the_cluster_gives_the_local_pixels_problems_and_order(real_data, on_cluster, monkeypatch,
                                                                          tmp_path, workspace):
    """About 200 real FER-2013 files and one that is not an image: the workers read them by path."""
    from fer_core.dataset.loading import load

    for split, per_emotion in (("train", 20), ("test", 9)):
        for folder in sorted((real_data / split).iterdir()):
            target = tmp_path / "data" / split / folder.name
            target.mkdir(parents=True)
            for path in sorted(folder.glob("*.jpg"))[:per_emotion]:
                shutil.copyfile(path, target / path.name)
    (tmp_path / "data" / "train" / "happy" / "Training_broken.jpg").write_bytes(b"not a jpeg")
    steps = []
    on_ray = load(tmp_path / "data", use_cache=False, progress=lambda *step: steps.append(step))
    monkeypatch.delenv(parallel.RAY_ADDRESS_ENV)
    here = load(tmp_path / "data", use_cache=False)

    assert len(here) == 7 * 29
    assert [problem.sample_id for problem in here.problems] == ["train/happy/Training_broken.jpg"]
    assert on_ray.ids.tolist() == here.ids.tolist() and np.array_equal(on_ray.pixels, here.pixels)
    assert on_ray.fingerprint == here.fingerprint and on_ray.problems == here.problems
    assert steps[-1] == ("decode", len(here) + 1, len(here) + 1)


def test_the_face_stage_on_the_cluster_finds_what_it_finds_here(real_frames, on_cluster, monkeypatch):
    from fer_core.outliers.faces import FaceConfig, find_faces

    config = FaceConfig(batch_size=8)  # six batches, shared by the two workers
    calls = []
    on_ray = find_faces(real_frames, config=config, progress=lambda *call: calls.append(call))
    monkeypatch.delenv(parallel.RAY_ADDRESS_ENV)
    here = find_faces(real_frames, config=config)

    assert here["face_found"].sum() >= 40  # real faces: the comparison is not between two empty tables
    pd.testing.assert_frame_equal(on_ray, here)  # exactly: the same networks on the same pixels
    assert [done for _, done, _ in calls] == [0, 8, 16, 24, 32, 40, 48]


def test_mislabel_folds_train_as_parallel_tasks_with_the_local_results(on_cluster, monkeypatch, tmp_path):
    from test_mislabels import FAST, texture_dataset

    from fer_core.mislabels.config import MislabelConfig
    from fer_core.mislabels.folds import assign_folds, cross_validated_probabilities

    dataset = texture_dataset(per_class=12, per_class_test=3)
    config = MislabelConfig(folds=2, epochs=2, **FAST)
    training_rows = np.flatnonzero(dataset.usages == "Training")
    fold_of = assign_folds(dataset.labels[training_rows], np.full(len(training_rows), -1), config.folds, config.seed)
    progress = []
    on_ray, ray_metrics = cross_validated_probabilities(dataset, training_rows, fold_of, config,
                                                        on_progress=progress.append, folds_dir=tmp_path / "folds")
    monkeypatch.delenv(parallel.RAY_ADDRESS_ENV)
    here, metrics = cross_validated_probabilities(dataset, training_rows, fold_of, config)

    assert sorted(path.name for path in (tmp_path / "folds").iterdir()) == [
        "fold0-held_out.npy", "fold0-other.npy", "fold0.json", "fold1-held_out.npy", "fold1-other.npy", "fold1.json"]
    assert sorted((step.stage, step.fold) for step in progress) == [("fold", 1), ("fold", 2), ("fold_done", 1),
                                                                     ("fold_done", 2)]
    drop_seconds = [{name: value for name, value in fold.items() if name != "seconds"} for fold in metrics]
    assert [{name: value for name, value in fold.items() if name != "seconds"} for fold in ray_metrics] == drop_seconds
    # Seeded: identical on this machine (largest difference 0.0) though the tasks run TensorFlow on one thread
    # each and this process on two; a float tolerance leaves room for workers whose processors round otherwise.
    np.testing.assert_allclose(on_ray, here, rtol=0, atol=1e-6)
