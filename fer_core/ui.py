"""Streamlit glue, the only fer_core module that imports streamlit: session keys, the cached audit,
guards, the image grid and the edit forms the pages share.

The audit runs once per (data path, source signature, threshold, workspace) in a background
thread, so a click during the minute-long cold audit does not restart it; the page polls the
job and shows its progress. Its report is shared across sessions through `st.cache_resource`.
Edits are read back from the SQLite log on every run (milliseconds); the audit is not re-run.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from . import edits, review
from .audit import AuditConfig, AuditReport, audit_source
from .duplicates import DEFAULT_NEAR_THRESHOLD
from .labels import EMOTIONS, TEST_USAGES
from .workspace import resolve_workspace

DATA_PATH = "data_path"  # session keys that outlive the pages' widgets
THRESHOLD = "near_threshold"
FLASH = "flash"
LEAK_PREVIEW = "leak_preview"
UNDO_PICK = "undo_batch"
POLL_SECONDS = 0.25
KEPT_AUDITS = 4  # each report holds its dataset's pixels (~80 MB for FER-2013); older ones are let go
IMAGE_WIDTH = 48 * review.UPSCALE_FACTOR
TILE_WIDTH = IMAGE_WIDTH + 4
# The navigation; a page whose file does not exist (yet) is left out.
PAGES: tuple[tuple[str, str, str], ...] = (
    ("app.py", "Overview", ":material/home:"),
    ("pages/1_Duplicates.py", "Duplicates", ":material/content_copy:"),
    ("pages/2_Outliers.py", "Outliers", ":material/scatter_plot:"),
    ("pages/3_Review.py", "Review", ":material/grid_view:"),
    ("pages/4_Train.py", "Train", ":material/model_training:"),
    ("pages/5_Results.py", "Results", ":material/analytics:"),
)
APP_ROOT = Path(__file__).resolve().parents[1]


def setup(title: str) -> None:
    """Page config, session defaults, and the message left by the last edit."""
    st.set_page_config(page_title=f"FER Audit · {title}", layout="wide")
    st.session_state.setdefault(DATA_PATH, os.environ.get("FER_DATA", ""))
    st.session_state.setdefault(THRESHOLD, DEFAULT_NEAR_THRESHOLD)
    with st.sidebar:
        for path, label, icon in existing_pages():
            st.page_link(path, label=label, icon=icon)
        st.divider()
    st.title(title)
    flash = st.session_state.pop(FLASH, None)
    if flash:  # a toast is seen wherever the page is scrolled; an error also stays at the top
        kind, message = flash
        st.toast(review.escape_markdown(message), icon=":material/check_circle:" if kind == "ok" else ":material/error:")
        if kind != "ok":
            st.error(review.escape_markdown(message))


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
# The audit, once per source and threshold


@dataclass
class AuditJob:
    """A background audit; written by its thread, read by pages (never calls st.*)."""

    stage: str = "starting"
    done: int = 0
    total: int = 1
    report: AuditReport | None = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def progress(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, max(total, 1)


@st.cache_resource(show_spinner=False)
def _audit_jobs() -> tuple[dict, threading.Lock]:
    return {}, threading.Lock()


def _run_job(job: AuditJob, path: str, threshold: int, workspace_path: str) -> None:
    try:
        job.report = audit_source(path, AuditConfig(near_threshold=threshold), workspace_path, job.progress)
    except ValueError as error:
        job.error = str(error)
    except Exception as error:  # shown to the reviewer instead of a traceback; details in the server log
        job.error = f"the audit failed: {type(error).__name__}: {error}"
        raise
    finally:
        job.finished.set()


def audit_job(path: str, threshold: int, workspace_path: str) -> AuditJob:
    """The job for these inputs, started on first request; a failed job is retried on the next request."""
    key = (str(Path(path).expanduser()), review.source_signature(path), int(threshold), workspace_path)
    jobs, lock = _audit_jobs()
    with lock:
        job = jobs.get(key)
        if job is None or (job.finished.is_set() and job.error):
            job = jobs[key] = AuditJob()
            finished = [other for other, kept in jobs.items() if kept.finished.is_set()]
            for other in finished[:max(0, len(jobs) - KEPT_AUDITS)]:
                del jobs[other]
            threading.Thread(target=_run_job, args=(job, key[0], int(threshold), workspace_path),
                             name="fer-audit", daemon=True).start()
    return job


def wait_for_audit(path: str) -> AuditReport | None:
    """The audit of `path`, showing a progress bar while it runs; None (after a message) when it failed."""
    job = audit_job(path, st.session_state[THRESHOLD], workspace())
    if not job.finished.is_set():
        bar = st.progress(0.0, text="Auditing…")
        while not job.finished.wait(POLL_SECONDS):
            bar.progress(min(job.done / job.total, 1.0), text=f"Auditing: {job.stage} ({job.done:,}/{job.total:,})")
        bar.empty()
    if job.error:
        st.error(f"Cannot audit {review.escape_markdown(path)}: {review.escape_markdown(job.error)}")
        return None
    return job.report


def require_data_path() -> str:
    """Guard for the pages: stop with a link home unless a data source is chosen; returns its path."""
    path = st.session_state[DATA_PATH]
    if not path:
        st.warning("No data chosen yet. Choose a FER-2013 folder or CSV on the Overview page.")
        st.page_link("app.py", label="Choose the data", icon=":material/home:")
        st.stop()
    return path


def require_audit() -> AuditReport:
    """Guard for the pages: stop with a link home unless a data source is chosen and audits cleanly."""
    report = wait_for_audit(require_data_path())
    if report is None:
        st.page_link("app.py", label="Choose other data", icon=":material/home:")
        st.stop()
    return report


def curation(report: AuditReport) -> tuple[pd.DataFrame, list[edits.Edit]]:
    """The annotated sample table and the edit log, read fresh (cheap) on every run."""
    try:
        meta = edits.read_workspace_meta()
        log = edits.read_edits()
    except ValueError as error:
        st.error(review.escape_markdown(error))
        st.stop()
    bound = meta.get("dataset_fingerprint")
    if bound and bound != report.dataset.fingerprint:
        st.error(review.escape_markdown(
            f"The workspace {workspace()} holds edits for another dataset (fingerprint {bound}, "
            f"{meta.get('data_path', 'unknown path')}). Start the app with another FER_AUDIT_HOME."))
        st.stop()
    return review.annotate(report, edits.replay_edits(log)), log


# ---------------------------------------------------------------------------------------------
# Edits: run from widget callbacks, so the page renders once, with the new state


def apply_edit(action, *args, success: str, **kwargs) -> None:
    """Call an `edits` function; leave a success or error message for the next run."""
    try:
        written = action(*args, **kwargs)
    except ValueError as error:
        st.session_state[FLASH] = ("error", str(error))
        return
    st.session_state.pop(UNDO_PICK, None)  # the undo picker goes back to the newest batch
    count = len(written) if isinstance(written, list) else 1
    st.session_state[FLASH] = ("ok", f"{success} ({count} edit{'s' if count != 1 else ''} logged)")


def _reason(key: str) -> str:
    return st.session_state.get(key, "").strip()


def _picked(key: str) -> list[str]:
    """Ids whose pick box under `key` is ticked now (read in callbacks, so a tick made just before a
    click counts even if the page had not re-rendered yet)."""
    prefix = f"{key}_pick_"
    return [name.removeprefix(prefix) for name, ticked in st.session_state.items()
            if isinstance(name, str) and name.startswith(prefix) and ticked is True]


def _bulk_edit(report: AuditReport, key: str, action: str) -> None:
    """Callback of the bulk form: relabel, drop or mark OK the picked ids, each edit logged with the reason."""
    ids = _picked(key)
    if not ids:
        st.session_state[FLASH] = ("error", "Select one or more images first.")
        return
    reason, dataset = _reason(f"{key}_reason"), report.dataset
    if action == "drop":
        apply_edit(edits.drop, dataset, ids, reason, success=f"Dropped {len(ids)} image(s)")
    elif action == "review_ok":
        apply_edit(edits.mark_group_reviewed, dataset, ids, reason or "reviewed: OK as is",
                   success=f"Marked {len(ids)} image(s) as reviewed")
    else:
        emotion = st.session_state[f"{key}_emotion"]
        apply_edit(_relabel_many, dataset, ids, emotion, reason, success=f"Relabeled {len(ids)} image(s) to {emotion}")
    for sample_id in ids:
        st.session_state.pop(f"{key}_pick_{sample_id}", None)


def _relabel_many(dataset, ids: list[str], emotion: str, reason: str) -> list[edits.Edit]:
    """Relabel several samples to one emotion as one batch (a group relabel without the duplicate meaning)."""
    return edits.resolve_group(dataset, ids, "relabel", reason, emotion=emotion)


def image_grid(report: AuditReport, table: pd.DataFrame, rows, key: str, selectable: bool = True) -> list[str]:
    """Images of the given rows, upscaled, captioned (emotion, usage, file), with a pick box each.

    Returns the ids picked. Only the rows given are drawn, so callers pass one page.
    """
    picked = []
    with st.container(horizontal=True, gap="xsmall"):
        for row in rows:
            sample = table.iloc[int(row)]
            with st.container(width=TILE_WIDTH, gap=None):
                _tile(report, sample, int(row))
                if selectable and not sample["dropped"]:
                    if st.checkbox("pick", key=f"{key}_pick_{sample['id']}", label_visibility="collapsed"):
                        picked.append(sample["id"])
    return picked


def member_strip(report: AuditReport, members: pd.DataFrame) -> None:
    """A duplicate group side by side, each image captioned with its Hamming distance to the first."""
    with st.container(horizontal=True, gap="xsmall"):
        for _, member in members.iterrows():
            with st.container(width=TILE_WIDTH, gap=None):
                _tile(report, member, int(member["row"]), int(member["distance"]))


def _tile(report: AuditReport, sample: pd.Series, row: int, distance: int | None = None) -> None:
    label = sample["current_label"]
    parts = [label if label == sample.get("label", label) else f"{label} (was {sample['label']})", sample["usage"]]
    if distance is not None:
        parts.append(f"d={distance}")
    if sample["dropped"]:
        parts.append("DROPPED")
    caption = " · ".join(parts[:2]) + "\n\n" + " · ".join([review.short_id(sample["id"]), *parts[2:]])
    st.image(review.upscale(report.dataset.pixels[row]), width=IMAGE_WIDTH, output_format="PNG",
             caption=review.escape_markdown(caption))


def bulk_actions(report: AuditReport, key: str, picked_count: int) -> None:
    """Relabel, drop or mark OK the images picked in the grid under `key`, with a reason (one form,
    so typing causes no rerun)."""
    with st.form(f"{key}_form", border=True):
        st.write(f"**{picked_count}** image(s) picked")
        left, middle, right = st.columns([2, 4, 5], vertical_alignment="bottom")
        left.selectbox("Relabel to", EMOTIONS, key=f"{key}_emotion")
        middle.text_input("Reason", key=f"{key}_reason", placeholder="why (kept in the edit history)")
        with right.container(horizontal=True):
            for label, action in (("Relabel picked", "relabel"), ("Drop picked", "drop"), ("Mark OK", "review_ok")):
                st.form_submit_button(label, on_click=_bulk_edit, args=(report, key, action))


def pager(total: int, page_size: int, key: str) -> slice:
    """A page number input (only when there is more than one page); returns the page's slice."""
    pages = review.page_count(total, page_size)
    page = 1
    if pages > 1:
        if st.session_state.get(key, 1) > pages:  # fewer pages after an edit or a filter change
            st.session_state[key] = pages
        with st.container(horizontal=True, vertical_alignment="bottom"):
            page = st.number_input("Page", min_value=1, max_value=pages, step=1, key=key, width=160)
            st.caption(f"of {pages:,} ({total:,} in all)")
    return review.page_slice(total, int(page), page_size)


