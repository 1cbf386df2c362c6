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


# How a verified pair matched, in words (the other kinds, shifted, cropped, mirrored, …, are their own words).
MATCH_WORDS = {"near": "re-encoded or brightened", "exact": "identical pixels"}


def group_members(report: AuditReport, table: pd.DataFrame, group: pd.Series) -> pd.DataFrame:
    """One row per member of a group: id, row, current label, usage, dropped, bits from the first member,
    and `match`: what ties it to the group, in the words of the method that decided it (the pair's kind
    and pixel similarity for near groups confirmed on pixels, identical pixels in exact groups, else the
    pHash bits from #1)."""
    rows = np.asarray(group["rows"], dtype=np.int64)
    distance = hamming_distance(report.hashes[rows], report.hashes[rows[0]])
    members = table.iloc[rows][["id", "current_label", "usage", "dropped", "reviewed"]].copy()
    members.insert(1, "row", rows)
    members["distance"] = np.asarray(distance, dtype=np.int64)
    links = _verified_links(report, group)
    exact = "kinds" not in group  # an exact group: identical pixels (near groups name their pairs' kinds)
    members["match"] = ["" if number == 0 else "vs #1: identical pixels" if exact else
                        _member_match(rows, number, int(bits), links)
                        for number, bits in enumerate(members["distance"])]
    return members.reset_index(drop=True)


def _verified_links(report: AuditReport, group: pd.Series) -> pd.DataFrame | None:
    """The audit's pairs inside a near group confirmed on pixels (None for exact groups and pHash mode)."""
    pairs = report.near_pairs
    if report.config.near_mode != "verified" or "kinds" not in group or pairs is None:
        return None
    return pairs[np.isin(pairs["row_a"].to_numpy(), np.asarray(group["rows"], dtype=np.int64))]


def _member_match(rows: np.ndarray, number: int, bits: int, links: pd.DataFrame | None) -> str:
    """`vs #1: mirrored, similarity 0.953`: the member's pair with #1, else its most similar pair in the group."""
    if links is None:
        return f"{bits} bits from #1"
    row = rows[number]
    mine = links[(links["row_a"].to_numpy() == row) | (links["row_b"].to_numpy() == row)]
    if mine.empty:
        return f"{bits} bits from #1"
    partners = np.where(mine["row_a"].to_numpy() == row, mine["row_b"].to_numpy(), mine["row_a"].to_numpy())
    first = partners == rows[0]
    best = int(np.flatnonzero(first)[0]) if first.any() else int(np.argmax(mine["similarity"].to_numpy()))
    kind, similarity = str(mine["kind"].iloc[best]), float(mine["similarity"].iloc[best])
    partner = int(np.flatnonzero(rows == partners[best])[0]) + 1
    if kind == "exact":
        return f"vs #{partner}: identical pixels"
    return f"vs #{partner}: {MATCH_WORDS.get(kind, kind)}, similarity {similarity:.3f}"


def group_title(group: pd.Series, report: AuditReport | None = None) -> str:
    """`Group 1 · 3 images · shifted · similarity 0.931–0.990` for a near group confirmed on pixels (what
    decided it), `… · up to 8 bits apart` in pHash mode; groups numbered from 1 for people."""
    spread = f" · up to {int(group['max_distance'])} bits apart" if "max_distance" in group else ""
    links = _verified_links(report, group) if report is not None else None
    if links is not None and len(links):
        low, high = f"{links['similarity'].min():.3f}", f"{links['similarity'].max():.3f}"
        spread = f" · similarity {low}" + (f"–{high}" if high != low else "")
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
                "and B matches C, all three are one group. Each image shows what ties it to the group: its pair "
                "with image #1 (or its closest member), the transform and the pixel similarity (1 = same pixels).")
    return (f"A near group links every pair of images within {threshold} bits and chains them: if A is near B and "
            f"B near C, all three are one group, so two members can be more than {threshold} bits apart. Each "
            "image shows its distance to image #1.")
