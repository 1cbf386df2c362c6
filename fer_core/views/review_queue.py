"""Review queues for one-at-a-time (keyboard) review: which items a queue holds, in review order, and the
evidence that put each one there.

An item is one image (suspected mislabels, outliers, any Review filter) or one duplicate group. A queue
knows its item keys up front (cheap) and describes an item on demand against the edit log's current
state (`CurationState`), so what a reviewer sees after a decision is the data as it now stands, while
the reason an item is in the queue stays what the audit or the model found.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fer_core.audit import AuditReport
from fer_core.curation.replay import CurationState
from fer_core.dataset.loading import Dataset
from fer_core.labels import EMOTIONS, TEST_USAGES
from fer_core.mislabels import review as mislabel_review
from fer_core.mislabels.results import MislabelResult
from fer_core.views import duplicate_groups, outlier_list

GROUP_KEY_PREFIX = "group:"  # item keys of duplicate groups: `group:near:12` (the audit's 0-based group id)


@dataclass(frozen=True)
class Member:
    """One image of an item as it stands after the edits."""

    sample_id: str
    row: int
    label: str  # current label (after the edits)
    given: str  # label in the source data
    usage: str
    dropped: bool
    reviewed: bool
    note: str = ""  # what ties it to its duplicate group

    @property
    def is_test(self) -> bool:
        return self.usage in TEST_USAGES


@dataclass(frozen=True)
class Evidence:
    """Why an item is in its queue, its images now, and the emotion that "accept" would give it."""

    key: str
    reason: str
    members: tuple[Member, ...]
    suggestion: str | None = None
    suggestion_score: float | None = None  # the model's mislabel score, when the suggestion is the model's

    @property
    def is_group(self) -> bool:
        return self.key.startswith(GROUP_KEY_PREFIX)

    @property
    def sample_ids(self) -> list[str]:
        return [member.sample_id for member in self.members]

    @property
    def live(self) -> list[Member]:
        return [member for member in self.members if not member.dropped]


@dataclass(frozen=True)
class ReviewQueue:
    """A queue's name (for people and edit reasons), its item keys in review order, and how to describe one."""

    name: str
    keys: tuple[str, ...]
    describe: Callable[[str, CurationState], Evidence]


def label_names(dataset: Dataset) -> tuple[str, ...]:
    """The dataset's label set: its own when it carries one, else FER-2013's seven."""
    return tuple(getattr(dataset, "emotions", EMOTIONS))


def member_of(dataset: Dataset, state: CurationState, sample_id: str, note: str = "") -> Member:
    row = dataset.index_of(sample_id)
    names = label_names(dataset)
    return Member(sample_id, row, names[state.label_of(dataset, sample_id)], names[int(dataset.labels[row])],
                  str(dataset.usages[row]), sample_id in state.dropped, sample_id in state.reviewed, note)


# ---------------------------------------------------------------------------------------------
# The queues


def mislabel_queue(result: MislabelResult, dataset: Dataset, state: CurationState,
                   among: Sequence[str] | None = None) -> ReviewQueue:
    """Suspected mislabels still to decide, most suspect first (the gallery's queue); `among`: only these ids.
    Any flagged image can be described, so one decided (and so out of the queue) can still be shown."""
    queue = mislabel_review.review_queue(result, dataset, state)
    if among is not None:
        queue = queue[queue["id"].isin(list(among))]
    flagged = result.suspected().set_index("id")

    def describe(key: str, now: CurationState) -> Evidence:
        found = flagged.loc[key]
        reason = (f"Suspected mislabel: given {found['label']}, the model suggests {found['suggested_label']} (model "
                  f"confidence {found['suggested_confidence']:.2f}, mislabel score {found['mislabel_score']:.2f})")
        return Evidence(key, reason, (member_of(dataset, now, key),), str(found["suggested_label"]),
                        float(found["mislabel_score"]))

    return ReviewQueue("suspected mislabels", tuple(queue["id"].astype(str)), describe)


def outlier_queue(report: AuditReport, table: pd.DataFrame, rows: Sequence[int], kind: str = "") -> ReviewQueue:
    """Outliers in the Outliers page's ranked order (`rows`, e.g. `outlier_list.rank_outliers`), each with
    its score, the evidence and its kind."""
    dataset = report.dataset
    rows = np.asarray(rows, dtype=np.int64)

    def describe(key: str, now: CurationState) -> Evidence:
        row = dataset.index_of(key)
        details = outlier_list.outlier_details(table, [row]).get(row, "")
        return Evidence(key, f"Outlier: {details}", (member_of(dataset, now, key),))

    name = f"{kind.replace('_', ' ')} outliers" if kind else "outliers"
    return ReviewQueue(name, tuple(str(dataset.ids[row]) for row in rows), describe)


