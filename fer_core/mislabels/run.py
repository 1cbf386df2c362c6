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
cancelled or killed one resumes where it stopped (results.py); accepting and rejecting
suggestions is review.py. TensorFlow and cleanlab are imported only when a computation starts.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.dataset.loading import Dataset
from fer_core.files import remove_path
from fer_core.labels import TRAINING
from fer_core.mislabels.config import VALIDATION_USAGE, MislabelConfig, MislabelProgress, ProgressCallback, StopCheck
from fer_core.mislabels.folds import assign_folds, cross_validated_probabilities
from fer_core.mislabels.ranking import find_pooling_groups, pool_probabilities, rank_label_issues, summarize
from fer_core.mislabels.results import (MislabelResult, cache_key, cache_root, read_cached_result, write_cached_result,
                                        write_outputs)  # noqa: F401


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
    """Refuse, before any model trains, what the folds or cleanlab would refuse only after all of them
    trained, in their own words ("Labels must contain at least 2 classes", "The least populated class")."""
    source = dataset.source or "dataset"
    if len(training_rows) < 2 * folds:
        raise ValueError(f"{source}: {len(training_rows)} Training images; "
                         f"{folds}-fold cross-validation needs at least {2 * folds}")
    counts = np.bincount(dataset.labels[training_rows].astype(np.int64), minlength=len(dataset.emotions))
    present = np.flatnonzero(counts)
    if len(present) < 2:
        raise ValueError(f"{source}: all {counts[present[0]]:,} Training images are {dataset.emotions[present[0]]}; "
                         f"suspected mislabels need at least two emotions to tell apart")
    few = [f"{dataset.emotions[label]} {counts[label]}" for label in present if counts[label] < folds]
    if few:
        raise ValueError(f"{source}: too few Training images of {', '.join(few)}; {folds}-fold cross-validation "
                         f"needs at least {folds} of each emotion present (one per fold): use fewer folds, "
                         f"or relabel or drop those images")
    if not (dataset.usages == VALIDATION_USAGE).any():
        raise ValueError(f"{source}: no {VALIDATION_USAGE} images; the fold models "
                         f"early-stop on {VALIDATION_USAGE}, as every training run does")
