"""Run the registered detectors over a Dataset → AuditReport; write summary.json and samples.csv.

The detectors (fer_core/detectors.py) run as soon as the ones they need are done, two at a time,
so the pHashes are computed while the outlier statistics run. This module owns their caches: a
cached detector's columns and summary are one Parquet file per (data fingerprint, detector
version, its part of the config), so a second audit of the same data only regroups. A cache file
that cannot be read back whole (truncated, planted, another format, a folder in its place) is
recomputed and replaced, never executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fer_core.dataset.label_sets import split_usages
from fer_core.dataset.loading import Dataset, Progress, load
from fer_core.dataset.pixel_store import return_free_memory
from fer_core.detectors import AuditConfig, Detector, DetectorContext, DetectorResult, registered_detectors
from fer_core.duplicates.grouping import Leaks
from fer_core.files import make_folder, replace_atomically, write_atomically
from fer_core.workspace import cache_dir

# The samples.csv contract (README): these columns first, in this order, then every other
# detector column in registration order. Columns named in a detector's `internal_columns` stay out.
SAMPLE_COLUMNS = ("id", "label", "usage", "mean", "std", "entropy", "phash", "exact_group", "near_group",
                  "conflicting", "cross_split", "leak", "outlier_score", "outlier")
DETECTOR_WORKERS = 2  # numpy, OpenCV and hashing release the GIL: two detectors share two cores
CACHE_METADATA_KEY = b"fer_audit"


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
    near_pairs: pd.DataFrame | None = None  # one row per near pair: ids, kind, similarity (duplicates.pair_table)


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


# ---------------------------------------------------------------------------------------------
# Running the audit


def audit_source(path: str | os.PathLike, config: AuditConfig = AuditConfig(), workspace=None,
                 progress: Progress | None = None, labels: str | None = None) -> AuditReport:
    """Load a FER source (cached; `labels`: `--labels`, see dataset.load) and audit it."""
    timer = StageTimer()
    with timer.stage("load"):
        dataset = load(path, workspace=workspace, progress=progress, labels=labels)
    return run_audit(dataset, config, workspace=workspace, progress=progress, timer=timer)


def run_audit(dataset: Dataset, config: AuditConfig = AuditConfig(), workspace=None,
              progress: Progress | None = None, timer: StageTimer | None = None,
              detectors: tuple[Detector, ...] | None = None) -> AuditReport:
    """Run every registered detector over `dataset` and gather their columns into one report."""
    timer = timer or StageTimer()
    started = time.perf_counter() - timer.seconds.get("load", 0.0)
    detectors = detectors or registered_detectors()
    results = run_detectors(dataset, config, detectors, workspace, progress or _no_progress, timer)
    duplicates = results["duplicates"].artifacts
    report = AuditReport(dataset=dataset, config=config, samples=_sample_table(dataset, detectors, results),
                         exact_groups=duplicates["exact_groups"], near_groups=duplicates["near_groups"],
                         leaks=duplicates["leaks"], hashes=duplicates["hashes"],
                         near_pairs=duplicates.get("near_pairs"))
    report.summary.update(summarize(dataset, detectors, results, timer.seconds, time.perf_counter() - started))
    return report


def run_detectors(dataset: Dataset, config: AuditConfig, detectors: tuple[Detector, ...], workspace,
                  progress: Progress, timer: StageTimer) -> dict[str, DetectorResult]:
    """Each detector's result by name; a detector starts once every detector it needs, or is to run
    after, has finished."""
    names = [detector.name for detector in detectors]
    for detector in detectors:
        missing = [need for need in detector.needs if need not in names]
        if missing:
            raise ValueError(f"detector {detector.name!r} needs {missing}, which are not registered")
    results: dict[str, DetectorResult] = {}
    pending = list(detectors)
    with ThreadPoolExecutor(max_workers=DETECTOR_WORKERS, thread_name_prefix="fer-detector") as pool:
        running = {}
        while pending or running:
            ready = [d for d in pending if all(need in results for need in d.needs)
                     and all(name in results or name not in names for name in d.after)]
            for detector in ready:
                pending.remove(detector)
                context = DetectorContext({need: results[need] for need in detector.needs}, progress)
                running[pool.submit(_run_cached, detector, dataset, config, context, workspace, timer)] = detector
            if not running:
                raise ValueError(f"detectors {[d.name for d in pending]} need each other; no order runs them")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                results[running.pop(future).name] = future.result()
    return results


def _run_cached(detector: Detector, dataset: Dataset, config: AuditConfig, context: DetectorContext, workspace,
                timer: StageTimer) -> DetectorResult:
    path = None if detector.cache_key is None else cache_path(detector, dataset, config, workspace)
    if path is not None and path.is_file():
        with timer.stage(f"{detector.name} (cache)"):
            cached = read_cached_result(path, len(dataset))
        if cached is not None:
            return cached
    with timer.stage(detector.name):
        result = detector.detect(dataset, config, context)
    return_free_memory()
    if len(result.columns) != len(dataset):
        raise ValueError(f"detector {detector.name!r} returned {len(result.columns)} rows for {len(dataset)} samples")
    if path is not None:
        write_cached_result(path, result)
    return result


def cache_path(detector: Detector, dataset: Dataset, config: AuditConfig, workspace) -> Path:
    """The cache file of `detector` on this data under this config (a config change is a new file)."""
    key = hashlib.sha256(repr(detector.cache_key(config)).encode()).hexdigest()[:12]
    return cache_dir(workspace) / f"{detector.name}-{dataset.fingerprint}-v{detector.version}-{key}.parquet"


def write_cached_result(path: Path, result: DetectorResult) -> None:
    """Columns as Parquet, the summary and the row count in the file's metadata; one atomic file, which
    also takes the place of a folder found there (a damaged entry)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(result.columns, preserve_index=False)
    extra = json.dumps({"rows": len(result.columns), "summary": result.summary}).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), CACHE_METADATA_KEY: extra})
    replace_atomically(path, lambda temporary: pq.write_table(table, temporary))


