"""How long a run will take: the speed it rests on (finished runs on this machine, a few batches measured
on it, else a reference speed from another machine), the epochs it plans, and the time left of a running one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from fer_core.training.config import TrainConfig

if TYPE_CHECKING:
    from fer_core.jobs import RunRecord


def estimate_remaining_seconds(epoch_seconds: Sequence[float], epochs: int) -> float | None:
    """Seconds until the last epoch ends: remaining epochs × the typical epoch time; None before the first.

    The first epoch includes graph compilation, so once later epochs exist it is left out of the
    typical time (the median of the last three). Early stopping can end a run sooner: an upper bound.
    """
    done = len(epoch_seconds)
    if done == 0:
        return None
    steady = list(epoch_seconds[1:]) if done > 1 else list(epoch_seconds)
    return max(0, epochs - done) * float(np.median(steady[-3:]))


REFERENCE_IMAGES_PER_SECOND = {"tiny": {None: 900.0}, "full": {None: 79.0}, "fast": {
    None: 400.0, "cnn": 373.0, "cnn_lstm": 400.0, "vit": 790.0, "cnn_attention": 400.0, "xception": 630.0}}


FULL_TRAINING_IMAGES = 28_709  # FER-2013's Training split


RESAMPLED_SHARE = 50_505 / 28_709  # ROS and SMOTE grow every emotion to the largest (happy)


RUN_OVERHEAD_SECONDS = 60.0  # TensorFlow start, leak search, evaluation and writing


def reference_images_per_second(size: str | None, model: str | None) -> float:
    """Training images/s (batch 128) of a size and model on the idle 2-core dev VM (benchmarks/README.md): the
    estimate's fallback."""
    by_model = REFERENCE_IMAGES_PER_SECOND.get(size or "full", REFERENCE_IMAGES_PER_SECOND["full"])
    return by_model.get(model, by_model[None])


def estimate_run_seconds(config: TrainConfig, finished: Sequence["RunRecord"] = (),
                         training_images: int = FULL_TRAINING_IMAGES, measured: Mapping[str, Any] | None = None,
                         this_machine: Mapping[str, Any] | None = None) -> tuple[float, str]:
    """Seconds a run will take (planned epochs, no early stop) and what the estimate rests on.

    Speed, the first there is of: the median images/s of this workspace's finished runs of the same model
    and size on this machine with these TensorFlow settings (their metrics' `cpu` equals `this_machine`);
    `measured`, a few batches timed on this machine (fer_core.training.calibration); finished runs of the same
    model and size recorded elsewhere or before runs said where; the reference speed of the size, measured
    on another machine.
    """
    speed, basis = choose_speed(config.model, config.size, finished, measured, this_machine)
    images = min(training_images, config.limit) if config.limit else training_images
    if config.sampling in ("ros", "smote"):
        images *= RESAMPLED_SHARE
    full_split = training_images == FULL_TRAINING_IMAGES and not config.limit
    epochs = config.epochs_to_run
    basis += f", {epochs} epochs of {images:,.0f} training images{' (FER-2013)' if full_split else ''}"
    return RUN_OVERHEAD_SECONDS + epochs * images / speed, basis


def choose_speed(model: str, size: str, finished: Sequence["RunRecord"] = (),
                 measured: Mapping[str, Any] | None = None,
                 this_machine: Mapping[str, Any] | None = None) -> tuple[float, str]:
    """(training images/s, `at … training images/s, <what it rests on>`): see `estimate_run_seconds`."""
    alike = [record.metrics for record in finished
             if record.metrics and record.metrics.get("images_per_second")
             and record.config.get("model") == model and record.config.get("size") == size]
    here = [metrics for metrics in alike if this_machine is not None and metrics.get("cpu") == dict(this_machine)]
    if here:
        speed = float(np.median([metrics["images_per_second"] for metrics in here]))
        return speed, (f"at {speed:,.0f} training images/s, the speed of {len(here)} finished run(s) like it on "
                       "this machine")
    if measured is not None:
        speed = float(measured["images_per_second"])
        return speed, (f"at {speed:,.0f} training images/s, measured on this machine ({measured.get('batches')} "
                       f"batches of {model} {size})")
    if alike:
        speed = float(np.median([metrics["images_per_second"] for metrics in alike]))
        return speed, f"at {speed:,.0f} training images/s, the speed of {len(alike)} finished run(s) like it here"
    speed = reference_images_per_second(size, model)
    return speed, (f"at about {speed:,.0f} training images/s, an estimate from another machine (an idle 2-core "
                   f"CPU; no finished {model} {size} run here yet)")
