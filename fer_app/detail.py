"""An image's whole story in a dialog, opened from any tile's Details, a confusion cell's image, or the sidebar's
"Find image by id" box; and "Find similar" inside it: the nearest images, picked and acted on in one batch.

A Details click (a callback) only leaves the id in the session (`request_details`); the next run of any page
opens the panel from `find_image_box`, which `session.setup` calls in the sidebar. The panel is a fragment:
its widgets rerun only the panel, so it stays open while the reviewer acts, and the edits use the same pick
→ act forms as the galleries (one batch each, with their Undo). Closing it reruns the page underneath.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from fer_core.audit import AuditReport
from fer_core.curation import edits
from fer_core.views import duplicate_groups, image_story, image_tiles, predictions
from fer_core.views import runs as results
from fer_core.workspace import check_under_data_root, data_root

from . import audit_task, find_similar, gallery, session

REQUEST = "detail_request"  # the id (or a search) whose panel opens on the next run
OPEN = "detail_open"  # the id whose panel is open
SEARCH = "detail_search"
DETAIL = "detail"  # the gallery key of the panel's own image (its pick → act form)
TAB = "detail_tab"
PANEL_IMAGE_FACTOR = 5  # 48 px → 240 px
SMALL_TILE_WIDTH = 120  # a confusion cell's tiles: many in a row beside the matrix
PREDICTION_COLUMNS = {"confidence": st.column_config.NumberColumn("confidence", format="percent"),
                      "current_label_probability": st.column_config.NumberColumn("p(current label)",
                                                                                 format="percent")}


def request_details(sample_id: str) -> None:
    """Callback of a Details button: open this image's panel on the next run."""
    st.session_state[REQUEST] = str(sample_id)


def details_button(sample_id: str, key: str) -> None:
    st.button("Details", key=key, type="tertiary", icon=":material/info:", on_click=request_details,
              args=(sample_id,), help="This image's whole story: flags, copies, predictions, history; find similar.")


def tiles_with_details(pixels: list[np.ndarray], captions: list[str], ids: list[str], key: str) -> None:
    """Plain tiles (no picking), each with a Details button: e.g. a confusion cell's test images."""
    with st.container(horizontal=True, gap="xsmall", key=f"details_tiles_{key}"):
        for number, (image, text, sample_id) in enumerate(zip(pixels, captions, ids)):
            with st.container(width=SMALL_TILE_WIDTH + 4, gap=None):
                st.image(image_tiles.upscale(image, 2), width=SMALL_TILE_WIDTH, output_format="PNG")
                st.caption(image_tiles.escape_markdown(text))
                details_button(sample_id, f"{key}_details_{number}")


# ---------------------------------------------------------------------------------------------
# The search box and the opening of the panel (every page, through session.setup)


def _search() -> None:
    """Callback of the search box: look the text up on the next run, and empty the box (so the same id can be
    asked for again after the panel is closed)."""
    st.session_state[REQUEST] = ("search", st.session_state.get(SEARCH, ""))
    st.session_state[SEARCH] = ""


def find_image_box() -> None:
    """The sidebar's "Find image by id" box; shows the panel asked for by it or by a Details click, and keeps it
    open across the page's reruns until it is closed (or the page changes)."""
    with st.sidebar:
        st.text_input("Find image by id", key=SEARCH, on_change=_search, placeholder="e.g. Training_10118481.jpg",
                      help="An image's id, or part of one (its file name); Enter opens its story.")
    request = st.session_state.pop(REQUEST, None)
    if request is None and not st.session_state.get(OPEN):
        return
    with st.sidebar:
        report = _audit()
        if report is None:
            return
        if isinstance(request, tuple):  # a search: find the id first
            found = image_story.find_image(report.dataset.ids, request[1])
            if found.row is None:
                st.caption(image_tiles.escape_markdown(found.message))
                return
            request = str(report.dataset.ids[found.row])
    if request is not None:
        st.session_state[OPEN] = request
        session.remember_for_page(OPEN)
        for key in (DETAIL, find_similar.SIMILAR):
            gallery.clear_picks(key)
    sample_id = st.session_state[OPEN]
    if not report.dataset.has_id(sample_id):
        st.session_state.pop(OPEN, None)
        st.sidebar.caption(image_tiles.escape_markdown(f"No image with id {sample_id!r} in the data chosen on the "
                                                       "Overview."))
        return
    panel(report, sample_id)


def _close() -> None:
    st.session_state.pop(OPEN, None)


