"""The audit's detectors: what each finds, what it needs, what of the config its cache depends on.

A detector is a name, an entry point `detect(dataset, config, context) → DetectorResult` (per-sample
columns, a summary merged into summary.json, and in-memory artifacts), the detectors whose columns
it reads, the part of `AuditConfig` its columns depend on (`cache_key`; None = not cached), the
flags it raises (the Review page's filters) and its findings (`fer_core/findings.py`: the figures the
Overview's cards and the report's headline show, before and after the edits) — all declared here once.
`fer_core/audit.py` runs them and owns their caches.

Adding a detector = its module with a pure entry point + one `Detector(...)` line in
`registered_detectors` + its test. Detectors never cache, write or print anything themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fer_core.dataset.loading import Dataset, Progress
from fer_core.duplicates.grouping import (NO_GROUP, PAIR_COLUMNS, columns_to_pairs, describe_groups,
                                          find_near_duplicates, find_verified_pairs, group_exact, pairs_to_columns)
from fer_core.duplicates.hashing import exact_digests, phash_and_mirror_batch
from fer_core.duplicates.limits import DEFAULT_NEAR_THRESHOLD, check_near_mode, check_near_threshold
from fer_core.duplicates.verification import NearVerifyConfig, empty_pairs
from fer_core.findings import Finding, duplicate_findings, outlier_findings
from fer_core.outliers import faces
from fer_core.outliers import kinds as outlier_kinds
from fer_core.outliers import statistics as outliers
from fer_core.outliers.faces import FaceConfig
from fer_core.outliers.statistics import OutlierConfig


@dataclass(frozen=True)
class AuditConfig:
    """What the audit looks for; the near-duplicate threshold is the one knob users turn."""

    near_threshold: int = DEFAULT_NEAR_THRESHOLD
    # "verified": near pairs proposed widely and confirmed on pixels (kinds: shifted, cropped, mirrored, …);
    # "hash": pHashes within near_threshold only (the original method, kept for comparison)
    near_mode: str = "verified"
    near_verify: NearVerifyConfig = NearVerifyConfig()
    outliers: OutlierConfig = OutlierConfig()
    # The face detector takes minutes on a first audit, so callers opt in: the CLI does unless --fast,
    # the app fills it in after showing the fast stages.
    face_stage: bool = False
    faces: FaceConfig = FaceConfig()

    def __post_init__(self) -> None:
        check_near_threshold(self.near_threshold)
        check_near_mode(self.near_mode)


@dataclass(frozen=True)
class Flag:
    """A Review-page filter raised by a detector: true where any of `columns` is true (or, for a
    group column, where the sample is in a group)."""

    name: str
    description: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class DetectorResult:
    """What one detector found: `columns` has one row per sample, in dataset order."""

    columns: pd.DataFrame
    summary: dict = field(default_factory=dict)
    artifacts: Mapping[str, Any] = field(default_factory=dict)  # in memory only, never cached


@dataclass(frozen=True)
class DetectorContext:
    """What a detector may use besides the data and the config: the results of the detectors it needs."""

    results: Mapping[str, DetectorResult]
    progress: Progress

    def column(self, name: str) -> np.ndarray:
        """A column found by one of the needed detectors."""
        for result in self.results.values():
            if name in result.columns:
                return result.columns[name].to_numpy()
        raise KeyError(f"no needed detector produced column {name!r}")


@dataclass(frozen=True)
class Detector:
    """One registered detector. `cache_key(config)` returns what of the config its columns depend
    on (any change misses the cache); None means the detector is not cached (cheap, or its output
    depends on the near threshold)."""

    name: str
    detect: Callable[[Dataset, AuditConfig, DetectorContext], DetectorResult]
    needs: tuple[str, ...] = ()
    cache_key: Callable[[AuditConfig], object] | None = None
    version: str = "1"  # bump when the cached columns' definition changes
    flags: tuple[Flag, ...] = ()
    findings: tuple[Finding, ...] = ()  # its figures on the Overview and in the report
    internal_columns: tuple[str, ...] = ()  # used by other detectors, not written to samples.csv
    # Detectors to wait for without reading their results (when registered): order only, e.g. so that
    # two detectors' memory peaks do not add up.
    after: tuple[str, ...] = ()


def detect_digests(dataset: Dataset, config: AuditConfig, context: DetectorContext) -> DetectorResult:
    """A 128-bit digest of each image's pixels (equal digests ⇔ identical images)."""
    return DetectorResult(pd.DataFrame({"digest": exact_digests(dataset.pixels)}))