# ---------------------------------------------------------------------------------------------
# Widgets whose values outlive a page (data path, threshold) and the group/leak/undo actions


def _copy_state(source_key: str, target_key: str) -> None:
    st.session_state[target_key] = st.session_state[source_key]


def data_path_input() -> str:
    """The data source, shared by all pages (default: $FER_DATA)."""
    st.text_input("FER-2013 data (a folder with train/ and test/, or fer2013.csv)", value=st.session_state[DATA_PATH],
                  key="data_path_input", on_change=_copy_state, args=("data_path_input", DATA_PATH),
                  placeholder="/path/to/fer2013")
    return st.session_state[DATA_PATH]


def threshold_slider() -> int:
    """The near-duplicate threshold; a new value regroups (features are cached, hashes are not recomputed)."""
    # pHash sets exactly 32 of its 64 bits, so distances are even: odd thresholds would change nothing.
    st.slider("Near-duplicate threshold (Hamming bits)", 0, 16, value=int(st.session_state[THRESHOLD]), step=2,
              key="threshold_slider", on_change=_copy_state, args=("threshold_slider", THRESHOLD),
              help="Images whose 64-bit pHashes differ in at most this many bits are near duplicates. "
                   "pHash distances are even, so the slider moves in steps of 2; 6 is the default (see README).")
    return int(st.session_state[THRESHOLD])


