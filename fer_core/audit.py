"""Run every detector over a Dataset → AuditReport; write summary.json and samples.csv.

Per-image features that do not depend on the threshold (exact digests, pHashes, outlier
scores) are cached in the workspace by the data's fingerprint, so a second audit of the same
data only groups, which takes a fraction of a second.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import outliers
from .dataset import Dataset, Progress, load
from .duplicates import (DEFAULT_NEAR_THRESHOLD, NO_GROUP, Leaks, describe_groups, find_leaks, group_exact,
                         group_near)
from .hashing import exact_digests, phash_batch
from .labels import EMOTIONS
from .workspace import cache_dir

# Bump when a cached feature's definition changes.
FEATURES_VERSION = "1"
SAMPLE_COLUMNS = ("id", "label", "usage", "mean", "std", "entropy", "phash", "exact_group", "near_group",
                  "conflicting", "cross_split", "leak", "outlier_score", "outlier")


@dataclass(frozen=True)
class AuditConfig:
    """What the audit looks for; the near-duplicate threshold is the one knob users turn."""

    near_threshold: int = DEFAULT_NEAR_THRESHOLD

    def __post_init__(self) -> None:
        if not 0 <= self.near_threshold <= 32:
            raise ValueError(f"near threshold {self.near_threshold} out of range; expected 0..32 bits")


@dataclass(frozen=True, eq=False)
class AuditReport:
    """The audit of one dataset: one row per sample, one row per group, the leaks, and a summary."""

    dataset: Dataset
    config: AuditConfig
    samples: pd.DataFrame
    exact_groups: pd.DataFrame
    near_groups: pd.DataFrame
    leaks: Leaks
    hashes: np.ndarray
    summary: dict = field(default_factory=dict)


class StageTimer:
    """Wall time per named stage, for summary.json's seconds_by_stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def audit_source(path: str | os.PathLike, config: AuditConfig = AuditConfig(), workspace=None,
                 progress: Progress | None = None) -> AuditReport:
    """Load a FER source (cached) and audit it."""
    timer = StageTimer()
    with timer.stage("load"):
        dataset = load(path, workspace=workspace, progress=progress)
    return run_audit(dataset, config, workspace=workspace, progress=progress, timer=timer)


def run_audit(dataset: Dataset, config: AuditConfig = AuditConfig(), workspace=None,
              progress: Progress | None = None, timer: StageTimer | None = None) -> AuditReport:
    """Find exact and near duplicates, conflicts, train–test leaks and outliers in `dataset`."""
    timer = timer or StageTimer()
    started = time.perf_counter() - timer.seconds.get("load", 0.0)
    features = _features(dataset, workspace, progress, timer)
    hashes = features["phash"].to_numpy(dtype=np.uint64)

    with timer.stage("exact"):
        exact_of = group_exact(dataset.pixels, digests=features["digest"].to_numpy())
        exact_groups = describe_groups(dataset, exact_of)
    with timer.stage("near"):
        near_of = group_near(hashes, config.near_threshold)
        near_groups = describe_groups(dataset, near_of, hashes)
    with timer.stage("leaks"):
        leaks = find_leaks(dataset, config.near_threshold, hashes)

    samples = _sample_table(dataset, features, exact_of, near_of, near_groups, leaks)
    report = AuditReport(dataset=dataset, config=config, samples=samples, exact_groups=exact_groups,
                         near_groups=near_groups, leaks=leaks, hashes=hashes)
    report.summary.update(summarize(report, timer.seconds, time.perf_counter() - started))
    return report


def _features(dataset: Dataset, workspace, progress: Progress | None, timer: StageTimer) -> pd.DataFrame:
    """Threshold-independent per-image features: hashes (cached here by fingerprint) and outlier scores
    (cached by the outliers module, by fingerprint and its own configuration).

    On a first audit the pHashes are computed in a second thread while the outlier statistics
    run: both spend their time in numpy, scipy and PIL, which release the GIL, so the two cores
    share the work.
    """
    cache_file = cache_dir(workspace) / f"hashes-{dataset.fingerprint}-v{FEATURES_VERSION}.pkl"
    hashes = _read_pickle(cache_file, timer)
    with ThreadPoolExecutor(max_workers=1) as pool:
        if hashes is None:
            with timer.stage("exact"):
                digests = exact_digests(dataset.pixels)
            phash_started = time.perf_counter()
            phashes = pool.submit(phash_batch, dataset.pixels)
        else:
            digests = hashes["digest"].to_numpy()
        with timer.stage("outliers"):
            exact_of = group_exact(dataset.pixels, digests=digests)
            scores = outliers.score_outliers(dataset.pixels, dataset.labels, exact_of,
                                             fingerprint=dataset.fingerprint, workspace=workspace, progress=progress)
        if hashes is None:
            hashes = pd.DataFrame({"digest": digests, "phash": phashes.result()})
            timer.seconds["phash (parallel with outliers)"] = round(time.perf_counter() - phash_started, 3)
            temporary = cache_file.with_name(cache_file.name + f".{os.getpid()}.tmp")
            hashes.to_pickle(temporary)
            os.replace(temporary, cache_file)
    return pd.concat([hashes, scores.reset_index(drop=True)], axis=1)


