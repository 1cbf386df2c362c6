"""The audit in a background thread, once per (data path, source signature, near mode, workspace, and
the pHash threshold in pHash mode).

A click during the cold audit (seconds to a minute) does not restart it: the page polls the job
and shows its progress. The fast stages come first and are shown at once; the same thread then
runs the face stage (minutes on a first audit, cached after) and swaps in the full report.
Reports are shared across sessions through `st.cache_resource`. Edits are read back from the
SQLite log on every run (milliseconds); the audit is not re-run.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import streamlit as st

from fer_core.audit import AuditConfig, AuditReport, audit_source
from fer_core.curation import edits
from fer_core.curation.replay import Edit
from fer_core.dataset.label_sets import remembered_labels
from fer_core.duplicates.limits import DEFAULT_NEAR_THRESHOLD, MAX_NEAR_THRESHOLD
from fer_core.labels import EMOTIONS
from fer_core.progress import time_left_text
from fer_core.views import audit_table as views
from fer_core.views import image_tiles
from fer_core.workspace import check_under_data_root, data_root

from .session import (DATA_PATH, NEAR_MODE, THRESHOLD, checked_data_path, one_line, require_data_path, stop_on_error,
                      workspace)

POLL_SECONDS = 0.25
# A face stage read from the workspace's cache takes ~0.6 s on FER-2013: waiting that long spares every
# app start a progress bar that flashes and vanishes.
CACHED_FACE_STAGE_SECONDS = 1.5
KEPT_AUDITS = 4  # each report holds its dataset's pixels (~80 MB for FER-2013); older ones are let go
THRESHOLD_SLIDER = "threshold_slider"
NEAR_MODE_RADIO = "near_mode_radio"
NEAR_MODE_LABELS = {"verified": "Confirmed on pixels", "hash": "pHash distance"}
log = logging.getLogger("fer_app")
# The face stage takes minutes on a first audit and does not depend on the near settings: one at a time.
_FACE_STAGE_LOCK = threading.Lock()


@dataclass
class AuditJob:
    """A background audit; written by its thread, read by pages (never calls st.*)."""

    stage: str = "starting"
    done: int = 0
    total: int = 1
    report: AuditReport | None = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    faces_finished: threading.Event = field(default_factory=threading.Event)  # the full report is in
    face_error: str | None = None
    stage_started: float = field(default_factory=time.monotonic)  # when the current stage began (its rate)

    def progress(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.stage_started = time.monotonic()
        self.stage, self.done, self.total = stage, done, max(total, 1)

    def time_left(self) -> str:
        """The current stage's time left at the rate measured since it began."""
        return time_left_text(self.done, self.total, time.monotonic() - self.stage_started)


@st.cache_resource(show_spinner=False)
def _audit_jobs() -> tuple[dict, threading.Lock]:
    return {}, threading.Lock()


def _run_job(job: AuditJob, path: str, threshold: int, near_mode: str, workspace_path: str) -> None:
    try:
        config = AuditConfig(near_threshold=threshold, near_mode=near_mode)
        job.report = audit_source(path, config, workspace_path, job.progress)
    except Exception as error:  # shown to the reviewer as one line; the traceback goes to the server log only
        if not isinstance(error, ValueError):
            log.exception("the audit of %s failed", path)
        job.error = one_line(error)
        job.faces_finished.set()
    finally:
        job.finished.set()
    if job.error is None:
        try:
            config = AuditConfig(near_threshold=threshold, near_mode=near_mode, face_stage=True)
            with _FACE_STAGE_LOCK:  # a second job (another near mode) then reads the first one's cached faces
                job.report = audit_source(path, config, workspace_path, job.progress)
        except Exception as error:  # the fast report stays; the page says the face stage failed
            if threading.main_thread().is_alive():  # not the interpreter shutting down under the thread
                log.exception("the face stage of %s failed", path)
            job.face_error = one_line(error)
        finally:
            job.faces_finished.set()


def source_signature(path: str | os.PathLike) -> str:
    """A cheap key for "has this data source changed": sizes and mtimes of the file or its folders.

    Adding, removing or renaming an image changes its folder's mtime, so the two folder levels of
    a FER tree (split/emotion) suffice; the loader's own cache checks every file.
    """
    source = Path(path).expanduser()
    if not source.exists():
        return "missing"
    stat = source.stat()
    parts = [str(source.resolve()), f"{stat.st_size}:{stat.st_mtime_ns}"]
    if source.is_dir():
        for split in sorted(p for p in source.iterdir() if p.is_dir()):
            parts.append(f"{split.name}:{split.stat().st_mtime_ns}")
            parts.extend(f"{split.name}/{sub.name}:{sub.stat().st_mtime_ns}"
                         for sub in sorted(q for q in split.iterdir() if q.is_dir()))
    return "|".join(parts)


def audit_job(path: str, threshold: int, workspace_path: str, near_mode: str = "verified") -> AuditJob:
    """The job for these inputs, started on first request; a failed job is retried on the next request."""
    # A --labels remembered since (given on the CLI) changes the data's label set: a new audit.
    signature = f"{source_signature(path)}|labels={remembered_labels(path, workspace_path)}"
    key = (str(Path(path).expanduser()), signature, int(threshold), near_mode, workspace_path)
    jobs, lock = _audit_jobs()
    with lock:
        job = jobs.get(key)
        if job is None or (job.finished.is_set() and job.error):
            job = jobs[key] = AuditJob()
            finished = [other for other, kept in jobs.items() if kept.finished.is_set()]
            for other in finished[:max(0, len(jobs) - KEPT_AUDITS)]:
                del jobs[other]
            threading.Thread(target=_run_job, args=(job, key[0], int(threshold), near_mode, workspace_path),
                             name="fer-audit", daemon=True).start()
    return job


