"""Glue of the Map page: the feature spaces to pick from, the map built in a background thread (once per data,
space and workspace; about a minute on FER-2013, then a file read), the figure, and its lasso or box selection
handed to the Review page (`fer_app.selection`).

The build never runs in the script thread: a click or a page change during it does not restart it, and the
page shows how long it takes (measured, `embedding_map.estimated_build_seconds`) while it waits.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st

from fer_core import jobs
from fer_core.audit import AuditReport
from fer_core.curation import edits
from fer_core.mislabels import review as mislabel_review
from fer_core.training.features import FeatureSpace, available_feature_spaces, features_path
from fer_core.views import embedding_map, image_tiles

from . import gallery, mislabels, selection
from .session import one_line, workspace

CHART = "map_chart"  # the chart's key prefix; its key ends with the selection's generation
SPACE, COLOURING, SHOW_DROPPED = "map_space", "map_colouring", "map_show_dropped"
POLL_SECONDS = 0.25
PREVIEW_IMAGES = 12
SOURCE = "the map"
log = logging.getLogger("fer_app")


@dataclass
class MapJob:
    """A background build; written by its thread, read by pages (never calls st.*)."""

    estimate: int
    reading_features: bool = False  # a run's model first reads every image (its features are not cached yet)
    started: float = field(default_factory=time.monotonic)
    coordinates: np.ndarray | None = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)


@st.cache_resource(show_spinner=False)
def _map_jobs() -> tuple[dict, threading.Lock]:
    return {}, threading.Lock()


def _build(job: MapJob, report: AuditReport, space: FeatureSpace, workspace_path: str) -> None:
    try:
        job.coordinates = embedding_map.build_map(report.dataset, space, workspace=workspace_path)
    except Exception as error:  # one line for the page; the traceback goes to the server log only
        if not isinstance(error, ValueError):
            log.exception("the map of %s failed", space.name)
        job.error = one_line(error)
    finally:
        job.finished.set()


def feature_spaces(report: AuditReport) -> list[FeatureSpace]:
    """The audit's descriptors, then each succeeded training run of this workspace, newest first."""
    runs = [record for record in jobs.list_runs(workspace()) if record.kind == "train" and record.state == "succeeded"]
    folders = {record.run_id: record.out_dir for record in sorted(runs, key=lambda r: r.created_at, reverse=True)}
    return available_feature_spaces(folders, report.dataset)


def map_job(report: AuditReport, space: FeatureSpace) -> MapJob:
    """The build of `space`'s map, started on first request; a failed build is retried on the next request."""
    workspace_path = workspace()
    key = (report.dataset.fingerprint, space.name, workspace_path)
    jobs_by_key, lock = _map_jobs()
    with lock:
        job = jobs_by_key.get(key)
        if job is None or (job.finished.is_set() and job.error):
            features_cached = space.run_dir is None or features_path(space.run_dir, report.dataset).is_file()
            job = jobs_by_key[key] = MapJob(embedding_map.estimated_build_seconds(len(report.dataset), features_cached),
                                            reading_features=not features_cached)
            threading.Thread(target=_build, args=(job, report, space, workspace_path), name="fer-map",
                             daemon=True).start()
    return job


def wait_for_map(report: AuditReport, space: FeatureSpace) -> np.ndarray | None:
    """The map's coordinates: from the cache at once, else built in the background while a progress bar
    says how long it takes; None (after a one-line message) when the build failed."""
    coordinates = embedding_map.cached_map(report.dataset, space.name, workspace=workspace())
    if coordinates is not None:
        return coordinates
    job = map_job(report, space)
    if not job.finished.is_set():
        bar = st.progress(0.0)
        while not job.finished.wait(POLL_SECONDS):
            elapsed = time.monotonic() - job.started
            reading = "; the run's model first reads every image" if job.reading_features else ""
            bar.progress(min(elapsed / job.estimate, 0.99),
                         text=f"Building the map of {len(report.dataset):,} images, about {job.estimate} s "
                              f"({elapsed:.0f} s so far{reading}); once only, it is cached after")
        bar.empty()
    if job.error:
        st.error(f"Cannot build the map: {image_tiles.escape_markdown(job.error)}")
        return None
    return job.coordinates