def read_cached_result(path: Path, rows: int) -> DetectorResult | None:
    """The cached result, or None when the file is damaged, foreign or of another length (recompute)."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        extra = json.loads(table.schema.metadata[CACHE_METADATA_KEY])
        columns = table.to_pandas(types_mapper=_arrow_lists)
        if extra["rows"] != rows or len(columns) != rows or not isinstance(extra["summary"], dict):
            return None
    except Exception:  # any damage (truncated, planted, another format) only costs a recompute
        return None
    if "digest" in columns:  # Parquet gives bytes objects back; the grouping wants fixed-width bytes
        columns["digest"] = np.array(columns["digest"].tolist(), dtype="S16")
    return DetectorResult(columns, extra["summary"])


def _arrow_lists(arrow_type):
    """List columns stay Arrow arrays (`pairs_to_columns`): as Python objects a million rows take seconds."""
    import pyarrow as pa

    return pd.ArrowDtype(arrow_type) if pa.types.is_list(arrow_type) else None


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def _sample_table(dataset: Dataset, detectors: tuple[Detector, ...], results: dict[str, DetectorResult]) -> pd.DataFrame:
    parts = [pd.DataFrame({"id": dataset.ids, "label": np.array(dataset.emotions)[dataset.labels.astype(np.int64)],
                           "usage": dataset.usages})]
    for detector in detectors:
        columns = results[detector.name].columns.drop(columns=list(detector.internal_columns))
        parts.append(columns.reset_index(drop=True))
    table = pd.concat(parts, axis=1)
    if "phash" in table:
        table["phash"] = [f"{value:016x}" for value in table["phash"].to_numpy(dtype=np.uint64).tolist()]
    first = [column for column in SAMPLE_COLUMNS if column in table.columns]
    table = table[first + [column for column in table.columns if column not in first]]
    table.attrs["emotions"] = dataset.emotions  # what the label names index (duplicates.status.table_emotions)
    return table


def summarize(dataset: Dataset, detectors: tuple[Detector, ...], results: dict[str, DetectorResult],
              seconds_by_stage: dict[str, float], seconds: float) -> dict:
    """The summary.json contract (see README): the data, then each detector's summary, then the problems."""
    summary = {"source": dataset.source, "fingerprint": dataset.fingerprint, "images": len(dataset),
               "by_usage": dataset.count_by_usage(), "by_label": dataset.count_by_label(),
               "emotions": list(dataset.emotions),  # the label set, in index order
               "splits": split_usages(dataset.ids, dataset.usages)}  # split folder → images per usage
    for detector in detectors:
        summary.update(results[detector.name].summary)
    summary.update({
        "unreadable": [problem.sample_id for problem in dataset.problems],
        "unreadable_reasons": {problem.sample_id: problem.reason for problem in dataset.problems},
        "skipped": [item.sample_id for item in dataset.skipped],  # in an image tree, not images
        "skipped_reasons": {item.sample_id: item.reason for item in dataset.skipped},
        "converted": dataset.converted,
        "seconds": round(seconds, 3),
        "seconds_by_stage": dict(seconds_by_stage),
    })
    return summary


def write_report(report: AuditReport, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write summary.json and samples.csv into `out_dir` (each written whole, then renamed)."""
    out = make_folder(out_dir)
    summary_path, samples_path = out / "summary.json", out / "samples.csv"
    started = time.perf_counter()
    write_atomically(samples_path, lambda handle: write_samples_csv(report.samples, handle))
    if report.near_pairs is not None:  # beside samples.csv: how each near pair matches
        write_atomically(out / "near_pairs.csv", lambda handle: write_samples_csv(report.near_pairs, handle))
    report.summary["seconds_by_stage"]["write"] = round(time.perf_counter() - started, 3)
    report.summary["seconds"] = round(report.summary["seconds"] + report.summary["seconds_by_stage"]["write"], 3)
    write_atomically(summary_path, lambda handle: handle.write(json.dumps(report.summary, indent=2).encode()))
    return summary_path, samples_path


def write_samples_csv(samples: pd.DataFrame, handle) -> None:
    """samples.csv through Arrow's CSV writer (5× pandas' on 36k rows): floats to 4 decimals,
    booleans as true/false, empty cells for images in no group."""
    import pyarrow as pa
    import pyarrow.csv

    rounded = samples.round({column: 4 for column in samples.columns if samples[column].dtype.kind == "f"})
    table = pa.Table.from_pandas(rounded, preserve_index=False)
    pyarrow.csv.write_csv(table, handle, pyarrow.csv.WriteOptions(quoting_style="needed"))
