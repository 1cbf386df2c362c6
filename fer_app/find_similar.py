"""The panel's "Find similar" tab: an image's nearest neighbours in a chosen feature space, picked and acted on in
one batch through the galleries' pick → act form.

The features (and their normalised index) are made in a background thread, once per data, space and run folder,
and held for the session's server: a run's penultimate features take one pass of its model over every image
(minutes for a large model on a CPU), which must not block the page. While they are made, the tab says so
and polls; the panel reruns with the neighbours when they are in.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from fer_core import jobs
from fer_core.audit import AuditReport
from fer_core.training import features
from fer_core.views import image_story, similar
from fer_core.views import runs as results

from . import gallery
from .session import one_line

SIMILAR = "similar"  # the neighbours' gallery key (picks, form)
SPACE, COUNT = "similar_space", "similar_count"
NEIGHBOUR_COUNTS = (12, 24, 48)
POLL_SECONDS = 1.0
KEPT_SPACES = 4  # each holds a float32 copy of its features (FER-2013: 8 MB for descriptors, 37 MB for 256 dims)
log = logging.getLogger("fer_app")


@dataclass
class FeatureJob:
    """Features of one space being made; written by its thread, read by the panel (never calls st.*)."""

    started: float = field(default_factory=time.monotonic)
    index: similar.NeighbourIndex | None = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)


@st.cache_resource(show_spinner=False)
def _feature_jobs() -> tuple[dict, threading.Lock]:
    return {}, threading.Lock()


def _make(job: FeatureJob, report: AuditReport, space: features.FeatureSpace) -> None:
    try:
        if space.name == features.DESCRIPTORS:  # centred by their whitening; a copy's mirror is found too
            job.index = similar.NeighbourIndex.build(*features.descriptor_features_and_mirrors(report.dataset))
        else:
            job.index = similar.NeighbourIndex.build(features.feature_matrix(space, report.dataset), centre=True)
    except Exception as error:  # one line for the panel; the traceback goes to the server log only
        if not isinstance(error, ValueError):
            log.exception("the features of %s failed", space.name)
        job.error = one_line(error)
    finally:
        job.finished.set()


def feature_job(report: AuditReport, space: features.FeatureSpace) -> FeatureJob:
    """The features of `space` for this data, started on first request; a failed job is retried on the next."""
    key = (report.dataset.fingerprint, space.name, space.run_dir)
    found, lock = _feature_jobs()
    with lock:
        job = found.get(key)
        if job is None or (job.finished.is_set() and job.error):
            job = found[key] = FeatureJob()
            for old in [other for other, kept in found.items() if kept.finished.is_set()][:-KEPT_SPACES]:
                del found[old]
            threading.Thread(target=_make, args=(job, report, space), name="fer-features", daemon=True).start()
    return job


def finished_runs() -> list[jobs.RunRecord]:
    """Succeeded training runs with metrics, newest first (none when the runs cannot be read)."""
    try:
        return results.finished_with_metrics(jobs.list_runs())
    except ValueError:
        return []


def find_similar(report: AuditReport, table: pd.DataFrame, story: image_story.ImageStory) -> None:
    """The space and count pickers, the neighbours as pickable tiles with Pick all, and the pick → act form."""
    runs = {record.run_id: record.out_dir for record in finished_runs()}
    spaces = {space.name: space for space in features.available_feature_spaces(runs, report.dataset)}
    if st.session_state.get(SPACE) not in spaces:  # a run deleted, or another data: back to the descriptors
        st.session_state[SPACE] = features.DESCRIPTORS
    left, right = st.columns([3, 1])
    name = left.selectbox("Similar by", list(spaces), format_func=lambda name: spaces[name].label, key=SPACE,
                          help="Shape descriptors: the audit's near-duplicate space (a mirrored copy is found too). "
                               "A run: what its model learned (its penultimate layer), computed once per run and "
                               "data, in the background.")
    count = right.selectbox("Neighbours", NEIGHBOUR_COUNTS, key=COUNT)
    job = feature_job(report, spaces[name])
    if not job.finished.wait(0.2):
        _wait(job, spaces[name].label)
        return
    if job.error:
        st.error(f"Cannot compute the features: {job.error}")
        return
    neighbours = job.index.nearest(story.row, count)
    st.caption(f"The {len(neighbours)} images nearest to this one by {spaces[name].label.lower()}; similarity is the "
               "cosine of their feature vectors (100% = same direction, 0% = unrelated). Click images to pick them.")
    rows = neighbours["row"].to_numpy()
    live = [str(sample_id) for sample_id in table["id"].to_numpy()[rows][~table["dropped"].to_numpy()[rows]]]
    st.button("Pick all", key="similar_pick_all", icon=":material/select_all:", on_click=gallery.pick_all,
              args=(SIMILAR, live), disabled=not live, help="Pick every neighbour shown that is not dropped.")
    gallery.image_grid(report, table, rows, key=SIMILAR, details=similar.neighbour_captions(neighbours))
    gallery.bulk_actions(report, SIMILAR)


@st.fragment(run_every=POLL_SECONDS)
def _wait(job: FeatureJob, label: str) -> None:
    """While the features are made: how long so far; the panel reruns (and stays open) when they are in."""
    if job.finished.is_set():
        st.rerun(scope="app")
    st.info(f"Computing the features ({label}): {time.monotonic() - job.started:.0f} s so far. A run's model "
            "passes over every image once (minutes for a large model on a CPU); then they are kept in the run's "
            "folder.", icon=":material/hourglass_top:")
