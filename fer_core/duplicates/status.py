"""Duplicate groups after the edits: per group, its live members, their distinct labels, the splits they
sit in and whether all are reviewed (pure, over the audit's table with the curated columns).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_core.labels import EMOTIONS, TEST_USAGES, TRAINING

GROUP_KINDS: tuple[str, ...] = ("near", "exact")


def table_emotions(table: pd.DataFrame | pd.Series) -> tuple[str, ...]:
    """The label set a sample table's names come from: the dataset's, which the audit puts in the table's
    `attrs` (kept by pandas through copies and selections); FER-2013's seven for a table without it."""
    return tuple(table.attrs.get("emotions", EMOTIONS))


def group_status(table: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Per duplicate group (index: group id), in the curated view: live members, distinct live labels,
    whether live members sit in Training and in a test split, and whether all live members are reviewed."""
    groups = table[group_column(kind)].to_numpy(dtype=np.float64, na_value=-1).astype(np.int64)
    count = int(groups.max()) + 1 if len(groups) else 0
    live = (groups >= 0) & ~table["dropped"].to_numpy(dtype=bool)
    usages = table["usage"].to_numpy()

    def per_group(mask: np.ndarray) -> np.ndarray:
        return np.bincount(groups[live & mask], minlength=count)

    live_count = per_group(np.ones(len(table), dtype=bool))
    classes = len(table_emotions(table))
    label_pairs = np.unique(groups[live] * classes + label_codes(table["current_label"])[live])
    return pd.DataFrame({
        "live": live_count,
        "live_labels": np.bincount(label_pairs // classes, minlength=count),
        "live_training": per_group(usages == TRAINING) > 0,
        "live_test": per_group(np.isin(usages, TEST_USAGES)) > 0,
        "reviewed": (per_group(table["reviewed"].to_numpy(dtype=bool)) == live_count) & (live_count > 0),
    }, index=pd.RangeIndex(count, name="group"))


def label_codes(labels: pd.Series, emotions: tuple[str, ...] | None = None) -> np.ndarray:
    """Emotion names → their index in the label set (`table_emotions` unless given)."""
    return pd.Categorical(labels, categories=table_emotions(labels) if emotions is None else emotions).codes.astype(np.int64)


def unresolved(status: pd.DataFrame) -> pd.Series:
    """Groups that still need a decision: two or more live members, not marked reviewed."""
    return (status["live"] >= 2) & ~status["reviewed"]


def group_column(kind: str) -> str:
    if kind not in GROUP_KINDS:
        raise ValueError(f"unknown group kind {kind!r}; expected one of {', '.join(GROUP_KINDS)}")
    return f"{kind}_group"
