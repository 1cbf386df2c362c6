"""Which device a training run on this machine will use, asked the way a run asks: TensorFlow started in
a process of its own (`configure_runtime`, whose answer a run writes to metrics.json as `device`).

A separate process keeps TensorFlow (seconds to import, hundreds of MB, the GPU driver) out of the
caller: the Streamlit server asks once in the background and never waits for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROBE = "from fer_core.training.fit import configure_runtime; print(configure_runtime(0))"
PROBE_TIMEOUT_SECONDS = 300.0


def probe_training_device(timeout_seconds: float = PROBE_TIMEOUT_SECONDS) -> str:
    """`GPU: <name>` or `CPU`, as a run's metrics.json will say; `unknown (<why>)` when TensorFlow cannot start."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=PROJECT_ROOT,
                                env=environment, timeout=timeout_seconds)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unknown ({type(error).__name__})"
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not lines:
        errors = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        return f"unknown (TensorFlow did not start: {errors[-1] if errors else 'no output'})"
    return lines[-1]
