"""Training images/s per model and size under TensorFlow's CPU settings: oneDNN on, off or left to TensorFlow,
and thread pools of 1, 2 or the default size. Each probe is a fresh process (TensorFlow reads these settings once,
at its start) that times 30 batches after 2 warm-up batches (fer_core.training.calibration, random images, a run's
precision, pipeline and optimizer); configurations are interleaved and repeated so a load that comes and goes
hits them alike, and each line carries the load average at its start.

    python benchmarks/bench_cores.py [--models cnn] [--sizes fast] [--onednn default,1,0] [--threads default]
                                     [--repeats 2] [--batches 30] [--batch-size 128]

oneDNN `default` leaves TF_ENABLE_ONEDNN_OPTS unset and the pools to TensorFlow (what runs did before FER Audit
chose, the baseline); `1`/`0` set it; threads `N` sets TF_NUM_INTRAOP_THREADS and TF_NUM_INTEROP_THREADS to N,
`default` leaves them to FER Audit (one per usable CPU) or, with oneDNN `default`, to TensorFlow.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

TENSORFLOW_VARIABLES = ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def probe(model: str, size: str, batch_size: int, batches: int, onednn: str, threads: str) -> dict:
    """One measurement in a fresh process with the configuration's environment (the caller's TF variables removed)."""
    environment = {name: value for name, value in os.environ.items() if name not in TENSORFLOW_VARIABLES}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if onednn != "default":
        environment["TF_ENABLE_ONEDNN_OPTS"] = onednn
    if threads != "default":
        environment["TF_NUM_INTRAOP_THREADS"] = environment["TF_NUM_INTEROP_THREADS"] = threads
    command = [sys.executable, "-m", "fer_core.training.calibration", "--model", model, "--size", size,
               "--batch-size", str(batch_size), "--batches", str(batches), "--seconds", "1e9",
               *(["--tensorflow-defaults"] if onednn == "default" else [])]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, env=environment)
    if result.returncode != 0:
        raise SystemExit(f"probe failed ({model} {size} oneDNN {onednn} threads {threads}): "
                         f"{result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cnn")
    parser.add_argument("--sizes", default="fast")
    parser.add_argument("--onednn", default="default,1,0", help="comma-separated: default, 1, 0")
    parser.add_argument("--threads", default="default", help="comma-separated: default or a number")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args(argv)

    from fer_core.training.device import choose_cpu_settings

    settings = choose_cpu_settings({})
    print(f"machine: {settings.cpu_model}; flags: {' '.join(settings.cpu_flags) or 'no AVX2'}; "
          f"{settings.usable_cpus} usable of {settings.host_cpus} CPUs")
    print(f"{args.batches} timed batches of {args.batch_size} after 2 warm-up batches; "
          f"load average (1 min) at each probe's start\n")
    print("| repeat | model | size | TF_ENABLE_ONEDNN_OPTS | threads | oneDNN active | images/s | load |")
    print("|---:|---|---|---|---|---|---:|---:|", flush=True)
    configurations = list(itertools.product(args.models.split(","), args.sizes.split(","),
                                            args.onednn.split(","), args.threads.split(",")))
    speeds: dict[tuple, list[float]] = {configuration: [] for configuration in configurations}
    for repeat in range(1, args.repeats + 1):
        for configuration in configurations:
            model, size, onednn, threads = configuration
            load = os.getloadavg()[0]
            measured = probe(model, size, args.batch_size, args.batches, onednn, threads)
            speeds[configuration].append(measured["images_per_second"])
            print(f"| {repeat} | {model} | {size} | {onednn} | {threads} | "
                  f"{'on' if measured['cpu']['onednn'] else 'off'} | {measured['images_per_second']:.0f} | "
                  f"{load:.1f} |", flush=True)
    print("\nmedian images/s: " + "; ".join(f"{' '.join(configuration)}: {statistics.median(values):.0f}"
                                            for configuration, values in speeds.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
