"""A comparison experiment: raw and curated data × seeds, queued as one experiment, and its compare.json.

`submit_compare` validates everything before queueing any run (seed = base seed + i, both arms
per seed). When every run has succeeded, `compute_comparison` scores both arms on the PrivateTest
images they all scored, with the raw data's ORIGINAL labels (predictions.csv joined on id), leaves
out of the leak-free figure every test image with a Training copy in the raw data (the union over
arms: curation only removes or relabels, it never adds a Training image), and hands the arrays to
training/compare.py for the statistics. `read_comparison` is what the app calls: the stored
compare.json, computed on first read once the experiment is finished.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.files import make_folder, write_json_atomically
from fer_core.jobs.experiments import (
    CURATED,
    DATA_VARIANTS,
    RAW,
    experiment_runs,
    new_experiment_id,
)
from fer_core.jobs.records import FINISHED, SUCCEEDED, RunRecord
from fer_core.jobs.scheduler import drain, submit_many
from fer_core.labels import EMOTIONS
from fer_core.training.config import TrainConfig, check_range
from fer_core.workspace import resolve_workspace

MAX_SEEDS = 20
COMPARE_NAME = "compare.json"
EXPERIMENTS_FOLDER = "experiments"
TEST_USAGE = "PrivateTest"  # training.fit.TEST_USAGE (fit is imported only when a comparison is computed)
POLL_SECONDS = 2.0
NOT_VALID_NOTE = ("NOT A VALID MEASURE: the mislabel suggestions come from models, so relabelling the test set by "
                  "them bends it towards what models predict; only the original labels measure curation")


def compare_configs(base: TrainConfig, seeds: int) -> list[TrainConfig]:
    """Raw and curated per seed (base.seed + i), in that order; ValueError on a bad seed count or seed."""
    check_range("seeds", seeds, 1, MAX_SEEDS)
    return [replace(base, seed=base.seed + index, raw=variant == RAW)
            for index in range(seeds) for variant in DATA_VARIANTS]


def submit_compare(base: TrainConfig, seeds: int, data_path: str | os.PathLike,
                   workspace: str | os.PathLike | None = None) -> tuple[str, list[str]]:
    """Queue raw/curated × seeds as one experiment; returns (experiment id, run ids raw, curated per seed)."""
    configs = compare_configs(base, seeds)
    experiment_id = new_experiment_id()
    return experiment_id, submit_many(configs, data_path, workspace, experiment_id=experiment_id)


def experiment_folder(experiment_id: str, workspace: str | os.PathLike | None = None) -> Path:
    """`<workspace>/experiments/<experiment id>/` (not created); the id must be a recorded one."""
    experiment_runs(experiment_id, workspace)  # ValueError for an unknown id, so no path is built from a typo
    return resolve_workspace(workspace).resolve() / EXPERIMENTS_FOLDER / experiment_id


def arm_of(record: RunRecord) -> str:
    return RAW if record.config.get("raw") else CURATED


def comparison_arms(runs: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    """Each arm's runs in seed order; ValueError unless the runs are training runs that differ only in
    raw/curated and seed, with the same seeds in both arms."""
    experiment = runs[0].experiment_id if runs else "?"
    if any(run.kind != "train" or run.settings is None for run in runs):
        raise ValueError(f"experiment {experiment} holds runs that are not training runs; it is not a comparison")
    shared = {key: value for key, value in runs[0].config.items() if key not in ("raw", "seed")}
    differing = sorted({key for run in runs for key, value in run.config.items()
                        if key not in ("raw", "seed") and shared.get(key) != value})
    if differing:
        raise ValueError(f"experiment {experiment} is not a comparison: its runs differ in {', '.join(differing)} "
                         "(queue one with `python -m fer_core compare DATA`)")
    if len({run.data_path for run in runs}) > 1:
        raise ValueError(f"experiment {experiment} is not a comparison: its runs read different data")
    arms = {arm: sorted((run for run in runs if arm_of(run) == arm), key=lambda run: run.config["seed"])
            for arm in DATA_VARIANTS}
    seeds = {arm: [run.config["seed"] for run in arms[arm]] for arm in arms}
    if not arms[RAW] or not arms[CURATED]:
        missing = RAW if not arms[RAW] else CURATED
        raise ValueError(f"experiment {experiment} has no {missing} run; a comparison needs both arms")
    if seeds[RAW] != seeds[CURATED] or len(set(seeds[RAW])) != len(seeds[RAW]):
        raise ValueError(f"experiment {experiment}: the arms' seeds do not pair up (raw {seeds[RAW]}, "
                         f"curated {seeds[CURATED]})")
    return arms


def comparison_experiments(records: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
    """The experiments among `records` (newest first, as `list_runs` gives them) that are comparisons,
    id → runs; a grid of models, say, is left out."""
    grouped: dict[str, list[RunRecord]] = {}
    for record in records:
        if record.experiment_id:
            grouped.setdefault(record.experiment_id, []).append(record)
    comparisons = {}
    for experiment_id, runs in grouped.items():
        try:
            comparison_arms(runs)
        except ValueError:
            continue
        comparisons[experiment_id] = runs
    return comparisons


def run_rows(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per run for a progress table: arm, seed, run id, state, accuracy (None until done), error."""
    order = {arm: index for index, arm in enumerate(DATA_VARIANTS)}
    rows = [{"arm": arm_of(run), "seed": run.config.get("seed"), "run_id": run.run_id, "state": run.state,
             "accuracy": (run.metrics or {}).get("accuracy"), "error": run.error} for run in runs]
    return sorted(rows, key=lambda row: (order[row["arm"]], row["seed"] if row["seed"] is not None else -1))