def filter_queue(report: AuditReport, table: pd.DataFrame, rows: Sequence[int],
                 result: MislabelResult | None = None) -> ReviewQueue:
    """The images a Review filter keeps, in data order; each says its flags, and the model's suggestion
    when it suspects the image's label (so "accept" works there too)."""
    dataset = report.dataset
    rows = np.asarray(rows, dtype=np.int64)
    flag_columns = [column for column in table.columns if column.startswith("flag:")]
    suspects = result.suspected().set_index("id") if result is not None else None

    def describe(key: str, now: CurationState) -> Evidence:
        row = dataset.index_of(key)
        sample = table.iloc[row]
        flags = [column.removeprefix("flag:") for column in flag_columns if bool(sample[column])]
        reason = f"Matches the filters · flags: {', '.join(flags) if flags else 'none'}"
        member = member_of(dataset, now, key)
        if suspects is not None and key in suspects.index:
            found = suspects.loc[key]
            suggested = str(found["suggested_label"])
            reason += (f" · the model suggests {suggested} (model confidence {found['suggested_confidence']:.2f}, "
                       f"mislabel score {found['mislabel_score']:.2f})")
            if suggested != member.label:
                return Evidence(key, reason, (member,), suggested, float(found["mislabel_score"]))
        return Evidence(key, reason, (member,))

    return ReviewQueue("images matching the filters", tuple(str(dataset.ids[row]) for row in rows), describe)


def group_key(kind: str, group: int) -> str:
    return f"{GROUP_KEY_PREFIX}{kind}:{int(group)}"


def group_queue(report: AuditReport, table: pd.DataFrame, groups: pd.DataFrame, kind: str,
                result: MislabelResult | None = None) -> ReviewQueue:
    """Duplicate groups (the Duplicates page's filtered `groups`, e.g. conflicting ones) one at a time: the
    members side by side with their labels and what ties each to the group. The suggestion is the model's
    emotion for the photo when one was computed, else the live members' majority label (none on a tie)."""
    dataset = report.dataset
    every = report.near_groups if kind == "near" else report.exact_groups
    by_id = every.set_index("group", drop=False)

    def describe(key: str, now: CurationState) -> Evidence:
        group = by_id.loc[int(key.rsplit(":", 1)[1])]
        notes = duplicate_groups.group_members(report, table, group)
        members = tuple(member_of(dataset, now, sample_id, note)
                        for sample_id, note in zip(notes["id"], notes["match"]))
        badges = [word for word, on in (("labels disagree", group["conflicting"]),
                                        ("train and test", group["cross_split"])) if on]
        reason = duplicate_groups.group_title(group, report) + "".join(f" · {badge}" for badge in badges)
        model = mislabel_review.group_suggestion(result, list(notes["id"])) if result is not None else None
        if model is not None:
            suggested = f" · the model suggests {model[0]} for this photo (confidence {model[1]:.2f})"
            return Evidence(key, reason + suggested, members, model[0])
        majority = majority_label(members)
        return Evidence(key, reason + (f" · majority label {majority}" if majority else ""), members, majority)

    return ReviewQueue(f"{kind}-duplicate groups", tuple(group_key(kind, group) for group in groups["group"]), describe)


def majority_label(members: Sequence[Member]) -> str | None:
    """The live members' most common current label; None on a tie or when none is live."""
    labels = pd.Series([member.label for member in members if not member.dropped], dtype=object).value_counts()
    if labels.empty or (len(labels) > 1 and labels.iloc[0] == labels.iloc[1]):
        return None
    return str(labels.index[0])


# ---------------------------------------------------------------------------------------------
# Where a reviewer stands


def status_of(member: Member) -> str:
    """`happy (was angry) · reviewed OK`, `dropped`: what the edits have made of an image so far."""
    if member.dropped:
        return "dropped"
    label = member.label if member.label == member.given else f"{member.label} (was {member.given})"
    return label + (" · reviewed OK" if member.reviewed else "")


def resumed_position(keys: Sequence[str], current: str | None, decided: set[str]) -> int:
    """Where a review goes on in a queue taken afresh: the item on screen when it is still queued, else the
    first item not decided in this review, else the end (len(keys))."""
    if current is not None and current in keys:
        return list(keys).index(current)
    return next((position for position, key in enumerate(keys) if key not in decided), len(keys))


def same_queue(taken: Sequence[str], now: Sequence[str], touched: set[str]) -> bool:
    """Whether the page's queue `now` is still the one `taken` at the start, apart from the items decided or
    undone in this review (a decided mislabel leaves its queue, an undone one comes back): if so, the review
    keeps its list and place; if not (a filter changed), the queue is taken afresh."""
    return [key for key in taken if key not in touched] == [key for key in now if key not in touched]