def space_picker(spaces: list[FeatureSpace]) -> FeatureSpace:
    labels = {space.name: space.label for space in spaces}
    if st.session_state.get(SPACE) not in labels:
        st.session_state.pop(SPACE, None)
    name = st.selectbox("Placed by", list(labels), format_func=labels.get, key=SPACE,
                        help="Shape descriptors: the audit's gradient layout of each image (no training needed), "
                             "so look-alike framings sit together. A run: what that model learned about "
                             "expressions, so images it finds alike sit together.")
    return next(space for space in spaces if space.name == name)


def colouring_picker() -> str:
    return st.selectbox("Colour by", embedding_map.colourings(), key=COLOURING,
                        format_func=lambda name: name if name in embedding_map.COLOURINGS_FIXED else f"flag: {name}",
                        help="An emotion (current label), a usage, one Review flag as it stands after the edits, or "
                             "the suspected mislabels still to decide (flagged images in red, drawn on top).")


def suspected_ids(report: AuditReport, colouring: str) -> list[str]:
    """The suspected mislabels still to decide, when the map is coloured by them (else none, unread); a link to
    the Overview when they have not been computed."""
    if colouring != embedding_map.SUSPECTED:
        return []
    result = mislabels.latest_result(report)
    if result is None:
        st.info("Suspected mislabels have not been computed for this data yet.")
        st.page_link("app.py", label="Compute them on the Overview", icon=":material/home:")
        return []
    return mislabel_review.review_queue(result, report.dataset, edits.read_state(workspace()))["id"].tolist()


def _chart_key() -> str:
    """The chart's key: a new one after every change of the selection, so the browser's memory of an older
    lasso (re-sent with later requests) never selects again."""
    return f"{CHART}_{selection.generation()}"


def _keep_selection(chart_key: str) -> None:
    """on_select: the points in a lasso or box on the current chart become the Review page's selection. An
    older chart's event is stale, and an empty one (a lasso around nothing, a redrawn chart) changes nothing:
    Clear forgets the selection."""
    event = st.session_state.get(chart_key)
    ids = embedding_map.selected_ids(event.selection.points if event is not None else [])
    if chart_key == _chart_key() and ids:
        selection.set_selection(ids, SOURCE)


def show_map(frame: pd.DataFrame, colouring: str) -> None:
    """The map, with the selection made on it standing out; a lasso or box replaces the selection."""
    picked = selection.current_selection()
    selected = picked.ids if picked is not None and picked.source == SOURCE else ()
    chart_key = _chart_key()
    st.plotly_chart(embedding_map.map_figure(frame, colouring, selected), key=chart_key,
                    on_select=functools.partial(_keep_selection, chart_key), selection_mode=("lasso", "box"),
                    config={"scrollZoom": True})


def selection_panel(report: AuditReport, table: pd.DataFrame) -> None:
    """The selection made on the map: its count, a link that opens it in Review, Clear, and its first images."""
    picked = selection.current_selection()
    if picked is None or picked.source != SOURCE:
        st.caption("Drag a lasso (or a box: the toolbar's box icon) around points to select those images, "
                   "then open them in Review. Scroll to zoom, double-click to zoom out.")
        return
    rows = embedding_map.rows_of_ids(table, picked.ids)
    with st.container(horizontal=True, vertical_alignment="center", key="map_selection"):
        st.markdown(f"**{len(picked.ids):,}** image{'s' if len(picked.ids) != 1 else ''} selected on the map.")
        st.page_link("pages/3_Review.py", label="Open in Review", icon=":material/grid_view:")
        st.button("Clear", key="map_clear_selection", on_click=selection.clear_selection, type="tertiary")
    shown = rows[:PREVIEW_IMAGES]
    if len(rows) > len(shown):
        st.caption(f"The first {len(shown)} of them:")
    gallery.image_grid(report, table, shown, key="map_preview", selectable=False)