GROUP_ACTIONS = {"keep_one": "Keep one, drop the rest", "relabel": "Relabel all to", "drop_all": "Drop all",
                 "review_ok": "Mark reviewed: OK as is"}


def _resolve_group(report: AuditReport, key: str, member_ids: list[str]) -> None:
    action, reason = st.session_state[f"{key}_action"], _reason(f"{key}_reason")
    dataset = report.dataset
    if action == "review_ok":
        apply_edit(edits.mark_group_reviewed, dataset, member_ids, reason or "reviewed: OK as is",
                   success="Group marked as reviewed")
    elif action == "keep_one":
        keep = st.session_state[f"{key}_keep"]
        apply_edit(edits.resolve_group, dataset, member_ids, "keep_one", reason, keep_id=keep,
                   success=f"Kept {keep}, dropped the other copies")
    elif action == "relabel":
        emotion = st.session_state[f"{key}_emotion"]
        apply_edit(edits.resolve_group, dataset, member_ids, "relabel", reason, emotion=emotion,
                   success=f"Relabeled the group to {emotion}")
    else:
        apply_edit(edits.resolve_group, dataset, member_ids, "drop_all", reason, success="Dropped the group")


def group_actions(report: AuditReport, key: str, members: pd.DataFrame) -> None:
    """One form per group: keep one / relabel all / drop all / mark reviewed, with a reason."""
    live = members.loc[~members["dropped"], "id"].tolist()
    with st.form(f"{key}_form", border=False):
        cols = st.columns([3, 3, 2, 4, 2], vertical_alignment="bottom")
        cols[0].selectbox("Action", list(GROUP_ACTIONS), format_func=GROUP_ACTIONS.get, key=f"{key}_action")
        usage_of = dict(zip(members["id"], members["usage"]))
        keep_options = live or members["id"].tolist()
        test_copies = [i for i, sample_id in enumerate(keep_options) if usage_of[sample_id] in TEST_USAGES]
        cols[1].selectbox("Keep", keep_options, index=(test_copies or [0])[0], key=f"{key}_keep",
                          format_func=lambda sample_id: f"{usage_of[sample_id]} {review.short_id(sample_id)}",
                          help="A test copy is suggested, so Training keeps no copy of a test image.")
        majority = members.loc[~members["dropped"], "current_label"].mode()
        cols[2].selectbox("Emotion", EMOTIONS, index=EMOTIONS.index(majority.iloc[0]) if len(majority) else 0,
                          key=f"{key}_emotion")
        cols[3].text_input("Reason", key=f"{key}_reason", placeholder="why (kept in the edit history)")
        cols[4].form_submit_button("Apply", on_click=_resolve_group, args=(report, key, members["id"].tolist()),
                                   width="stretch")


