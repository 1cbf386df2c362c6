"""A running fit's speed, measured: `speed_meter` times its batches and reports the training images per second
and the images left every few seconds, so a run's progress says the time left from its first batches on rather
than after a whole epoch (a mislabel fold's epoch took 270 s on an AVX2-only machine). What is measured before a
run, to estimate it, is fer_core.training.calibration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from fer_core.progress import time_left_text

if TYPE_CHECKING:
    import keras

WARMUP_BATCHES = 2  # the first batch traces the graph, the second still settles: neither is timed
REPORT_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class SpeedReport:
    """A running fit's measured speed: sent every REPORT_EVERY_SECONDS and at each epoch's end once the warm-up
    batches are done."""

    epoch: int  # 1-based
    epochs: int
    batch: int  # batches done in this epoch
    batches: int  # batches per epoch
    images_done: int  # training images since the warm-up (from the second epoch on: since it began) …
    seconds: float  # … and the seconds they took, the epochs' validation included
    images_left: int  # training images until the last planned epoch ends

    @property
    def images_per_second(self) -> float:
        return self.images_done / self.seconds

    def describe(self) -> str:
        """`epoch 1/10, batch 40/225, 85 training images/s measured, about 6 min left (…)`."""
        left = time_left_text(self.images_done, self.images_done + self.images_left, self.seconds)
        return (f"epoch {self.epoch}/{self.epochs}, batch {self.batch}/{self.batches}, "
                f"{self.images_per_second:,.0f} training images/s measured, {left} (early stopping can end it sooner)")


SpeedCallback = Callable[[SpeedReport], None]


def images_in_batch(batch: int, batch_size: int, train_images: int) -> int:
    """Images in batch `batch` (0-based) of an epoch over `train_images`: the last one may be short."""
    return max(0, min(batch_size, train_images - batch * batch_size))


def speed_meter(train_images: int, batch_size: int, epochs: int, on_speed: SpeedCallback,
                every_seconds: float | None = None,
                warmup_batches: int = WARMUP_BATCHES) -> "keras.callbacks.Callback":
    """A Keras callback that reports a fit's speed and images left (`SpeedReport`) every `every_seconds`
    (default REPORT_EVERY_SECONDS), timed from the end of its first `warmup_batches` batches (graph tracing) on."""
    import keras

    batches = -(-train_images // batch_size)
    every_seconds = REPORT_EVERY_SECONDS if every_seconds is None else every_seconds

    class SpeedMeter(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch, self.done, self.start, self.last_report = 0, 0, None, 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch
            if epoch == 1 and self.start is not None:  # from the second epoch on, time from there: the first
                self.start, self.done = time.perf_counter(), 0  # validation traces its graph (seconds)

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            now = time.perf_counter()
            if self.start is None:
                if self.epoch * batches + batch + 1 >= warmup_batches:
                    self.start, self.last_report = now, now
                return
            self.done += images_in_batch(batch, batch_size, train_images)
            if now - self.last_report >= every_seconds:
                self.report(now, batch + 1)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            """Also at each epoch's end (its validation done), after the epoch's own progress, so a run's stage
            keeps the speed when epochs are shorter than the reporting interval."""
            if self.start is not None:
                self.report(time.perf_counter(), batches)

        def report(self, now: float, batch: int) -> None:
            if self.done == 0 or now <= self.start:
                return
            self.last_report = now
            left = max(0, train_images - batch * batch_size)
            on_speed(SpeedReport(epoch=self.epoch + 1, epochs=epochs, batch=batch, batches=batches,
                                 images_done=self.done, seconds=now - self.start,
                                 images_left=left + (epochs - self.epoch - 1) * train_images))

    return SpeedMeter()