def check_all_succeeded(runs: Sequence[RunRecord]) -> None:
    """ValueError naming what is unfinished, or which runs did not succeed and why; nothing otherwise."""
    experiment = runs[0].experiment_id if runs else "?"
    waiting = [run for run in runs if not run.finished]
    if waiting:
        raise ValueError(f"experiment {experiment} is not finished: {len(waiting)} of {len(runs)} runs queued or "
                         "running; pass --wait to wait for them")
    failed = [row for row in run_rows(runs) if row["state"] != SUCCEEDED]
    if failed:
        described = "; ".join(f"{row['run_id']} ({row['arm']}, seed {row['seed']}) {row['state']}"
                              + (f": {row['error']}" if row["error"] else "") for row in failed)
        raise ValueError(f"experiment {experiment}: {len(failed)} of {len(runs)} runs did not succeed, so there "
                         f"is no comparison: {described}")


def wait_for_experiment(experiment_id: str, workspace: str | os.PathLike | None = None,
                        on_finish: Callable[[RunRecord], None] | None = None,
                        poll_seconds: float = POLL_SECONDS) -> list[RunRecord]:
    """Block until every run of the experiment has finished (succeeded, failed or cancelled); `on_finish`
    is told of each run once as it ends. Drains while waiting, so queued runs start as capacity frees."""
    told: set[str] = set()
    while True:
        drain(workspace)
        runs = experiment_runs(experiment_id, workspace)
        for run in sorted(runs, key=lambda run: run.finished_at or ""):
            if run.finished and run.run_id not in told:
                told.add(run.run_id)
                if on_finish is not None:
                    on_finish(run)
        if all(run.state in FINISHED for run in runs):
            return runs
        time.sleep(poll_seconds)


def test_predictions(record: RunRecord, emotions: tuple[str, ...] = EMOTIONS) -> tuple[np.ndarray, np.ndarray]:
    """(ids, predicted emotion indices into `emotions`) of a run's PrivateTest rows in predictions.csv."""
    import pandas as pd

    path = Path(record.out_dir) / "predictions.csv"
    try:
        table = pd.read_csv(path, usecols=["id", "usage", "predicted"], dtype=str)
    except (OSError, ValueError) as error:
        raise ValueError(f"run {record.run_id}: cannot read its predictions ({path}: {error})") from None
    table = table[table["usage"] == TEST_USAGE]
    predicted = table["predicted"].map({emotion: index for index, emotion in enumerate(emotions)})
    if predicted.isna().any():
        unknown = table["predicted"][predicted.isna()].iloc[0]
        raise ValueError(f"run {record.run_id}: {path} holds an unknown emotion {unknown!r}")
    return table["id"].to_numpy(dtype=str), predicted.to_numpy(dtype=np.int64)


