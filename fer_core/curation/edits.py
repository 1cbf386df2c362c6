"""The curation operations: relabel, drop, restore, undo, review marks, group and leak resolutions.

Each operation is a planner (what to write, given the current state of the log) run by
`edit_log.run_plan` inside one transaction, or alone for a dry run. Source files are never
touched: the curated data is a view, `curation.apply_edits(dataset, edits)`. The names pages,
export, the report and tests know (`read_edits`, `curated_dataset`, `Edit`, `DROP`, ...) are
re-exported here from edit_log.py and curation.py.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable, Literal, Sequence

import numpy as np

from fer_core.curation.edit_log import (EDIT_COLUMNS, EDITS_SCHEMA, MAX_REASON_CHARACTERS, Change, check_fingerprint,
                                        check_workspace_dataset, connect_database, curated_dataset, history,
                                        read_curation, read_edits, read_state, read_workspace_meta, run_plan)  # noqa: F401
from fer_core.curation.replay import (ACTIONS, DROP, RELABEL, RESTORE, REVIEW_OK, UNDO, CurationState, Edit,
                                      apply_edits, count_edits_in_effect, find_active_edits, find_undoable_batches,
                                      replay_edits)  # noqa: F401
from fer_core.dataset.loading import Dataset
from fer_core.labels import EMOTIONS, TEST_USAGES, TRAINING, emotion_index
from fer_core.store import APPLICATION_ID, DATABASE_NAME, database_path  # noqa: F401 (the names tests and pages know)

if TYPE_CHECKING:
    from fer_core.duplicates.grouping import Leaks

DEFAULT_LEAK_REASON = "train-test leak: Training copy of a test image"

Resolution = Literal["keep_one", "relabel", "relabel_majority", "drop_all"]
RESOLUTIONS: tuple[str, ...] = ("keep_one", "relabel", "relabel_majority", "drop_all")


# ---------------------------------------------------------------------------------------------
# Operations: each a planner run inside one transaction (or alone, for a dry run)


def relabel(dataset: Dataset, sample_id: str, emotion: str | int, reason: str, *, author: str | None = None,
            workspace: str | os.PathLike | None = None, dry_run: bool = False) -> list[Edit]:
    """Give one sample a new label."""
    target = _emotion(emotion, dataset.emotions)
    sample_id = _known_ids(dataset, [sample_id])[0]

    def plan(state: CurationState, _: list[Edit]) -> list[Change]:
        _require_live(state, [sample_id])
        current = state.label_of(dataset, sample_id)
        if current == target:
            raise ValueError(f"sample {sample_id!r} is already labelled {dataset.emotions[target]}")
        return [Change(sample_id, RELABEL, current, target)]

    return run_plan(dataset, plan, _require_reason(reason), author, workspace, dry_run)


def drop(dataset: Dataset, sample_ids: Iterable[str], reason: str, *, author: str | None = None,
         workspace: str | os.PathLike | None = None, dry_run: bool = False) -> list[Edit]:
    """Remove samples from the curated view (one batch)."""
    members = _known_ids(dataset, sample_ids)

    def plan(state: CurationState, _: list[Edit]) -> list[Change]:
        _require_live(state, members)
        return [Change(member, DROP, state.label_of(dataset, member), None) for member in members]

    return run_plan(dataset, plan, _require_reason(reason), author, workspace, dry_run)


def restore(dataset: Dataset, sample_ids: Iterable[str], reason: str = "", *, author: str | None = None,
            workspace: str | os.PathLike | None = None, dry_run: bool = False) -> list[Edit]:
    """Bring dropped samples back (one batch)."""
    members = _known_ids(dataset, sample_ids)

    def plan(state: CurationState, _: list[Edit]) -> list[Change]:
        not_dropped = [member for member in members if member not in state.dropped]
        if not_dropped:
            raise ValueError(f"not dropped, nothing to restore: {_shorten(not_dropped)}")
        return [Change(member, RESTORE, None, state.label_of(dataset, member)) for member in members]

    return run_plan(dataset, plan, reason, author, workspace, dry_run)


def undo(edit_id: int, reason: str = "", *, author: str | None = None,
         workspace: str | os.PathLike | None = None) -> Edit:
    """Reverse one edit by appending an undo row (undoing an undo re-applies the original)."""
    return undo_edits([edit_id], reason, author=author, workspace=workspace)[0]


def undo_batch(batch_id: str, reason: str = "", *, author: str | None = None,
               workspace: str | os.PathLike | None = None) -> list[Edit]:
    """Reverse every still-active edit of a batch (e.g. a whole group resolution) in one new batch."""
    edits = read_edits(workspace)
    active = {edit.edit_id for edit in find_active_edits(edits)}
    members = [edit.edit_id for edit in edits if edit.batch_id == batch_id and edit.edit_id in active]
    if not members:
        raise ValueError(f"no active edits in batch {batch_id!r}")
    return undo_edits(members, reason, author=author, workspace=workspace)


def undo_edits(edit_ids: Sequence[int], reason: str = "", *, author: str | None = None,
               workspace: str | os.PathLike | None = None) -> list[Edit]:
    """Append undo rows for the given edits in one batch; ValueError for unknown or already undone ids."""

    def plan(_: CurationState, edits: list[Edit]) -> list[Change]:
        by_id = {edit.edit_id: edit for edit in edits}
        active = {edit.edit_id for edit in find_active_edits(edits)}
        changes = []
        for edit_id in edit_ids:
            target = by_id.get(edit_id)
            if target is None:
                known = f"1..{edits[-1].edit_id}" if edits else "none yet"
                raise ValueError(f"unknown edit id {edit_id}; edit ids in this workspace: {known}")
            if edit_id not in active:
                raise ValueError(f"edit {edit_id} is already undone")
            changes.append(Change(target.sample_id, UNDO, target.new_label, target.old_label, undoes=edit_id))
        return changes

    return run_plan(None, plan, reason, author, workspace, dry_run=False)


def mark_group_reviewed(dataset: Dataset, member_ids: Iterable[str], reason: str = "", *,
                        author: str | None = None, workspace: str | os.PathLike | None = None) -> list[Edit]:
    """Record that a reviewer looked at a group and found it OK, so pages can hide it."""
    members = _known_ids(dataset, member_ids)

    def plan(_: CurationState, __: list[Edit]) -> list[Change]:
        return [Change(member, REVIEW_OK, None, None) for member in members]

    return run_plan(dataset, plan, reason, author, workspace, dry_run=False)


def resolve_group(dataset: Dataset, member_ids: Iterable[str], resolution: Resolution, reason: str, *,
                  emotion: str | int | None = None, keep_id: str | None = None, author: str | None = None,
                  workspace: str | os.PathLike | None = None, dry_run: bool = False,
                  allow_test: bool = True) -> list[Edit]:
    """Resolve a duplicate group in one batch; members already dropped are left alone.

    keep_one: keep `keep_id`, or a test-split copy when there is one (so Training holds no copy of a
    test image), else the first member; drop the rest; with `emotion`, also relabel the one kept
    (same batch, so one undo reverses both). relabel: all to `emotion`. relabel_majority:
    all to the members' most common label (a tie is an error: choose an emotion). drop_all.
    With `allow_test` False, a plan that drops or relabels a PublicTest/PrivateTest image is
    refused (the app's confirmation, the CLI's --allow-test); a dry run still shows it.
    """
    if resolution not in RESOLUTIONS:
        raise ValueError(f"unknown resolution {resolution!r}; expected one of {', '.join(RESOLUTIONS)}")
    if (resolution == "relabel" and emotion is None) or (resolution not in ("relabel", "keep_one")
                                                           and emotion is not None):
        raise ValueError("an emotion is needed for resolution 'relabel', allowed for 'keep_one', and only for them")
    target = None if emotion is None else _emotion(emotion, dataset.emotions)
    members = _known_ids(dataset, member_ids)
    if keep_id is not None and keep_id not in members:
        raise ValueError(f"keep id {keep_id!r} is not a member of the group ({_shorten(members)})")

    def plan(state: CurationState, _: list[Edit]) -> list[Change]:
        live = [member for member in members if member not in state.dropped]
        labels = {member: state.label_of(dataset, member) for member in live}
        if resolution == "drop_all":
            return [Change(member, DROP, labels[member], None) for member in live]
        if resolution == "keep_one":
            keeper = choose_keeper(dataset, live, keep_id)
            changes = [Change(member, DROP, labels[member], None) for member in live if member != keeper]
            if target is not None and keeper is not None and labels[keeper] != target:
                changes.append(Change(keeper, RELABEL, labels[keeper], target))
            return changes
        label = target if target is not None else majority_label(labels, dataset.emotions)
        return [Change(member, RELABEL, labels[member], label) for member in live if labels[member] != label]

    def guarded_plan(state: CurationState, log: list[Edit]) -> list[Change]:
        changes = plan(state, log)
        if not (allow_test or dry_run):
            check_no_test_changes(dataset, [change.sample_id for change in changes])
        return changes

    return run_plan(dataset, guarded_plan, _require_reason(reason), author, workspace, dry_run)


def check_no_test_changes(dataset: Dataset, sample_ids: Iterable[str]) -> None:
    """ValueError when an action would drop or relabel test images: that changes what every model is scored on."""
    is_test = dataset.is_test()
    touched = [sample_id for sample_id in sample_ids if is_test[dataset.index_of(sample_id)]]
    if touched:
        raise ValueError(f"this would drop or relabel {len(touched):,} PublicTest/PrivateTest image(s) "
                         f"({_shorten(touched)}), which changes what models are scored on; "
                         f"pass allow_test (--allow-test) to change them too")


def check_one_group(dataset: Dataset, member_ids: Iterable[str], group_of: np.ndarray) -> None:
    """ValueError naming the first id outside the first id's duplicate group (`group_of`: the group of each
    dataset row, negative for none), so a typed id cannot resolve unrelated images as if they were copies."""
    members = _known_ids(dataset, member_ids)
    groups = [int(group_of[dataset.index_of(member)]) for member in members]
    if groups[0] < 0:
        raise ValueError(f"{members[0]!r} is in no duplicate group")
    for member, group in zip(members[1:], groups[1:]):
        if group != groups[0]:
            raise ValueError(f"{member!r} is not in the duplicate group of {members[0]!r}; pass the ids of one group")


def resolve_leaks(dataset: Dataset, reason: str = DEFAULT_LEAK_REASON, *, max_hamming_distance: int | None = None,
                  curated: bool = True, hashes: np.ndarray | None = None, author: str | None = None,
                  workspace: str | os.PathLike | None = None, dry_run: bool = False, leaks: Leaks | None = None) -> list[Edit]:
    """Drop every Training copy (exact or near) of a PublicTest/PrivateTest image, in one batch.

    Leaks are searched in the curated view by default, so dropped samples neither leak nor get
    dropped again; `curated=False` searches the raw data (still skipping rows already dropped).
    `hashes` (pHashes of the raw dataset's rows, e.g. from the audit) skip rehashing. `leaks` (the
    audit's `duplicates.Leaks` on the raw rows, e.g. its verified near pairs) replace the search:
    a pair counts while both images are in the view. The slow search runs before the transaction,
    which stays short.
    """
    from fer_core.duplicates.grouping import find_leaks
    from fer_core.duplicates.limits import DEFAULT_NEAR_THRESHOLD

    check_fingerprint(read_workspace_meta(workspace), dataset, workspace)  # before the slow search
    distance = DEFAULT_NEAR_THRESHOLD if max_hamming_distance is None else max_hamming_distance
    view = curated_dataset(dataset, workspace) if curated else dataset
    if hashes is not None and view is not dataset:
        hashes = np.asarray(hashes)[[dataset.index_of(sample_id) for sample_id in view.ids.tolist()]]
    if leaks is not None:
        live = np.isin(dataset.ids[leaks.train_rows], view.ids) & np.isin(dataset.ids[leaks.test_rows], view.ids)
        leaking = dataset.ids[np.unique(leaks.train_rows[live])].tolist()
    else:
        leaks = find_leaks(view, distance, hashes=hashes)
        rows = np.unique(np.asarray(leaks.train_rows, dtype=np.int64))
        rows = rows[view.usages[rows] == TRAINING]
        leaking = view.ids[rows].tolist()

    def plan(state: CurationState, _: list[Edit]) -> list[Change]:
        return [Change(sample_id, DROP, state.label_of(dataset, sample_id), None)
                for sample_id in leaking if sample_id not in state.dropped]

    return run_plan(dataset, plan, _require_reason(reason), author, workspace, dry_run)


# ---------------------------------------------------------------------------------------------
# Validation helpers


def _known_ids(dataset: Dataset, sample_ids: Iterable[str]) -> list[str]:
    """Unique ids in given order; ValueError naming the first unknown one."""
    members = list(dict.fromkeys(str(sample_id) for sample_id in sample_ids))
    if not members:
        raise ValueError("no sample ids given")
    for member in members:
        dataset.index_of(member)
    return members


def _require_live(state: CurationState, sample_ids: Sequence[str]) -> None:
    dropped = [sample_id for sample_id in sample_ids if sample_id in state.dropped]
    if dropped:
        raise ValueError(f"already dropped (restore first): {_shorten(dropped)}")


def _require_reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise ValueError("a reason is required (say why, for the history)")
    return reason.strip()


def _emotion(emotion: str | int, emotions: Sequence[str]) -> int:
    if isinstance(emotion, (int, np.integer)) and not isinstance(emotion, bool):
        if 0 <= int(emotion) < len(emotions):
            return int(emotion)
        raise ValueError(f"unknown emotion {emotion!r}; expected 0..{len(emotions) - 1} or one of {', '.join(emotions)}")
    return emotion_index(str(emotion), emotions)


def choose_keeper(dataset: Dataset, live: list[str], keep_id: str | None = None) -> str | None:
    """The member a keep-one resolution keeps: `keep_id`, else the first test-split copy (so Training
    keeps no copy of a test image), else the first live member."""
    if keep_id is not None:
        if keep_id not in live:
            raise ValueError(f"keep id {keep_id!r} is dropped; restore it first or keep another member")
        return keep_id
    test_copies = [member for member in live if dataset.usages[dataset.index_of(member)] in TEST_USAGES]
    return (test_copies or live or [None])[0]


def majority_label(labels: dict[str, int], emotions: Sequence[str] = EMOTIONS) -> int:
    """The most common label of a group's live members; ValueError on a tie (choose an emotion)."""
    if not labels:
        return 0  # nothing live to relabel: the plan is empty whatever the label
    counts = np.bincount(list(labels.values()), minlength=len(emotions))
    winners = np.flatnonzero(counts == counts.max())
    if len(winners) > 1:
        raise ValueError(f"no majority label (tie between {', '.join(emotions[i] for i in winners)}); "
                         f"choose an emotion with resolution 'relabel'")
    return int(winners[0])


def _shorten(items: Sequence[str], shown: int = 5) -> str:
    text = ", ".join(repr(item) for item in items[:shown])
    return text + (f" and {len(items) - shown} more" if len(items) > shown else "")


