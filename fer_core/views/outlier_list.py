"""The Outliers page's list: flagged images ranked by score, filtered by kind, and each one's signals in words.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fer_core.outliers.kinds import OUTLIER_KINDS, kind_evidence
from fer_core.outliers.statistics import OutlierConfig, tail_scaled


def rank_outliers(table: pd.DataFrame, *, flagged_only: bool = True, show_dropped: bool = False,
                  show_reviewed: bool = False, kind: str = "") -> np.ndarray:
    """Rows by outlier score, highest (least face-like) first; only those of outlier `kind` when given."""
    keep = table["outlier"].to_numpy(dtype=bool, copy=True) if flagged_only else np.ones(len(table), dtype=bool)
    if kind:
        keep &= table["outlier_kind"].to_numpy() == kind
    if not show_dropped:
        keep &= ~table["dropped"].to_numpy()
    if not show_reviewed:
        keep &= ~table["reviewed"].to_numpy()
    rows = np.flatnonzero(keep)
    order = np.argsort(-table["outlier_score"].to_numpy()[rows], kind="stable")
    return rows[order]


def outlier_kind_options() -> dict[str, str]:
    """The Outliers page's kind filter: "" (every kind) and each kind, to its label."""
    return {"": "every kind", **{kind: kind.replace("_", " ") for kind in OUTLIER_KINDS}}


def outlier_kind_counts(table: pd.DataFrame) -> str:
    """`blank 15, placeholder 47, drawing 139, no usable face 2,391`: flagged images per kind."""
    kinds = table["outlier_kind"].to_numpy() if "outlier_kind" in table else np.array([], dtype=object)
    return ", ".join(f"{kind.replace('_', ' ')} {int(np.sum(kinds == kind)):,}" for kind in OUTLIER_KINDS)


SIGNAL_NAMES = {"flat_fraction": "flat", "reconstruction_error": "unlike a face", "sharp_edge_fraction": "sharp edges"}


def outlier_details(table: pd.DataFrame, rows) -> pd.Series:
    """Per row: `score 3.1 · flat, sharp edges`, the outlier score and the signals that raised it.

    A signal raised it when it lies at or beyond its 99th percentile (its scaled value ≥ 1, see
    outliers.tail_scaled); otherwise the strongest one is named. Blank frames and placeholders
    (the same pixels under several emotions) say so.
    """
    rows = np.asarray(rows, dtype=np.int64)
    config = OutlierConfig()
    scaled = {name: tail_scaled(table[column].to_numpy(), config.reference_quantile, config.max_iqr_multiple)[rows]
              for column, name in SIGNAL_NAMES.items() if column in table}
    details = {}
    for position, row in enumerate(rows.tolist()):
        sample = table.iloc[row]
        if sample.get("std", np.inf) < config.blank_max_std:
            signals = ["blank"]
        else:
            values = {name: values[position] for name, values in scaled.items()}
            signals = [name for name, value in values.items() if value >= 1] or \
                      ([max(values, key=values.get)] if values else [])
            if sample.get("recurring_placeholder", False):
                signals.append("placeholder")
        details[row] = f"score {sample['outlier_score']:.1f}" + (f" · {', '.join(signals)}" if signals else "")
    if "outlier_kind" in table:  # a flagged image: its score, the evidence, then its kind
        for row, (kind, evidence) in zip(rows.tolist(), kind_evidence(table, rows)):
            if kind:
                details[row] = f"score {table.iloc[row]['outlier_score']:.1f} · {evidence} · {kind}"
    return pd.Series(details, dtype=object)
