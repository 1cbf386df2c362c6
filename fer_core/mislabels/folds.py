"""Suspected mislabels: out-of-fold predicted probabilities, then cleanlab's Confident Learning.

Method (the dataset's own labels only, no external re-annotation):

1. The Training rows are split into K stratified folds; copies of one photo (the audit's near
   or exact duplicate groups) always land in the same fold, so no fold model has seen a copy of
   an image it scores. Each fold's model is trained on the other K-1 folds with the training
   module's own builder, pipeline and fit (early stopping on PublicTest, as every run does) and
   predicts the held-out fold. PublicTest/PrivateTest images are scored by the average of the
   K fold models.
2. Duplicate groups pool (average) their probabilities, so the copies of one photo get one
   suggestion.
3. cleanlab (`filter.find_label_issues`, `rank.get_label_quality_scores`) turns the given labels
   and the pooled probabilities into `is_label_issue` and a quality score; `mislabel_score` is
   1 - quality (0..1, higher = more likely wrong); `suggested_label` is the pooled argmax and
   `suggested_confidence` its probability.

Results are cached in the workspace under the curated data's fingerprint (which covers every
relabel and drop) and the settings, and finished folds are kept while a computation runs, so a
cancelled or killed one resumes where it stopped (mislabel_results.py); accepting and rejecting
suggestions is mislabel_review.py. TensorFlow and cleanlab are imported only when a computation starts.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from fer_core.dataset.loading import Dataset
from fer_core.duplicates.grouping import DEFAULT_NEAR_THRESHOLD, NO_GROUP, group_exact, group_near
from fer_core.files import remove_path
from fer_core.labels import EMOTIONS, TRAINING
from fer_core.mislabels.results import (MISLABELS_VERSION, PROBABILITY_COLUMNS, RESULT_COLUMNS, MislabelResult,  # noqa: F401
                               cache_key, cache_root, latest_result, read_cached_result, read_fold, write_cached_result,
                               write_fold, write_outputs)
from fer_core.training.config import TrainConfig

POOLINGS: tuple[str, ...] = ("near", "exact", "none")
FILTERS: tuple[str, ...] = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
                            "predicted_neq_given")
RANK_METHODS: tuple[str, ...] = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
VALIDATION_USAGE = "PublicTest"
FOLD_OVERHEAD_SECONDS = 30.0  # a fold's model build, per-epoch validation and predictions (README benchmark)


@dataclass(frozen=True)
class MislabelConfig:
    """How suspected mislabels are found; every field is part of the cache key."""

    # 3 folds × 12 epochs rather than 5 × 5: the cost is (K-1) × epochs passes over Training, and at a
    # like cost fewer, longer-trained models rank planted flips better (one fold of each on planted
    # noise: held-out accuracy 0.52 / 0.55 / 0.56 and recall at precision 0.5 ≈ 0.47 / 0.53 / 0.55 for
    # 5 × 5, 3 × 10, 2 × 20; README, "Suspected mislabels on planted noise").
    folds: int = 3
    model: str = "cnn"
    size: str = "fast"
    epochs: int = 12
    batch_size: int = 128
    learning_rate: float = 2e-3
    patience: int = 3
    seed: int = 0
    pooling: str = "near"  # which duplicate groups share one suggestion
    near_threshold: int = DEFAULT_NEAR_THRESHOLD
    filter_by: str = "prune_by_noise_rate"
    rank_method: str = "self_confidence"

    def __post_init__(self) -> None:
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or not 2 <= self.folds <= 20:
            raise ValueError(f"folds must be an integer 2..20, got {self.folds!r}")
        for name, value, allowed in (("pooling", self.pooling, POOLINGS), ("filter_by", self.filter_by, FILTERS),
                                     ("rank_method", self.rank_method, RANK_METHODS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(allowed)}")
        if isinstance(self.near_threshold, bool) or not 0 <= self.near_threshold <= 32:
            raise ValueError(f"near_threshold must be 0..32 bits, got {self.near_threshold!r}")
        self.train_config(0)  # validates model, size, epochs, batch size, learning rate, patience, seed

    def estimated_seconds(self, training_images: int) -> float:
        """Wall seconds to expect on the idle 2-core dev VM: each fold model's epochs over (K-1)/K of the
        Training images at the size's reference speed, plus each fold's predictions and the start."""
        from fer_core.views.runs import reference_images_per_second

        passes = (self.folds - 1) * self.epochs * training_images
        return passes / reference_images_per_second(self.size, self.model) + self.folds * FOLD_OVERHEAD_SECONDS + 60.0

    def train_config(self, fold: int) -> TrainConfig:
        """The training recipe of one fold's model (its own seed, so folds differ in init and order)."""
        return TrainConfig(model=self.model, sampling="none", epochs=self.epochs, size=self.size,
                           batch_size=self.batch_size, seed=self.seed + fold, learning_rate=self.learning_rate,
                           patience=self.patience)


