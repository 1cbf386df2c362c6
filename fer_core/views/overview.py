"""The Overview's figures as cards, each saying what it counts, and the leak figures reconciled in words.

Pure: takes `views.audit_table.curated_summary`'s dict, so the app and the report word the numbers the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from fer_core.detectors import registered_findings


@dataclass(frozen=True)
class Card:
    """One Overview figure: what it counts now, its change since the audit, and what it means."""

    label: str
    value: int
    change: int
    help: str
    neutral: bool = False  # a change that is neither good nor bad (images kept)


def overview_cards(summary: dict, audit_summary: dict) -> list[Card]:
    """The Overview's figures, each saying what it counts: the images kept, each registered detector's
    findings (exact and near figures apart), the edits in effect.

    `summary`: `audit_table.curated_summary`; `audit_summary`: the audit's summary.json (for the words).
    """
    cards = [Card("Images kept", summary["images_after"], summary["images_after"] - summary["images"],
                  f"Images not dropped; the audit found {summary['images']:,}.", True)]
    for finding in registered_findings():
        found, left = summary[finding.key], summary[f"{finding.key}_after"]
        cards.append(Card(finding.card, left, left - found,
                          f"{finding.card_help(audit_summary)}; the audit found {found:,}.", False))
    cards.append(Card("Edits in effect", summary["edits"], 0,
                      f"Relabels, drops and restores not undone: {summary['relabeled']:,} image(s) relabeled and "
                      f"{summary['dropped']:,} dropped now.", True))
    return cards


def leak_reconciliation(summary: dict) -> str:
    """Why the leaked-test-image count and the leak removal's drop count differ, in words."""
    test, copies = summary["leaked_test_images_after"], summary["training_copies_after"]
    if not test:
        return "No test image has a copy in Training any more." if summary["leaked_test_images"] else \
            "No test image has a copy in Training."
    if test == copies == 1:
        return ("1 test image has an exact or near copy in Training. Removing the leaks (Duplicates page) drops "
                "that Training copy and keeps the test image.")
    return (f"{test:,} test image{'s have' if test != 1 else ' has'} at least one exact or near copy in Training; "
            f"those copies are {copies:,} Training image{'s' if copies != 1 else ''}, because a test image can have "
            f"several copies there (and one Training image can copy several test images). Removing the leaks "
            f"(Duplicates page) drops the {copies:,} Training cop{'ies' if copies != 1 else 'y'} and keeps every "
            f"test image.")
