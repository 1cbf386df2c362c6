"""This machine's training speed, measured before any run: `measure_training_speed` trains a few batches of a
model and size on random images with TensorFlow set up as a run sets it up (`python -m
fer_core.training.calibration`, a process of its own: a few seconds), and `measure_and_remember` keeps the answer
in the workspace cache under the machine, the model, the size, the batch size and the TensorFlow settings, so the
Train page's estimate rests on this machine rather than on figures measured on another one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.files import make_folder, write_json_atomically
from fer_core.training.device import PROJECT_ROOT, choose_cpu_settings, prepare_tensorflow, tensorflow_cpu_record
from fer_core.training.speed import WARMUP_BATCHES

SPEED_FOLDER = "speed"  # <workspace>/cache/speed/<key>.json
MEASURE_SECONDS = 4.0  # a measurement times batches until this long has passed …
MIN_BATCHES, MAX_BATCHES = 3, 30  # … and at least 3 of them, at most 30
MEASURE_TIMEOUT_SECONDS = 300.0  # TensorFlow's start included, on a busy machine


def measure_training_speed(model_name: str, size: str, batch_size: int, variant: str | None = None, *,
                           max_batches: int = MAX_BATCHES, max_seconds: float = MEASURE_SECONDS,
                           warmup_batches: int = WARMUP_BATCHES, tensorflow_defaults: bool = False) -> dict[str, Any]:
    """Train `model_name` at `size` on random images as a run does (its precision, pipeline, optimizer) and
    time up to `max_batches` batches after `warmup_batches`, stopping once `max_seconds` have passed (and at
    least MIN_BATCHES were timed); the speed and where it was measured. Imports TensorFlow.
    `tensorflow_defaults`: leave oneDNN and the thread pools to TensorFlow (benchmarks/bench_cores.py's baseline)."""
    if warmup_batches < 1 or max_batches < MIN_BATCHES:
        raise ValueError(f"a measurement needs at least 1 warm-up batch and {MIN_BATCHES} timed ones")
    settings = choose_cpu_settings() if tensorflow_defaults else prepare_tensorflow()
    import keras
    import tensorflow as tf

    from fer_core.training.fit import configure_runtime, make_pipeline
    from fer_core.training.models import build_model

    device = configure_runtime(0)
    model = build_model(model_name, size, variant, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    generator = np.random.default_rng(0)
    pixels = generator.integers(0, 256, (batch_size * 4, 48, 48), dtype=np.uint8)
    labels = generator.integers(0, 7, batch_size * 4)
    ends: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            ends.append(time.perf_counter())
            timed = len(ends) - warmup_batches
            if timed >= max_batches or (timed >= MIN_BATCHES and ends[-1] - ends[warmup_batches - 1] >= max_seconds):
                self.model.stop_training = True

    pipeline = make_pipeline(pixels, labels, batch_size, shuffle_seed=0).repeat()
    model.fit(pipeline, steps_per_epoch=warmup_batches + max_batches, epochs=1, verbose=0, callbacks=[Clock()],
              shuffle=False)
    timed = len(ends) - warmup_batches
    seconds = ends[-1] - ends[warmup_batches - 1]
    return {"model": model_name, "size": size, "batch_size": batch_size, "variant": variant,
            "images_per_second": round(timed * batch_size / seconds, 1), "batches": timed,
            "seconds": round(seconds, 2), "device": device, "cpu": tensorflow_cpu_record(settings),
            "tensorflow_version": tf.__version__,
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def speed_key(model_name: str, size: str, batch_size: int, variant: str | None = None,
              environ: dict[str, str] | None = None) -> str:
    """The cache key of a measurement: the model, size, batch size and variant, this machine's processor, the
    CPUs and TensorFlow settings a run would use, the TensorFlow version and the GPUs it may see. Needs no
    TensorFlow, so the app computes it at every rerun."""
    environ = dict(os.environ if environ is None else environ)
    try:
        tensorflow_version = metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        tensorflow_version = "none"
    text = json.dumps({"model": model_name, "size": size, "batch_size": batch_size, "variant": variant,
                       "cpu": choose_cpu_settings(environ).record(), "tensorflow": tensorflow_version,
                       "gpus": environ.get("CUDA_VISIBLE_DEVICES")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def speed_path(cache_folder: str | os.PathLike, key: str) -> Path:
    return Path(cache_folder) / SPEED_FOLDER / f"{key}.json"


def read_measured_speed(cache_folder: str | os.PathLike, key: str) -> dict[str, Any] | None:
    """The stored measurement of `key`, or None when there is none or it is damaged (then measured again)."""
    try:
        stored = json.loads(speed_path(cache_folder, key).read_text())
        speed = float(stored["images_per_second"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return stored if stored.get("key") == key and math.isfinite(speed) and speed > 0 else None


def measure_and_remember(cache_folder: str | os.PathLike, model_name: str, size: str, batch_size: int,
                         variant: str | None = None,
                         timeout_seconds: float = MEASURE_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Measure in a process of its own (this process keeps TensorFlow out) and store it under its key;
    ValueError saying why when the measurement fails."""
    key = speed_key(model_name, size, batch_size, variant)
    command = [sys.executable, "-m", "fer_core.training.calibration", "--model", model_name, "--size", size,
               "--batch-size", str(batch_size), *(["--variant", variant] if variant else [])]
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=timeout_seconds,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ValueError(f"measuring the training speed failed: {type(error).__name__}") from None
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        errors = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        raise ValueError(f"measuring the training speed failed: {errors[-1] if errors else 'no output'}")
    measured = {**json.loads(lines[-1]), "key": key}
    make_folder(Path(cache_folder) / SPEED_FOLDER)
    write_json_atomically(speed_path(cache_folder, key), measured)
    return measured


def main(argv: list[str]) -> int:
    """`python -m fer_core.training.calibration --model M --size S --batch-size B`: `measure_training_speed` as JSON."""
    parser = argparse.ArgumentParser(prog="python -m fer_core.training.calibration")
    parser.add_argument("--model", required=True)
    parser.add_argument("--size", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--variant", default=None)
    parser.add_argument("--batches", type=int, default=MAX_BATCHES, help="at most this many timed batches")
    parser.add_argument("--seconds", type=float, default=MEASURE_SECONDS, help="stop timing after this long")
    parser.add_argument("--tensorflow-defaults", action="store_true",
                        help="leave oneDNN and the thread pools to TensorFlow (a baseline to compare with)")
    args = parser.parse_args(argv)
    print(json.dumps(measure_training_speed(args.model, args.size, args.batch_size, args.variant,
                                            max_batches=args.batches, max_seconds=args.seconds,
                                            tensorflow_defaults=args.tensorflow_defaults)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
