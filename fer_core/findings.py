"""What a detector reports, declared once with its registration: the figure it found, what is left of it
after the edits, and the words the Overview card and the report's headline card put around it.

A `Finding` is data plus two small functions: `found(summary)` reads the audit's summary.json, and
`left(report, table)` counts on the curated table (the audit's table with the edit log's columns,
`views.audit_table.annotate`). The Overview (`views.overview`) and the report (`report.findings`) both
iterate over `detectors.registered_findings()`, so a new detector's figure shows in both by its registration alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fer_core.duplicates.status import group_status, unresolved

if TYPE_CHECKING:
    from fer_core.audit import AuditReport


@dataclass(frozen=True)
class Finding:
    """One figure of the audit, before and after the edits, and how the app and the report word it.

    `key` names it in the curated summary (`<key>` found, `<key>_after` left); `card` and `card_help`
    are the Overview's label and tooltip; `title`, `detail` and `why` the report's headline card
    (`title` None: the Overview only); `left_unit` says what the after-edits count counts.
    """

    key: str
    card: str
    card_help: Callable[[dict], str]
    found: Callable[[dict], int]
    left: Callable[["AuditReport", pd.DataFrame], int]
    left_unit: str
    title: str | None = None
    detail: Callable[[dict], str] | None = None
    why: str = ""


def near_method(summary: dict) -> str:
    """How the audit found near copies, in a few words (the threshold only applies in hash mode)."""
    near = summary["near"]
    if near.get("mode", "hash") == "verified":
        return "confirmed on pixels"
    return f"within {near['threshold']} bits of pHash"


def _open_groups(kind: str, conflicting: bool = False) -> Callable[["AuditReport", pd.DataFrame], int]:
    def left(report: "AuditReport", table: pd.DataFrame) -> int:
        status = group_status(table, kind)
        still_open = unresolved(status)
        if conflicting:
            still_open &= status["live_labels"] > 1
        return int(still_open.sum())
    return left


def live_leak_pairs(report: "AuditReport", table: pd.DataFrame) -> np.ndarray:
    """Which leak pairs still have both images live (not dropped)."""
    live = ~table["dropped"].to_numpy(dtype=bool)
    return live[report.leaks.train_rows] & live[report.leaks.test_rows]


def _leaked_test_images_left(report: "AuditReport", table: pd.DataFrame) -> int:
    return int(len(np.unique(report.leaks.test_rows[live_leak_pairs(report, table)])))


def _outliers_left(report: "AuditReport", table: pd.DataFrame) -> int:
    live = ~table["dropped"].to_numpy(dtype=bool)
    return int((table["outlier"].to_numpy(dtype=bool) & live & ~table["reviewed"].to_numpy(dtype=bool)).sum())


def outlier_detail(summary: dict) -> str:
    """What the flagged images are, by kind when the audit says (blank 12 · placeholder 60 · …)."""
    kinds = {kind: count for kind, count in summary["outliers"].get("by_kind", {}).items() if count}
    if not kinds:
        return "images flagged by the outlier score (blank frames, text cards, icons, drawings)"
    return "images flagged as not a usable face: " + " · ".join(
        f"{kind.replace('_', ' ')} {count:,}" for kind, count in kinds.items())


def duplicate_findings() -> tuple[Finding, ...]:
    """The duplicates detector's figures: exact and near groups, those whose emotions disagree, leaks."""
    return (
        Finding("exact_groups", "Exact-copy groups open",
                lambda summary: "Groups of pixel-identical images still needing a decision",
                lambda summary: summary["exact"]["groups"], _open_groups("exact"), "groups still open",
                "Exact duplicates",
                lambda summary: f"groups of identical images; {summary['exact']['redundant']:,} redundant copies",
                "Copies weigh some faces more than others in training, and across splits they let a model be "
                "scored on images it has already seen."),
        Finding("near_groups", "Near-copy groups open",
                lambda summary: f"Groups of near copies ({near_method(summary)}; exact copies included) still "
                                "needing a decision",
                lambda summary: summary["near"]["groups"], _open_groups("near"), "groups still open",
                "Near duplicates",
                lambda summary: f"groups of near copies, {near_method(summary)}; "
                                f"{summary['near']['images_in_groups']:,} images in them",
                "Shifted, re-cropped or re-encoded copies act on a model like exact ones but escape a "
                "byte-for-byte check."),
        Finding("exact_conflicting_groups", "Exact groups, labels differ",
                lambda summary: "Open groups of pixel-identical images filed under two or more emotions",
                lambda summary: summary["exact"]["conflicting_groups"], _open_groups("exact", conflicting=True),
                "still open"),
        Finding("conflicting_groups", "Near groups, labels differ",
                lambda summary: f"Open near-copy groups ({near_method(summary)}) filed under two or more emotions",
                lambda summary: summary["near"]["conflicting_groups"], _open_groups("near", conflicting=True),
                "still open", "Conflicting groups",
                lambda summary: f"near-duplicate groups whose copies carry different emotions; so do "
                                f"{summary['exact']['conflicting_groups']:,} groups of identical images",
                "The same face under two emotions trains the model toward contradictory answers and caps the "
                "accuracy any model can reach on those images."),
        Finding("leaked_test_images", "Test images leaked",
                lambda summary: "PublicTest/PrivateTest images with an exact or near copy in Training",
                lambda summary: summary["leaks"]["test_images_with_training_copy"], _leaked_test_images_left,
                "leaked test images", "Train–test leaks",
                lambda summary: f"test images with a copy in Training "
                                f"({summary['leaks']['training_copies_of_test_images']:,} Training copies)",
                "A model can recall these answers instead of reading the expression, so test accuracy overstates "
                "how it does on faces it has never seen."),
    )


def outlier_findings() -> tuple[Finding, ...]:
    """The outlier kinds detector's figure: images that are not a usable face."""
    return (
        Finding("outliers", "Outliers to review",
                lambda summary: "Images flagged as unlike a face, not dropped or marked reviewed",
                lambda summary: summary["outliers"]["flagged"], _outliers_left, "flagged, not dropped or reviewed",
                "Non-faces", outlier_detail,
                "They carry an emotion label but no facial expression: noise in training, arbitrary hits or "
                "misses in testing."),
    )

