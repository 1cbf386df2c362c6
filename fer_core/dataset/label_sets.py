"""A source's label set and splits: which index each emotion folder or CSV value gets, what `--labels`
said (remembered in the workspace, so a training worker, the app and a later command read the data the
same way), and how split folders became usages, in words.

The rules themselves (defaults, lists, mappings, limits) are `fer_core.labels`; this module applies
them to what `fer_core.dataset.sources` listed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from fer_core.dataset.sources import FolderScan
from fer_core.files import write_json_atomically
from fer_core.labels import (USAGES, LabelChoice, label_set_of_integers, label_set_of_names, name_of_found,
                             parse_labels_option)
from fer_core.paths import locate_workspace
from fer_core.workspace import resolve_workspace

LABELS_RECORD = "labels.json"  # in the workspace: {resolved source path: --labels as given}
DEFAULT_LABELS = "default"  # `--labels default`: forget what the workspace remembers, derive from the data


def choose_labels(source: Path, workspace: str | os.PathLike | None, text: str | None,
                  remember: bool = True) -> LabelChoice | None:
    """The `--labels` choice for `source`: `text` when given (then remembered in the workspace, unless
    `remember` is False: the loader remembers it only once the data has loaded with it), else the one the
    workspace remembers for it, else None (the label set comes from the data alone)."""
    record_path = locate_workspace(workspace)[0] / LABELS_RECORD
    record = _read_record(record_path)
    key = str(source.resolve())
    if text is None:
        return parse_labels_option(record[key]) if key in record else None
    choice = None if text.strip().lower() == DEFAULT_LABELS else parse_labels_option(text)
    if not remember:
        return choice
    wanted = {**record, key: choice.text} if choice is not None else {k: v for k, v in record.items() if k != key}
    if wanted != record:
        try:
            write_json_atomically(resolve_workspace(workspace) / LABELS_RECORD, wanted)
        except (OSError, ValueError):
            pass  # a read-only workspace: the data loads with this choice, it is only not remembered
    return choice


def _read_record(path: Path) -> dict[str, str]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise ValueError(f"{path}: not a --labels record FER Audit can read; delete it and pass --labels again") from None
    if not isinstance(record, dict) or not all(isinstance(v, str) for v in record.values()):
        raise ValueError(f"{path}: not a --labels record FER Audit can read; delete it and pass --labels again")
    return record


def folder_labels(root: Path, scan: FolderScan, choice: LabelChoice | None) -> tuple[tuple[str, ...], list[int]]:
    """The label set of an image tree (its emotion folders, `--labels`) and each listed file's label."""
    folders = [rel.split("/")[1] for rel, *_ in scan.files]
    emotions = label_set_of_names(folders, choice, str(root))
    index = {folder: emotions.index(name_of_found(folder, choice)) for folder in set(folders)}
    return emotions, [index[folder] for folder in folders]


def csv_labels(path: Path, values: list[int], choice: LabelChoice | None) -> tuple[tuple[str, ...], list[int | None]]:
    """The label set of a CSV's integer labels (`--labels`) and each row's label; None for a value the
    label set has no index for (past the end of a `--labels` list): a bad row (`csv_label_problem`)."""
    emotions, index = label_set_of_integers(values, choice, str(path))
    return emotions, [index.get(value) for value in values]


def csv_label_problem(value: int, emotions: tuple[str, ...]) -> str:
    return f"unknown emotion '{value}'; expected 0..{len(emotions) - 1} ({', '.join(emotions)})"


def split_usages(ids: np.ndarray, usages: np.ndarray) -> dict[str, dict[str, int]]:
    """Per split folder (first part of an image tree's ids), its images per usage, in usage order; {} for a CSV."""
    if not len(ids) or str(ids[0]).startswith("row:"):
        return {}
    folders = np.array([sample_id.split("/", 1)[0] for sample_id in ids.tolist()])
    found = {}
    for folder in np.unique(folders).tolist():
        names, counts = np.unique(usages[folders == folder], return_counts=True)
        found[folder] = {usage: int(count) for usage, count in sorted(zip(names.tolist(), counts.tolist()),
                                                                      key=lambda item: USAGES.index(item[0]))}
    return dict(sorted(found.items(), key=lambda item: (USAGES.index(next(iter(item[1]))), item[0])))


def describe_splits(splits: dict[str, dict[str, int]]) -> str:
    """How split folders became usages, in one line ("splits: train → Training, val → PublicTest"); a
    folder whose files carry usage prefixes (FER-2013's test/) lists each usage with its count."""
    if not splits:
        return "splits: from the CSV's Usage column"
    parts = []
    for folder, counts in splits.items():
        if len(counts) == 1:
            parts.append(f"{folder} → {next(iter(counts))}")
        else:
            parts.append(f"{folder} → " + " and ".join(f"{usage} ({count:,})" for usage, count in counts.items())
                         + " by file-name prefix")
    return "splits: " + ", ".join(parts)


def remembered_labels(source: str | os.PathLike, workspace: str | os.PathLike | None) -> str | None:
    """The `--labels` the workspace remembers for `source` (None: none), e.g. for a cache key of the app's audit;
    a damaged record is reported by the load itself."""
    try:
        return _read_record(locate_workspace(workspace)[0] / LABELS_RECORD).get(str(Path(source).resolve()))
    except ValueError:
        return "(unreadable record)"
