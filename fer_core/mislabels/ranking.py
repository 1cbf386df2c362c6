"""From out-of-fold probabilities to suspects: duplicate groups pool their probabilities, cleanlab's
Confident Learning flags and ranks, and the summary says how much the fold models learned.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from fer_core.dataset.loading import Dataset
from fer_core.duplicates.grouping import NO_GROUP, group_exact, group_near
from fer_core.labels import TRAINING
from fer_core.mislabels.config import MislabelConfig
from fer_core.mislabels.results import MISLABELS_VERSION, probability_columns


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
    names = np.array(dataset.emotions)
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
    for column, values in zip(probability_columns(dataset.emotions), probabilities.T):
        table[column] = values.astype(np.float32)
    return table


def summarize(table: pd.DataFrame, config: MislabelConfig, dataset: Dataset, probabilities: np.ndarray,
              fold_metrics: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """summary.json: flagged per emotion, the given × suggested matrix of the flagged, settings, seconds."""
    flagged = table[table["is_label_issue"]]
    emotions = dataset.emotions
    matrix = pd.crosstab(pd.Categorical(flagged["label"], categories=emotions),
                         pd.Categorical(flagged["suggested_label"], categories=emotions), dropna=False)
    training = (dataset.usages == TRAINING)
    return {
        "images": int(len(table)),
        "flagged": int(len(flagged)),
        "emotions": list(emotions),  # the label set of the probability columns, in order
        "flagged_by_emotion": {emotion: int((flagged["label"] == emotion).sum()) for emotion in emotions},
        "flagged_by_usage": {usage: int(count)
                             for usage, count in flagged["usage"].value_counts().sort_index().items()},
        "given_by_suggested": {given: {suggested: int(matrix.loc[given, suggested]) for suggested in emotions}
                               for given in emotions},
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