def _preview_leaks(report: AuditReport) -> None:
    try:
        planned = edits.resolve_leaks(report.dataset, max_hamming_distance=report.config.near_threshold,
                                      hashes=report.hashes, dry_run=True)
    except ValueError as error:
        st.session_state[FLASH] = ("error", str(error))
        return
    st.session_state[LEAK_PREVIEW] = [edit.sample_id for edit in planned]


def _remove_leaks(report: AuditReport) -> None:
    reason = _reason("leak_reason") or edits.DEFAULT_LEAK_REASON
    apply_edit(edits.resolve_leaks, report.dataset, reason, max_hamming_distance=report.config.near_threshold,
               hashes=report.hashes, success="Removed the Training copies of test images")
    st.session_state.pop(LEAK_PREVIEW, None)


def leak_removal(report: AuditReport, table: pd.DataFrame) -> None:
    """Dataset-wide: drop every Training copy of a test image, after a dry-run preview."""
    st.write("Drops every Training image that is an exact or near copy of a PublicTest/PrivateTest image "
             f"(threshold {report.config.near_threshold} bits), in one batch you can undo on the Review page.")
    planned = st.session_state.get(LEAK_PREVIEW)
    if planned is None:
        st.button("Preview (dry run)", key="leak_preview_button", on_click=_preview_leaks, args=(report,))
        return
    st.info(f"The dry run would drop **{len(planned):,}** Training image(s). A sample:")
    rows = np.array([report.dataset.index_of(sample_id) for sample_id in planned[:16]], dtype=np.int64)
    image_grid(report, table, rows, key="leak_sample", selectable=False)
    with st.form("leak_form", border=False):
        left, middle, right = st.columns([6, 2, 2], vertical_alignment="bottom")
        left.text_input("Reason", key="leak_reason", placeholder=edits.DEFAULT_LEAK_REASON)
        middle.form_submit_button(f"Drop {len(planned):,} images", type="primary", on_click=_remove_leaks,
                                  args=(report,), disabled=not planned, width="stretch")
        right.form_submit_button("Cancel", on_click=lambda: st.session_state.pop(LEAK_PREVIEW, None),
                                 width="stretch")


def _undo(batch_key: str) -> None:
    batch = st.session_state.get(batch_key)
    if batch:
        apply_edit(edits.undo_batch, batch, "undone in the app", success="Undone")


def undo_picker(history: pd.DataFrame) -> None:
    """Pick a batch (a whole group resolution, a bulk drop, …) and append its undo."""
    batches = review.undoable_batches(history)
    if not batches:
        st.caption("Nothing to undo.")
        return
    left, right = st.columns([5, 1], vertical_alignment="bottom")
    left.selectbox("Undo an edit batch", list(batches), format_func=batches.get,
                   key=UNDO_PICK)
    right.button("Undo", key="undo_button", on_click=_undo, args=(UNDO_PICK,), width="stretch")
