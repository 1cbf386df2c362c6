"""Tag or untag the images picked in a gallery (a note for reviewers: no label changes, nothing dropped).

A small form under a gallery's bulk actions. Like them it acts on exactly the picked ids and then
clears the picks; its message stays beside it with an Undo for exactly that tag batch (until the
next tag action or a page change).
"""

from __future__ import annotations

import streamlit as st

from fer_core.audit import AuditReport
from fer_core.curation import tags
from fer_core.views import image_tiles

from .author import current_author
from .gallery import clear_picks, picked_ids
from .session import call_safely, flash, remember_for_page, stop_on_error, workspace


def tag_form(report: AuditReport, key: str) -> None:
    """'Tag picked' / 'Untag picked' with a tag name, for gallery `key`."""
    picks = picked_ids(key)
    last = st.session_state.get(_last_key(key))
    if last:
        with st.container(horizontal=True, vertical_alignment="center"):
            st.success(image_tiles.escape_markdown(last[0]), icon=":material/sell:")
            st.button("Undo", key=f"{key}_tag_undo", icon=":material/undo:", on_click=_undo, args=(key, last[1]),
                      help="Reverse exactly this tag batch (the tag history keeps both).")
    with stop_on_error("Cannot read the tags"):
        counts = tags.list_tags(workspace())
    with st.form(f"{key}_tag_form", border=True):
        left, right = st.columns([3, 4], vertical_alignment="bottom")
        left.text_input("Tag", key=f"{key}_tag", max_chars=tags.MAX_TAG_CHARACTERS, placeholder="e.g. blurry",
                        help="A free-form note on the picked images (one line, at most 64 characters); "
                             "filter by it in the Review sidebar. It changes no label.")
        with right.container(horizontal=True):
            for action, label in ((tags.TAG, "Tag picked"), (tags.UNTAG, "Untag picked")):
                st.form_submit_button(label, on_click=_change, args=(report, key, action), disabled=not picks)
        if counts:
            shown = " · ".join(f"{tag} ({count:,})" for tag, count in counts[:20])
            st.caption(image_tiles.escape_markdown(f"Tags in use: {shown}" + (" …" if len(counts) > 20 else "")))


def _last_key(key: str) -> str:
    return f"{key}_tag_last"


def _change(report: AuditReport, key: str, action: str) -> None:
    """Callback: tag or untag exactly the picked ids, as one batch."""
    ids = picked_ids(key)
    if not ids:
        flash("error", "Pick one or more images first (click an image to pick it).")
        return
    change = tags.add_tag if action == tags.TAG else tags.remove_tag
    batch = call_safely(change, report.dataset, ids, st.session_state.get(f"{key}_tag", ""), author=current_author(),
                        workspace=workspace(), failure="Not tagged" if action == tags.TAG else "Not untagged")
    if batch is None:
        return
    verb, state = ("Tagged", "had it already") if action == tags.TAG else ("Untagged", "did not have it")
    message = f"{verb} {len(batch.changed):,} image(s) {batch.tag!r}" + (f" ({batch.already:,} {state})"
                                                                         if batch.already else "")
    flash("ok", message)
    clear_picks(key)
    if batch.batch_id:
        st.session_state[_last_key(key)] = (message, batch.batch_id)
        remember_for_page(_last_key(key))
    else:  # nothing changed: an older batch's Undo beside this message would mislead
        st.session_state.pop(_last_key(key), None)


def _undo(key: str, batch_id: str) -> None:
    batch = call_safely(tags.undo_tag_batch, batch_id, author=current_author(), workspace=workspace(),
                        failure="Cannot undo")
    if batch is not None:
        st.session_state.pop(_last_key(key), None)
        what = "taken off" if batch.action == tags.UNTAG else "put back on"
        flash("ok", f"Undone: {batch.tag!r} {what} {len(batch.changed):,} image(s)")
