"""Suspected-mislabel results: the table, its cache in the workspace, fold checkpoints, output files,
and whether the fold models learned enough for their doubts to mean something.

A result is cached as `<workspace>/cache/mislabels/<key>/` (table.parquet + summary.json, swapped
in whole) under `cache_key`: the curated data's fingerprint (every relabel and drop changes it),
the settings and the method version. While a computation runs, `<key>.folds/` keeps each finished
fold's probabilities (numpy, no pickle), so a cancelled or killed one resumes at the next fold.
A cached result that cannot be read back whole, or whose summary or table lacks what the CLI, the
app and the report read (`result_is_whole`), counts as absent and is recomputed. Reading creates
nothing, so a read-only workspace with a cached result stays readable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_core.dataset.loading import Dataset
from fer_core.files import make_folder, replace_atomically, write_atomically, write_json_atomically
from fer_core.labels import EMOTIONS, TRAINING
from fer_core.workspace import cache_dir, check_cache_folder

# Bump when the method changes, so stale cached results are not reused.
MISLABELS_VERSION = "1"
RESULT_COLUMNS = ("id", "label", "usage", "suggested_label", "suggested_confidence", "mislabel_score",
                  "is_label_issue")
PROBABILITY_PREFIX = "probability_"


def probability_columns(emotions: tuple[str, ...]) -> tuple[str, ...]:
    """The table's probability columns of a label set, in its order."""
    return tuple(f"{PROBABILITY_PREFIX}{emotion}" for emotion in emotions)
CACHE_FOLDER = "mislabels"


@dataclass(frozen=True, eq=False)
class MislabelResult:
    """One row per image of the (curated) data: RESULT_COLUMNS, `group`, and the pooled probabilities."""

    table: pd.DataFrame
    summary: dict[str, Any]

    @property
    def emotions(self) -> tuple[str, ...]:
        """The label set the probabilities are over (summary.json's, else FER-2013's seven)."""
        return tuple(self.summary.get("emotions") or EMOTIONS)

    @property
    def probabilities(self) -> np.ndarray:
        return self.table[list(probability_columns(self.emotions))].to_numpy(dtype=np.float32)

    def suspected(self) -> pd.DataFrame:
        """The flagged images, most suspect first."""
        flagged = self.table[self.table["is_label_issue"]]
        return flagged.sort_values(["mislabel_score", "id"], ascending=[False, True], kind="stable")


