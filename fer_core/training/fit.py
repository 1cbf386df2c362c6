"""Train one model with one sampling strategy on the curated data, and report how it does.

Protocol (DESIGN.md): train on Training, early-stop and keep the best weights on PublicTest
(val accuracy), report on PrivateTest. Sampling touches the Training rows only, after the
split. Leak-free accuracy leaves out the PrivateTest images that have an exact or near copy
in the training data actually used (after curation and --limit, before resampling).
TensorFlow is imported only when training starts, so TrainConfig is cheap to import.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fer_core.dataset.loading import Dataset
from fer_core.files import make_folder, save_atomically, write_json_atomically, write_text_atomically
from fer_core.labels import EMOTIONS, TRAINING, USAGES
from fer_core.training.config import EpochCallback, EpochProgress, TrainConfig
from fer_core.training.device import onednn_active, prepare_tensorflow, tensorflow_cpu_record
from fer_core.training.models import build_model, default_variant
from fer_core.training.sampling import TrainingSet, resample_training, stratified_subset
from fer_core.training.speed import SpeedCallback, speed_meter

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

VALIDATION_USAGE = "PublicTest"
TEST_USAGE = "PrivateTest"
PREDICTIONS_NAME = "predictions.csv"
PREDICTION_COLUMNS = ("id", "usage", "label", "predicted", *(f"p_{emotion}" for emotion in EMOTIONS))
WARMUP_EPOCHS = 1  # the learning rate rises linearly over the first epoch, then follows a cosine to ~0


# ---------------------------------------------------------------------------------------------
# The run


def train_and_evaluate(dataset: Dataset, config: TrainConfig, out_dir: str | os.PathLike,
                       on_epoch: EpochCallback | None = None,
                       workspace: str | os.PathLike | None = None,
                       on_speed: SpeedCallback | None = None) -> dict[str, Any]:
    """Train per `config`, write model.keras, history.json and metrics.json into `out_dir`; return the metrics.
    `on_speed` gets the measured speed and images left every few seconds (fer_core.training.speed)."""
    started = time.perf_counter()
    data = select_training_data(dataset, config, workspace)
    splits = split_by_usage(data)
    near_threshold = resolve_near_threshold(config.near_threshold)
    leaked = find_leaked_test_rows(dataset, near_threshold, config.near_mode, workspace, view=data)
    training = resample_training(splits[TRAINING].pixels, splits[TRAINING].labels, config.sampling, config.seed,
                                 emotions=data.emotions)

    device = configure_runtime(config.seed, config.deterministic)
    model = build_model(config.model, config.size, config.variant, seed=config.seed, num_classes=len(data.emotions))
    history, train_seconds = fit_model(model, training, splits[VALIDATION_USAGE], config, on_epoch, on_speed)
    test = splits[TEST_USAGE]
    scored = {usage: predict_probabilities(model, splits[usage].pixels, config.batch_size)
              for usage in (VALIDATION_USAGE, TEST_USAGE)}
    predicted = scored[TEST_USAGE].argmax(axis=1)

    out = make_folder(out_dir)
    save_atomically(out / "model.keras", model.save)  # Keras writes in pieces: a full disk left a truncated file
    write_json_atomically(out / "history.json", history)
    write_predictions(out / PREDICTIONS_NAME, {usage: splits[usage] for usage in scored}, scored)
    metrics = {
        **run_description(config, device, data, training, splits),
        **classification_metrics(test.labels, predicted, data.emotions),
        **leak_free_metrics(test.labels, predicted, leaked),
        "near_threshold": near_threshold,
        "near_mode": config.near_mode,
        "epochs_run": len(history["epoch"]),
        "best_epoch": history["best_epoch"],
        "seconds": round(time.perf_counter() - started, 2),
        "train_seconds": round(train_seconds, 2),
        "images_per_second": round(len(training.labels) * len(history["epoch"]) / max(train_seconds, 1e-9), 1),
    }
    write_json_atomically(out / "metrics.json", metrics)
    return metrics


def select_training_data(dataset: Dataset, config: TrainConfig,
                         workspace: str | os.PathLike | None = None) -> Dataset:
    """The data a run uses: the curated view (unless `raw`), then the stratified `limit` subset."""
    if not config.raw:
        from fer_core.curation.edits import curated_dataset

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
    from fer_core.duplicates.limits import DEFAULT_NEAR_THRESHOLD

    return DEFAULT_NEAR_THRESHOLD


def find_leaked_test_rows(dataset: Dataset, max_hamming_distance: int, near_mode: str = "verified",
                          workspace: str | os.PathLike | None = None, view: Dataset | None = None) -> np.ndarray:
    """Boolean mask over the PrivateTest rows (in dataset order): True where a Training row is a copy.

    The copies are the audit's (its duplicate detectors, cached in the workspace per data
    fingerprint): in `verified` mode shifted, cropped and mirrored copies count too. With `view` (the
    curated or limited data a run trains on, a subset of `dataset`), a pair of the audit of the whole
    `dataset` counts while both its images are in the view, and the mask is over the view's PrivateTest
    rows: the Overview's and leak removal's rule. Auditing the view anew would link copies that the
    whole audit linked only through an image since dropped, so a run counted a leak the Overview did not.
    """
    from fer_core.audit import run_audit
    from fer_core.detectors import AuditConfig, registered_detectors

    needed = ("digests", "phash", "near_pairs", "duplicates")
    detectors = tuple(detector for detector in registered_detectors() if detector.name in needed)
    report = run_audit(dataset, AuditConfig(near_threshold=max_hamming_distance, near_mode=near_mode),
                       workspace=workspace, detectors=detectors)
    target = dataset if view is None else view
    in_view = np.isin(dataset.ids, target.ids)
    train_rows = np.asarray(report.leaks.train_rows, dtype=np.int64)
    test_rows = np.asarray(report.leaks.test_rows, dtype=np.int64)
    live = in_view[train_rows] & in_view[test_rows]
    leaked = np.isin(target.ids, dataset.ids[test_rows[live]])
    return leaked[target.usages == TEST_USAGE]


def run_description(config: TrainConfig, device: str, data: Dataset, training: TrainingSet,
                    splits: dict[str, Dataset]) -> dict[str, Any]:
    """The metrics.json fields that say what was trained, on what, and where."""
    import keras
    import tensorflow as tf

    return {
        **config.to_dict(),
        "epochs_planned": config.epochs_to_run,
        "variant": config.variant or default_variant(config.model),
        "device": device,
        "cpu": tensorflow_cpu_record(),  # oneDNN, threads, processor flags: where the speed was measured
        "precision": keras.mixed_precision.global_policy().name,
        "data_source": data.source,
        "data_fingerprint": data.fingerprint,
        "curated": not config.raw,
        "train_images": len(training.labels),
        "train_class_counts": count_by_emotion(training.labels, data.emotions),
        "train_images_before_sampling": len(splits[TRAINING]),
        "train_class_counts_before_sampling": count_by_emotion(splits[TRAINING].labels, data.emotions),
        "images_added_by_sampling": training.added,
        "class_weight": (None if training.class_weight is None else
                         {data.emotions[label]: round(weight, 4) for label, weight in training.class_weight.items()}),
        "validation_usage": VALIDATION_USAGE,
        "validation_images": len(splits[VALIDATION_USAGE]),
        "test_usage": TEST_USAGE,
        "test_images": len(splits[TEST_USAGE]),
        "labels": list(data.emotions),  # the label set: the confusion matrix's rows and columns, in order
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }


def count_by_emotion(labels: np.ndarray, emotions: tuple[str, ...] = EMOTIONS) -> dict[str, int]:
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(emotions))
    return {emotion: int(counts[index]) for index, emotion in enumerate(emotions)}


# ---------------------------------------------------------------------------------------------
# TensorFlow: device, pipeline, fit, predict


def configure_runtime(seed: int, deterministic: bool = False) -> str:
    """Seed everything and choose the precision; returns the device used.

    GPU: mixed_float16. CPU: mixed_bfloat16 where the processor computes bfloat16 natively (AMX or
    AVX-512 BF16: about twice the images per second through oneDNN) and oneDNN is on, else float32. `deterministic`
    switches op determinism on and keeps float32, so that a rerun gives identical weights; it costs
    CPU speed, so it is only on when asked for.
    """
    if "tensorflow" not in sys.modules:  # oneDNN and thread pools are read once, as TensorFlow starts
        prepare_tensorflow()
    import keras
    import tensorflow as tf

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    elif hasattr(tf.config.experimental, "disable_op_determinism"):
        tf.config.experimental.disable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    # bfloat16 only through oneDNN: Eigen's bfloat16 kernels are emulated (TF_ENABLE_ONEDNN_OPTS=0 on this AMX Xeon:
    # a fast cnn at 5 training images/s against 165; benchmarks/bench_cores.py)
    cpu_bfloat16 = not deterministic and cpu_computes_bfloat16() and onednn_active() is not False
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if cpu_bfloat16 else "float32")
    return "CPU"


def cpu_computes_bfloat16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """True when the processor has native bfloat16 arithmetic (Intel AMX or AVX-512 BF16 flags; Linux)."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path(cpuinfo).read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def make_pipeline(pixels: np.ndarray, labels: np.ndarray, batch_size: int,
                  shuffle_seed: int | None = None) -> "tf.data.Dataset":
    """Batches of (float32 N×48×48×1 pixels 0..255, int32 labels), shuffled when a seed is given.

    The uint8 images are cached once (a quarter of float32's memory), shuffled per epoch, cast
    per batch, and the next batches are prepared while the model trains (prefetch).
    """
    import tensorflow as tf

    images = np.asarray(pixels, dtype=np.uint8)[..., np.newaxis]
    pipeline = tf.data.Dataset.from_tensor_slices((images, np.asarray(labels, dtype=np.int32))).cache()
    if shuffle_seed is not None:
        pipeline = pipeline.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    pipeline = pipeline.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y),
                                              num_parallel_calls=tf.data.AUTOTUNE)
    return pipeline.prefetch(tf.data.AUTOTUNE)


