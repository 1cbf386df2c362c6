"""Training benchmarks on the real FER-2013: throughput and memory per model, ROS/SMOTE cost, accuracy.

    python benchmarks/bench_train.py throughput [--batches 40] [--warmup-batches 5] [--batch-size 64]
    python benchmarks/bench_train.py sampling
    python benchmarks/bench_train.py accuracy --epochs 3 [--model cnn] [--sampling none] [--out DIR]
    python benchmarks/bench_train.py fast [--models cnn,xception] [--samplings none,ros] [--epochs N] [--out DIR]

Throughput and sampling measurements each run in a fresh process, so each peak RSS is that
measurement's own (TensorFlow and the decoded data included). Throughput times training
steps exactly as `train_and_evaluate` runs them (same pipeline, augmentation, precision
policy), after warm-up steps that pay for graph tracing. The accuracy run is one real
`train_and_evaluate` on the curated data of the workspace.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "fer2013"


def peak_rss_megabytes() -> float:
    """This process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_isolated(function: Callable[..., dict[str, Any]], *arguments: Any) -> dict[str, Any]:
    """Run a measurement in a fresh spawned process, so its peak memory is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *arguments).result()


def load_training_split(data: str, workspace: str | None) -> tuple[Any, Any]:
    import numpy as np

    from fer_core.dataset.loading import load

    dataset = load(data, workspace=workspace)
    training = np.flatnonzero(dataset.usages == "Training")
    return dataset.pixels[training], dataset.labels[training]


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory_gb:.0f} GiB RAM, Python {platform.python_version()}"


# ---------------------------------------------------------------------------------------------
# Measurements (each runs in its own process)


def measure_throughput(model_name: str, data: str, workspace: str | None, batch_size: int, batches: int,
                       warmup_batches: int) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from fer_core.training.fit import configure_runtime, make_pipeline
    from fer_core.training.models import build_model

    pixels, labels = load_training_split(data, workspace)
    device = configure_runtime(seed=0)
    model = build_model(model_name, "full", seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    count = batch_size * (batches + warmup_batches)
    pipeline = make_pipeline(pixels[:count], labels[:count], batch_size, shuffle_seed=0).repeat()
    model.fit(pipeline, steps_per_epoch=warmup_batches, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(pipeline, steps_per_epoch=batches, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    return {"model": model_name, "parameters": model.count_params(), "device": device,
            "images_per_second": batches * batch_size / seconds, "seconds": seconds,
            "peak_rss_mb": peak_rss_megabytes()}


def measure_sampling(strategy: str, data: str, workspace: str | None) -> dict[str, Any]:
    import numpy as np

    from fer_core.training.sampling import resample_training

    pixels, labels = load_training_split(data, workspace)
    before = peak_rss_megabytes()
    started = time.perf_counter()
    result = resample_training(pixels, labels, strategy, seed=0)
    seconds = time.perf_counter() - started
    return {"sampling": strategy, "images_before": len(labels), "images_after": len(result.labels),
            "class_counts_after": np.bincount(result.labels, minlength=7).tolist(), "seconds": seconds,
            "rss_before_mb": before, "peak_rss_mb": peak_rss_megabytes()}


# ---------------------------------------------------------------------------------------------
# Commands


def run_throughput(arguments: argparse.Namespace) -> None:
    from fer_core.training.models import MODEL_NAMES

    print(f"machine: {machine_description()}")
    print(f"training throughput at size full, batch {arguments.batch_size}, {arguments.batches} timed batches "
          f"after {arguments.warmup_batches} warm-up batches\n")
    print("| model | parameters | device | images/s | peak RSS (MB) |\n|---|---:|---|---:|---:|")
    for model_name in arguments.models or MODEL_NAMES:
        result = run_isolated(measure_throughput, model_name, arguments.data, arguments.workspace,
                              arguments.batch_size, arguments.batches, arguments.warmup_batches)
        print(f"| {model_name} | {result['parameters']:,} | {result['device']} | "
              f"{result['images_per_second']:.0f} | {result['peak_rss_mb']:.0f} |", flush=True)


def run_sampling(arguments: argparse.Namespace) -> None:
    print(f"machine: {machine_description()}")
    print("resampling the full Training split (flattened 48×48 pixels)\n")
    print("| sampling | images before → after | per class after | seconds | RSS before (MB) | peak RSS (MB) |")
    print("|---|---|---|---:|---:|---:|")
    for strategy in ("ros", "smote"):
        result = run_isolated(measure_sampling, strategy, arguments.data, arguments.workspace)
        print(f"| {strategy} | {result['images_before']:,} → {result['images_after']:,} | "
              f"{result['class_counts_after'][0]:,} | {result['seconds']:.1f} | {result['rss_before_mb']:.0f} | "
              f"{result['peak_rss_mb']:.0f} |", flush=True)


def run_accuracy(arguments: argparse.Namespace) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from fer_core.dataset.loading import load
    from fer_core.training.fit import TrainConfig, train_and_evaluate

    config = TrainConfig(model=arguments.model, sampling=arguments.sampling, epochs=arguments.epochs,
                         size=arguments.size, batch_size=arguments.batch_size, seed=arguments.seed,
                         raw=arguments.raw)
    print(f"machine: {machine_description()}")
    dataset = load(arguments.data, workspace=arguments.workspace)
    metrics = train_and_evaluate(dataset, config, arguments.out, workspace=arguments.workspace,
                                 on_epoch=lambda progress: print(progress, flush=True))
    print(f"{config.model} ({config.size}, {config.sampling}, {'raw' if config.raw else 'curated'}), "
          f"{metrics['epochs_run']} epoch(s), best {metrics['best_epoch']}, on {metrics['device']}: "
          f"PrivateTest accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}, "
          f"leak-free accuracy {metrics['leak_free_accuracy']} ({metrics['leaked_test_images']} leaked left out), "
          f"{metrics['seconds']:.0f} s total, {metrics['images_per_second']:.0f} training images/s, "
          f"peak RSS {peak_rss_megabytes():.0f} MB")


def run_fast(arguments: argparse.Namespace) -> None:
    """Each model × sampling at size fast: the `train` CLI in a fresh process, one after another; wall
    minutes of the whole command, peak RSS of that process (/usr/bin/time), the load average around it."""
    import json
    import subprocess

    print(f"machine: {machine_description()}")
    print("| model | sampling | epochs (best) | accuracy | leak-free accuracy | macro-F1 | minutes | "
          "train images/s | peak RSS (MB) | load (start → end) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
          flush=True)
    for model in arguments.models.split(","):
        for sampling in arguments.samplings.split(","):
            out = Path(arguments.out) / f"{model}_{sampling}"
            command = [sys.executable, "-m", "fer_core", "train", arguments.data, "--model", model,
                       "--sampling", sampling, "--size", "fast", "--out", str(out), "--overwrite"]
            command += ["--epochs", str(arguments.epochs)] if arguments.epochs else []
            command += ["--workspace", arguments.workspace] if arguments.workspace else []
            load_before = os.getloadavg()[0]
            started = time.perf_counter()
            result = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True,
                                    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            minutes = (time.perf_counter() - started) / 60
            if result.returncode != 0:
                print(f"| {model} | {sampling} | failed: {result.stderr.strip().splitlines()[-2:]} |", flush=True)
                continue
            peak_mb = int(result.stderr.strip().splitlines()[-1]) / 1024  # /usr/bin/time %M: kilobytes
            metrics = json.loads((out / "metrics.json").read_text())
            print(f"| {model} | {sampling} | {metrics['epochs_run']} ({metrics['best_epoch']}) | "
                  f"{metrics['accuracy']:.4f} | {metrics['leak_free_accuracy']} | {metrics['macro_f1']:.4f} | "
                  f"{minutes:.1f} | {metrics['images_per_second']:.0f} | {peak_mb:.0f} | "
                  f"{load_before:.1f} → {os.getloadavg()[0]:.1f} |", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="FER-2013 CSV or image folders")
    parser.add_argument("--workspace", default=None, help="workspace (decoded cache, edits)")
    parser.add_argument("--batch-size", type=int, default=64)
    commands = parser.add_subparsers(dest="command", required=True)
    throughput = commands.add_parser("throughput", help="training images/s and peak RSS per model (size full)")
    throughput.add_argument("--batches", type=int, default=40, help="timed batches per model")
    throughput.add_argument("--warmup-batches", type=int, default=5, help="untimed batches (graph tracing)")
    throughput.add_argument("--models", nargs="*", default=None, help="default: all")
    throughput.set_defaults(func=run_throughput)
    commands.add_parser("sampling", help="ROS and SMOTE time and peak RSS on the full Training split") \
        .set_defaults(func=run_sampling)
    accuracy = commands.add_parser("accuracy", help="one real training run; PrivateTest and leak-free accuracy")
    accuracy.add_argument("--model", default="cnn")
    accuracy.add_argument("--sampling", default="none")
    accuracy.add_argument("--size", default="full")
    accuracy.add_argument("--epochs", type=int, default=3)
    accuracy.add_argument("--seed", type=int, default=0)
    accuracy.add_argument("--raw", action="store_true", help="skip the workspace's edits")
    accuracy.add_argument("--out", default=str(PROJECT_ROOT / "workspace" / "runs" / "bench-accuracy"))
    accuracy.set_defaults(func=run_accuracy)
    fast = commands.add_parser("fast", help="every family at size fast through the train CLI: accuracy, minutes, memory")
    fast.add_argument("--models", default="cnn,cnn_lstm,vit,cnn_attention,xception")
    fast.add_argument("--samplings", default="none")
    fast.add_argument("--epochs", type=int, default=None, help="default: the fast size's default")
    fast.add_argument("--out", default=str(PROJECT_ROOT / "out" / "bench-fast"))  # train refuses the workspace
    fast.set_defaults(func=run_fast)
    return parser


if __name__ == "__main__":
    sys.path.insert(0, str(PROJECT_ROOT))
    parsed = build_parser().parse_args()
    parsed.func(parsed)
