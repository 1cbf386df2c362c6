"""Download the curated dataset (FER-2013 CSV plus an `id` column) and its manifest from the app, through
fer_core.curation.export.

The CSV (about 300 MB for FER-2013) is built in a background thread when asked, with a progress bar and
the time left, into a temporary folder kept while the server runs (the newest build per data and edit
state; older ones are removed); the download button then serves the finished file, and the browser shows
the transfer. The manifest is small and built when its button is clicked.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from fer_core.audit import AuditReport
from fer_core.curation import edits, export
from fer_core.curation.tags import tags_by_image
from fer_core.progress import time_left_text

from .session import call_safely, one_line, workspace

POLL_SECONDS = 1.0
KEPT_BUILDS = 2  # finished CSVs kept on disk (300 MB each for FER-2013); older ones are removed
log = logging.getLogger("fer_app")


@dataclass
class CsvBuild:
    """A curated CSV being written in a background thread (which never calls st.*)."""

    folder: tempfile.TemporaryDirectory = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="fer-export-"))
    done: int = 0
    total: int = 1
    started: float = field(default_factory=time.monotonic)
    path: Path | None = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def progress(self, stage: str, done: int, total: int) -> None:
        self.done, self.total = done, max(total, 1)


@st.cache_resource(show_spinner=False)
def _builds() -> tuple[dict, threading.Lock]:
    return {}, threading.Lock()


def curated_csv(report: AuditReport, workspace_path: str) -> bytes:
    """The curated view of the audited data as `emotion,pixels,Usage,id` CSV bytes (the export CLI's file)."""
    with tempfile.TemporaryDirectory(prefix="fer-export-") as scratch:
        result = export.export_curated(report.dataset, Path(scratch) / "curated.csv", "csv", workspace=workspace_path)
        return result.path.read_bytes()


def curated_manifest(report: AuditReport, workspace_path: str) -> bytes:
    """The manifest of that export: source, every edit in effect, counts before and after, tags (JSON)."""
    curated, log_rows = edits.read_curation(report.dataset, workspace_path)
    manifest = export.build_manifest(report.dataset, curated, log_rows, "csv", image_tags=tags_by_image(workspace_path))
    return (json.dumps(manifest, indent=2) + "\n").encode()


def _build(build: CsvBuild, report: AuditReport, workspace_path: str) -> None:
    try:
        out = Path(build.folder.name) / "curated.csv"
        build.path = export.export_curated(report.dataset, out, "csv", workspace=workspace_path,
                                           progress=build.progress).path
    except Exception as error:  # one line in the browser; the traceback in the server log
        if not isinstance(error, ValueError):
            log.exception("the curated CSV export failed")
        build.error = one_line(error)
    finally:
        build.finished.set()


def _build_key(report: AuditReport, workspace_path: str) -> tuple:
    """The data and its edit state: a new edit asks for a new file."""
    log_rows = edits.read_edits(workspace_path)
    return report.dataset.fingerprint, workspace_path, len(log_rows), log_rows[-1].edit_id if log_rows else 0


def _start(report: AuditReport, workspace_path: str, key: tuple) -> None:
    """Callback of the Prepare button: a build for this data and edit state (a failed one is retried)."""
    builds, lock = _builds()
    with lock:
        build = builds.get(key)
        if build is not None and not build.error:
            return
        builds[key] = build = CsvBuild()
        finished = [other for other, kept in builds.items() if kept.finished.is_set() and other != key]
        for other in finished[:max(0, len(builds) - KEPT_BUILDS)]:
            builds.pop(other).folder.cleanup()
    threading.Thread(target=_build, args=(build, report, workspace_path), name="fer-export", daemon=True).start()


@st.fragment(run_every=POLL_SECONDS)
def _build_progress(build: CsvBuild) -> None:
    """The build's progress bar with the time left at the rate measured so far; the page reruns when done."""
    if build.finished.is_set():
        st.rerun(scope="app")
    elapsed = time.monotonic() - build.started
    st.progress(min(build.done / build.total, 1.0),
                text=f"Writing the curated CSV: {build.done:,}/{build.total:,} images · "
                     f"{time_left_text(build.done, build.total, elapsed)}")


def export_buttons(report: AuditReport) -> None:
    """Prepare (in the background, with progress) then download the curated CSV; download the manifest."""
    home = workspace()
    key = call_safely(_build_key, report, home, failure="Cannot read the edit log")
    build = _builds()[0].get(key) if key is not None else None
    stem = f"fer2013_curated_{report.dataset.fingerprint[:12]}"
    with st.container(horizontal=True, vertical_alignment="center"):
        if build is not None and build.finished.is_set() and build.path is not None:
            megabytes = build.path.stat().st_size / 1e6
            size = f"{megabytes:,.1f}" if megabytes < 10 else f"{megabytes:,.0f}"
            st.download_button(f"Curated data (CSV, {size} MB)", lambda: build.path.read_bytes(),
                               file_name=f"{stem}.csv", mime="text/csv", icon=":material/download:",
                               key="export_csv", on_click="ignore",
                               help="FER-2013's CSV format (emotion, pixels, Usage) and a last column id, the sample "
                                    "each row comes from; dropped images left out, relabeled ones with their new "
                                    "emotion. Your browser shows the download's progress.")
        elif build is None or build.error:
            st.button("Prepare the curated CSV", key="export_prepare", icon=":material/build:", disabled=key is None,
                      on_click=_start, args=(report, home, key),
                      help="Writes the file in the background (a progress bar shows the time left), then offers "
                           "it for download.")
        st.download_button("Manifest (JSON)", lambda: curated_manifest(report, home),
                           file_name=f"{stem}.manifest.json", mime="application/json", icon=":material/download:",
                           key="export_manifest", on_click="ignore",
                           help="What made the CSV: the source, every edit in effect, counts before and after.")
    if build is not None and build.error:
        st.error(f"Cannot export the curated CSV: {build.error}")
    elif build is not None and not build.finished.is_set():
        _build_progress(build)
