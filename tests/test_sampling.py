"""Sampling: class weights, ROS and SMOTE balance the training split only; SMOTE interpolates neighbours."""

import numpy as np
import pytest

from fer_core.dataset.loading import Dataset
from fer_core.labels import USAGES
from fer_core.training.fit import split_by_usage
from fer_core.training.sampling import (SMOTE_NEIGHBOURS, compute_class_weights, resample_training, stratified_subset,
                                        validate_sampling)

# Imbalanced on purpose: 12 happy, 2 disgust; every class present in every usage.
TRAINING_COUNTS = (6, 2, 5, 12, 4, 3, 8)
TEST_COUNTS = (2, 1, 2, 3, 2, 2, 2)


def make_dataset(seed: int = 0) -> Dataset:
    """Random-noise faces (all distinct), imbalanced Training, small PublicTest and PrivateTest."""
    rng = np.random.default_rng(seed)
    labels, usages = [], []
    for usage, counts in zip(USAGES, (TRAINING_COUNTS, TEST_COUNTS, TEST_COUNTS)):
        for label, count in enumerate(counts):
            labels += [label] * count
            usages += [usage] * count
    count = len(labels)
    return Dataset(ids=np.array([f"sample{i}" for i in range(count)]),
                   pixels=rng.integers(0, 256, size=(count, 48, 48), dtype=np.uint8),
                   labels=np.array(labels, dtype=np.int8), usages=np.array(usages))


def image_keys(pixels: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in pixels}