def emotions() -> tuple[str, ...]:
    """The label set of the data this session audits, for widgets drawn before the page waits for its audit
    (a sidebar's emotion filter): the dataset's once an audit of it is in, FER-2013's seven until then."""
    report = finished_audit()
    return report.dataset.emotions if report is not None else EMOTIONS


def finished_audit() -> AuditReport | None:
    """The finished audit of the data this session names, without waiting for one (None if none is in)."""
    try:
        path = str(check_under_data_root(st.session_state.get(DATA_PATH) or "", data_root()))
    except ValueError:
        return None
    jobs, lock = _audit_jobs()
    with lock:
        done = [job.report for key, job in jobs.items()
                if key[0] == path and key[4] == workspace() and job.finished.is_set() and job.report is not None]
    return done[-1] if done else None


def wait_for_audit(path: str) -> AuditReport | None:
    """The audit of `path` (checked against the data root), with a progress bar while it runs;
    None (after a one-line message) when it failed."""
    path = checked_data_path(path)
    near_mode = st.session_state[NEAR_MODE]
    # Pixel-confirmed near copies do not use the pHash threshold: a slider moved in pHash mode must
    # not start a second, identical audit when the reviewer switches back.
    threshold = st.session_state[THRESHOLD] if near_mode == "hash" else DEFAULT_NEAR_THRESHOLD
    job = audit_job(path, threshold, workspace(), near_mode)
    if not job.finished.is_set():
        bar = st.progress(0.0, text="Auditing…")
        while not job.finished.wait(POLL_SECONDS):
            bar.progress(min(job.done / job.total, 1.0), text=f"Auditing: {job.stage} ({job.done:,}/{job.total:,})")
        bar.empty()
    if job.error:
        st.error(f"Cannot audit {image_tiles.escape_markdown(path)}: {image_tiles.escape_markdown(job.error)}")
        return None
    if job.stage != "faces":  # not computing faces (yet): a cached face stage ends within a second
        job.faces_finished.wait(CACHED_FACE_STAGE_SECONDS)
    if not job.faces_finished.is_set():
        _face_stage_progress(job)
    elif job.face_error:
        st.warning(f"The face stage failed ({image_tiles.escape_markdown(job.face_error)}); outlier kinds come from "
                   "pixels only.")
    return job.report


@st.fragment(run_every=2.0)
def _face_stage_progress(job: AuditJob) -> None:
    """The face stage's progress under the page; the page reruns with the full report when it is in."""
    if job.faces_finished.is_set():
        st.rerun(scope="app")
    if job.stage == "faces":
        st.progress(min(job.done / job.total, 1.0), text=f"Face stage: {job.done:,}/{job.total:,} images · "
                                                         f"{job.time_left()}; no-usable-face outliers appear when "
                                                         "it is done")
    else:
        st.progress(0.0, text="Face stage starting…")


def require_audit() -> AuditReport:
    """Guard for the pages: stop with a link home unless a data source is chosen and audits cleanly."""
    report = wait_for_audit(require_data_path())
    if report is None:
        st.page_link("app.py", label="Choose other data", icon=":material/home:")
        st.stop()
    return report


def curation(report: AuditReport) -> tuple[pd.DataFrame, list[Edit]]:
    """The annotated sample table and the edit log, read fresh (cheap) on every run; the page stops
    with one line when the workspace holds edits of another dataset or cannot be read."""
    with stop_on_error("Cannot read the edit log"):
        log_rows = edits.read_edits()
        edits.check_workspace_dataset(report.dataset)
    return views.annotate(report, edits.replay_edits(log_rows)), log_rows


def _copy_near_settings() -> None:
    st.session_state[NEAR_MODE] = st.session_state.get(NEAR_MODE_RADIO, st.session_state[NEAR_MODE])
    st.session_state[THRESHOLD] = st.session_state.get(THRESHOLD_SLIDER, st.session_state[THRESHOLD])


def near_settings() -> None:
    """How near duplicates are found, and the pHash threshold where it applies; a change re-audits
    (features and verified pairs are cached, so it takes seconds)."""
    mode = st.radio("Near duplicates found by", tuple(NEAR_MODE_LABELS), format_func=NEAR_MODE_LABELS.get,
                    index=tuple(NEAR_MODE_LABELS).index(st.session_state[NEAR_MODE]), key=NEAR_MODE_RADIO,
                    on_change=_copy_near_settings,
                    help="Confirmed on pixels (default): candidate pairs are checked image against image, so "
                         "shifted, cropped and mirrored copies are found and look-alikes are not merged. "
                         "pHash distance: images whose 64-bit pHashes differ in at most the threshold's bits "
                         "(the study's method; no pixel check).")
    if mode == "hash":
        # pHash sets exactly 32 of its 64 bits, so distances are even: odd thresholds would change nothing.
        st.slider("Near-duplicate threshold (Hamming bits)", 0, MAX_NEAR_THRESHOLD,
                  value=int(st.session_state[THRESHOLD]), step=2, key=THRESHOLD_SLIDER, on_change=_copy_near_settings,
                  help="Images whose 64-bit pHashes differ in at most this many bits are near duplicates. "
                       "pHash distances are even, so the slider moves in steps of 2; 6 is the default "
                       "(see docs/METHODS.md). "
                       "A group is a chain of such pairs, so two members of one group can differ in more bits.")
    else:
        verify = AuditConfig().near_verify
        st.caption(f"A pair counts when its pixels match after the best shift (up to {verify.max_shift} px), "
                   f"scale or mirror: similarity ≥ {verify.min_similarity} ({verify.wide_min_similarity} when only "
                   "a mirror or a wide shift explains it). No threshold to set.")
