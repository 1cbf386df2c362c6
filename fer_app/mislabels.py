"""Suspected mislabels in the app: the Overview card (or the button that computes them as a background
job, with its progress per fold), and the Review queue (given → suggested emotion, accept or reject).

The detector runs as a `mislabels` job (fer_core.jobs), in its own process: a page only submits it
and polls its stage. The queue works from the newest result for this data, so accepting one
suggestion (which changes the curation) does not empty it.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import streamlit as st

from fer_core import jobs
from fer_core.audit import AuditReport
from fer_core.curation import edits
from fer_core.curation.replay import Edit
from fer_core.labels import TRAINING
from fer_core.mislabels import results as mislabel_results
from fer_core.mislabels import review as mislabel_review
from fer_core.mislabels.config import MislabelConfig
from fer_core.views import audit_table as views

from . import speed
from .gallery import clear_picks, image_grid, pager, picked_ids
from .session import DATA_PATH, apply_edit, call_safely, flash, test_guard, undo_here, workspace

POLL_SECONDS = 2
QUEUE = "mis"  # the Review queue's gallery key (picks, pager, form)


def _running_job() -> jobs.RunRecord | None:
    """The newest unfinished mislabels job of this workspace (after bringing run states up to date)."""
    call_safely(jobs.drain, workspace(), failure="Cannot refresh the background jobs")
    runs = call_safely(jobs.list_runs, workspace(), failure="Cannot read the background jobs") or []
    return next((run for run in runs if run.kind == "mislabels" and not run.finished), None)


def _submit(data_path: str) -> None:
    run_id = call_safely(jobs.submit, MislabelConfig(), data_path, workspace(),
                         failure="Cannot start the mislabel detector")
    if run_id is not None:
        flash("ok", f"Finding suspected mislabels in the background (run {run_id})")


def _cancel(run_id: str) -> None:
    record = call_safely(jobs.cancel, run_id, workspace(), failure="Cannot cancel")
    if record is not None:
        flash("ok", f"Mislabel detection {record.state}; finished folds are kept for the next start")


@st.cache_data(max_entries=8, show_spinner=False)
def _curated_fingerprint(raw_fingerprint: str, edit_ids: tuple[int, ...], _report: AuditReport,
                         _log: list[Edit]) -> str:
    """The curated data's fingerprint (what a current result was computed on), per edit-log state."""
    return edits.apply_edits(_report.dataset, _log).fingerprint


def overview_card(report: AuditReport, log: list[Edit]) -> None:
    """"Suspected mislabels" when a result exists (marked when it predates the latest edits), else a
    button that computes it; while the job runs, its stage (fold, epoch) refreshes by itself."""
    running = _running_job()

    @st.fragment(run_every=POLL_SECONDS if running else None)
    def card() -> None:
        job = _running_job()
        if (running is None) != (job is None):
            # It just finished (show the result), or the button here just started it: a click inside a
            # fragment reruns only the fragment, whose polling was set by the full run before the job.
            st.rerun(scope="app")
        result = latest_result(report)
        if job is not None:
            with st.container(horizontal=True, vertical_alignment="center"):
                st.info(f"Finding suspected mislabels: {job.stage or 'starting'}", icon=":material/model_training:")
                st.button("Cancel", key="mis_cancel", on_click=_cancel, args=(job.run_id,))
            return
        edit_ids = tuple(edit.edit_id for edit in log)
        current = result is not None and result.summary.get("fingerprint") == _curated_fingerprint(
            report.dataset.fingerprint, edit_ids, report, log)
        settings = MislabelConfig()
        other_settings = result is not None and result.summary.get("settings") != asdict(settings)
        with st.container(horizontal=True, vertical_alignment="center"):
            if result is not None:
                flagged = int(result.summary["flagged"])
                st.metric("Suspected mislabels", f"{flagged:,}", border=True, width=240,
                          help="Images whose given emotion a cross-validated model doubts (Confident Learning, "
                               "cleanlab). Review them on the Review page: Suspected mislabels.")
                st.page_link("pages/3_Review.py", label="Review them", icon=":material/fact_check:")
                if not current:
                    st.caption("Computed before the latest edits.")
                elif other_settings:  # e.g. a quick CLI run with a tiny model
                    used = result.summary.get("settings", {})
                    st.caption(f"Computed with other settings ({used.get('folds')} folds of {used.get('model')}, "
                               f"{used.get('size')}, up to {used.get('epochs')} epochs).")
            if result is None or not current or other_settings:
                training_images = int((report.dataset.usages == TRAINING).sum())
                speed_here = this_machine_speed(settings)
                minutes = settings.estimated_seconds(training_images, speed_here) / 60
                st.button("Find suspected mislabels" if result is None else "Recompute", key="mis_compute",
                          on_click=_submit, args=(st.session_state[DATA_PATH],),
                          help=f"Trains {settings.folds} {settings.model} models ({settings.size} size, up to "
                               f"{settings.epochs} epochs each) in the background, each on "
                               f"{settings.folds - 1} of {settings.folds} parts of the Training images.")
                where = (f"at {speed_here:,.0f} training images/s measured on this machine" if speed_here else
                         "on a 2-core CPU (an estimate from another machine: the speed measured on an idle one; "
                         "benchmarks/README.md: suspected mislabels)")
                st.caption(f"About {minutes:.0f} minutes for {training_images:,} Training images {where}.")
        if result is not None and (warning := mislabel_results.learning_warning(result)):
            st.warning(f"Suspected mislabels: {warning}.", icon=":material/warning:")

    card()


