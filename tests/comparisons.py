"""A comparison experiment recorded without training: raw and curated runs × seeds in the runs table, ended
as the test asks, and (when every run succeeded) a compare.json from the real statistics on planted
predictions (curated right 10 points more often), stored where `read_comparison` reads it."""

from __future__ import annotations

import numpy as np

from fer_core.jobs import compare as compare_jobs
from fer_core.jobs import records
from fer_core.jobs.experiments import new_experiment_id
from fer_core.jobs.kinds import kind_of_config, serialize_config
from fer_core.labels import EMOTIONS
from fer_core.training.compare import PairedPredictions, compare_arms
from fer_core.training.config import TrainConfig

TEST_IMAGES = 3000


def planted_predictions(seeds: int, rng: np.random.Generator) -> PairedPredictions:
    labels = rng.integers(0, len(EMOTIONS), TEST_IMAGES)
    leaked = rng.random(TEST_IMAGES) < 0.05

    def arm(accuracy: float) -> np.ndarray:
        right = rng.random((seeds, TEST_IMAGES)) < accuracy
        return np.where(right, labels, (labels + 1) % len(EMOTIONS))

    return PairedPredictions(labels, leaked, arm(0.55), arm(0.65), tuple(range(seeds)))


def record_comparison(data_path, workspace, seeds: int = 3, end: dict[tuple[bool, int], tuple[str, str | None]]
                      | None = None, default_state: str = records.SUCCEEDED) -> tuple[str, dict | None]:
    """(experiment id, compare.json or None). `end` maps (raw, seed) to (state, error); other runs end in
    `default_state` (queued: left as queued)."""
    home = workspace.resolve()
    experiment_id = new_experiment_id()
    configs = compare_jobs.compare_configs(TrainConfig(size="tiny"), seeds)
    rows = [{"run_id": f"{experiment_id[-6:]}-{index:02d}-{'raw' if config.raw else 'curated'}-{config.seed}",
             "kind": kind_of_config(config).name, "backend": "local", "data_path": str(data_path),
             "config_json": serialize_config(config), "out_dir": str(home / "runs" / f"{experiment_id[-6:]}-{index:02d}"),
             "experiment_id": experiment_id} for index, config in enumerate(configs)]
    records.insert_runs(home, rows)
    states = []
    for row, config in zip(rows, configs):
        state, error = (end or {}).get((config.raw, config.seed), (default_state, None))
        states.append(state)
        if state != records.QUEUED:
            records.finish(home, row["run_id"], state, error=error)
    if any(state != records.SUCCEEDED for state in states):
        return experiment_id, None
    comparison = compare_arms(planted_predictions(seeds, np.random.default_rng(0)))
    for arm, raw in (("raw", True), ("curated", False)):
        comparison["arms"][arm] = {"run_ids": [row["run_id"] for row, config in zip(rows, configs)
                                               if config.raw == raw], **comparison["arms"][arm]}
    comparison = {"experiment_id": experiment_id, "created_at": "2026-01-01T00:00:00+00:00",
                  "data_path": str(data_path), "config": {"model": "cnn", "sampling": "none", "size": "tiny"},
                  **comparison, "labels": "original",
                  "not_a_valid_measure": {"relabelled_test_accuracy": 0.712, "test_labels_changed": 57,
                                          "note": compare_jobs.NOT_VALID_NOTE}}
    compare_jobs.write_comparison(comparison, compare_jobs.experiment_folder(experiment_id, home))
    return experiment_id, comparison
