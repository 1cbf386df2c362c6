"""Job kinds: what a run can be. Adding a kind is one entry in JOB_KINDS.

A kind names its config class (a frozen dataclass, carried as JSON through the jobs table, the
local worker and Ray; see train_config.config_to_json) and its entry function, both as
"module:attribute" strings so that listing runs imports neither. The entry function is called
in the worker as `entry(data_path, config, context) -> metrics dict` and writes its artifacts
into `context.out_dir`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fer_core.training.config import EpochProgress, config_from_dict, config_from_json, config_to_json


@dataclass(frozen=True)
class JobKind:
    name: str
    config_class: str  # "module:Class"
    entry: str  # "module:function"

    def load_config_class(self) -> type:
        return _resolve(self.config_class)

    def read_config(self, text: str) -> Any:
        """The kind's config from its JSON (one-line ValueError when the JSON is not a valid config)."""
        return config_from_json(self.load_config_class(), text)

    def config_from_dict(self, data: dict) -> Any:
        return config_from_dict(self.load_config_class(), data)

    def load_entry(self) -> Callable[..., dict]:
        return _resolve(self.entry)


@dataclass(frozen=True)
class JobContext:
    """What an entry function gets besides its config: where to write, and how to report progress."""

    run_id: str
    workspace: Path
    out_dir: Path
    set_stage: Callable[[str], None]
    record_epoch: Callable[[EpochProgress], None]


JOB_KINDS: dict[str, JobKind] = {
    "train": JobKind("train", "fer_core.training.config:TrainConfig", "fer_core.jobs.kinds:run_training"),
    "mislabels": JobKind("mislabels", "fer_core.mislabels.config:MislabelConfig",
                         "fer_core.mislabels.run:run_mislabels_job"),
}


def job_kind(name: str) -> JobKind:
    """The registered kind; ValueError naming the known ones otherwise."""
    if name not in JOB_KINDS:
        raise ValueError(f"unknown job kind {name!r}; expected one of {', '.join(JOB_KINDS)}")
    return JOB_KINDS[name]


def kind_of_config(config: Any) -> JobKind:
    """The kind whose config class `config` is an instance of (matched by name, importing nothing)."""
    name = f"{type(config).__module__}:{type(config).__qualname__}"
    for kind in JOB_KINDS.values():
        if kind.config_class == name:
            return kind
    raise ValueError(f"no job kind takes a {type(config).__name__}; kinds: {', '.join(JOB_KINDS)}")


def serialize_config(config: Any) -> str:
    return config_to_json(config)


def run_training(data_path: str, config: Any, context: JobContext) -> dict:
    """The `train` kind: load the data, train and evaluate (training.train_and_evaluate)."""
    from fer_core.dataset.loading import load
    from fer_core.training.fit import train_and_evaluate

    context.set_stage("loading data")
    dataset = load(data_path, workspace=context.workspace)
    context.set_stage("preparing the model (first epoch includes compilation)")
    return train_and_evaluate(dataset, config, context.out_dir, on_epoch=context.record_epoch,
                              workspace=context.workspace,
                              on_speed=lambda speed: context.set_stage(f"training: {speed.describe()}"))


def _resolve(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
