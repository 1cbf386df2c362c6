"""This machine's training speed, for the Train page's estimate and the suspected-mislabels card: measured once
per model, size and batch size (and machine and TensorFlow settings) in a background thread that runs
fer_core.training.calibration in a process of its own (a few seconds), then read from the workspace cache.

Measuring waits until the device probe has answered (two TensorFlow starts at once would halve the speed
measured), runs one measurement at a time, and is skipped while a run trains here (it would measure half the
machine and slow the run) and when runs go to a Ray cluster (another machine). $FER_AUDIT_MEASURE_SPEED=0
switches it off: the estimate then rests on finished runs or on figures from another machine.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Iterable

import streamlit as st

from fer_core import jobs
from fer_core.training import calibration
from fer_core.training.config import TrainConfig
from fer_core.training.device import choose_cpu_settings
from fer_core.workspace import cache_dir

from .session import workspace

MEASURE_ENV = "FER_AUDIT_MEASURE_SPEED"
MEASURING_NOTE = "Measuring this machine's speed (a few seconds, once per model and size)…"


@st.cache_resource(show_spinner=False)
def _measurements() -> dict[str, Any]:
    """This server's measurements: one lock (one at a time), those under way and those that failed, by key."""
    return {"lock": threading.Lock(), "running": set(), "failed": {}}


def measures_here() -> bool:
    """Whether runs train on this machine and measuring is not switched off."""
    return os.environ.get(MEASURE_ENV, "1").strip() != "0" and jobs.selected_backend() == jobs.LOCAL


def this_machine() -> dict[str, Any] | None:
    """The processor and TensorFlow settings a run here records (metrics.json `cpu`); None for a Ray cluster."""
    return choose_cpu_settings().record() if jobs.selected_backend() == jobs.LOCAL else None


def _key(config: TrainConfig) -> str:
    return calibration.speed_key(config.model, config.size, config.batch_size, config.variant)


def measured_speed(config: TrainConfig) -> dict[str, Any] | None:
    """The stored measurement of `config`'s model, size and batch size on this machine, if any."""
    if jobs.selected_backend() != jobs.LOCAL:
        return None
    return calibration.read_measured_speed(cache_dir(workspace(), create=False), _key(config))


def start_measuring(configs: Iterable[TrainConfig], device_known: bool) -> None:
    """Measure, in the background, each of `configs`' models and sizes not measured yet (nor failing), once the
    device is known and while no run trains here."""
    if not device_known or not measures_here():
        return
    state = _measurements()
    missing = {}
    for config in configs:
        key = _key(config)
        if key not in state["running"] and key not in state["failed"] and measured_speed(config) is None:
            missing[key] = config
    if not missing or any(record.state == jobs.RUNNING for record in jobs.list_runs()):
        return
    for key, config in missing.items():
        state["running"].add(key)
        threading.Thread(target=_measure, args=(state, key, workspace(), config), daemon=True,
                         name=f"speed-{config.model}-{config.size}").start()


def _measure(state: dict[str, Any], key: str, home: str, config: TrainConfig) -> None:
    with state["lock"]:
        try:
            calibration.measure_and_remember(cache_dir(home), config.model, config.size, config.batch_size,
                                                config.variant)
        except ValueError as error:
            state["failed"][key] = str(error)
        finally:
            state["running"].discard(key)


def measuring() -> bool:
    """Whether a measurement is under way (the Train page polls until it is in)."""
    return bool(_measurements()["running"])


def measurement_note(config: TrainConfig) -> str:
    """What to add after the estimate: that the speed is being measured, or why it could not be."""
    state = _measurements()
    key = _key(config)
    if key in state["running"]:
        return f" {MEASURING_NOTE}"
    if key in state["failed"]:
        return f" (Could not measure this machine's speed: {state['failed'][key]}.)"
    return ""
