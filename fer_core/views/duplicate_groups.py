"""Duplicate groups on the curated view: each group's status after the edits (live members, labels,
reviewed), the filters of the Duplicates page, a group's members, and the words that say what decided it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_core.audit import AuditReport
from fer_core.duplicates.hashing import hamming_distance
from fer_core.duplicates.status import group_column, group_status, unresolved


def filter_groups(report: AuditReport, table: pd.DataFrame, kind: str, *, conflicting_only: bool = False,
                  cross_split_only: bool = False, emotions: tuple[str, ...] = (), usages: tuple[str, ...] = (),
                  open_only: bool = True, keep: frozenset[int] = frozenset(),
                  match_kinds: tuple[str, ...] = ()) -> pd.DataFrame:
    """The duplicate groups to show, in group order, judged on the curated view (live members, current labels).

    Groups in `keep` (resolved during this page visit) are shown whatever the filters say, so a
    resolved group stays in place until the reviewer leaves the page.
    """
    groups = report.near_groups if kind == "near" else report.exact_groups
    if not len(groups):
        return groups
    status = group_status(table, kind).reindex(groups["group"].to_numpy())
    keep_groups, keep = keep, np.ones(len(groups), dtype=bool)
    if open_only:
        keep &= unresolved(status).to_numpy()
    if conflicting_only:
        keep &= (status["live_labels"] > 1).to_numpy()
    if cross_split_only:
        keep &= (status["live_training"] & status["live_test"]).to_numpy()
    if emotions or usages:
        column = group_column(kind)
        members = table[table[column].notna() & ~table["dropped"]]
        matching = members[(members["current_label"].isin(emotions) if emotions else True)
                           & (members["usage"].isin(usages) if usages else True)]
        keep &= groups["group"].isin(matching[column].astype(np.int64).unique()).to_numpy()
    if match_kinds and "kinds" in groups:  # near groups: any pair of one of these kinds (shifted, mirrored, …)
        keep &= groups["kinds"].map(lambda kinds: bool(set(kinds) & set(match_kinds))).to_numpy(dtype=bool)
    return groups[keep | groups["group"].isin(keep_groups).to_numpy()]


def group_members(report: AuditReport, table: pd.DataFrame, group: pd.Series) -> pd.DataFrame:
    """One row per member of a group: id, row, current label, usage, dropped, bits from the first member."""
    rows = np.asarray(group["rows"], dtype=np.int64)
    distance = hamming_distance(report.hashes[rows], report.hashes[rows[0]])
    members = table.iloc[rows][["id", "current_label", "usage", "dropped", "reviewed"]].copy()
    members.insert(1, "row", rows)
    members["distance"] = np.asarray(distance, dtype=np.int64)
    return members.reset_index(drop=True)


def group_title(group: pd.Series) -> str:
    """`Group 1 · 3 images · up to 8 bits apart`: groups numbered from 1 for people."""
    spread = f" · up to {int(group['max_distance'])} bits apart" if "max_distance" in group else ""
    kinds = f" · {', '.join(group['kinds'])}" if len(group.get("kinds", ())) else ""  # how its pairs match
    return f"Group {int(group['group']) + 1} · {int(group['size'])} images{kinds}{spread}"


def group_badges(group: pd.Series) -> str:
    """Markdown badges for what the audit found in a group (conflicting labels, train and test)."""
    flags = [name for name, on in (("labels disagree", group["conflicting"]), ("train and test", group["cross_split"]))
             if on]
    return "".join(f" · :red[{flag}]" for flag in flags)


def near_mode_note(mode: str, threshold: int) -> str:
    """How near duplicates were found, in a few words (the threshold only matters in hash mode)."""
    return "near copies confirmed on pixels" if mode == "verified" else f"near copies: pHash within {threshold} bits"


def chain_note(threshold: int, mode: str = "hash") -> str:
    """Why a near group can hold members that are not near each other."""
    if mode == "verified":
        return ("A near group links every pair of images confirmed as the same photo on their pixels (re-encoded, "
                "shifted, cropped or mirrored: the kinds in the group's title) and chains them: if A matches B "
                "and B matches C, all three are one group. Each image shows its pHash distance to image #1.")
    return (f"A near group links every pair of images within {threshold} bits and chains them: if A is near B and "
            f"B near C, all three are one group, so two members can be more than {threshold} bits apart. Each "
            "image shows its distance to image #1.")
