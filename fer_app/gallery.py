"""Image tiles, the pager, and the pick → act forms (relabel, drop, mark OK the picked images).

A pickable tile is a checkbox whose label is the image, so a click anywhere on the picture picks
it. Picks live in the session as a list of ids per gallery (not in the checkboxes), so the form
acts on exactly the ids it shows as picked; after an action the picks are cleared and the
checkboxes are created afresh (a new generation in their keys), so no box stays ticked.
"""

from __future__ import annotations

import base64
import functools
import io

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from fer_core.audit import AuditReport
from fer_core.curation import edits
from fer_core.views import audit_table as views
from fer_core.views import image_story, image_tiles

from .session import apply_edit, flash, reason_of, remember_for_page, test_guard, undo_here

IMAGE_WIDTH = 48 * image_tiles.UPSCALE_FACTOR
TILE_WIDTH = IMAGE_WIDTH + 4
TILE_STYLE = f"""<style>
[class*="st-key-gallery_"] [data-testid="stCheckbox"] label {{flex-direction: column-reverse; align-items: flex-start;}}
[class*="st-key-gallery_"] [data-testid="stCheckbox"] label img {{width: {IMAGE_WIDTH}px !important;
  height: {IMAGE_WIDTH}px !important; max-height: none !important; object-fit: fill !important;
  image-rendering: pixelated; cursor: pointer; outline: 3px solid transparent;}}
[class*="st-key-gallery_"] [data-testid="stCheckbox"] label:has(input:checked) img {{outline-color: #E45756;}}
</style>"""
BULK_ACTIONS = {"relabel": "Relabel picked", "drop": "Drop picked", "review_ok": "Mark OK"}
OVERALL_CHART, EMOTION_CHART = "out_box_overall", "out_box"
CHART_SELECTION = "out_chart_selection"  # rows selected in a box plot, kept across actions until a page change
MAX_SELECTED_SHOWN = 128


def picks_key(key: str) -> str:
    return f"{key}_picks"


def picked_ids(key: str) -> list[str]:
    """The ids picked in gallery `key`, in the order they were picked."""
    return list(st.session_state.get(picks_key(key), []))


def clear_picks(key: str, acted: list[str] | None = None) -> None:
    """Forget the picks of gallery `key` (or only `acted`) and recreate its checkboxes unticked."""
    remaining = [sample_id for sample_id in picked_ids(key) if acted is not None and sample_id not in acted]
    st.session_state[picks_key(key)] = remaining
    st.session_state[f"{key}_generation"] = st.session_state.get(f"{key}_generation", 0) + 1


def pick_all(key: str, sample_ids: list[str]) -> None:
    """Pick exactly `sample_ids` in gallery `key` (e.g. every neighbour shown), its checkboxes recreated ticked."""
    st.session_state[picks_key(key)] = list(sample_ids)
    st.session_state[f"{key}_generation"] = st.session_state.get(f"{key}_generation", 0) + 1


def _open_details(sample_id: str) -> None:
    from .detail import request_details  # detail builds on this module

    request_details(sample_id)


def _toggle_pick(key: str, sample_id: str, box_key: str, generation: int) -> None:
    if generation != st.session_state.get(f"{key}_generation", 0):
        return  # a box of before the last action, re-sent by a browser that had not redrawn yet: not a pick
    picks = picked_ids(key)
    if st.session_state[box_key] and sample_id not in picks:
        picks.append(sample_id)
    elif not st.session_state[box_key] and sample_id in picks:
        picks.remove(sample_id)
    st.session_state[picks_key(key)] = picks


