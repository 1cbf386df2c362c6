"""The Review sidebar's tag filter and saved views (named filter sets anyone on the workspace can reopen).

Opening a view sets the page's filter widgets through their session keys, in a callback, so the
widgets are drawn with the view's values on the next run. A value the view names that the data no
longer offers (a tag taken off every image) is left out, and the message says which.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from fer_core.curation import saved_views, tags
from fer_core.curation.saved_views import LIST_FILTERS, ReviewFilters
from fer_core.labels import USAGES
from fer_core.views import audit_table as views

from .audit_task import emotions
from .author import current_author
from .session import call_safely, flash, stop_on_error, workspace

TAG_FILTER = "rev_tags"
# The Review page's filter widgets by the ReviewFilters field each one holds (the page declares the others).
FILTER_KEYS = {"emotions": "rev_emotions", "usages": "rev_usages", "flags": "rev_flags", "tags": TAG_FILTER,
               "suspected_mislabels": "rev_mislabels", "show_dropped": "rev_show_dropped"}
VIEW_PICK, VIEW_NAME, VIEW_REPLACE = "rev_view_pick", "rev_view_name", "rev_view_replace"


def tag_filter() -> tuple[str, ...]:
    """'Tag (any of)': the workspace's tags, each with how many images carry it."""
    with stop_on_error("Cannot read the tags"):
        counts = dict(tags.list_tags(workspace()))
    chosen = st.session_state.get(TAG_FILTER)
    if chosen and any(tag not in counts for tag in chosen):  # a tag taken off every image leaves the filter
        st.session_state[TAG_FILTER] = [tag for tag in chosen if tag in counts]
    picked = st.multiselect("Tag (any of)", list(counts), key=TAG_FILTER,
                            format_func=lambda tag: f"{tag} ({counts.get(tag, 0):,} image{'s' * (counts.get(tag) != 1)})",
                            placeholder="Choose tags" if counts else "No tags yet",
                            help="Tags are reviewers' notes: pick images in the gallery, then Tag picked.")
    return tuple(picked)


def keep_tagged(table: pd.DataFrame, rows: np.ndarray, chosen: tuple[str, ...]) -> np.ndarray:
    """The rows whose image carries any chosen tag (all rows when none is chosen)."""
    with stop_on_error("Cannot read the tags"):
        return tags.keep_tagged_rows(table["id"].to_numpy(), rows, chosen, workspace())


def current_filters() -> ReviewFilters:
    """The filters as the page's widgets hold them now."""
    state = st.session_state
    return ReviewFilters(**{field: tuple(state.get(key) or ()) if field in LIST_FILTERS else bool(state.get(key))
                            for field, key in FILTER_KEYS.items()})


def saved_views_panel() -> None:
    """Open, delete, or save the current filters as a named view, in a sidebar expander."""
    with stop_on_error("Cannot read the saved views"):
        listed = saved_views.list_views(workspace())
    by_name = {view.name: view for view in listed}
    if st.session_state.get(VIEW_PICK) not in by_name:
        st.session_state.pop(VIEW_PICK, None)  # deleted meanwhile (here or by someone else)
    with st.expander("Saved views", icon=":material/bookmarks:"):
        picked = st.selectbox("Open view", list(by_name), index=None, key=VIEW_PICK,
                              placeholder="Choose a view" if by_name else "No saved view yet")
        if picked:
            view = by_name[picked]
            st.caption(f"{view.filters.describe()} · saved by {view.author}, {view.saved_at[:16].replace('T', ' ')} UTC")
        with st.container(horizontal=True):
            st.button("Open", key="rev_view_open", on_click=_open, args=(picked,), disabled=not picked)
            st.button("Delete", key="rev_view_delete", on_click=_delete, args=(picked,), disabled=not picked)
        st.text_input("Save view as…", key=VIEW_NAME, max_chars=saved_views.MAX_VIEW_NAME_CHARACTERS,
                      placeholder="e.g. blurry happy faces", help="Saves the filters above, for anyone on this workspace.")
        st.checkbox("Replace a view of that name", key=VIEW_REPLACE)
        st.button("Save", key="rev_view_save", on_click=_save)


def _save() -> None:
    state = st.session_state
    filters = current_filters()
    saved = call_safely(saved_views.save_view, state.get(VIEW_NAME, ""), filters, author=current_author(),
                        replace=bool(state.get(VIEW_REPLACE)), workspace=workspace(), failure="View not saved")
    if saved is not None:
        state[VIEW_NAME], state[VIEW_REPLACE], state[VIEW_PICK] = "", False, saved.name
        flash("ok", f"Saved view {saved.name!r}: {filters.describe()}")


def _open(name: str) -> None:
    view = call_safely(saved_views.read_view, name, workspace(), failure="Cannot open the view")
    known_tags = call_safely(tags.list_tags, workspace(), failure="Cannot read the tags")
    if view is None or known_tags is None:
        return
    offered = {"emotions": emotions(), "usages": USAGES, "flags": views.flag_names(), "tags": [t for t, _ in known_tags]}
    filters, left_out = view.filters.restricted_to(offered)
    for field, key in FILTER_KEYS.items():
        value = getattr(filters, field)
        st.session_state[key] = list(value) if field in LIST_FILTERS else value
    note = f"; left out (no longer in the data): {', '.join(left_out)}" if left_out else ""
    flash("ok", f"Opened view {view.name!r}: {filters.describe()}{note}")


def _delete(name: str) -> None:
    deleted = call_safely(saved_views.delete_view, name, workspace(), failure="Cannot delete the view")
    if deleted is not None:
        st.session_state.pop(VIEW_PICK, None)
        flash("ok", f"Deleted view {deleted.name!r} ({deleted.filters.describe()})")
