"""Session state, navigation, messages and the data-path guard shared by every page.

Session keys are declared here once. Session state holds ids, paths and parameters, never arrays.
Messages left by a callback (`flash`) are shown on the next run as a toast; an edit's message
also stays at the top of the page with an Undo button for exactly the batch it wrote, until the
next edit or a page change, and again beside the form that made it (`undo_here`), which on a long
page is where the reviewer is looking.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from fer_core.curation import edits
from fer_core.duplicates.limits import DEFAULT_NEAR_THRESHOLD, NEAR_MODES
from fer_core.views import audit_table as views
from fer_core.views import image_tiles
from fer_core.workspace import check_under_data_root, data_root, resolve_workspace

from .author import author_input, current_author

# Session keys that outlive a page's widgets (widget keys are declared beside their widgets).
DATA_PATH = "data_path"
THRESHOLD = "near_threshold"
NEAR_MODE = "near_mode"  # how near duplicates are found: "verified" (the default) or "hash"
FLASH = "flash"  # (kind, message): shown once on the next run
LAST_EDIT = "last_edit"  # (message, batch_id, place): the newest edit, offered for undo until a page change
CURRENT_PAGE = "current_page"
PAGE_STATE = "page_state"  # keys cleared on a page change (resolved-group markers, previews)
DATA_PATH_INPUT = "data_path_input"

# The navigation; a page whose file does not exist (yet) is left out.
PAGES: tuple[tuple[str, str, str], ...] = (
    ("app.py", "Overview", ":material/home:"),
    ("pages/1_Duplicates.py", "Duplicates", ":material/content_copy:"),
    ("pages/2_Outliers.py", "Outliers", ":material/scatter_plot:"),
    ("pages/3_Review.py", "Review", ":material/grid_view:"),
    ("pages/7_Map.py", "Map", ":material/bubble_chart:"),
    ("pages/4_Train.py", "Train", ":material/model_training:"),
    ("pages/5_Results.py", "Results", ":material/analytics:"),
    ("pages/6_Report.py", "Report", ":material/summarize:"),
)
APP_ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("fer_app")

if TYPE_CHECKING:
    from fer_core.audit import AuditReport
    from fer_core.curation.replay import Edit


def setup(title: str) -> None:
    """Page config, session defaults, the sidebar links, the title, and the messages left for this run."""
    st.set_page_config(page_title=f"FER Audit · {title}", layout="wide")
    state = st.session_state
    state.setdefault(DATA_PATH, os.environ.get("FER_DATA", ""))
    state.setdefault(THRESHOLD, DEFAULT_NEAR_THRESHOLD)
    state.setdefault(NEAR_MODE, NEAR_MODES[0])
    if state.get(CURRENT_PAGE) != title:  # a page change ends page-scoped state
        state[CURRENT_PAGE] = title
        state.pop(LAST_EDIT, None)
        for key in state.pop(PAGE_STATE, set()):
            state.pop(key, None)
    with st.sidebar:
        for path, label, icon in existing_pages():
            st.page_link(path, label=label, icon=icon)
        st.divider()
        author_input()
    from .detail import find_image_box  # the search box and the image panel (detail builds on this module)
    find_image_box()
    st.title(title)
    _show_messages()


def remember_for_page(key: str) -> None:
    """Drop session key `key` when the user leaves this page."""
    st.session_state.setdefault(PAGE_STATE, set()).add(key)


def existing_pages() -> list[tuple[str, str, str]]:
    return [page for page in PAGES if (APP_ROOT / page[0]).exists()]


def page_links(skip: str | None = None) -> None:
    """A row of links to the pages that exist."""
    pages = [page for page in existing_pages() if page[0] != skip]
    for column, (path, label, icon) in zip(st.columns(len(pages)), pages):
        column.page_link(path, label=label, icon=icon)


def workspace() -> str:
    return str(resolve_workspace().resolve())


# ---------------------------------------------------------------------------------------------
# Messages


def flash(kind: str, message: str) -> None:
    """Leave a message for the next run ("ok" or "error")."""
    st.session_state[FLASH] = (kind, message)


def flash_edit(message: str, batch_id: str, place: str | None = None) -> None:
    """Leave an edit's message for the next run, with an Undo for exactly `batch_id` (at the top, and
    beside the form `place` when given)."""
    flash("ok", message)
    st.session_state[LAST_EDIT] = (message, batch_id, place)


def undo_edit_batch(batch_id: str) -> None:
    """Callback: append the undo of exactly `batch_id` (the newest edit's, or the one picked in the history)."""
    written = call_safely(edits.undo_batch, batch_id, "undone in the app", author=current_author(),
                          failure="Cannot undo")
    if written is not None:
        if st.session_state.get(LAST_EDIT, (None, None))[1] == batch_id:
            st.session_state.pop(LAST_EDIT, None)
        flash("ok", f"Undone: {len(written)} edit{'s' if len(written) != 1 else ''} reversed")


def _show_messages() -> None:
    message = st.session_state.pop(FLASH, None)
    if message:  # a toast is seen wherever the page is scrolled; an error also stays at the top
        kind, text = message
        st.toast(image_tiles.escape_markdown(text), icon=":material/check_circle:" if kind == "ok" else ":material/error:")
        if kind != "ok":
            st.error(image_tiles.escape_markdown(text))
    last = st.session_state.get(LAST_EDIT)
    if last:
        _undo_bar(last[0], last[1], "last_edit")


def _undo_bar(text: str, batch_id: str, key: str) -> None:
    with st.container(horizontal=True, vertical_alignment="center", key=f"{key}_bar"):
        st.success(image_tiles.escape_markdown(text), icon=":material/check_circle:")
        st.button("Undo", key=f"undo_{key}", icon=":material/undo:", on_click=undo_edit_batch, args=(batch_id,),
                  help="Undo exactly this edit batch (a new row in the edit history).")


def undo_here(place: str) -> None:
    """The newest edit's message and Undo again beside the form `place` that made it: after an action at
    the bottom of a long page, the bar at the top is out of view."""
    last = st.session_state.get(LAST_EDIT)
    if last and last[2] == place:
        _undo_bar(last[0], last[1], f"last_edit_{place}")


def one_line(error: BaseException) -> str:
    """An error as one line for the browser: the message for our own ValueErrors, else the type too."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, ValueError) else f"{type(error).__name__}: {text}"


def call_safely(action: Callable, *args, failure: str, **kwargs):
    """Run a library call from a callback; on an error leave a one-line message (details in the server
    log, never a traceback in the browser) and return None."""
    try:
        return action(*args, **kwargs)
    except Exception as error:
        if not isinstance(error, ValueError):
            log.exception("%s", failure)
        flash("error", f"{failure}: {one_line(error)}")
        return None


@contextmanager
def stop_on_error(failure: str) -> Iterator[None]:
    """Around a library call in a page's run: an error becomes one line at the top, and the page stops."""
    try:
        yield
    except Exception as error:
        if not isinstance(error, ValueError):
            log.exception("%s", failure)
        st.error(image_tiles.escape_markdown(f"{failure}: {one_line(error)}"))
        st.stop()


def reason_of(key: str) -> str:
    return st.session_state.get(key, "").strip()


def apply_edit(action, *args, success: str, place: str | None = None, **kwargs) -> list[Edit] | None:
    """Call an `edits` function from a callback; leave its message (with an Undo for its batch, also beside
    the form `place`) or a one-line error. Returns the edits written, or None when nothing was written.
    The edits carry this session's author."""
    kwargs.setdefault("author", current_author())
    written = call_safely(action, *args, failure="Not done", **kwargs)
    if written is None:
        return None
    if not written:
        flash("ok", f"{success}: nothing to change (already so)")
        return written
    count = len(written)
    flash_edit(f"{success} ({count} edit{'s' if count != 1 else ''} logged)", written[0].batch_id, place)
    return written


def test_guard(report: AuditReport, ids: list[str], confirm_key: str, changes_images: bool = True) -> bool:
    """True when the action may go ahead: it touches no PublicTest/PrivateTest image, or the user
    ticked the confirmation naming how many it touches. Otherwise leaves a message and returns False."""
    count = views.count_test_images(report.dataset, ids) if changes_images else 0
    if count and not st.session_state.get(confirm_key):
        flash("error", f"Not done: this would drop or relabel {count:,} PublicTest/PrivateTest image(s), which "
                       f"changes what models are scored on. Tick “Yes, change … test image(s) too” and click "
                       "again.")
        return False
    return True


# ---------------------------------------------------------------------------------------------
# The data source


def _copy_state(source_key: str, target_key: str) -> None:
    st.session_state[target_key] = st.session_state[source_key]


def data_path_input() -> str:
    """The data source, shared by all pages (default: $FER_DATA); must lie under the data root."""
    root = data_root()
    st.text_input(f"FER-2013 data under {root} (a folder with train/ and test/, or fer2013.csv)",
                  value=st.session_state[DATA_PATH], key=DATA_PATH_INPUT, on_change=_copy_state,
                  args=(DATA_PATH_INPUT, DATA_PATH), placeholder="/path/to/fer2013")
    return st.session_state[DATA_PATH]


def checked_data_path(path: str) -> str:
    """`path` if it lies under the data root; otherwise a message and the page stops.

    Every page checks the path it is about to read, so no path from the browser reaches the library unchecked.
    """
    with stop_on_error("Cannot use this data path"):
        return str(check_under_data_root(path, data_root()))


def require_data_path() -> str:
    """Guard for the pages: stop with a link home unless a data source is chosen; returns its checked path."""
    path = st.session_state[DATA_PATH]
    if not path:
        st.warning("No data chosen yet. Choose a FER-2013 folder or CSV on the Overview page.")
        st.page_link("app.py", label="Choose the data", icon=":material/home:")
        st.stop()
    return checked_data_path(path)
