"""Out-of-fold probabilities: stratified folds that keep copies of one photo together, one model per fold.

Each fold's model is trained on the other K-1 folds with the training module's own builder, pipeline and
fit (early stopping on PublicTest, as every run does) and predicts the held-out fold; test images get the
average of the K fold models. TensorFlow is imported only when a computation starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from fer_core.dataset.loading import Dataset
from fer_core.duplicates.grouping import NO_GROUP
from fer_core.mislabels.config import (VALIDATION_USAGE, MislabelConfig, MislabelProgress, MislabelsCancelled,
                                       ProgressCallback, StopCheck)
from fer_core.mislabels.results import read_fold, write_fold


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
    """N×7 probabilities: out-of-fold for Training rows, the fold models' mean for the other rows."""
    from fer_core.training.fit import configure_runtime, fit_model, predict_probabilities
    from fer_core.training.sampling import TrainingSet

    other_rows = np.setdiff1d(np.arange(len(dataset)), training_rows)
    validation = dataset.select(np.flatnonzero(dataset.usages == VALIDATION_USAGE))
    probabilities = np.zeros((len(dataset), len(dataset.emotions)), dtype=np.float32)
    fold_metrics = []
    for fold in range(config.folds):
        _stop_if_asked(should_stop)
        held_out, kept = training_rows[fold_of == fold], training_rows[fold_of != fold]
        saved = read_fold(folds_dir, fold, len(held_out), len(other_rows), len(dataset.emotions))
        if saved is None:
            if on_progress is not None:
                on_progress(MislabelProgress("fold", fold + 1, config.folds, epochs=config.epochs))
            train_config = config.train_config(fold)
            configure_runtime(train_config.seed, train_config.deterministic)
            from fer_core.training.models import build_model

            model = build_model(config.model, config.size, seed=train_config.seed,
                                num_classes=len(dataset.emotions))
            history, seconds = fit_model(
                model, TrainingSet(dataset.pixels[kept], dataset.labels[kept]), validation, train_config,
                on_epoch=_epoch_reporter(fold, config.folds, on_progress, should_stop))
            held_probabilities = predict_probabilities(model, dataset.pixels[held_out], config.batch_size)
            other_probabilities = predict_probabilities(model, dataset.pixels[other_rows], config.batch_size)
            metrics = {"fold": fold + 1, "train_images": int(len(kept)), "held_out_images": int(len(held_out)),
                       "epochs_run": len(history["epoch"]), "best_epoch": history["best_epoch"],
                       "best_val_accuracy": round(history["val_accuracy"][history["best_epoch"] - 1], 4),
                       "seconds": round(seconds, 1)}
            saved = (held_probabilities, other_probabilities, metrics)
            write_fold(folds_dir, fold, *saved)
        held_probabilities, other_probabilities, metrics = saved
        probabilities[held_out] = held_probabilities
        probabilities[other_rows] += other_probabilities / config.folds
        metrics["held_out_accuracy"] = round(float(
            (held_probabilities.argmax(axis=1) == dataset.labels[held_out]).mean()), 4)
        fold_metrics.append(metrics)
        if on_progress is not None:
            on_progress(MislabelProgress("fold_done", fold + 1, config.folds, seconds=metrics["seconds"]))
    return probabilities, fold_metrics


def _epoch_reporter(fold: int, folds: int, on_progress: ProgressCallback | None,
                    should_stop: StopCheck | None) -> Callable[[Any], None]:
    """The fit's per-epoch callback: forwards progress, and raises MislabelsCancelled to stop the fit."""

    def report(progress: Any) -> None:
        if on_progress is not None:
            on_progress(MislabelProgress("epoch", fold + 1, folds, epoch=progress.epoch, epochs=progress.epochs,
                                         val_accuracy=progress.val_accuracy, seconds=progress.seconds))
        _stop_if_asked(should_stop)

    return report


def _stop_if_asked(should_stop: StopCheck | None) -> None:
    if should_stop is not None and should_stop():
        raise MislabelsCancelled("mislabel detection cancelled")