def _read_pickle(cache_file: Path, timer: StageTimer) -> pd.DataFrame | None:
    if not cache_file.exists():
        return None
    with timer.stage("hashes_cache"):
        try:
            return pd.read_pickle(cache_file)
        except Exception:
            return None  # damaged cache: recompute


def _sample_table(dataset: Dataset, features: pd.DataFrame, exact_of: np.ndarray, near_of: np.ndarray,
                  near_groups: pd.DataFrame, leaks: Leaks) -> pd.DataFrame:
    conflicting = np.zeros(len(dataset), dtype=bool)
    cross_split = np.zeros(len(dataset), dtype=bool)
    for rows, is_conflicting, is_cross in zip(near_groups["rows"], near_groups["conflicting"], near_groups["cross_split"]):
        conflicting[rows] = is_conflicting
        cross_split[rows] = is_cross
    leak = np.zeros(len(dataset), dtype=bool)
    leak[leaks.train_rows] = True
    leak[leaks.test_rows] = True
    table = pd.DataFrame({
        "id": dataset.ids,
        "label": np.array(EMOTIONS)[dataset.labels.astype(np.int64)],
        "usage": dataset.usages,
        "phash": [f"{value:016x}" for value in features["phash"].to_numpy(dtype=np.uint64).tolist()],
        "exact_group": pd.array(np.where(exact_of == NO_GROUP, None, exact_of), dtype="Int64"),
        "near_group": pd.array(np.where(near_of == NO_GROUP, None, near_of), dtype="Int64"),
        "conflicting": conflicting,
        "cross_split": cross_split,
        "leak": leak,
    })
    extra = features.drop(columns=["digest", "phash"])
    table = pd.concat([table, extra.reset_index(drop=True)], axis=1)
    first = [column for column in SAMPLE_COLUMNS if column in table.columns]
    return table[first + [column for column in table.columns if column not in first]]


def _group_counts(groups: pd.DataFrame) -> dict:
    return {
        "groups": int(len(groups)),
        "images_in_groups": int(groups["size"].sum()) if len(groups) else 0,
        "redundant": int(groups["size"].sum() - len(groups)) if len(groups) else 0,
        "conflicting_groups": int(groups["conflicting"].sum()) if len(groups) else 0,
        "cross_split_groups": int(groups["cross_split"].sum()) if len(groups) else 0,
    }


def summarize(report: AuditReport, seconds_by_stage: dict[str, float], seconds: float) -> dict:
    """The summary.json contract (see README), plus a few fields that help a reader."""
    dataset = report.dataset
    near = {"threshold": report.config.near_threshold, **_group_counts(report.near_groups)}
    return {
        "source": dataset.source,
        "fingerprint": dataset.fingerprint,
        "images": len(dataset),
        "by_usage": dataset.count_by_usage(),
        "by_label": dataset.count_by_label(),
        "exact": _group_counts(report.exact_groups),
        "near": near,
        "leaks": {
            "pairs": int(len(report.leaks.train_rows)),
            "test_images_with_training_copy": int(len(report.leaks.leaked_test_rows())),
            "training_copies_of_test_images": int(len(report.leaks.training_copy_rows())),
        },
        "outliers": {
            "flagged": int(report.samples["outlier"].sum()),
            "box_plot": int(report.samples.get("box_outlier", pd.Series(dtype=bool)).sum()),
        },
        "unreadable": [problem.sample_id for problem in dataset.problems],
        "unreadable_reasons": {problem.sample_id: problem.reason for problem in dataset.problems},
        "converted": dataset.converted,
        "seconds": round(seconds, 3),
        "seconds_by_stage": dict(seconds_by_stage),
    }


def write_report(report: AuditReport, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write summary.json and samples.csv into `out_dir` (each written whole, then renamed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary_path, samples_path = out / "summary.json", out / "samples.csv"
    started = time.perf_counter()
    _write_atomically(samples_path, lambda handle: write_samples_csv(report.samples, handle))
    report.summary["seconds_by_stage"]["write"] = round(time.perf_counter() - started, 3)
    report.summary["seconds"] = round(report.summary["seconds"] + report.summary["seconds_by_stage"]["write"], 3)
    _write_atomically(summary_path, lambda handle: json.dump(report.summary, handle, indent=2), mode="w")
    return summary_path, samples_path


def write_samples_csv(samples: pd.DataFrame, handle) -> None:
    """samples.csv through Arrow's CSV writer (5× pandas' on 36k rows): floats to 4 decimals,
    booleans as true/false, empty cells for images in no group."""
    import pyarrow as pa
    import pyarrow.csv

    rounded = samples.round({column: 4 for column in samples.columns if samples[column].dtype.kind == "f"})
    table = pa.Table.from_pandas(rounded, preserve_index=False)
    pyarrow.csv.write_csv(table, handle, pyarrow.csv.WriteOptions(quoting_style="needed"))


def _write_atomically(path: Path, write, mode: str = "wb") -> None:
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(temporary, mode) as handle:
        write(handle)
    os.replace(temporary, path)
