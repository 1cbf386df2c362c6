"""Feature vectors of every image, for "find similar" and the embedding map: one row per image, in dataset order.

Two kinds of space:

* `descriptors`: the audit's shape descriptors (`fer_core.duplicates.candidates.shape_descriptors`),
  half-whitened over the data set and kept to their 56 strongest components — the space in which the
  near-duplicate search proposes candidates, so a shifted or re-encoded copy lies close. About a second
  for FER-2013; not cached on disk.
* `run:<run_id>`: a finished training run's penultimate layer (the input of its `emotion` softmax),
  which places images by what the model learned about expressions. The run's saved model predicts every
  image once; the features are cached in the run's folder as float16, keyed by the data fingerprint
  (`features-<fingerprint>.npz`, with the digest of the array, so a damaged file is recomputed, never
  trusted).

TensorFlow is imported only when run features are computed.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_core.dataset.loading import Dataset
from fer_core.files import write_atomically

if TYPE_CHECKING:
    import keras

DESCRIPTORS = "descriptors"
RUN_PREFIX = "run:"
MODEL_NAME = "model.keras"
DESCRIPTOR_DIMENSIONS = 56  # NearVerifyConfig.descriptor_dimensions: the audit's candidate space
CLASSIFIER_LAYER = "emotion"  # the softmax layer of every model (training/blocks.classifier_head)


@dataclass(frozen=True)
class FeatureSpace:
    """A space to compare images in: its name (`descriptors` or `run:<run_id>`), a label for people, and for a
    run the folder holding its model.keras."""

    name: str
    label: str
    run_dir: str | None = None


def descriptor_features(dataset: Dataset, dimensions: int = DESCRIPTOR_DIMENSIONS,
                        mirrored: bool = False) -> np.ndarray:
    """N×`dimensions` float32 unit vectors: the whitened shape descriptors (of the mirror images when `mirrored`,
    in the same whitened space, so a mirrored copy can be found by comparing against both)."""
    return descriptor_features_and_mirrors(dataset, dimensions)[1 if mirrored else 0]


def descriptor_features_and_mirrors(dataset: Dataset,
                                    dimensions: int = DESCRIPTOR_DIMENSIONS) -> tuple[np.ndarray, np.ndarray]:
    """`descriptor_features` of the images and of their mirror images, from one pass over the pixels."""
    from fer_core.duplicates.candidates import (DESCRIPTOR_CELLS, DESCRIPTOR_CHANNELS, shape_descriptors,
                                                whiten_descriptors)

    if len(dataset) == 0:
        return np.zeros((0, dimensions), np.float32), np.zeros((0, dimensions), np.float32)
    length = DESCRIPTOR_CHANNELS * DESCRIPTOR_CELLS ** 2  # 80: no more components than that
    whitened, whitened_mirrors = whiten_descriptors(shape_descriptors(dataset.pixels), min(dimensions, length))
    return (np.ascontiguousarray(whitened, dtype=np.float32), np.ascontiguousarray(whitened_mirrors, dtype=np.float32))


def features_path(run_dir: str | os.PathLike, dataset: Dataset) -> Path:
    """Where a run's features of this data are cached."""
    return Path(run_dir) / f"features-{dataset.fingerprint}.npz"


def run_features(run_dir: str | os.PathLike, dataset: Dataset, batch_size: int = 512) -> np.ndarray:
    """N×D float16: the penultimate-layer output of the run's model for every image (cached in the run's folder).

    ValueError (one line) when the folder holds no model.keras. The cache is read only when its fingerprint,
    row count and digest match; otherwise the features are computed again and the file replaced.
    """
    run_dir = Path(run_dir)
    model_path = run_dir / MODEL_NAME
    if not model_path.is_file():
        raise ValueError(f"{run_dir}: no {MODEL_NAME} (the run did not finish, or its folder was moved)")
    cache = features_path(run_dir, dataset)
    cached = read_cached_features(cache, dataset)
    if cached is not None:
        return cached
    features = compute_run_features(model_path, dataset.pixels, batch_size).astype(np.float16)
    write_cached_features(cache, dataset, features)
    return features


def compute_run_features(model_path: str | os.PathLike, pixels: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The float32 input of the model's classifier (`emotion`) layer for each image; augmentation is off."""
    import keras

    from fer_core.training.fit import make_pipeline
    from fer_core.training.models import load_trained_model

    model = load_trained_model(model_path)
    penultimate = keras.Model(model.inputs, penultimate_output(model))
    if len(pixels) == 0:
        return np.zeros((0, int(penultimate.output.shape[-1])), np.float32)
    outputs = penultimate.predict(make_pipeline(pixels, np.zeros(len(pixels)), batch_size), verbose=0)
    return np.asarray(outputs, dtype=np.float32).reshape(len(pixels), -1)


def penultimate_output(model: "keras.Model") -> "keras.KerasTensor":
    """The tensor that feeds the classifier: the input of the `emotion` layer, else of the last layer."""
    names = [layer.name for layer in model.layers]
    layer = model.get_layer(CLASSIFIER_LAYER) if CLASSIFIER_LAYER in names else model.layers[-1]
    return layer.input


def _digest(features: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(features).tobytes()).hexdigest()


def write_cached_features(path: Path, dataset: Dataset, features: np.ndarray) -> None:
    """One .npz (no pickles): the features, the data fingerprint and the digest of the features."""
    buffer = io.BytesIO()
    np.savez(buffer, features=features, fingerprint=np.array(dataset.fingerprint), digest=np.array(_digest(features)))
    write_atomically(path, lambda handle: handle.write(buffer.getvalue()))


def read_cached_features(path: Path, dataset: Dataset) -> np.ndarray | None:
    """The cached features when the file is whole and of this data; None otherwise (recompute)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            features = stored["features"]
            fingerprint, digest = str(stored["fingerprint"]), str(stored["digest"])
    except Exception:  # truncated, planted or of another format: only costs a recompute
        return None
    if (fingerprint != dataset.fingerprint or features.ndim != 2 or len(features) != len(dataset)
            or digest != _digest(features)):
        return None
    return features


def available_feature_spaces(run_dirs: Mapping[str, str | os.PathLike] | None = None,
                             dataset: Dataset | None = None) -> list[FeatureSpace]:
    """The descriptor space, then each run (run id → its folder, newest first as given) whose model.keras exists.

    A run's label says whether its features of `dataset` are cached already (else they take one pass over
    the images).
    """
    spaces = [FeatureSpace(DESCRIPTORS, "Shape descriptors (the audit's near-duplicate space)")]
    for run_id, run_dir in (run_dirs or {}).items():
        if not (Path(run_dir) / MODEL_NAME).is_file():
            continue
        cached = dataset is not None and features_path(run_dir, dataset).is_file()
        note = "" if dataset is None or cached else " (computed on first use)"
        spaces.append(FeatureSpace(f"{RUN_PREFIX}{run_id}", f"Run {run_id}: the model's penultimate layer{note}",
                                   str(run_dir)))
    return spaces


def feature_matrix(space: FeatureSpace, dataset: Dataset) -> np.ndarray:
    """The features of every image in `space` (float32 for descriptors, float16 for a run)."""
    if space.name == DESCRIPTORS:
        return descriptor_features(dataset)
    if space.run_dir is None:
        raise ValueError(f"feature space {space.name!r} names no run folder")
    return run_features(space.run_dir, dataset)