def cache_key(dataset: Dataset, config: Any) -> str:
    """Fingerprint of the data (labels and drops included) + settings + method version."""
    text = json.dumps({"fingerprint": dataset.fingerprint, "settings": dataclasses.asdict(config),
                       "version": MISLABELS_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_root(workspace: str | os.PathLike | None, create: bool = True) -> Path:
    """`<workspace>/cache/mislabels`, created unless `create` is False (reading creates nothing)."""
    root = check_cache_folder(cache_dir(workspace, create=create) / CACHE_FOLDER)
    return make_folder(root) if create else root


def write_cached_result(key: str, result: MislabelResult, workspace: str | os.PathLike | None = None) -> Path:
    """Store a result as `<key>/table.parquet` + `<key>/summary.json`, swapped in whole."""

    def build(folder: Path) -> None:
        folder.mkdir()
        result.table.to_parquet(folder / "table.parquet", index=False)
        (folder / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n")

    return replace_atomically(cache_root(workspace) / key, build)


def read_cached_result(key: str, workspace: str | os.PathLike | None = None) -> MislabelResult | None:
    """A stored result, or None when there is none (or it is damaged: then it is recomputed)."""
    folder = cache_root(workspace, create=False) / key
    summary = read_summary(folder / "summary.json")
    if summary is None:
        return None
    try:
        table = pd.read_parquet(folder / "table.parquet")
    except (OSError, ValueError):
        return None
    result = MislabelResult(table=table, summary=summary)
    return result if result_is_whole(result) else None


# What the readers of a result take from it without checking (the CLI's summary lines, the app's card,
# the report): a summary that lacks one of these, or has it of another type, is a damaged cache.
SUMMARY_TYPES: dict[str, type | tuple[type, ...]] = {
    "images": int, "flagged": int, "flagged_by_emotion": dict, "out_of_fold_accuracy": (int, float),
    "settings": dict, "seconds": (int, float)}


def read_summary(path: Path) -> dict[str, Any] | None:
    """A cached summary.json, or None when it is unreadable, not JSON, or not of a summary's shape."""
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict):
        return None
    if not all(isinstance(summary.get(key), kind) for key, kind in SUMMARY_TYPES.items()):
        return None
    counts = summary["flagged_by_emotion"]
    if not all(isinstance(counts.get(emotion), int) for emotion in summary.get("emotions") or EMOTIONS):
        return None
    folds = summary.get("folds", [])  # per-fold accuracies, read by `learning_warning`
    return summary if isinstance(folds, list) and all(isinstance(fold, dict) for fold in folds) else None


def result_is_whole(result: MislabelResult) -> bool:
    """Whether the table has every column its readers use and one row per image the summary counts."""
    needed = [*RESULT_COLUMNS, "group", *probability_columns(result.emotions)]
    return all(column in result.table.columns for column in needed) and len(result.table) == result.summary["images"]


def latest_result(dataset: Dataset, workspace: str | os.PathLike | None = None) -> MislabelResult | None:
    """The newest stored result computed from `dataset` (the raw data), whatever the curation was then.

    Accepting a suggestion changes the curation and so the cache key; the review queue keeps
    working from this result (see `review_queue`) until a new one is computed.
    """
    candidates = []
    for summary_path in cache_root(workspace, create=False).glob("*/summary.json"):
        summary = read_summary(summary_path)
        if summary is not None and summary.get("raw_fingerprint") == dataset.fingerprint:
            candidates.append((str(summary.get("created_at", "")), summary_path.parent.name))
    for _, key in sorted(candidates, reverse=True):
        result = read_cached_result(key, workspace)
        if result is not None:
            return result
    return None


LEARNED_MARGIN = 0.05  # out-of-fold accuracy this far above always guessing the commonest emotion


def learning_warning(result: MislabelResult) -> str | None:
    """A one-line warning when the fold models, or one of them, barely beat guessing the commonest
    Training emotion: their doubts then reflect the models, not the labels (e.g. too few epochs, a
    `tiny` size, or one fold's training that went wrong)."""
    accuracy, majority = result.summary.get("out_of_fold_accuracy"), result.summary.get("majority_share")
    if majority is None:  # a result stored before the summary had it
        training = result.table.loc[result.table["usage"] == TRAINING, "label"]
        majority = float(training.value_counts(normalize=True).max()) if len(training) else None
    if accuracy is None or majority is None:
        return None
    if accuracy < majority + LEARNED_MARGIN:
        return (f"the fold models barely learned (out-of-fold accuracy {accuracy:.1%}; always answering the "
                f"commonest emotion scores {majority:.1%}): these suspects are not meaningful; use more epochs "
                "or a larger size")
    # A fold failed when its model is closer to guessing the commonest emotion than to the best fold's.
    folds = [fold for fold in result.summary.get("folds", []) if "held_out_accuracy" in fold]
    best = max((fold["held_out_accuracy"] for fold in folds), default=1.0)
    floor = max(majority + LEARNED_MARGIN, (majority + best) / 2)
    failed = [fold for fold in folds if fold["held_out_accuracy"] < floor]
    if not failed:
        return None
    names = ", ".join(f"{fold['fold']} ({fold['held_out_accuracy']:.1%} on its {fold['held_out_images']:,} images)"
                      for fold in failed)
    which = f"model of fold {names} barely learned" if len(failed) == 1 else f"models of folds {names} barely learned"
    return (f"the {which} (always answering the commonest emotion scores {majority:.1%}; the best fold "
            f"{best:.1%}): the suspects among those images are not meaningful; recompute with more epochs")


# ---------------------------------------------------------------------------------------------
# Fold checkpoints


def read_fold(folds_dir: Path | None, fold: int, held_out: int, other: int,
              classes: int = len(EMOTIONS)) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
    """A finished fold's probabilities from an interrupted computation, when its shapes still fit."""
    if folds_dir is None:
        return None
    prefix = folds_dir / f"fold{fold}"
    try:
        held_probabilities = np.load(f"{prefix}-held_out.npy", allow_pickle=False)
        other_probabilities = np.load(f"{prefix}-other.npy", allow_pickle=False)
        metrics = json.loads(Path(f"{prefix}.json").read_text())
    except (OSError, ValueError):
        return None
    if held_probabilities.shape != (held_out, classes) or other_probabilities.shape != (other, classes):
        return None
    return held_probabilities, other_probabilities, metrics


def write_fold(folds_dir: Path | None, fold: int, held_probabilities: np.ndarray,
                other_probabilities: np.ndarray, metrics: dict[str, Any]) -> None:
    if folds_dir is None:
        return
    make_folder(folds_dir)
    prefix = folds_dir / f"fold{fold}"
    write_atomically(f"{prefix}-held_out.npy", lambda handle: np.save(handle, held_probabilities))
    write_atomically(f"{prefix}-other.npy", lambda handle: np.save(handle, other_probabilities))
    write_json_atomically(f"{prefix}.json", metrics)  # last: its presence says the fold is complete


def write_outputs(result: MislabelResult, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """DIR/mislabels.csv (RESULT_COLUMNS; emotions as names, true/false) and DIR/summary.json."""
    from fer_core.audit import write_samples_csv

    out = make_folder(out_dir)
    csv_path, summary_path = out / "mislabels.csv", out / "summary.json"
    columns = result.table[list(RESULT_COLUMNS)]
    write_atomically(csv_path, lambda handle: write_samples_csv(columns, handle))
    write_json_atomically(summary_path, result.summary)
    return csv_path, summary_path
