"""One review decision on one item (an image or a duplicate group) → one edit batch, written through the
operations and with the reasons the forms use, so the history reads the same however it was decided.

accept: the model's suggestion for a suspected mislabel (`accept_suggestions`, reason "suggested by model
(score …)"), else relabel to the item's suggestion; keep: the mislabel review's "given label kept" mark
(`reject_suggestions`), else "reviewed: OK as is" as the forms mark it; relabel; drop (a group: every
copy). A decision that would drop or relabel a PublicTest/PrivateTest image needs `allow_test`.
"""

from __future__ import annotations

import os

import pandas as pd

from fer_core.curation import edits
from fer_core.curation.replay import Edit
from fer_core.dataset.loading import Dataset
from fer_core.mislabels import review as mislabel_review
from fer_core.views import image_tiles
from fer_core.views.review_queue import Evidence

KEEP_REASON = "reviewed: OK as is"  # the forms' "Mark OK" when no reason is typed
ALLOW_TEST_LABEL = "Allow changes to PublicTest/PrivateTest images"


def default_reason(queue_name: str) -> str:
    """The reason a keyboard relabel or drop is logged with when none is typed."""
    return f"keyboard review of {queue_name}"


def decide(dataset: Dataset, evidence: Evidence, action: str, *, emotion: str | None = None, reason: str = "",
           queue_name: str = "", allow_test: bool = False, author: str | None = None,
           workspace: str | os.PathLike | None = None) -> tuple[list[Edit], str]:
    """Write one decision ("accept", "keep", "relabel" to `emotion`, "drop") as one batch; returns the edits
    written ([] when there was nothing to change) and what was done, in words. ValueError (nothing
    written) when the decision cannot be made: no suggestion to accept, test images without
    `allow_test`, an image already dropped, a label it already has. `author`: who decided (the session's name)."""
    mine = {"workspace": workspace, "author": author}
    name = _name(evidence)
    if action == "keep":
        if evidence.suggestion_score is not None and not evidence.is_group:
            return mislabel_review.reject_suggestions(dataset, evidence.sample_ids, **mine), \
                f"Kept the given label of {name}"
        return edits.mark_group_reviewed(dataset, evidence.sample_ids, reason or KEEP_REASON, **mine), \
            f"Marked {name} reviewed: OK as is"
    if action not in ("accept", "relabel", "drop"):
        raise ValueError(f"unknown review action {action!r}; expected accept, keep, relabel or drop")
    target = evidence.suggestion if action == "accept" else emotion
    if action == "accept" and target is None:
        raise ValueError(f"no suggestion for {name}: press a number key to relabel it")
    if action == "relabel" and target is None:
        raise ValueError("relabel needs an emotion")
    why = reason or default_reason(queue_name)
    if evidence.is_group:
        resolution, options = ("drop_all", {}) if action == "drop" else ("relabel", {"emotion": target})
        planned = edits.resolve_group(dataset, evidence.sample_ids, resolution, why, dry_run=True, **mine, **options)
        _check_test_images(dataset, [edit.sample_id for edit in planned], allow_test)
        written = edits.resolve_group(dataset, evidence.sample_ids, resolution, why, **mine, **options)
        return written, (f"Dropped every copy in {name}" if action == "drop" else f"Relabeled {name} to {target}")
    sample_id = evidence.sample_ids[0]
    _check_test_images(dataset, [sample_id], allow_test)
    if action == "drop":
        return edits.drop(dataset, [sample_id], why, **mine), f"Dropped {name}"
    if action == "accept" and evidence.suggestion_score is not None:
        rows = pd.DataFrame({"id": [sample_id], "suggested_label": [target],
                             "mislabel_score": [evidence.suggestion_score]})
        return mislabel_review.accept_suggestions(dataset, rows, **mine), \
            f"Relabeled {name} to the model's suggestion, {target}"
    return edits.relabel(dataset, sample_id, target, why, **mine), f"Relabeled {name} to {target}"


def _name(evidence: Evidence) -> str:
    if evidence.is_group:
        return f"the group of {len(evidence.members)} images"
    return image_tiles.short_id(evidence.sample_ids[0])


def _check_test_images(dataset: Dataset, sample_ids: list[str], allow_test: bool) -> None:
    is_test = dataset.is_test()
    count = sum(bool(is_test[dataset.index_of(sample_id)]) for sample_id in sample_ids)
    if count and not allow_test:
        raise ValueError(f"this would drop or relabel {count:,} PublicTest/PrivateTest image(s), which changes what "
                         f"models are scored on; switch on “{ALLOW_TEST_LABEL}” first")