def this_machine_speed(settings: MislabelConfig) -> float | None:
    """The training images/s of the fold models' model and size measured on this machine (on the Train page),
    if any; the card itself never measures: the audit is running on this machine's CPUs as it opens."""
    try:
        measured = speed.measured_speed(settings.train_config(0))
    except ValueError:  # e.g. a bad $FER_AUDIT_CPUS, which the Train page explains
        return None
    return float(measured["images_per_second"]) if measured else None


def _decide(report: AuditReport, queue: pd.DataFrame, accept: bool) -> None:
    """Callback of the queue's form: accept the picked suggestions (one batch) or keep their labels."""
    ids = picked_ids(QUEUE)
    if not ids:
        flash("error", "Pick one or more images first (click an image to pick it).")
        return
    if accept:
        if not test_guard(report, ids, f"{QUEUE}_confirm_test"):
            return
        rows = queue[queue["id"].isin(ids)]
        written = apply_edit(mislabel_review.accept_suggestions, report.dataset, rows, workspace=workspace(),
                             success=f"Relabeled {len(rows)} image(s) to the model's suggestion", place=QUEUE)
    else:
        written = apply_edit(mislabel_review.reject_suggestions, report.dataset, ids, workspace=workspace(),
                             success=f"Kept the given label of {len(ids)} image(s)", place=QUEUE)
    if written is not None:
        clear_picks(QUEUE)
        st.session_state[f"{QUEUE}_confirm_test"] = False


def review_queue(report: AuditReport, table: pd.DataFrame, page_size: int, among: np.ndarray | None = None) -> None:
    """The suspected mislabels still to decide, most suspect first; each tile says given → suggested.
    `among`: the dataset rows the Review page's filters (emotion, usage, flag) keep; None = all."""
    result = latest_result(report)
    if result is None:
        st.info("Suspected mislabels have not been computed for this data yet.")
        st.page_link("app.py", label="Compute them on the Overview", icon=":material/home:")
        return
    queue = mislabel_review.review_queue(result, report.dataset, edits.read_state(workspace()))
    undecided = len(queue)
    if among is not None:
        queue = queue[queue["id"].isin(report.dataset.ids[among])].reset_index(drop=True)
    matching = f" match the filters (of {undecided:,} to decide)" if len(queue) != undecided else " to decide"
    st.write(f"**{len(queue):,}** suspected mislabel(s){matching}, most suspect first "
             f"(of {int(result.summary['flagged']):,} flagged).")
    rows = pd.Series([report.dataset.index_of(sample_id) for sample_id in queue["id"]], dtype="int64")
    details = pd.Series([f"{given} → {suggested} (model confidence {confidence:.2f})"
                         for given, suggested, confidence in zip(queue["label"], queue["suggested_label"],
                                                                 queue["suggested_confidence"])],
                        index=rows.to_numpy(), dtype="object")
    image_grid(report, table, rows.to_numpy()[pager(len(rows), page_size, key=f"{QUEUE}_page")], key=QUEUE,
               details=details)
    picks = picked_ids(QUEUE)
    undo_here(QUEUE)
    with st.form(f"{QUEUE}_form", border=True):
        st.write(f"**{len(picks):,}** image(s) picked" + ("" if picks else " (click images above to pick them)"))
        with st.container(horizontal=True):
            st.form_submit_button("Accept suggestion", on_click=_decide, args=(report, queue, True),
                                  disabled=not picks, type="primary")
            st.form_submit_button("Keep given label", on_click=_decide, args=(report, queue, False),
                                  disabled=not picks)
        test_count = views.count_test_images(report.dataset, picks)
        if test_count:
            st.checkbox(f"Yes, relabel {test_count:,} PublicTest/PrivateTest image(s) too", key=f"{QUEUE}_confirm_test")


def latest_result(report: AuditReport) -> mislabel_results.MislabelResult | None:
    """The newest suspected-mislabel result for the audited data, if one was computed."""
    return mislabel_results.latest_result(report.dataset, workspace())


def group_suggestion_caption(result: mislabel_results.MislabelResult | None, member_ids: list[str]) -> None:
    """Under a conflicting duplicate group: the emotion the model suggests for the photo."""
    suggestion = mislabel_review.group_suggestion(result, member_ids) if result is not None else None
    if suggestion is not None:
        emotion, confidence = suggestion
        st.caption(f"Model suggests **{emotion}** for this photo (confidence {confidence:.2f}; suspected mislabels, "
                   "computed from the Overview).")
