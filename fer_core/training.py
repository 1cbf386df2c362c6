"""Train one model with one sampling strategy on the curated data, and report how it does.

Protocol (DESIGN.md): train on Training, early-stop and keep the best weights on PublicTest
(val accuracy), report on PrivateTest. Sampling touches the Training rows only, after the
split. Leak-free accuracy leaves out the PrivateTest images that have an exact or near copy
in the training data actually used (after curation and --limit, before resampling).
TensorFlow is imported only when training starts, so TrainConfig is cheap to import.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .dataset import Dataset
from .labels import EMOTIONS, TRAINING, USAGES
from .models import build_model
from .sampling import TrainingSet, resample_training, stratified_subset
from .train_config import EpochCallback, EpochProgress, TrainConfig  # noqa: F401 (re-exported: old import path)

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

VALIDATION_USAGE = "PublicTest"
TEST_USAGE = "PrivateTest"


# ---------------------------------------------------------------------------------------------
# The run


def train_and_evaluate(dataset: Dataset, config: TrainConfig, out_dir: str | os.PathLike,
                       on_epoch: EpochCallback | None = None,
                       workspace: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train per `config`, write model.keras, history.json and metrics.json into `out_dir`; return the metrics."""
    started = time.perf_counter()
    data = select_training_data(dataset, config, workspace)
    splits = split_by_usage(data)
    near_threshold = resolve_near_threshold(config.near_threshold)
    leaked = find_leaked_test_rows(data, near_threshold)
    training = resample_training(splits[TRAINING].pixels, splits[TRAINING].labels, config.sampling, config.seed)

    device = configure_runtime(config.seed)
    model = build_model(config.model, config.size, seed=config.seed)
    history, train_seconds = fit_model(model, training, splits[VALIDATION_USAGE], config, on_epoch)
    test = splits[TEST_USAGE]
    predicted = predict_labels(model, test.pixels, config.batch_size)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    write_json_atomic(out / "history.json", history)
    metrics = {
        **run_description(config, device, data, training, splits),
        **classification_metrics(test.labels, predicted),
        **leak_free_metrics(test.labels, predicted, leaked),
        "near_threshold": near_threshold,
        "epochs_run": len(history["epoch"]),
        "best_epoch": history["best_epoch"],
        "seconds": round(time.perf_counter() - started, 2),
        "train_seconds": round(train_seconds, 2),
        "images_per_second": round(len(training.labels) * len(history["epoch"]) / max(train_seconds, 1e-9), 1),
    }
    write_json_atomic(out / "metrics.json", metrics)
    return metrics


def select_training_data(dataset: Dataset, config: TrainConfig,
                         workspace: str | os.PathLike | None = None) -> Dataset:
    """The data a run uses: the curated view (unless `raw`), then the stratified `limit` subset."""
    if not config.raw:
        from .edits import curated_dataset

        dataset = curated_dataset(dataset, workspace)
    if config.limit is not None:
        dataset = stratified_subset(dataset, config.limit, config.seed)
    return dataset


def split_by_usage(dataset: Dataset) -> dict[str, Dataset]:
    """Training, PublicTest and PrivateTest as separate datasets; ValueError when one is empty."""
    splits = {usage: dataset.select(np.flatnonzero(dataset.usages == usage)) for usage in USAGES}
    empty = [usage for usage, split in splits.items() if len(split) == 0]
    if empty:
        raise ValueError(f"{dataset.source or 'dataset'}: no {', '.join(empty)} samples; training needs "
                         f"Training (fit), {VALIDATION_USAGE} (early stopping) and {TEST_USAGE} (report)")
    return splits


def resolve_near_threshold(near_threshold: int | None) -> int:
    """The Hamming distance that makes a near copy: the given one, else the audit's default."""
    if near_threshold is not None:
        return near_threshold
    from .duplicates import DEFAULT_NEAR_THRESHOLD

    return DEFAULT_NEAR_THRESHOLD


def find_leaked_test_rows(dataset: Dataset, max_hamming_distance: int) -> np.ndarray:
    """Boolean mask over the PrivateTest rows (in dataset order): True where a Training row is a copy."""
    from .duplicates import find_leaks

    leaks = find_leaks(dataset, max_hamming_distance)
    leaked = np.zeros(len(dataset), dtype=bool)
    leaked[np.asarray(leaks.test_rows, dtype=np.int64)] = True
    return leaked[dataset.usages == TEST_USAGE]


def run_description(config: TrainConfig, device: str, data: Dataset, training: TrainingSet,
                    splits: dict[str, Dataset]) -> dict[str, Any]:
    """The metrics.json fields that say what was trained, on what, and where."""
    import keras
    import tensorflow as tf

    return {
        **config.to_dict(),
        "device": device,
        "data_source": data.source,
        "data_fingerprint": data.fingerprint,
        "curated": not config.raw,
        "train_images": len(training.labels),
        "train_class_counts": count_by_emotion(training.labels),
        "train_images_before_sampling": len(splits[TRAINING]),
        "train_class_counts_before_sampling": count_by_emotion(splits[TRAINING].labels),
        "images_added_by_sampling": training.added,
        "class_weight": (None if training.class_weight is None else
                         {EMOTIONS[label]: round(weight, 4) for label, weight in training.class_weight.items()}),
        "validation_usage": VALIDATION_USAGE,
        "validation_images": len(splits[VALIDATION_USAGE]),
        "test_usage": TEST_USAGE,
        "test_images": len(splits[TEST_USAGE]),
        "labels": list(EMOTIONS),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }


