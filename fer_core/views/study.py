"""The study's table, "Performance of the sampling techniques for the proposed models": one row per
model × sampling, raw and curated figures side by side with the change (pure, from jobs.grid_rows)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

STUDY_METRICS = (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("leak_free_accuracy", "leak-free"))


def study_table(grid: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """"Performance of the sampling techniques for the proposed models": one row per model × sampling,
    and per metric the raw figure, the curated one and curated − raw. `grid` is jobs.grid_rows()."""
    frame = pd.DataFrame(list(grid), columns=["model", "sampling", "data", "run_id", "state",
                                              *(name for name, _ in STUDY_METRICS)])
    rows = []
    for (model, sampling), cell in frame.groupby(["model", "sampling"], sort=False):
        row: dict[str, Any] = {"model": model, "sampling": sampling}
        by_data = {data: runs.iloc[-1] for data, runs in cell.groupby("data")}
        row["state"] = " / ".join(f"{data} {by_data[data]['state']}" for data in ("raw", "curated") if data in by_data)
        for name, label in STUDY_METRICS:
            values = {data: pd.to_numeric(by_data[data][name], errors="coerce") if data in by_data else np.nan
                      for data in ("raw", "curated")}
            row[f"{label} raw"], row[f"{label} curated"] = values["raw"], values["curated"]
            row[f"{label} change"] = values["curated"] - values["raw"]
        rows.append(row)
    columns = ["model", "sampling", *(f"{label} {kind}" for _, label in STUDY_METRICS
                                     for kind in ("raw", "curated", "change")), "state"]
    return pd.DataFrame(rows, columns=columns)


def study_csv(table: pd.DataFrame) -> bytes:
    """The study table as CSV bytes (fractions 0..1, as in metrics.json)."""
    return table.to_csv(index=False, lineterminator="\n").encode()