def detect_phashes(dataset: Dataset, config: AuditConfig, context: DetectorContext) -> DetectorResult:
    """The 64-bit pHash of each image (uint64 here; hexadecimal in samples.csv), and its mirror's."""
    hashes, mirror_hashes = phash_and_mirror_batch(dataset.pixels)
    return DetectorResult(pd.DataFrame({"phash": hashes, "phash_mirror": mirror_hashes}))


def detect_near_pairs(dataset: Dataset, config: AuditConfig, context: DetectorContext) -> DetectorResult:
    """Near pairs confirmed on pixels, with kind and similarity (fer_core/duplicates/verification.py); none in hash mode."""
    if config.near_mode != "verified":
        return DetectorResult(pairs_to_columns(len(dataset), empty_pairs()))
    pairs = find_verified_pairs(dataset.pixels, context.column("phash").astype(np.uint64),
                                context.column("phash_mirror").astype(np.uint64), config.near_verify,
                                digests=context.column("digest"))
    return DetectorResult(pairs_to_columns(len(dataset), pairs))


def detect_outliers(dataset: Dataset, config: AuditConfig, context: DetectorContext) -> DetectorResult:
    """Pixel statistics, the box-plot rule and the pixel kinds' scores (see fer_core/outliers/statistics.py)."""
    exact_of = group_exact(dataset.pixels, digests=context.column("digest"))
    table = outliers.score_outliers(dataset.pixels, dataset.labels, exact_of, config=config.outliers,
                                    progress=context.progress)
    return DetectorResult(table.reset_index(drop=True))


def detect_faces(dataset: Dataset, config: AuditConfig, context: DetectorContext) -> DetectorResult:
    """Face found, confidence, roll, box size and offset per image (fer_core/outliers/faces.py); empty cells when
    the face stage is skipped."""
    if not config.face_stage:
        return DetectorResult(faces.skipped_table(len(dataset)), {"faces": {"ran": False}})
    table = faces.find_faces(dataset.pixels, progress=context.progress, config=config.faces)
    return DetectorResult(table, {"faces": {"ran": True, "found": int(table["face_found"].sum())}})


def detect_outlier_kinds(dataset: Dataset, config: AuditConfig, context: DetectorContext) -> DetectorResult:
    """Outlier kind, the no-face score, the combined outlier score and the flag (fer_core/outliers/statistics.py)."""
    pixel_table = context.results["outliers"].columns
    face_table = context.results["faces"].columns if config.face_stage else None
    table = outlier_kinds.classify_outliers(pixel_table, face_table, config.outliers)
    summary = {"outliers": {"flagged": int(table["outlier"].sum()), "box_plot": int(pixel_table["box_outlier"].sum()),
                            "by_kind": outlier_kinds.kind_counts(table["outlier_kind"].to_numpy()),
                            "face_stage": config.face_stage}}
    return DetectorResult(table, summary)


def detect_duplicates(dataset: Dataset, config: AuditConfig, context: DetectorContext) -> DetectorResult:
    """Exact and near groups, their conflicts, and the train–test leaks (verified pairs, or the threshold in hash mode)."""
    hashes = context.column("phash").astype(np.uint64)
    exact_of = group_exact(dataset.pixels, digests=context.column("digest"))
    exact_groups = describe_groups(dataset, exact_of)
    verified = columns_to_pairs(context.results["near_pairs"].columns) if config.near_mode == "verified" else None
    near = find_near_duplicates(dataset, hashes, context.column("digest"), config.near_mode, config.near_threshold,
                                verified)
    near_of, near_groups, leaks = near.group_of, near.groups, near.leaks
    conflicting = np.zeros(len(dataset), dtype=bool)
    cross_split = np.zeros(len(dataset), dtype=bool)
    for rows, is_conflicting, is_cross in zip(near_groups["rows"], near_groups["conflicting"], near_groups["cross_split"]):
        conflicting[rows] = is_conflicting
        cross_split[rows] = is_cross
    leak = np.zeros(len(dataset), dtype=bool)
    leak[leaks.train_rows] = True
    leak[leaks.test_rows] = True
    columns = pd.DataFrame({
        "exact_group": pd.array(np.where(exact_of == NO_GROUP, None, exact_of), dtype="Int64"),
        "near_group": pd.array(np.where(near_of == NO_GROUP, None, near_of), dtype="Int64"),
        "conflicting": conflicting,
        "cross_split": cross_split,
        "leak": leak,
        "near_kind": pd.array(np.where(near.kind == "", None, near.kind), dtype="string"),
        "near_similarity": near.similarity,
    })
    pair_kinds = near.pairs["kind"].value_counts()
    summary = {
        "exact": _group_counts(exact_groups),
        "near": {"threshold": config.near_threshold, "mode": config.near_mode,
                 "min_similarity": config.near_verify.min_similarity if config.near_mode == "verified" else None,
                 **_group_counts(near_groups), "pairs_by_kind": {kind: int(count) for kind, count in pair_kinds.items()}},
        "leaks": {
            "pairs": int(len(leaks.train_rows)),
            "test_images_with_training_copy": int(len(leaks.leaked_test_rows())),
            "training_copies_of_test_images": int(len(leaks.training_copy_rows())),
        },
    }
    artifacts = {"exact_groups": exact_groups, "near_groups": near_groups, "leaks": leaks, "hashes": hashes,
                 "near_pairs": near.pairs}
    return DetectorResult(columns, summary, artifacts)