def learning_rate_schedule(peak_learning_rate: float, steps_per_epoch: int, epochs: int) -> Any:
    """Linear warm-up from a tenth of the peak over the first epoch, then a cosine decay to 1 % of it
    at the last planned epoch: the whole schedule fits the run, so a short run still anneals."""
    import keras

    warmup_steps = min(WARMUP_EPOCHS * steps_per_epoch, max(0, epochs - 1) * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak_learning_rate / 10 if warmup_steps else peak_learning_rate,
        decay_steps=max(1, epochs * steps_per_epoch - warmup_steps), alpha=0.01,
        warmup_target=peak_learning_rate if warmup_steps else None, warmup_steps=warmup_steps)


def fit_model(model: "keras.Model", training: TrainingSet, validation: Dataset, config: TrainConfig,
              on_epoch: EpochCallback | None = None,
              on_speed: SpeedCallback | None = None) -> tuple[dict[str, Any], float]:
    """Compile and fit (Adam, warm-up + cosine schedule) with early stopping on val accuracy in the
    schedule's second half (the best weights of that half restored); history and seconds.

    A loss that becomes NaN or infinite (a learning rate far too high) ends the fit at once (Keras'
    TerminateOnNaN) and the run with a ValueError: such a model predicts one emotion for everything,
    and its metrics are not a result."""
    import keras

    epochs = config.epochs_to_run
    watch_from = epochs // 2  # 0-based epoch from which early stopping watches (and best weights are kept)
    steps_per_epoch = -(-len(training.labels) // config.batch_size)
    schedule = learning_rate_schedule(config.learning_rate, steps_per_epoch, epochs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    epoch_started: list[float] = []
    epoch_seconds: list[float] = []

    def report_epoch(epoch: int, logs: dict[str, float]) -> None:
        epoch_seconds.append(time.perf_counter() - epoch_started[-1])
        if on_epoch is not None:
            on_epoch(EpochProgress(epoch=epoch + 1, epochs=epochs, loss=float(logs["loss"]),
                                   accuracy=float(logs["accuracy"]), val_loss=float(logs["val_loss"]),
                                   val_accuracy=float(logs["val_accuracy"]), seconds=round(epoch_seconds[-1], 2)))

    callbacks = [
        # Stopping counts only in the schedule's second half: while the learning rate is high, validation
        # accuracy swings (0.40 → 0.29 → 0.44 in a FER fold model's epochs 2-4), and on small data a dip
        # there stopped a run for good (digits, 590 images: best epoch 2, 21 % accuracy).
        keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=config.patience,
                                      restore_best_weights=True, start_from_epoch=watch_from),
        keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epoch_started.append(time.perf_counter()),
                                       on_epoch_end=report_epoch),
        keras.callbacks.TerminateOnNaN(),
    ]
    if on_speed is not None:
        callbacks.append(speed_meter(len(training.labels), config.batch_size, epochs, on_speed))
    started = time.perf_counter()
    result = model.fit(make_pipeline(training.pixels, training.labels, config.batch_size, shuffle_seed=config.seed),
                       validation_data=make_pipeline(validation.pixels, validation.labels, config.batch_size),
                       epochs=epochs, class_weight=training.class_weight, callbacks=callbacks, shuffle=False,
                       verbose=0)
    seconds = time.perf_counter() - started
    history = {key: [float(value) for value in values] for key, values in result.history.items()}
    check_converged(history["loss"], config.learning_rate)
    history["epoch"] = list(range(1, len(epoch_seconds) + 1))
    history["seconds"] = [round(value, 2) for value in epoch_seconds]
    history["best_epoch"] = watch_from + int(np.argmax(history["val_accuracy"][watch_from:])) + 1  # the restored one
    return history, seconds