def compute_comparison(experiment_id: str, workspace: str | os.PathLike | None = None) -> dict[str, Any]:
    """compare.json's content for a finished experiment whose runs all succeeded (ValueError otherwise)."""
    from fer_core.dataset.loading import load
    from fer_core.training.compare import PairedPredictions, compare_arms
    from fer_core.training.fit import find_leaked_test_rows, resolve_near_threshold

    runs = experiment_runs(experiment_id, workspace)
    arms = comparison_arms(runs)
    check_all_succeeded(runs)
    dataset = load(runs[0].data_path, workspace=workspace)
    test_rows = np.flatnonzero(dataset.usages == TEST_USAGE)
    original = dict(zip(dataset.ids[test_rows], np.asarray(dataset.labels[test_rows], dtype=np.int64)))
    scored = {run.run_id: dict(zip(*test_predictions(run, dataset.emotions))) for run in runs}
    shared = [sample_id for sample_id in dataset.ids[test_rows] if all(sample_id in run for run in scored.values())]
    if not shared:
        raise ValueError(f"experiment {experiment_id}: its runs scored no {TEST_USAGE} image in common")
    settings = arms[RAW][0].settings
    leaked_mask = find_leaked_test_rows(dataset, resolve_near_threshold(settings.near_threshold),
                                        settings.near_mode, workspace)
    leaked_ids = set(dataset.ids[test_rows][leaked_mask])
    labels = np.array([original[sample_id] for sample_id in shared])
    predictions = {arm: np.array([[scored[run.run_id][sample_id] for sample_id in shared] for run in arms[arm]])
                   for arm in DATA_VARIANTS}
    paired = PairedPredictions(labels=labels, leaked=np.array([sample_id in leaked_ids for sample_id in shared]),
                               raw=predictions[RAW], curated=predictions[CURATED],
                               seeds=tuple(run.config["seed"] for run in arms[RAW]), emotions=dataset.emotions)
    statistics = compare_arms(paired)
    for arm in DATA_VARIANTS:
        statistics["arms"][arm] = {"run_ids": [run.run_id for run in arms[arm]], **statistics["arms"][arm]}
    return {
        "experiment_id": experiment_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_path": runs[0].data_path,
        "config": {key: value for key, value in runs[0].config.items() if key not in ("raw", "seed")},
        **statistics,
        "labels": "original (the raw data's), joined on id; test images scored by every run",
        "not_a_valid_measure": relabelled_figure(dataset, shared, labels, predictions[CURATED], workspace),
    }


def relabelled_figure(dataset: Any, shared: list[str], labels: np.ndarray, curated: np.ndarray,
                      workspace: str | os.PathLike | None) -> dict[str, Any]:
    """The circular figure (curated accuracy on test labels relabelled by the newest mislabel result's
    suggestions), with the note that it measures nothing; its value None when no result exists."""
    from fer_core.mislabels.results import latest_result
    from fer_core.training.compare import relabelled_accuracy

    result = latest_result(dataset, workspace)
    if result is None:
        return {"relabelled_test_accuracy": None, "test_labels_changed": None,
                "note": "cannot be computed: no mislabel result for this data (python -m fer_core mislabels)"}
    flagged = result.table[result.table["is_label_issue"].astype(bool)]
    suggestion = dict(zip(flagged["id"], flagged["suggested_label"]))
    relabelled = np.array([result.emotions.index(suggestion[sample_id]) if sample_id in suggestion else label
                           for sample_id, label in zip(shared, labels)])
    return {"relabelled_test_accuracy": round(relabelled_accuracy(relabelled, curated), 6),
            "test_labels_changed": int((relabelled != labels).sum()), "note": NOT_VALID_NOTE}


def write_comparison(comparison: dict[str, Any], folder: str | os.PathLike) -> Path:
    """FOLDER/compare.json, written whole (temporary file, then rename)."""
    return write_json_atomically(make_folder(folder) / COMPARE_NAME, comparison)


def read_comparison(experiment_id: str, workspace: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The experiment's compare.json as a dict: read from its folder, or computed and stored there when the
    experiment is finished and it is missing; None while runs are queued or running; ValueError when a run
    failed or the experiment is not a comparison."""
    runs = experiment_runs(experiment_id, workspace)
    comparison_arms(runs)
    if not all(run.finished for run in runs):
        return None
    path = experiment_folder(experiment_id, workspace) / COMPARE_NAME
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass  # damaged: computed again below
    comparison = compute_comparison(experiment_id, workspace)
    write_comparison(comparison, path.parent)
    return comparison
