"""The ways into keyboard review from the pages: the Review page's queues (suspected mislabels, or the
images its filters keep), the Outliers page's ranked outliers of a kind, the Duplicates page's groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from fer_core.audit import AuditReport
from fer_core.curation import edits
from fer_core.views import review_queue

from ..mislabels import latest_result
from ..session import stop_on_error, workspace
from .review import review

MODE_LABEL = "Keyboard review: one at a time"
MODE_HELP = ("One image (or group) at a time, large, with why it is in the queue; keys decide "
             "(→/j next, ←/k previous, a accept, o keep, 1–9 relabel, d drop, u/z undo) and each decision is "
             "written at once.")


HISTORY_NOTE = ("The edit history shows here when keyboard review is off; each decision is already written, "
                "and the panel above lists this review's newest.")


def mode_toggle(place: str) -> bool:
    """The switch between a page's gallery and keyboard review (on: keyboard review)."""
    return st.toggle(MODE_LABEL, key=f"{place}_keyboard", help=MODE_HELP)


def review_page(report: AuditReport, table: pd.DataFrame, rows: np.ndarray, suspected: bool) -> None:
    """The Review page: the suspected-mislabel queue among the filtered `rows`, or the filtered images."""
    result = latest_result(report)
    if not suspected:
        review(report, review_queue.filter_queue(report, table, rows, result), "rev")
        return
    if result is None:
        st.info("Suspected mislabels have not been computed for this data yet.")
        st.page_link("app.py", label="Compute them on the Overview", icon=":material/home:")
        return
    with stop_on_error("Cannot read the edit log"):
        state = edits.read_state(workspace())
    queue = review_queue.mislabel_queue(result, report.dataset, state, among=report.dataset.ids[rows].tolist())
    review(report, queue, "rev_mis")


def outlier_review(report: AuditReport, table: pd.DataFrame, ranked: np.ndarray, kind: str) -> None:
    """The Outliers page's ranked images (its kind and sidebar filters), most outlying first."""
    review(report, review_queue.outlier_queue(report, table, ranked, kind), "out")


def group_review(report: AuditReport, table: pd.DataFrame, groups: pd.DataFrame, kind: str) -> None:
    """The Duplicates page's filtered groups (e.g. conflicting labels only), one group at a time."""
    review(report, review_queue.group_queue(report, table, groups, kind, latest_result(report)), f"dup_{kind}")
