"""Where training runs and how TensorFlow uses the processor.

* `probe_training_device`: which device a run on this machine will use, asked the way a run asks:
  TensorFlow started in a process of its own (`configure_runtime`, whose answer a run writes to
  metrics.json as `device`). A separate process keeps TensorFlow (seconds to import, hundreds of MB,
  the GPU driver) out of the caller: the Streamlit server asks once in the background and never waits.
* `prepare_tensorflow`: the CPU kernels and thread pools, set before TensorFlow is imported. TensorFlow
  switches its oneDNN kernels on by itself only on processors with AVX-512 VNNI, BF16 or AMX; elsewhere
  (an AVX2-only AMD EPYC) it falls back to Eigen's float32 kernels, at half the speed (a fast cnn: 94–118
  against 188 training images/s, benchmarks/bench_cores.py). Its thread pools are sized to the CPUs of
  the process (affinity, cgroup quota, a Ray job's CPUs), not the host's, which a container or a Ray
  task may not have. A value the user set in the environment is kept.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, MutableMapping

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROBE = "from fer_core.training.fit import configure_runtime; print(configure_runtime(0))"
PROBE_TIMEOUT_SECONDS = 300.0
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
INTRA_OP_ENV, INTER_OP_ENV = "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"
CPUS_ENV = "FER_AUDIT_CPUS"  # the CPUs a run may use, when its scheduler knows better (the Ray runner sets it)
# The processor features that decide TensorFlow's CPU kernels and precision, in the order they appear.
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_tile",
               "amx_int8")


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


# ---------------------------------------------------------------------------------------------
# CPU kernels and thread pools


@dataclass(frozen=True)
class CpuSettings:
    """How TensorFlow will use this processor: what a run records and what a speed measurement is keyed by."""

    cpu_model: str
    cpu_flags: tuple[str, ...]  # those of SPEED_FLAGS the processor has
    host_cpus: int
    usable_cpus: int  # affinity, cgroup quota and $FER_AUDIT_CPUS taken into account
    onednn: bool
    intra_op_threads: int
    inter_op_threads: int

    def record(self) -> dict:
        """The fields a run's metrics.json and a speed measurement carry (JSON: lists, not tuples)."""
        return {**asdict(self), "cpu_flags": list(self.cpu_flags)}

    def describe(self) -> str:
        """One line for a worker's log: `CPU: <model> (avx2 …), oneDNN on, 2 of 2 CPUs, threads 2 intra / 2 inter`."""
        flags = " ".join(self.cpu_flags) or "no AVX2"
        return (f"CPU: {self.cpu_model} ({flags}), oneDNN {'on' if self.onednn else 'off'}, {self.usable_cpus} of "
                f"{self.host_cpus} CPUs, threads {self.intra_op_threads} intra-op / {self.inter_op_threads} inter-op")


def read_cpuinfo(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> tuple[str, tuple[str, ...]]:
    """(model name, the SPEED_FLAGS present) of the first processor; ("unknown", ()) off Linux."""
    try:
        lines = Path(cpuinfo).read_text().splitlines()
    except OSError:
        return "unknown", ()
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return fields.get("model name", "unknown"), tuple(flag for flag in SPEED_FLAGS if flag in flags)


def count_usable_cpus(environ: Mapping[str, str] = os.environ) -> int:
    """CPUs this process may use: affinity and cgroup CPU quota (joblib's count), and at most $FER_AUDIT_CPUS."""
    import joblib

    usable = joblib.cpu_count()
    granted = environ.get(CPUS_ENV, "").strip()
    if granted:
        if not granted.isdigit() or int(granted) < 1:
            raise ValueError(f"${CPUS_ENV} must be a whole number of CPUs, 1 or more, got {granted!r}")
        usable = min(usable, int(granted))
    return max(1, usable)


def parse_switch(value: str | None, default: bool) -> bool:
    """TensorFlow's reading of a boolean variable: 1/true on, 0/false off (any case), anything else the default."""
    text = (value or "").strip().lower()
    return {"1": True, "true": True, "0": False, "false": False}.get(text, default)


def choose_cpu_settings(environ: Mapping[str, str] = os.environ,
                        cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> CpuSettings:
    """The settings `prepare_tensorflow` applies: oneDNN on and one thread per usable CPU in each pool,
    unless the environment already says otherwise. Cheap (no TensorFlow): the app keys its cache with it."""
    cpu_model, flags = read_cpuinfo(cpuinfo)
    usable = count_usable_cpus(environ)

    def threads(name: str) -> int:
        value = environ.get(name, "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else usable

    return CpuSettings(cpu_model=cpu_model, cpu_flags=flags, host_cpus=os.cpu_count() or 1, usable_cpus=usable,
                       onednn=parse_switch(environ.get(ONEDNN_ENV), True), intra_op_threads=threads(INTRA_OP_ENV),
                       inter_op_threads=threads(INTER_OP_ENV))


def prepare_tensorflow(environ: MutableMapping[str, str] = os.environ) -> CpuSettings:
    """Set TensorFlow's oneDNN switch and thread-pool sizes in `environ`, keeping any the user set; returns
    the settings. Call it before TensorFlow is imported: TensorFlow reads these once, at its start."""
    settings = choose_cpu_settings(environ)
    for name, value in ((ONEDNN_ENV, "1" if settings.onednn else "0"),
                        (INTRA_OP_ENV, str(settings.intra_op_threads)), (INTER_OP_ENV, str(settings.inter_op_threads))):
        environ.setdefault(name, value)
    return settings


def onednn_active() -> bool | None:
    """Whether TensorFlow runs its oneDNN kernels, as TensorFlow itself says; None before it is imported (or
    when it cannot say)."""
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def tensorflow_cpu_record(settings: CpuSettings | None = None) -> dict:
    """What a run records about the processor, with oneDNN as TensorFlow itself reports it once imported
    (an environment set after TensorFlow started has no effect, so the settings alone could be wrong)."""
    record = (settings or choose_cpu_settings()).record()
    active = onednn_active()
    if active is not None:
        record["onednn"] = active
    return record