@dataclass(frozen=True)
class MislabelProgress:
    """Where a computation is: sent at each fold's start and end, after each epoch, and at ranking."""

    stage: str  # "fold", "epoch", "fold_done", "ranking", "done"
    fold: int  # 1-based; 0 before the first fold
    folds: int
    epoch: int = 0
    epochs: int = 0
    val_accuracy: float | None = None
    seconds: float = 0.0

    def describe(self) -> str:
        if self.stage in ("ranking", "done"):
            return f"{self.stage} ({self.folds} folds trained)"
        text = f"fold {self.fold}/{self.folds}"
        if self.stage == "epoch":
            text += f", epoch {self.epoch}/{self.epochs}, val accuracy {self.val_accuracy:.3f}"
        elif self.stage == "fold_done":
            text += " done"
        return text


ProgressCallback = Callable[[MislabelProgress], None]
StopCheck = Callable[[], bool]


class MislabelsCancelled(Exception):
    """Raised when `should_stop` says so (checked at each epoch's end and between folds)."""


# ---------------------------------------------------------------------------------------------
# Entry points


def run_mislabels(dataset: Dataset, config: MislabelConfig = MislabelConfig(), *,
                  workspace: str | os.PathLike | None = None, curated: bool = True,
                  on_progress: ProgressCallback | None = None, should_stop: StopCheck | None = None,
                  use_cache: bool = True) -> MislabelResult:
    """Suspected mislabels of the workspace's curated view of `dataset` (or of `dataset` itself), cached."""
    data = _curated(dataset, workspace) if curated else dataset
    key = cache_key(data, config)
    if use_cache:
        cached = read_cached_result(key, workspace)
        if cached is not None:
            cached.summary["from_cache"] = True
            return cached
    folds_dir = cache_root(workspace) / f"{key}.folds"
    result = find_mislabels(data, config, on_progress=on_progress, should_stop=should_stop,
                            folds_dir=folds_dir if use_cache else None)
    result.summary.update({"from_cache": False, "cache_key": key, "raw_fingerprint": dataset.fingerprint,
                           "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    if use_cache:
        write_cached_result(key, result, workspace)
        remove_path(folds_dir)
    return result


def run_mislabels_job(data_path: str, config: MislabelConfig, context: Any) -> dict[str, Any]:
    """The `mislabels` job kind: the curated data's suspected mislabels, cached in the workspace
    (where the app finds them) and written to the run folder; progress per fold as the run's stage.

    Cancelling the job stops its worker mid-fold; finished folds stay cached, so a new job resumes.
    """
    from fer_core.dataset.loading import load

    context.set_stage("loading data")
    dataset = load(data_path, workspace=context.workspace)
    result = run_mislabels(dataset, config, workspace=context.workspace,
                           on_progress=lambda progress: context.set_stage(progress.describe()))
    write_outputs(result, context.out_dir)
    return result.summary


def find_mislabels(dataset: Dataset, config: MislabelConfig = MislabelConfig(), *,
                   group_of: np.ndarray | None = None, on_progress: ProgressCallback | None = None,
                   should_stop: StopCheck | None = None, folds_dir: Path | None = None) -> MislabelResult:
    """Cross-validated probabilities → pooled by duplicate group → cleanlab; no caching of the result.

    `group_of` (group id per row, NO_GROUP for none) overrides the config's pooling groups.
    `folds_dir`, when given, keeps each finished fold's probabilities so a rerun resumes.
    """
    started = time.perf_counter()
    training_rows = np.flatnonzero(dataset.usages == TRAINING)
    _check_trainable(dataset, training_rows, config.folds)
    group_of = find_pooling_groups(dataset, config) if group_of is None else np.asarray(group_of)
    fold_of = assign_folds(dataset.labels[training_rows], group_of[training_rows], config.folds, config.seed)
    probabilities, fold_metrics = cross_validated_probabilities(
        dataset, training_rows, fold_of, config, on_progress=on_progress, should_stop=should_stop,
        folds_dir=folds_dir)
    if on_progress is not None:
        on_progress(MislabelProgress("ranking", config.folds, config.folds))
    pooled = pool_probabilities(probabilities, group_of)
    table = rank_label_issues(dataset, pooled, group_of, config)
    summary = summarize(table, config, dataset, probabilities, fold_metrics, time.perf_counter() - started)
    if on_progress is not None:
        on_progress(MislabelProgress("done", config.folds, config.folds, seconds=summary["seconds"]))
    return MislabelResult(table=table, summary=summary)


def _curated(dataset: Dataset, workspace: str | os.PathLike | None) -> Dataset:
    from fer_core.curation.edits import curated_dataset

    return curated_dataset(dataset, workspace)


def find_cached_result(dataset: Dataset, config: MislabelConfig = MislabelConfig(), *,
                       workspace: str | os.PathLike | None = None, curated: bool = True) -> MislabelResult | None:
    """The stored result for the current curation of `dataset` and these settings, if computed."""
    data = _curated(dataset, workspace) if curated else dataset
    return read_cached_result(cache_key(data, config), workspace)


def _check_trainable(dataset: Dataset, training_rows: np.ndarray, folds: int) -> None:
    if len(training_rows) < 2 * folds:
        raise ValueError(f"{dataset.source or 'dataset'}: {len(training_rows)} Training images; "
                         f"{folds}-fold cross-validation needs at least {2 * folds}")
    if not (dataset.usages == VALIDATION_USAGE).any():
        raise ValueError(f"{dataset.source or 'dataset'}: no {VALIDATION_USAGE} images; the fold models "
                         f"early-stop on {VALIDATION_USAGE}, as every training run does")


# ---------------------------------------------------------------------------------------------
# Folds and cross-validated probabilities


def find_pooling_groups(dataset: Dataset, config: MislabelConfig) -> np.ndarray:
    """Group id per row of the copies that share one suggestion (the audit's near or exact groups).

    Near groups are chains of close pairs, and on FER-2013 a few chains link distinct faces (the
    largest, 24 images, holds a dozen people). A near group is pooled only when every pair of its
    members is within the threshold; a chained one falls back to its exact groups.
    """
    if config.pooling == "none":
        return np.full(len(dataset), NO_GROUP, dtype=np.int64)
    exact_of = group_exact(dataset.pixels)
    if config.pooling == "exact":
        return exact_of
    from fer_core.duplicates.hashing import hamming_distance, phash_batch

    hashes = phash_batch(dataset.pixels)
    near_of = group_near(hashes, config.near_threshold)
    group_of = near_of.copy()
    for group in np.unique(near_of[near_of != NO_GROUP]):
        members = np.flatnonzero(near_of == group)
        if hamming_distance(hashes[members][:, None], hashes[members][None, :]).max() > config.near_threshold:
            group_of[members] = np.where(exact_of[members] == NO_GROUP, NO_GROUP, exact_of[members] + len(dataset))
    return group_of


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
    from fer_core.training.sampling import TrainingSet
    from fer_core.training.fit import configure_runtime, fit_model, predict_probabilities

    other_rows = np.setdiff1d(np.arange(len(dataset)), training_rows)
    validation = dataset.select(np.flatnonzero(dataset.usages == VALIDATION_USAGE))
    probabilities = np.zeros((len(dataset), len(EMOTIONS)), dtype=np.float32)
    fold_metrics = []
    for fold in range(config.folds):
        _stop_if_asked(should_stop)
        held_out, kept = training_rows[fold_of == fold], training_rows[fold_of != fold]
        saved = read_fold(folds_dir, fold, len(held_out), len(other_rows))
        if saved is None:
            if on_progress is not None:
                on_progress(MislabelProgress("fold", fold + 1, config.folds, epochs=config.epochs))
            train_config = config.train_config(fold)
            configure_runtime(train_config.seed, train_config.deterministic)
            from fer_core.training.models import build_model

            model = build_model(config.model, config.size, seed=train_config.seed)
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


# ---------------------------------------------------------------------------------------------
# Pooling and Confident Learning


def pool_probabilities(probabilities: np.ndarray, group_of: np.ndarray) -> np.ndarray:
    """Each grouped row gets its group's mean probabilities; rows in no group keep their own."""
    pooled = np.asarray(probabilities, dtype=np.float64).copy()
    grouped = np.flatnonzero(group_of != NO_GROUP)
    if len(grouped):
        groups, inverse = np.unique(group_of[grouped], return_inverse=True)
        sums = np.zeros((len(groups), pooled.shape[1]))
        np.add.at(sums, inverse, pooled[grouped])
        pooled[grouped] = (sums / np.bincount(inverse)[:, None])[inverse]
    return pooled


def rank_label_issues(dataset: Dataset, probabilities: np.ndarray, group_of: np.ndarray,
                      config: MislabelConfig) -> pd.DataFrame:
    """The result table: cleanlab's issue flag and quality score on the given labels and probabilities."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = dataset.labels.astype(np.int64)
    # Rows must sum to 1 for cleanlab; float32 predictions and pooling leave tiny deviations.
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    # n_jobs=1: cleanlab would otherwise fork worker processes from a process running TensorFlow.
    is_issue = find_label_issues(labels, probabilities, filter_by=config.filter_by, n_jobs=1)
    quality = get_label_quality_scores(labels, probabilities, method=config.rank_method)
    suggested = probabilities.argmax(axis=1)
    names = np.array(EMOTIONS)
    table = pd.DataFrame({
        "id": dataset.ids,
        "label": names[labels],
        "usage": dataset.usages,
        "suggested_label": names[suggested],
        "suggested_confidence": probabilities.max(axis=1).astype(np.float64),
        "mislabel_score": np.clip(1.0 - quality, 0.0, 1.0).astype(np.float64),
        "is_label_issue": np.asarray(is_issue, dtype=bool),
        "group": pd.array(np.where(group_of == NO_GROUP, None, group_of), dtype="Int64"),
    })
    for column, values in zip(PROBABILITY_COLUMNS, probabilities.T):
        table[column] = values.astype(np.float32)
    return table


def summarize(table: pd.DataFrame, config: MislabelConfig, dataset: Dataset, probabilities: np.ndarray,
              fold_metrics: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """summary.json: flagged per emotion, the given × suggested matrix of the flagged, settings, seconds."""
    flagged = table[table["is_label_issue"]]
    matrix = pd.crosstab(pd.Categorical(flagged["label"], categories=EMOTIONS),
                         pd.Categorical(flagged["suggested_label"], categories=EMOTIONS), dropna=False)
    training = (dataset.usages == TRAINING)
    return {
        "images": int(len(table)),
        "flagged": int(len(flagged)),
        "flagged_by_emotion": {emotion: int((flagged["label"] == emotion).sum()) for emotion in EMOTIONS},
        "flagged_by_usage": {usage: int(count)
                             for usage, count in flagged["usage"].value_counts().sort_index().items()},
        "given_by_suggested": {given: {suggested: int(matrix.loc[given, suggested]) for suggested in EMOTIONS}
                               for given in EMOTIONS},
        "given_by_suggested_counts": "flagged images; rows: given emotion, columns: suggested emotion",
        "out_of_fold_accuracy": round(float((probabilities[training].argmax(axis=1)
                                             == dataset.labels[training]).mean()), 4),
        "majority_share": round(float(np.bincount(dataset.labels[training]).max() / max(1, training.sum())), 4),
        "folds": fold_metrics,
        "settings": asdict(config),
        "method_version": MISLABELS_VERSION,
        "fingerprint": dataset.fingerprint,
        "source": dataset.source,
        "seconds": round(seconds, 2),
    }