def training_arrays(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    training = split_by_usage(dataset)["Training"]
    return training.pixels, training.labels


def test_class_weights_are_balanced_from_frequencies():
    weights = compute_class_weights(np.array([0, 0, 0, 1]))
    assert weights[0] == pytest.approx(4 / (2 * 3))
    assert weights[1] == pytest.approx(4 / (2 * 1))
    assert all(weights[label] == 0.0 for label in range(2, 7))


def test_none_and_class_weight_keep_the_training_images():
    pixels, labels = training_arrays(make_dataset())
    for strategy in ("none", "class_weight"):
        result = resample_training(pixels, labels, strategy)
        np.testing.assert_array_equal(result.pixels, pixels)
        np.testing.assert_array_equal(result.labels, labels)
        assert result.added == 0
    weights = resample_training(pixels, labels, "class_weight").class_weight
    assert weights[1] > weights[0] > weights[3]  # disgust (2) > angry (6) > happy (12)


@pytest.mark.parametrize("strategy", ["none", "class_weight", "ros", "smote"])
def test_no_test_image_appears_in_the_resampled_training_data(strategy):
    dataset = make_dataset()
    pixels, labels = training_arrays(dataset)
    result = resample_training(pixels, labels, strategy, seed=1)
    test_images = image_keys(dataset.pixels[dataset.is_test()])
    assert not image_keys(result.pixels) & test_images
    assert len(result.labels) >= len(labels)


@pytest.mark.parametrize("strategy", ["ros", "smote"])
def test_ros_and_smote_balance_every_class_to_the_largest(strategy):
    pixels, labels = training_arrays(make_dataset())
    result = resample_training(pixels, labels, strategy, seed=0)
    assert result.pixels.dtype == np.uint8 and result.pixels.shape[1:] == (48, 48)
    assert np.bincount(result.labels, minlength=7).tolist() == [12] * 7
    assert result.added == 7 * 12 - len(labels)
    np.testing.assert_array_equal(result.pixels[:len(pixels)], pixels)


def test_ros_only_copies_training_images_of_the_same_class():
    pixels, labels = training_arrays(make_dataset())
    result = resample_training(pixels, labels, "ros", seed=0)
    label_of_image = {image.tobytes(): label for image, label in zip(pixels, labels)}
    assert all(label_of_image[image.tobytes()] == label for image, label in zip(result.pixels, result.labels))


def test_smote_images_are_new_and_lie_between_same_class_neighbours():
    pixels, labels = training_arrays(make_dataset())
    result = resample_training(pixels, labels, "smote", seed=0)
    originals = pixels.reshape(len(pixels), -1).astype(np.float64)
    synthetic = result.pixels[len(pixels):].reshape(result.added, -1).astype(np.float64)
    assert not image_keys(result.pixels[len(pixels):]) & image_keys(pixels)
    rounding = 0.5 * np.sqrt(originals.shape[1]) + 1e-6  # rounding moves a point at most this far
    for image, label in zip(synthetic, result.labels[len(pixels):]):
        same_class = originals[labels == label]
        k = min(SMOTE_NEIGHBOURS, len(same_class) - 1)
        assert distance_to_nearest_neighbour_segment(image, same_class, k) <= rounding


def distance_to_nearest_neighbour_segment(point: np.ndarray, members: np.ndarray, neighbours: int) -> float:
    """Shortest distance from `point` to a segment between a member and one of its k nearest members."""
    pairwise = np.linalg.norm(members[:, None] - members[None], axis=2)
    best = np.inf
    for start in range(len(members)):
        for end in np.argsort(pairwise[start])[1:neighbours + 1]:
            direction = members[end] - members[start]
            step = np.clip(np.dot(point - members[start], direction) / np.dot(direction, direction), 0, 1)
            best = min(best, float(np.linalg.norm(members[start] + step * direction - point)))
    return best


def test_smote_refuses_a_class_with_a_single_image():
    pixels, labels = training_arrays(make_dataset())
    keep = np.ones(len(labels), dtype=bool)
    keep[np.flatnonzero(labels == 1)[0]] = False
    with pytest.raises(ValueError, match="at least 2 training images per emotion; only 1 for disgust"):
        resample_training(pixels[keep], labels[keep], "smote")


def test_unknown_sampling_names_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown sampling 'adasyn'; expected one of none, class_weight, ros, smote"):
        validate_sampling("adasyn")


def test_stratified_subset_limits_the_training_images_only_keeping_emotion_shares():
    """Issue 24: the limit also shrank PublicTest and PrivateTest, so two limited runs were scored on
    different test images; it now takes about `limit` Training images and leaves the test splits whole."""
    rng = np.random.default_rng(0)
    usages = np.array(["Training"] * 800 + ["PublicTest"] * 100 + ["PrivateTest"] * 100)
    labels = np.concatenate([np.repeat(np.arange(7), [100, 10, 100, 290, 100, 100, 100]),
                             np.tile(np.repeat(np.arange(7), [14, 2, 14, 28, 14, 14, 14]), 2)]).astype(np.int8)
    dataset = Dataset(ids=np.array([f"s{i}" for i in range(1000)]), labels=labels, usages=usages,
                      pixels=rng.integers(0, 256, size=(1000, 48, 48), dtype=np.uint8))
    subset = stratified_subset(dataset, 100, seed=0)
    counts = {usage: np.bincount(subset.labels[subset.usages == usage], minlength=7).tolist() for usage in USAGES}
    assert counts["Training"] == [12, 2, 12, 36, 12, 12, 12]  # 100 by shares; disgust raised from 1 to 2
    assert counts["PublicTest"] == counts["PrivateTest"] == [14, 2, 14, 28, 14, 14, 14]  # whole
    other = stratified_subset(dataset, 300, seed=1)
    assert set(other.ids[other.usages != "Training"]) == set(subset.ids[subset.usages != "Training"])
    rows = [dataset.index_of(sample_id) for sample_id in subset.ids]
    assert rows == sorted(rows)
    assert stratified_subset(dataset, 100, seed=0).ids.tolist() == subset.ids.tolist()
    assert stratified_subset(dataset, 800) is dataset and stratified_subset(dataset, 5000) is dataset
    with pytest.raises(ValueError, match="positive number of Training images"):
        stratified_subset(dataset, 0)