def check_converged(losses: list[float], learning_rate: float) -> None:
    """ValueError when the last epoch's loss is NaN or infinite: TerminateOnNaN stopped the fit there."""
    if losses and not np.isfinite(losses[-1]):
        raise ValueError(f"training diverged: the loss became {losses[-1]} in epoch {len(losses)} (learning rate "
                         f"{learning_rate:g}); no model or metrics were written: use a lower learning rate")


def predict_probabilities(model: "keras.Model", pixels: np.ndarray, batch_size: int,
                          mirror: bool = True) -> np.ndarray:
    """N×K softmax probabilities per image (K emotions), float64 rows summing to 1 (augmentation is off outside training).

    `mirror`: the average over the image and its mirror image (test-time augmentation: a mirrored
    face shows the same emotion, and the two views' errors partly cancel).
    """
    if len(pixels) == 0:
        return np.zeros((0, model.output_shape[-1]))
    views = np.concatenate([pixels, pixels[:, :, ::-1]]) if mirror else np.asarray(pixels)
    probabilities = np.asarray(model.predict(make_pipeline(views, np.zeros(len(views)), batch_size), verbose=0),
                               dtype=np.float64)
    if mirror:
        probabilities = (probabilities[:len(pixels)] + probabilities[len(pixels):]) / 2
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def predict_labels(model: "keras.Model", pixels: np.ndarray, batch_size: int) -> np.ndarray:
    """Predicted emotion per image: the arg-max of `predict_probabilities`."""
    return predict_probabilities(model, pixels, batch_size).argmax(axis=1).astype(np.int8)