def registered_detectors() -> tuple[Detector, ...]:
    """Every detector the audit runs; their summaries appear in summary.json, and their columns not named
    in SAMPLE_COLUMNS at the end of samples.csv, in this order."""
    return (
        Detector("digests", detect_digests, cache_key=lambda config: None, internal_columns=("digest",)),
        Detector("phash", detect_phashes, cache_key=lambda config: None, version="2",
                 internal_columns=("phash_mirror",)),
        Detector("near_pairs", detect_near_pairs, needs=("digests", "phash"), internal_columns=PAIR_COLUMNS,
                 cache_key=lambda config: config.near_verify if config.near_mode == "verified" else "hash"),
        Detector("duplicates", detect_duplicates, needs=("digests", "phash", "near_pairs"), flags=(
            Flag("duplicate", "in an exact or near duplicate group", ("exact_group", "near_group")),
            Flag("conflict", "in a near group whose emotions disagree", ("conflicting",)),
            Flag("leak", "a Training image with a test copy, or a test image with a Training copy", ("leak",))),
                 findings=duplicate_findings()),
        Detector("outliers", detect_outliers, needs=("digests",), cache_key=lambda config: config.outliers,
                 version="2"),
        # After the pixel-pair search: TensorFlow's face detector and the pair verification side by side
        # peaked at 2.3 GB on FER-2013; the face stage takes minutes, the pair search seconds.
        Detector("faces", detect_faces, cache_key=lambda config: config.faces if config.face_stage else None,
                 after=("near_pairs",)),
        Detector("outlier_kinds", detect_outlier_kinds, needs=("outliers", "faces"), flags=(
            Flag("outlier", "not a usable face: blank, placeholder, drawing or no upright framed face", ("outlier",)),),
                 findings=outlier_findings()),
    )


def registered_flags(detectors: tuple[Detector, ...] | None = None) -> tuple[Flag, ...]:
    """The flags of every registered detector (the Review page's filters, in a fixed order)."""
    return tuple(flag for detector in detectors or registered_detectors() for flag in detector.flags)


def registered_findings(detectors: tuple[Detector, ...] | None = None) -> tuple[Finding, ...]:
    """The findings of every registered detector (the Overview's cards and the report's headline, in order)."""
    return tuple(finding for detector in detectors or registered_detectors() for finding in detector.findings)


def flag_mask(samples: pd.DataFrame, flag: Flag) -> np.ndarray:
    """Rows of `samples` that `flag` raises."""
    masks = [samples[name].to_numpy(dtype=bool) if pd.api.types.is_bool_dtype(samples[name])
             else samples[name].notna().to_numpy() for name in flag.columns]  # a group column: in a group
    return np.logical_or.reduce(masks) if masks else np.zeros(len(samples), dtype=bool)


def _group_counts(groups: pd.DataFrame) -> dict:
    return {
        "groups": int(len(groups)),
        "images_in_groups": int(groups["size"].sum()) if len(groups) else 0,
        "redundant": int(groups["size"].sum() - len(groups)) if len(groups) else 0,
        "conflicting_groups": int(groups["conflicting"].sum()) if len(groups) else 0,
        "cross_split_groups": int(groups["cross_split"].sum()) if len(groups) else 0,
    }