def data_uri(image: np.ndarray) -> str:
    """A 48×48 image as a PNG data URI (the browser scales it up, pixelated)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def caption(sample: pd.Series, extra: tuple[str, ...] = (), prefix: tuple[str, ...] = ()) -> str:
    """Emotion (and former emotion), usage, then the short id and any extra facts."""
    label = sample["current_label"]
    first = [label if label == sample["label"] else f"{label} (was {sample['label']})", sample["usage"]]
    second = [*prefix, image_tiles.short_id(sample["id"]), *extra, *(["DROPPED"] if sample["dropped"] else [])]
    return " · ".join(first) + "  \n" + " · ".join(second)


def image_grid(report: AuditReport, table: pd.DataFrame, rows, key: str, selectable: bool = True,
               details: pd.Series | None = None) -> list[str]:
    """Tiles of the given rows (callers pass one page). A selectable tile is picked by a click on it.

    `details` (indexed by row) adds a line to each caption, e.g. the outlier score and its signals; without
    it, a tile says why it is in the list (its flags). Each tile has a Details button (the image's story).
    Returns the ids picked in this gallery (on any page).
    """
    generation = st.session_state.get(f"{key}_generation", 0)
    picks = set(picked_ids(key))
    details = image_story.why_lines(table, rows) if details is None else details
    st.html(TILE_STYLE)
    with st.container(horizontal=True, gap="xsmall", key=f"gallery_{key}"):
        for row in rows:
            row = int(row)
            sample = table.iloc[row]
            extra = (str(details[row]),) if details is not None and row in details.index else ()
            with st.container(width=TILE_WIDTH, gap=None, key=f"tile_{key}_{row}"):
                if selectable and not sample["dropped"]:
                    box_key = f"{key}_pick_{generation}_{sample['id']}"
                    st.checkbox(f"![{image_tiles.short_id(sample['id'])}]({data_uri(report.dataset.pixels[row])})",
                                value=sample["id"] in picks, key=box_key, on_change=_toggle_pick,
                                args=(key, sample["id"], box_key, generation))
                else:
                    st.image(tile_image(report, row, sample["dropped"]), width=IMAGE_WIDTH, output_format="PNG")
                st.caption(image_tiles.escape_markdown(caption(sample, extra)))
                st.button("Details", key=f"{key}_details_{row}", type="tertiary", icon=":material/info:",
                          on_click=_open_details, args=(sample["id"],))
    return picked_ids(key)


def tile_image(report: AuditReport, row: int, dropped: bool) -> np.ndarray:
    """A tile's enlarged pixels, greyed out when the image is dropped (its caption also says DROPPED)."""
    pixels = report.dataset.pixels[row]
    return image_tiles.upscale(image_tiles.faded(pixels) if dropped else pixels)


def member_strip(report: AuditReport, members: pd.DataFrame, table: pd.DataFrame, key: str = "strip") -> None:
    """A duplicate group side by side, each image captioned with what ties it to the group (group_members'
    `match`: the pair's kind and similarity when confirmed on pixels, else its pHash bits from #1), with its
    Details button (`key` tells apart two strips of the same group in one run, e.g. the page's and the panel's)."""
    group = "_".join(str(int(row)) for row in members["row"].head(1))
    with st.container(horizontal=True, gap="xsmall"):
        for number, member in enumerate(members.itertuples(), start=1):
            with st.container(width=TILE_WIDTH, gap=None):
                sample = table.iloc[int(member.row)]
                st.image(tile_image(report, int(member.row), sample["dropped"]), width=IMAGE_WIDTH, output_format="PNG")
                match = (member.match,) if member.match else ()
                st.caption(image_tiles.escape_markdown(caption(sample, match, prefix=(f"#{number}",))))
                st.button("Details", key=f"{key}_{group}_details_{int(member.row)}", type="tertiary",
                          icon=":material/info:", on_click=_open_details, args=(sample["id"],))


def pager(total: int, page_size: int, key: str) -> slice:
    """A page number input (only when there is more than one page); returns the page's slice."""
    pages = image_tiles.page_count(total, page_size)
    page = 1
    if pages > 1:
        if st.session_state.get(key, 1) > pages:  # fewer pages after an edit or a filter change
            st.session_state[key] = pages
        with st.container(horizontal=True, vertical_alignment="bottom"):
            page = st.number_input("Page", min_value=1, max_value=pages, step=1, key=key, width=160)
            st.caption(f"of {pages:,} ({total:,} in all)")
    return image_tiles.page_slice(total, int(page), page_size)


# ---------------------------------------------------------------------------------------------
# Pick → act


def _bulk_edit(report: AuditReport, key: str, action: str) -> None:
    """Callback of the bulk form: relabel, drop or mark OK exactly the picked ids, as one batch."""
    ids = picked_ids(key)
    if not ids:
        flash("error", "Pick one or more images first (click an image to pick it).")
        return
    reason, dataset = reason_of(f"{key}_reason"), report.dataset
    if not test_guard(report, ids, f"{key}_confirm_test", action != "review_ok"):
        return
    if action == "drop":
        written = apply_edit(edits.drop, dataset, ids, reason, success=f"Dropped {len(ids)} image(s)", place=key)
    elif action == "review_ok":
        written = apply_edit(edits.mark_group_reviewed, dataset, ids, reason or "reviewed: OK as is",
                             success=f"Marked {len(ids)} image(s) as reviewed", place=key)
    else:
        emotion = st.session_state[f"{key}_emotion"]
        written = apply_edit(edits.resolve_group, dataset, ids, "relabel", reason, emotion=emotion,
                             success=f"Relabeled {len(ids)} image(s) to {emotion}", place=key)
    if written is not None:
        clear_picks(key)
        st.session_state[f"{key}_confirm_test"] = False


def bulk_actions(report: AuditReport, key: str) -> None:
    """Relabel, drop or mark OK the images picked in gallery `key`, with a reason (one form, so typing
    causes no rerun). The form names what it will act on: exactly the picked ids."""
    picks = picked_ids(key)
    undo_here(key)  # above the form: where the form's top was before the action, so in view after it
    with st.form(f"{key}_form", border=True):
        shown = ", ".join(image_tiles.short_id(sample_id) for sample_id in picks[:12])
        more = f" and {len(picks) - 12:,} more" if len(picks) > 12 else ""
        st.write(f"**{len(picks):,}** image(s) picked" + (f": {image_tiles.escape_markdown(shown)}{more}" if picks else
                                                          " (click images above to pick them)"))
        left, middle, right = st.columns([2, 4, 5], vertical_alignment="bottom")
        left.selectbox("Relabel to", report.dataset.emotions, key=f"{key}_emotion")
        middle.text_input("Reason", key=f"{key}_reason", placeholder="why (kept in the edit history)")
        with right.container(horizontal=True):
            for action, label in BULK_ACTIONS.items():
                st.form_submit_button(label, on_click=_bulk_edit, args=(report, key, action), disabled=not picks)
        test_count = views.count_test_images(report.dataset, picks)
        if test_count:
            st.checkbox(f"Yes, change {test_count:,} PublicTest/PrivateTest image(s) too", key=f"{key}_confirm_test",
                        help="Dropping or relabeling test images changes what every later run is scored on.")
        if picks:
            st.form_submit_button("Clear picks", on_click=clear_picks, args=(key,), type="tertiary")
    from .tagging import tag_form  # tagging builds on this module's picks

    tag_form(report, key)


# ---------------------------------------------------------------------------------------------
# Box-plot selections (Outliers)


def _keep_chart_selection(chart_key: str) -> None:
    event = st.session_state.get(chart_key)
    points = event.selection.points if event is not None else []
    st.session_state[CHART_SELECTION] = image_tiles.selected_rows(points)
    remember_for_page(CHART_SELECTION)


def keep_chart_selection(chart_key: str):
    """The on_select callback of box plot `chart_key`: a new selection replaces the kept one.

    The selection is kept in the session, not read from the chart, because the chart is redrawn
    (and its selection lost) whenever an edit changes the data: acting on part of a selection
    keeps the rest in view.
    """
    return functools.partial(_keep_chart_selection, chart_key)


def chart_selection(table: pd.DataFrame) -> list[int]:
    """The kept selection's rows still live (a dropped image leaves it)."""
    dropped = table["dropped"].to_numpy(dtype=bool)
    return [row for row in st.session_state.get(CHART_SELECTION, []) if 0 <= row < len(table) and not dropped[row]]


def clear_chart_selection() -> None:
    st.session_state.pop(CHART_SELECTION, None)
    clear_picks("out_sel")
