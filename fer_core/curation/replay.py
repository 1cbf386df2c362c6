"""What the edit log amounts to (pure): which edits are in effect, the labels they give, the curated view.

The log itself (SQLite, operations, undo) lives in edits.py; these functions take a list of
`Edit` rows and touch no file, so pages, export, the report and training share one reading of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from fer_core.dataset.loading import Dataset
from fer_core.labels import emotion_index

RELABEL, DROP, RESTORE, UNDO, REVIEW_OK = "relabel", "drop", "restore", "undo", "review_ok"
ACTIONS = (RELABEL, DROP, RESTORE, UNDO, REVIEW_OK)
DATA_ACTIONS = (RELABEL, DROP, RESTORE)  # the actions that change the curated data (not undo rows, not review marks)


@dataclass(frozen=True)
class Edit:
    """One row of the log. `edit_id` is None for a planned (dry-run) edit; labels are emotion names."""

    edit_id: int | None
    batch_id: str
    sample_id: str
    action: str
    old_label: str | None
    new_label: str | None
    reason: str
    author: str
    created_at: str
    fingerprint: str
    undoes: int | None = None


@dataclass(frozen=True)
class CurationState:
    """What the active edits amount to: current labels of relabeled samples (emotion names, as in the log:
    the dataset's label set gives their index), dropped and reviewed ids."""

    labels: dict[str, str]
    dropped: frozenset[str]
    reviewed: frozenset[str]

    def label_of(self, dataset: Dataset, sample_id: str) -> int:
        """The sample's current label: an index into `dataset.emotions`."""
        if sample_id in self.labels:
            return emotion_index(self.labels[sample_id], dataset.emotions)
        return int(dataset.labels[dataset.index_of(sample_id)])


def find_active_edits(edits: Sequence[Edit]) -> list[Edit]:
    """The rows still in effect: not undone by an undo that is itself in effect (undo of undo = redo)."""
    undone: set[int] = set()
    for edit in reversed(edits):  # an undo always comes after what it undoes
        if edit.edit_id not in undone and edit.action == UNDO:
            undone.add(edit.undoes)
    return [edit for edit in edits if edit.edit_id is None or edit.edit_id not in undone]


def find_edits_in_effect(edits: Sequence[Edit]) -> list[Edit]:
    """The relabels, drops and restores in effect: what "edits" means to a reader of the curated data.

    Undone edits, the undo rows themselves and review marks are left out, so a relabel that was
    undone counts zero times, not twice.
    """
    return [edit for edit in find_active_edits(edits) if edit.action in DATA_ACTIONS]


def count_edits_in_effect(edits: Sequence[Edit]) -> int:
    """How many relabels, drops and restores are in effect (see `find_edits_in_effect`)."""
    return len(find_edits_in_effect(edits))


def find_undoable_batches(edits: Sequence[Edit]) -> list[str]:
    """Batch ids with a relabel, drop, restore or review mark still in effect, newest first (Undo's choices).

    Undo batches themselves are not offered: undoing the newest action twice should reach the
    action before it, not redo the first.
    """
    batches = dict.fromkeys(edit.batch_id for edit in reversed(find_active_edits(edits)) if edit.action != UNDO)
    return list(batches)


def replay_edits(edits: Sequence[Edit]) -> CurationState:
    """Fold the active edits, in order, into current labels and dropped/reviewed sets."""
    labels: dict[str, str] = {}
    dropped: set[str] = set()
    reviewed: set[str] = set()
    for edit in find_active_edits(edits):
        if edit.action == RELABEL:
            labels[edit.sample_id] = str(edit.new_label).strip().lower()
        elif edit.action == DROP:
            dropped.add(edit.sample_id)
        elif edit.action == RESTORE:
            dropped.discard(edit.sample_id)
        elif edit.action == REVIEW_OK:
            reviewed.add(edit.sample_id)
    return CurationState(labels=labels, dropped=frozenset(dropped), reviewed=frozenset(reviewed))


def apply_edits(dataset: Dataset, edits: Sequence[Edit]) -> Dataset:
    """The curated view: relabeled samples carry their new label, dropped samples are gone."""
    state = replay_edits(edits)
    unknown = sorted(sample_id for sample_id in (*state.labels, *state.dropped) if not dataset.has_id(sample_id))
    if unknown:
        raise ValueError(f"{len(unknown)} edited sample id(s) are not in {dataset.source or 'this dataset'}, "
                         f"e.g. {unknown[0]!r}; the edits were made for another dataset")
    if not state.labels and not state.dropped:
        return dataset
    labels = dataset.labels.copy()
    for sample_id in state.labels:
        labels[dataset.index_of(sample_id)] = state.label_of(dataset, sample_id)
    keep = ~np.isin(dataset.ids, list(state.dropped)) if state.dropped else np.ones(len(dataset), dtype=bool)
    return Dataset(ids=dataset.ids[keep], pixels=dataset.pixels[keep], labels=labels[keep],
                   usages=dataset.usages[keep], source=dataset.source, emotions=dataset.emotions)
