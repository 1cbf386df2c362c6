"""Experiments: a grid of training runs (models × samplings × raw/curated data) queued together.

`submit_sweep` validates every config before queueing any, then queues them in one transaction
under one experiment id; `grid_rows` and `grid_table` (pure) turn the experiment's runs into the
table the CLI prints and the Results page shows.
"""

from __future__ import annotations

import itertools
import os
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Sequence

from fer_core.jobs.records import RunRecord
from fer_core.jobs.scheduler import list_runs, submit_many
from fer_core.training.config import TrainConfig

if TYPE_CHECKING:
    import pandas as pd

RAW, CURATED = "raw", "curated"
DATA_VARIANTS = (RAW, CURATED)
GRID_COLUMNS = ("model", "sampling", "data", "run_id", "state", "accuracy", "macro_f1", "leak_free_accuracy")
GRID_METRICS = ("accuracy", "macro_f1", "leak_free_accuracy")


def new_experiment_id() -> str:
    return "exp-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def sweep_configs(base: TrainConfig, models: Sequence[str], samplings: Sequence[str],
                  data_variants: Sequence[str]) -> list[TrainConfig]:
    """One config per (model, sampling, data) cell, the other fields from `base`; ValueError on a bad value."""
    for name, values in (("models", models), ("samplings", samplings), ("data", data_variants)):
        if not values:
            raise ValueError(f"no {name} given for the sweep")
        repeated = sorted({value for value in values if list(values).count(value) > 1})
        if repeated:
            raise ValueError(f"{name} listed twice in the sweep: {', '.join(repeated)}")
    unknown = [variant for variant in data_variants if variant not in DATA_VARIANTS]
    if unknown:
        raise ValueError(f"unknown data variant {unknown[0]!r}; expected some of {', '.join(DATA_VARIANTS)}")
    return [replace(base, model=model, sampling=sampling, raw=variant == RAW)
            for model, sampling, variant in itertools.product(models, samplings, data_variants)]


def submit_sweep(base: TrainConfig, models: Sequence[str], samplings: Sequence[str], data_variants: Sequence[str],
                 data_path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> tuple[str, list[str]]:
    """Queue the grid as one experiment; returns (experiment id, run ids in grid order)."""
    configs = sweep_configs(base, models, samplings, data_variants)
    experiment_id = new_experiment_id()
    return experiment_id, submit_many(configs, data_path, workspace, experiment_id=experiment_id)


def experiment_runs(experiment_id: str, workspace: str | os.PathLike | None = None) -> list[RunRecord]:
    """The experiment's runs; ValueError naming the id when it has none."""
    runs = list_runs(workspace, experiment_id=experiment_id)
    if not runs:
        raise ValueError(f"unknown experiment id {experiment_id!r} (`jobs sweep` prints it on its first line)")
    return runs


def grid_rows(runs: Sequence[RunRecord]) -> list[dict]:
    """One row per run: model, sampling, data (raw/curated), run id, state and its PrivateTest figures (None until done)."""
    rows = []
    for run in runs:
        metrics = run.metrics or {}
        rows.append({"model": run.config.get("model"), "sampling": run.config.get("sampling"),
                     "data": RAW if run.config.get("raw") else CURATED, "run_id": run.run_id, "state": run.state,
                     **{name: metrics.get(name) for name in GRID_METRICS}})
    order = {name: index for index, name in enumerate(DATA_VARIANTS)}
    return sorted(rows, key=lambda row: (row["model"], row["sampling"], order[row["data"]], row["run_id"]))


def grid_table(runs: Sequence[RunRecord], metric: str = "accuracy") -> "pd.DataFrame":
    """Models (rows) × samplings and raw/curated data (columns) of one metric; NaN where a run has no result yet."""
    import pandas as pd

    if metric not in GRID_METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(GRID_METRICS)}")
    rows = pd.DataFrame(grid_rows(runs), columns=list(GRID_COLUMNS))
    rows[metric] = pd.to_numeric(rows[metric], errors="coerce")
    table = rows.pivot_table(index="model", columns=["sampling", "data"], values=metric, aggfunc="last",
                             dropna=False)
    return table.astype(float)
