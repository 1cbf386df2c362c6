"""Deciding on suspected mislabels: the review queue, a duplicate group's suggestion, accept and reject.

Accepting writes relabel edits (one batch, so one undo) with the reason "suggested by model
(score …)"; rejecting marks the images reviewed-OK, which takes them out of the queue.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from fer_core.dataset.loading import Dataset
from fer_core.mislabels.results import RESULT_COLUMNS, MislabelResult, probability_columns


def review_queue(result: MislabelResult, dataset: Dataset, state: Any) -> pd.DataFrame:
    """The flagged images still to decide, most suspect first (RESULT_COLUMNS and `group`).

    Left out: images dropped or marked reviewed since, images relabeled since (their label is no
    longer the one the model judged), images not in `dataset`, and flags whose suggestion is the
    given label (nothing to accept). `state` is the edit log's CurationState.
    """
    flagged = result.suspected()

    def still_open(sample_id: str, label: str, suggested: str) -> bool:
        if not dataset.has_id(sample_id) or sample_id in state.dropped or sample_id in state.reviewed:
            return False
        return dataset.emotions[state.label_of(dataset, sample_id)] == label != suggested

    keep = [still_open(*row) for row in zip(flagged["id"], flagged["label"], flagged["suggested_label"])]
    return flagged.loc[keep, [*RESULT_COLUMNS, "group"]].reset_index(drop=True)


def group_suggestion(result: MislabelResult, sample_ids: list[str]) -> tuple[str, float] | None:
    """The model's emotion for a duplicate group (its members' mean probabilities) and its confidence;
    None when no member is in the result."""
    members = result.table[result.table["id"].isin(sample_ids)]
    if members.empty:
        return None
    mean = members[list(probability_columns(result.emotions))].to_numpy(dtype=np.float64).mean(axis=0)
    return result.emotions[int(mean.argmax())], float(mean.max())


def suggestion_reason(scores: list[float]) -> str:
    """The edit-log reason of accepted suggestions: the score, or the range of scores of a bulk accept."""
    low, high = min(scores), max(scores)
    return f"suggested by model (score {high:.2f})" if round(low, 2) == round(high, 2) else \
        f"suggested by model (score {low:.2f}–{high:.2f})"


def accept_suggestions(dataset: Dataset, rows: pd.DataFrame, *, workspace: str | os.PathLike | None = None,
                       author: str | None = None) -> list[Any]:
    """Relabel each row's image to its suggestion: one relabel edit per image, all in one batch (one undo).

    `rows` are review-queue rows. An image dropped meanwhile is an error (nothing is written); one
    already carrying its suggested label is skipped.
    """
    from fer_core.curation.edits import RELABEL, Change, run_plan
    from fer_core.labels import emotion_index

    targets = {str(sample_id): emotion_index(suggested, dataset.emotions)
               for sample_id, suggested in zip(rows["id"], rows["suggested_label"])}
    for sample_id in targets:
        dataset.index_of(sample_id)  # ValueError naming an unknown id

    def plan(state: Any, _: list[Any]) -> list[Any]:
        dropped = [sample_id for sample_id in targets if sample_id in state.dropped]
        if dropped:
            raise ValueError(f"already dropped (restore first): {', '.join(dropped[:5])}")
        changes = [(sample_id, state.label_of(dataset, sample_id), target) for sample_id, target in targets.items()]
        return [Change(sample_id, RELABEL, current, target) for sample_id, current, target in changes
                if current != target]

    if not targets:
        return []
    reason = suggestion_reason([float(score) for score in rows["mislabel_score"]])
    return run_plan(dataset, plan, reason, author, workspace, False)


def reject_suggestions(dataset: Dataset, sample_ids: list[str], *, workspace: str | os.PathLike | None = None,
                       author: str | None = None) -> list[Any]:
    """Keep the given labels: mark the images reviewed-OK, which takes them out of the queue."""
    from fer_core.curation.edits import mark_group_reviewed

    return mark_group_reviewed(dataset, sample_ids, "suggested relabel rejected: given label kept", author=author,
                               workspace=workspace)