def count_by_emotion(labels: np.ndarray) -> dict[str, int]:
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(EMOTIONS))
    return {emotion: int(counts[index]) for index, emotion in enumerate(EMOTIONS)}


# ---------------------------------------------------------------------------------------------
# TensorFlow: device, pipeline, fit, predict


def configure_runtime(seed: int) -> str:
    """Seed everything; GPU: mixed_float16, CPU: float32 with deterministic ops. Returns the device used."""
    import keras
    import tensorflow as tf

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    keras.mixed_precision.set_global_policy("float32")
    tf.config.experimental.enable_op_determinism()
    return "CPU"


def make_pipeline(pixels: np.ndarray, labels: np.ndarray, batch_size: int,
                  shuffle_seed: int | None = None) -> "tf.data.Dataset":
    """Batches of (float32 N×48×48×1 pixels 0..255, int32 labels), shuffled when a seed is given, prefetched."""
    import tensorflow as tf

    images = np.asarray(pixels, dtype=np.uint8)[..., np.newaxis]
    pipeline = tf.data.Dataset.from_tensor_slices((images, np.asarray(labels, dtype=np.int32)))
    if shuffle_seed is not None:
        pipeline = pipeline.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    pipeline = pipeline.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y),
                                              num_parallel_calls=tf.data.AUTOTUNE)
    return pipeline.prefetch(tf.data.AUTOTUNE)


def fit_model(model: "keras.Model", training: TrainingSet, validation: Dataset, config: TrainConfig,
              on_epoch: EpochCallback | None = None) -> tuple[dict[str, Any], float]:
    """Compile and fit with early stopping on val accuracy (best weights restored); history and seconds."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    epoch_started: list[float] = []
    epoch_seconds: list[float] = []

    def report_epoch(epoch: int, logs: dict[str, float]) -> None:
        epoch_seconds.append(time.perf_counter() - epoch_started[-1])
        if on_epoch is not None:
            on_epoch(EpochProgress(epoch=epoch + 1, epochs=config.epochs_to_run, loss=float(logs["loss"]),
                                   accuracy=float(logs["accuracy"]), val_loss=float(logs["val_loss"]),
                                   val_accuracy=float(logs["val_accuracy"]), seconds=round(epoch_seconds[-1], 2)))

    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=config.patience,
                                      restore_best_weights=True),
        keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epoch_started.append(time.perf_counter()),
                                       on_epoch_end=report_epoch),
    ]
    started = time.perf_counter()
    result = model.fit(make_pipeline(training.pixels, training.labels, config.batch_size, shuffle_seed=config.seed),
                       validation_data=make_pipeline(validation.pixels, validation.labels, config.batch_size),
                       epochs=config.epochs_to_run, class_weight=training.class_weight, callbacks=callbacks, shuffle=False,
                       verbose=0)
    seconds = time.perf_counter() - started
    history = {key: [float(value) for value in values] for key, values in result.history.items()}
    history["epoch"] = list(range(1, len(epoch_seconds) + 1))
    history["seconds"] = [round(value, 2) for value in epoch_seconds]
    history["best_epoch"] = int(np.argmax(history["val_accuracy"])) + 1
    return history, seconds


def predict_labels(model: "keras.Model", pixels: np.ndarray, batch_size: int) -> np.ndarray:
    """Predicted emotion per image (augmentation is off outside training)."""
    probabilities = model.predict(make_pipeline(pixels, np.zeros(len(pixels)), batch_size), verbose=0)
    return np.argmax(probabilities, axis=1).astype(np.int8)


# ---------------------------------------------------------------------------------------------
# Metrics and files


def classification_metrics(true_labels: np.ndarray, predicted_labels: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1, per-emotion precision/recall/F1/support and the 7×7 confusion matrix.

    Confusion rows are true emotions, columns predicted, both in FER order. Macro-F1 averages
    over the emotions present in the true or predicted labels (scikit-learn's convention).
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    true_labels = np.asarray(true_labels, dtype=np.int64)
    predicted_labels = np.asarray(predicted_labels, dtype=np.int64)
    all_labels = list(range(len(EMOTIONS)))
    confusion = confusion_matrix(true_labels, predicted_labels, labels=all_labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        true_labels, predicted_labels, labels=all_labels, zero_division=0)
    per_class = {emotion: {"precision": round(float(precision[index]), 4), "recall": round(float(recall[index]), 4),
                           "f1": round(float(f1[index]), 4), "support": int(support[index])}
                 for index, emotion in enumerate(EMOTIONS)}
    return {
        "accuracy": round(float(np.trace(confusion) / max(1, confusion.sum())), 4),
        "macro_f1": round(float(f1_score(true_labels, predicted_labels, average="macro", zero_division=0)), 4),
        "per_class": per_class,
        "confusion": confusion.astype(int).tolist(),
    }


def leak_free_metrics(true_labels: np.ndarray, predicted_labels: np.ndarray, leaked: np.ndarray) -> dict[str, Any]:
    """Accuracy on the test images without a copy in the training data, and how many were left out."""
    clean = ~np.asarray(leaked, dtype=bool)
    correct = np.asarray(true_labels)[clean] == np.asarray(predicted_labels)[clean]
    return {
        "leak_free_accuracy": round(float(correct.mean()), 4) if clean.any() else None,
        "leaked_test_images": int((~clean).sum()),
        "leak_free_test_images": int(clean.sum()),
    }


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and rename, so a reader never sees half a file."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temporary, path)
