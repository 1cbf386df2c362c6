"""Out-of-fold probabilities: stratified folds that keep copies of one photo together, one model per fold.

Each fold's model is trained on the other K-1 folds with the training module's own builder, pipeline and
fit (early stopping on PublicTest, as every run does) and predicts the held-out fold; test images get the
average of the K fold models. TensorFlow is imported only when a computation starts. With
$FER_AUDIT_RAY_ADDRESS set, the folds train at once as Ray tasks (fer_core.parallel), with the same results.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fer_core.dataset.loading import Dataset
from fer_core.duplicates.grouping import NO_GROUP
from fer_core.mislabels.config import (VALIDATION_USAGE, MislabelConfig, MislabelProgress, MislabelsCancelled,
                                       ProgressCallback, StopCheck)
from fer_core.mislabels.results import read_fold, write_fold
from fer_core.parallel import cluster_configured, cluster_share, run_tasks, thread_environment


def assign_folds(labels: np.ndarray, group_of: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold number (0..folds-1) per training row: stratified by label, copies of a photo kept together."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.where(group_of == NO_GROUP, -1 - np.arange(len(group_of)), group_of)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        fold_of[held_out] = fold
    return fold_of


def cross_validated_probabilities(dataset: Dataset, training_rows: np.ndarray, fold_of: np.ndarray,
                                  config: MislabelConfig, *, on_progress: ProgressCallback | None = None,
                                  should_stop: StopCheck | None = None,
                                  folds_dir: Path | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """N×K probabilities (K emotions): out-of-fold for Training rows, the fold models' mean for the other rows.

    Folds run one after the other here, or all at once as Ray tasks when $FER_AUDIT_RAY_ADDRESS is set
    (`fit_folds_on_cluster`); either way each finished fold is kept in `folds_dir` as it arrives.
    """
    other_rows = np.setdiff1d(np.arange(len(dataset)), training_rows)
    validation = dataset.select(np.flatnonzero(dataset.usages == VALIDATION_USAGE))
    rows = [(training_rows[fold_of != fold], training_rows[fold_of == fold]) for fold in range(config.folds)]
    saved = [read_fold(folds_dir, fold, len(held_out), len(other_rows), len(dataset.emotions))
             for fold, (_, held_out) in enumerate(rows)]
    reported: list[int] = []  # folds whose end the cluster already reported
    if cluster_configured() and any(fold is None for fold in saved):
        reported = fit_folds_on_cluster(dataset, rows, other_rows, validation, config, saved, on_progress=on_progress,
                                        should_stop=should_stop, folds_dir=folds_dir)
    probabilities = np.zeros((len(dataset), len(dataset.emotions)), dtype=np.float32)
    fold_metrics = []
    for fold, (kept, held_out) in enumerate(rows):
        _stop_if_asked(should_stop)
        if saved[fold] is None:
            if on_progress is not None:
                on_progress(MislabelProgress("fold", fold + 1, config.folds, epochs=config.epochs))
            later = sum(len(rows[other][0]) for other in range(fold + 1, config.folds) if saved[other] is None)
            saved[fold] = fit_fold(dataset.pixels, dataset.labels, kept, held_out, other_rows, validation, config,
                                   fold, on_epoch=_epoch_reporter(fold, config.folds, on_progress, should_stop),
                                   on_speed=_speed_reporter(fold, config, later * config.epochs, on_progress))
            write_fold(folds_dir, fold, *saved[fold])
        held_probabilities, other_probabilities, metrics = saved[fold]
        probabilities[held_out] = held_probabilities
        probabilities[other_rows] += other_probabilities / config.folds
        metrics["held_out_accuracy"] = round(float(
            (held_probabilities.argmax(axis=1) == dataset.labels[held_out]).mean()), 4)
        fold_metrics.append(metrics)
        if on_progress is not None and fold not in reported:
            on_progress(MislabelProgress("fold_done", fold + 1, config.folds, seconds=metrics["seconds"]))
    return probabilities, fold_metrics


def fit_fold(pixels: np.ndarray, labels: np.ndarray, kept: np.ndarray, held_out: np.ndarray, other_rows: np.ndarray,
             validation: Dataset, config: MislabelConfig, fold: int, *,
             on_epoch: Callable[[Any], None] | None = None,
             on_speed: Callable[[Any], None] | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """One fold's model, trained on the `kept` rows: its probabilities for the held-out and the other rows, and
    its metrics. Pure: on a cluster it is a task."""
    from fer_core.training.fit import configure_runtime, fit_model, predict_probabilities
    from fer_core.training.models import build_model
    from fer_core.training.sampling import TrainingSet

    train_config = config.train_config(fold)
    configure_runtime(train_config.seed, train_config.deterministic)
    model = build_model(config.model, config.size, seed=train_config.seed, num_classes=len(validation.emotions))
    history, seconds = fit_model(model, TrainingSet(pixels[kept], labels[kept]), validation, train_config,
                                 on_epoch=on_epoch, on_speed=on_speed)
    held_probabilities = predict_probabilities(model, pixels[held_out], config.batch_size)
    other_probabilities = predict_probabilities(model, pixels[other_rows], config.batch_size)
    metrics = {"fold": fold + 1, "train_images": int(len(kept)), "held_out_images": int(len(held_out)),
               "epochs_run": len(history["epoch"]), "best_epoch": history["best_epoch"],
               "best_val_accuracy": round(history["val_accuracy"][history["best_epoch"] - 1], 4),
               "seconds": round(seconds, 1)}
    return held_probabilities, other_probabilities, metrics


def fit_folds_on_cluster(dataset: Dataset, rows: list[tuple[np.ndarray, np.ndarray]], other_rows: np.ndarray,
                         validation: Dataset, config: MislabelConfig, saved: list, *,
                         on_progress: ProgressCallback | None = None, should_stop: StopCheck | None = None,
                         folds_dir: Path | None = None) -> list[int]:
    """The folds not in `saved` as parallel Ray tasks, each with its share of the cluster's CPUs (or a GPU);
    each is written to `folds_dir` and put in `saved` as it finishes. Progress comes per fold, not per epoch;
    returns the folds trained.

    The pixels and labels go to the cluster's object store once, shared by the tasks; a stop cancels the
    running tasks and keeps the finished folds."""
    missing = [fold for fold, found in enumerate(saved) if found is None]
    share = cluster_share(len(missing))
    for fold in missing:
        if on_progress is not None:
            on_progress(MislabelProgress("fold", fold + 1, config.folds, epochs=config.epochs))

    def keep(index: int, result: tuple[np.ndarray, np.ndarray, dict[str, Any]]) -> None:
        fold = missing[index]
        saved[fold] = result
        write_fold(folds_dir, fold, *result)
        if on_progress is not None:
            on_progress(MislabelProgress("fold_done", fold + 1, config.folds, seconds=result[2]["seconds"]))

    pixels, labels = np.asarray(dataset.pixels), np.asarray(dataset.labels)
    run_tasks(fit_fold, [(pixels, labels, *rows[fold], other_rows, validation, config, fold) for fold in missing],
              share=share, environment=thread_environment(share.cpus), on_done=keep,
              check_stop=lambda: _stop_if_asked(should_stop))
    return missing


def _epoch_reporter(fold: int, folds: int, on_progress: ProgressCallback | None,
                    should_stop: StopCheck | None) -> Callable[[Any], None]:
    """The fit's per-epoch callback: forwards progress, and raises MislabelsCancelled to stop the fit."""

    def report(progress: Any) -> None:
        if on_progress is not None:
            on_progress(MislabelProgress("epoch", fold + 1, folds, epoch=progress.epoch, epochs=progress.epochs,
                                         val_accuracy=progress.val_accuracy, seconds=progress.seconds))
        _stop_if_asked(should_stop)

    return report


def _speed_reporter(fold: int, config: MislabelConfig, later_images: int,
                    on_progress: ProgressCallback | None) -> Callable[[Any], None] | None:
    """The fit's speed callback: the fold's measured speed, and the time left to the last planned epoch of the
    last fold (`later_images`: the training images of the folds still to train after this one)."""
    if on_progress is None:
        return None

    def report(speed: Any) -> None:
        whole = dataclasses.replace(speed, images_left=speed.images_left + later_images)
        on_progress(MislabelProgress("speed", fold + 1, config.folds, epoch=speed.epoch, epochs=speed.epochs,
                                     detail=whole.describe()))

    return report


def _stop_if_asked(should_stop: StopCheck | None) -> None:
    if should_stop is not None and should_stop():
        raise MislabelsCancelled("mislabel detection cancelled")
