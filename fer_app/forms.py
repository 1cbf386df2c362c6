"""Edit forms: duplicate-group resolution, the dataset-wide leak removal, the undo picker, and the
guard that asks before an action drops or relabels PublicTest/PrivateTest images.

Edits run in widget callbacks, so the page renders once, with the new state. Every edit leaves a
message with an Undo for exactly the batch it wrote (session.flash_edit).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from fer_core.audit import AuditReport
from fer_core.curation import edits
from fer_core.curation.replay import Edit
from fer_core.duplicates import status
from fer_core.views import audit_table as views
from fer_core.views import duplicate_groups, image_tiles

from .gallery import image_grid
from .session import apply_edit, call_safely, reason_of, remember_for_page, test_guard, undo_edit_batch

LEAK_PREVIEW = "leak_preview"
RESOLVED_GROUPS = "resolved_groups"  # group key → batch id, shown as "resolved · Undo" until a page change
UNDO_PICK = "undo_pick"
GROUP_ACTIONS = {"keep_one": "Keep one, drop the rest", "keep_one_relabel": "Keep one and relabel it",
                 "relabel": "Relabel all to", "drop_all": "Drop all", "review_ok": "Mark reviewed: OK as is"}
# Which fields each group action uses: only those are shown.
GROUP_FIELDS = {"keep_one": ("keep",), "keep_one_relabel": ("keep", "emotion"), "relabel": ("emotion",),
                "drop_all": (), "review_ok": ()}


# ---------------------------------------------------------------------------------------------
# Duplicate groups


def _group_plan(report: AuditReport, key: str, member_ids: list[str]) -> tuple[str, dict]:
    """The resolution and keyword arguments the group form's current values ask for."""
    action = st.session_state[f"{key}_action"]
    fields = {"keep": st.session_state.get(f"{key}_keep"), "emotion": st.session_state.get(f"{key}_emotion")}
    used = {name: fields[name] for name in GROUP_FIELDS[action]}
    resolution = {"keep_one_relabel": "keep_one"}.get(action, action)
    keyword = {"keep": "keep_id", "emotion": "emotion"}
    return resolution, {keyword[name]: value for name, value in used.items()}


def _resolve_group(report: AuditReport, key: str, member_ids: list[str]) -> None:
    reason, dataset = reason_of(f"{key}_reason"), report.dataset
    resolution, options = _group_plan(report, key, member_ids)
    if resolution == "review_ok":
        written = apply_edit(edits.mark_group_reviewed, dataset, member_ids, reason or "reviewed: OK as is",
                             success="Group marked as reviewed")
    else:
        planned = call_safely(edits.resolve_group, dataset, member_ids, resolution, reason, dry_run=True,
                              failure="Not done", **options)
        if planned is None:
            return
        touched = [edit.sample_id for edit in planned]
        if not test_guard(report, touched, f"{key}_confirm_test"):
            return
        written = apply_edit(edits.resolve_group, dataset, member_ids, resolution, reason,
                             success=_group_success(resolution, options), **options)
    if written:
        resolved = st.session_state.setdefault(RESOLVED_GROUPS, {})
        resolved[key] = written[0].batch_id
        remember_for_page(RESOLVED_GROUPS)


def _group_success(resolution: str, options: dict) -> str:
    keep = image_tiles.short_id(options["keep_id"]) if options.get("keep_id") else "one copy"
    if resolution == "keep_one":
        label = f" as {options['emotion']}" if options.get("emotion") else ""
        return f"Kept {keep}{label} and dropped the other copies"
    if resolution == "relabel":
        return f"Relabeled the group to {options['emotion']}"
    return "Dropped the group"


def resolved_group_ids(kind: str) -> frozenset[int]:
    """Groups of `kind` resolved during this page visit (shown in place until the page changes)."""
    prefix = f"group_{kind}_"
    return frozenset(int(key.removeprefix(prefix)) for key in st.session_state.get(RESOLVED_GROUPS, {})
                     if key.startswith(prefix))


def resolved_batch(key: str) -> str | None:
    """The batch that resolved group `key` on this page visit, if any."""
    return st.session_state.get(RESOLVED_GROUPS, {}).get(key)


def resolved_marker(key: str, batch_id: str) -> None:
    """A resolved group stays in place, marked, with an Undo for its batch, until the page changes."""
    with st.container(horizontal=True, vertical_alignment="center"):
        st.success("Resolved", icon=":material/task_alt:")
        st.button("Undo", key=f"{key}_undo", icon=":material/undo:", on_click=_undo_group, args=(key, batch_id))


def _undo_group(key: str, batch_id: str) -> None:
    undo_edit_batch(batch_id)
    st.session_state.get(RESOLVED_GROUPS, {}).pop(key, None)