def _audit() -> AuditReport | None:
    """The audit of the session's data (the pages' own, cached); None with one line when there is none."""
    path = st.session_state.get(session.DATA_PATH)
    if not path:
        st.caption("Choose the data on the Overview first.")
        return None
    try:
        check_under_data_root(path, data_root())
    except ValueError as error:
        st.caption(image_tiles.escape_markdown(f"Cannot use this data path: {session.one_line(error)}"))
        return None
    return audit_task.wait_for_audit(path)


# ---------------------------------------------------------------------------------------------
# The panel


@st.dialog("Image details", width="large", on_dismiss=_close)
def panel(report: AuditReport, sample_id: str) -> None:
    table, _ = audit_task.curation(report)
    row = report.dataset.index_of(sample_id)
    _messages()
    story = image_story.tell_story(report, table, row, mislabels=_mislabel_table(report),
                                   predictions=_run_predictions(), history=edits.history(sample_id=sample_id))
    # a keyed tab keeps its place across the panel's reruns (an action's Undo stands in the tab that acted), and
    # only the open tab runs: a run's features are computed only when asked for
    about, similar_tab = st.tabs(["The story", "Find similar"], key=TAB, on_change="rerun")
    if about.open:
        with about:
            _story(report, table, story)
    if similar_tab.open:
        with similar_tab:
            find_similar.find_similar(report, table, story)
    if st.session_state.get(REQUEST):  # a Details click inside the panel: open that image's panel instead
        st.rerun(scope="app")


def _messages() -> None:
    """An action's message inside the panel (the page's own toast waits for a full run)."""
    message = st.session_state.pop(session.FLASH, None)
    if message:
        kind, text = message
        (st.success if kind == "ok" else st.error)(image_tiles.escape_markdown(text))


def _story(report: AuditReport, table: pd.DataFrame, story: image_story.ImageStory) -> None:
    left, right = st.columns([1, 2])
    pixels = report.dataset.pixels[story.row]
    left.image(image_tiles.upscale(image_tiles.faded(pixels) if story.dropped else pixels, PANEL_IMAGE_FACTOR),
               output_format="PNG")
    with right:
        st.code(story.sample_id, language=None)
        was = f" (was {story.label})" if story.current_label != story.label else ""
        status = " · **DROPPED**" if story.dropped else " · reviewed OK" if story.reviewed else ""
        st.markdown(f"**{story.current_label}**{was} · {story.usage}{status}")
        if story.flags:
            st.markdown("\n".join(f"- **{name}**: {image_tiles.escape_markdown(text)}" for name, text in story.flags))
        else:
            st.caption("No flag: the audit found no copy, leak or outlier here.")
    if story.group is not None:
        st.markdown(f"**{image_tiles.escape_markdown(duplicate_groups.group_title(story.group, report))}**")
        gallery.member_strip(report, duplicate_groups.group_members(report, table, story.group), table, key="detail")
        st.dataframe(story.copies[["id", "kind", "decided_by"]], hide_index=True, key="detail_copies",
                     column_config={"decided_by": st.column_config.TextColumn("what decided the pair", width="large")})
    st.markdown("**Act on this image** (one edit batch, undoable)")
    st.session_state[gallery.picks_key(DETAIL)] = [] if story.dropped else [story.sample_id]
    gallery.bulk_actions(report, DETAIL)
    st.markdown("**Predictions of the finished runs**")
    if story.predictions.empty:
        st.caption("No finished run scored this image (runs score the PublicTest and PrivateTest images only)."
                   if story.usage == "Training" else "No finished run with per-image predictions scored this image.")
    else:
        st.dataframe(story.predictions, hide_index=True, key="detail_predictions", column_config=PREDICTION_COLUMNS)
    st.markdown("**Edit history**")
    if story.history.empty:
        st.caption("No edit of this image yet.")
    else:
        st.dataframe(story.history.iloc[::-1], hide_index=True, key="detail_history",
                     column_order=["edit_id", "action", "old_label", "new_label", "reason", "author", "created_at",
                                   "active", "batch_id"])


def _run_predictions() -> list[tuple[str, pd.DataFrame]]:
    """(run label, predictions.csv) of each finished run that wrote one, newest first."""
    found = []
    for record in find_similar.finished_runs():
        path = Path(record.out_dir) / predictions.PREDICTIONS_NAME
        if path.is_file():
            found.append((results.describe_run(record), _read_predictions(str(path), path.stat().st_mtime_ns)))
    return found


@st.cache_data(show_spinner=False, max_entries=32)
def _read_predictions(path: str, modified_ns: int) -> pd.DataFrame:
    """A run's predictions.csv (read once per file version: the panel reruns on every click in it)."""
    return pd.read_csv(path)


def _mislabel_table(report: AuditReport) -> pd.DataFrame | None:
    from fer_core.mislabels import results as mislabel_results

    result = mislabel_results.latest_result(report.dataset, session.workspace())
    return None if result is None else result.table