def write_predictions(path: Path, splits: dict[str, Dataset], probabilities: dict[str, np.ndarray]) -> None:
    """predictions.csv: one row per scored image (`PREDICTION_COLUMNS`, a `p_` column per emotion of the
    data's label set), emotions by name, probabilities to 6 decimals; `predicted` is the arg-max of the
    row's probabilities."""
    import pandas as pd

    frames = []
    for usage, split in splits.items():
        scores, names = probabilities[usage], np.asarray(split.emotions)
        frame = pd.DataFrame({"id": split.ids, "usage": usage,
                              "label": names[np.asarray(split.labels, dtype=np.int64)],
                              "predicted": names[scores.argmax(axis=1)]})
        for index, emotion in enumerate(split.emotions):
            frame[f"p_{emotion}"] = scores[:, index]
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    write_text_atomically(path, table.to_csv(index=False, float_format="%.6f", lineterminator="\n"))


# ---------------------------------------------------------------------------------------------
# Metrics and files


def classification_metrics(true_labels: np.ndarray, predicted_labels: np.ndarray,
                           emotions: tuple[str, ...] = EMOTIONS) -> dict[str, Any]:
    """Accuracy, macro-F1, per-emotion precision/recall/F1/support and the K×K confusion matrix (K emotions).

    Confusion rows are true emotions, columns predicted, both in the label set's order. Macro-F1 averages
    over the emotions present in the true or predicted labels (scikit-learn's convention).
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    true_labels = np.asarray(true_labels, dtype=np.int64)
    predicted_labels = np.asarray(predicted_labels, dtype=np.int64)
    all_labels = list(range(len(emotions)))
    confusion = confusion_matrix(true_labels, predicted_labels, labels=all_labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        true_labels, predicted_labels, labels=all_labels, zero_division=0)
    per_class = {emotion: {"precision": round(float(precision[index]), 4), "recall": round(float(recall[index]), 4),
                           "f1": round(float(f1[index]), 4), "support": int(support[index])}
                 for index, emotion in enumerate(emotions)}
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