def group_actions(report: AuditReport, key: str, members: pd.DataFrame) -> None:
    """One form per group: the action picked shows only the fields it uses (keep, emotion), plus a reason."""
    action = st.segmented_control("Action", list(GROUP_ACTIONS), format_func=GROUP_ACTIONS.get, key=f"{key}_action",
                                  default="keep_one", label_visibility="collapsed")
    action = action or "keep_one"
    live = members.loc[~members["dropped"], "id"].tolist()
    member_ids = members["id"].tolist()
    with st.form(f"{key}_form", border=False):
        columns = st.columns([4, 2, 5, 2], vertical_alignment="bottom")
        if "keep" in GROUP_FIELDS[action]:
            keep_options = live or member_ids
            keeper = edits.choose_keeper(report.dataset, keep_options)
            position = {sample_id: i + 1 for i, sample_id in enumerate(member_ids)}
            usage_of = dict(zip(members["id"], members["usage"]))
            columns[0].selectbox("Keep", keep_options, index=keep_options.index(keeper), key=f"{key}_keep",
                                 format_func=lambda sample_id: f"#{position[sample_id]} {usage_of[sample_id]} "
                                                               f"{image_tiles.short_id(sample_id)}",
                                 help="A test copy is suggested, so Training keeps no copy of a test image.")
        if "emotion" in GROUP_FIELDS[action]:
            live_labels = status.label_codes(members.loc[~members["dropped"], "current_label"])
            columns[1].selectbox("Emotion", report.dataset.emotions, index=_majority_or_first(dict(zip(live, live_labels))),
                                 key=f"{key}_emotion")
        columns[2].text_input("Reason", key=f"{key}_reason", placeholder="why (kept in the edit history)")
        columns[3].form_submit_button("Apply", on_click=_resolve_group, args=(report, key, member_ids),
                                      type="primary", width="stretch")
        test_ids = views.test_ids(report.dataset, live)
        if test_ids and action != "review_ok":
            st.checkbox(f"Yes, change PublicTest/PrivateTest image(s) too (this group has {len(test_ids):,})",
                        key=f"{key}_confirm_test")


def _majority_or_first(labels: dict[str, int]) -> int:
    """The members' majority label (the library's rule) as the suggestion; on a tie, the first member's."""
    try:
        return edits.majority_label(labels)
    except ValueError:
        return next(iter(labels.values()), 0)


# ---------------------------------------------------------------------------------------------
# Leaks


def _preview_leaks(report: AuditReport) -> None:
    planned = call_safely(edits.resolve_leaks, report.dataset, max_hamming_distance=report.config.near_threshold,
                          hashes=report.hashes, leaks=report.leaks, dry_run=True, failure="Cannot preview")
    if planned is not None:
        st.session_state[LEAK_PREVIEW] = [edit.sample_id for edit in planned]
        remember_for_page(LEAK_PREVIEW)


def _remove_leaks(report: AuditReport) -> None:
    reason = reason_of("leak_reason") or edits.DEFAULT_LEAK_REASON
    apply_edit(edits.resolve_leaks, report.dataset, reason, max_hamming_distance=report.config.near_threshold,
               hashes=report.hashes, leaks=report.leaks, success="Removed the Training copies of test images")
    st.session_state.pop(LEAK_PREVIEW, None)


def leak_removal(report: AuditReport, table: pd.DataFrame) -> None:
    """Dataset-wide: drop every Training copy of a test image, after a dry-run preview."""
    st.write("Drops every Training image that is an exact or near copy of a PublicTest/PrivateTest image "
             f"({duplicate_groups.near_mode_note(report.config.near_mode, report.config.near_threshold)}), in one batch you "
             "can undo. Test images are kept.")
    planned = st.session_state.get(LEAK_PREVIEW)
    if planned is None:
        st.button("Preview (dry run)", key="leak_preview_button", on_click=_preview_leaks, args=(report,))
        return
    st.info(f"The dry run would drop **{len(planned):,}** Training image(s). A sample:")
    rows = [report.dataset.index_of(sample_id) for sample_id in planned[:16]]
    image_grid(report, table, rows, key="leak_sample", selectable=False)
    with st.form("leak_form", border=False):
        left, middle, right = st.columns([6, 2, 2], vertical_alignment="bottom")
        left.text_input("Reason", key="leak_reason", placeholder=edits.DEFAULT_LEAK_REASON)
        middle.form_submit_button(f"Drop {len(planned):,} images", type="primary", on_click=_remove_leaks,
                                  args=(report,), disabled=not planned, width="stretch")
        right.form_submit_button("Cancel", on_click=lambda: st.session_state.pop(LEAK_PREVIEW, None),
                                 width="stretch")


# ---------------------------------------------------------------------------------------------
# Undo from the history


def _undo_picked(newest: str) -> None:
    batch = st.session_state.get(f"{UNDO_PICK}_{newest}")
    if batch:
        undo_edit_batch(batch)


def undo_picker(history: pd.DataFrame) -> None:
    """Pick an active batch (newest first, by id) and append its undo; the picker starts on the newest
    batch every time the log gains one, so Undo never targets an older batch by surprise."""
    batches = image_tiles.undoable_batches(history)
    if not batches:
        st.caption("Nothing to undo.")
        return
    newest = next(iter(batches))
    left, right = st.columns([5, 1], vertical_alignment="bottom")
    # Keyed by the newest batch: a new edit makes a new widget, which starts on its first option.
    left.selectbox("Undo an edit batch", list(batches), format_func=batches.get, key=f"{UNDO_PICK}_{newest}")
    right.button("Undo", key="undo_button", on_click=_undo_picked, args=(newest,), width="stretch")
