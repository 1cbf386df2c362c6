"""Sampling strategies for the training split (none, class_weight, ros, smote) and its stratified subsets.

Resampling only ever sees the training arrays it is given: callers split first and pass the
Training rows, so PublicTest and PrivateTest are never resampled. ROS and SMOTE run
imbalanced-learn on flattened pixels and reshape back to 48×48 images; SMOTE's interpolated
images are rounded and clipped to uint8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer_core.dataset.loading import Dataset
from fer_core.labels import EMOTIONS, IMAGE_SIDE, TRAINING

SAMPLING_NAMES: tuple[str, ...] = ("none", "class_weight", "ros", "smote")
SMOTE_NEIGHBOURS = 5


@dataclass(frozen=True, eq=False)
class TrainingSet:
    """Training images after a sampling strategy: pixels N×48×48 uint8, labels, optional class weights.

    `added` counts the rows the strategy appended after the originals (copies for ROS, new
    interpolated images for SMOTE); the first rows are the originals, in their order.
    """

    pixels: np.ndarray
    labels: np.ndarray
    class_weight: dict[int, float] | None = None
    added: int = 0


def validate_sampling(strategy: str) -> None:
    if strategy not in SAMPLING_NAMES:
        raise ValueError(f"unknown sampling {strategy!r}; expected one of {', '.join(SAMPLING_NAMES)}")


def compute_class_weights(labels: np.ndarray, num_classes: int = len(EMOTIONS)) -> dict[int, float]:
    """Balanced weights n / (classes present × count): rare emotions weigh more; absent ones get 0."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    present = int(np.count_nonzero(counts))
    total = int(counts.sum())
    return {label: (total / (present * int(count)) if count else 0.0) for label, count in enumerate(counts)}


def resample_training(pixels: np.ndarray, labels: np.ndarray, strategy: str, seed: int = 0,
                      emotions: tuple[str, ...] = EMOTIONS) -> TrainingSet:
    """Apply a sampling strategy to training images (N×48×48 uint8) and their labels (indices into `emotions`)."""
    validate_sampling(strategy)
    pixels = np.asarray(pixels, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int8)
    if strategy == "none":
        return TrainingSet(pixels, labels)
    if strategy == "class_weight":
        return TrainingSet(pixels, labels, class_weight=compute_class_weights(labels))
    if strategy == "ros":
        return random_oversample(pixels, labels, seed)
    return smote_oversample(pixels, labels, seed, emotions=emotions)


def random_oversample(pixels: np.ndarray, labels: np.ndarray, seed: int = 0) -> TrainingSet:
    """Random over-sampling: copy random images of each minority class until all classes match the largest."""
    from imblearn.over_sampling import RandomOverSampler

    return _fit_resample(RandomOverSampler(random_state=seed), pixels, labels, np.uint8)


def smote_oversample(pixels: np.ndarray, labels: np.ndarray, seed: int = 0,
                     neighbours: int = SMOTE_NEIGHBOURS, emotions: tuple[str, ...] = EMOTIONS) -> TrainingSet:
    """SMOTE: new images on the segment between an image and one of its nearest same-class neighbours."""
    from imblearn.over_sampling import SMOTE

    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(emotions))
    present = counts[counts > 0]
    too_few = [emotions[label] for label, count in enumerate(counts) if count == 1]
    if too_few:
        raise ValueError(f"smote needs at least 2 training images per emotion; only 1 for {', '.join(too_few)} "
                         "(use a larger --limit or another sampling)")
    sampler = SMOTE(k_neighbors=min(neighbours, int(present.min()) - 1), random_state=seed)
    return _fit_resample(sampler, pixels, labels, np.float32)


def _fit_resample(sampler: object, pixels: np.ndarray, labels: np.ndarray, dtype: type) -> TrainingSet:
    """Run an imbalanced-learn over-sampler on flattened pixels of `dtype` and reshape back to images."""
    if len(np.unique(labels)) < 2:
        return TrainingSet(pixels, labels)
    flat = pixels.reshape(len(pixels), -1).astype(dtype, copy=False)
    resampled, resampled_labels = sampler.fit_resample(flat, labels)
    images = np.clip(np.rint(resampled), 0, 255).astype(np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    return TrainingSet(images, np.asarray(resampled_labels, dtype=np.int8), added=len(images) - len(pixels))


def stratified_subset(dataset: Dataset, limit: int, seed: int = 0, min_per_class: int = 2) -> Dataset:
    """About `limit` Training images, each emotion keeping its share; PublicTest and PrivateTest stay whole,
    so every run, limited or not, early-stops and is scored on the same test images.

    Every emotion present keeps at least `min_per_class` Training images (or all it has), so small
    subsets still contain every emotion; the count can therefore exceed `limit` slightly.
    Rows keep their original order.
    """
    if limit < 1:
        raise ValueError(f"limit must be a positive number of Training images, got {limit}")
    training = np.flatnonzero(dataset.usages == TRAINING)
    if limit >= len(training):
        return dataset
    rng = np.random.default_rng(seed)
    chosen = [np.flatnonzero(dataset.usages != TRAINING)]
    for label in range(len(dataset.emotions)):
        rows = training[dataset.labels[training] == label]
        quota = min(len(rows), max(int(round(limit * len(rows) / len(training))), min_per_class))
        chosen.append(rng.choice(rows, size=quota, replace=False))
    return dataset.select(np.sort(np.concatenate(chosen)))
