"""Download the curated dataset (FER-2013 CSV) and its manifest from the app, through fer_core.curation.export.

The files are built only when a download button is clicked (Streamlit calls the data function on
a thread of its own), in a temporary folder that is removed right after.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import streamlit as st

from fer_core.audit import AuditReport
from fer_core.curation import edits, export

from .session import workspace


def curated_csv(report: AuditReport, workspace_path: str) -> bytes:
    """The curated view of the audited data as `emotion,pixels,Usage` CSV bytes (the export CLI's file)."""
    with tempfile.TemporaryDirectory(prefix="fer-export-") as scratch:
        result = export.export_curated(report.dataset, Path(scratch) / "curated.csv", "csv", workspace=workspace_path)
        return result.path.read_bytes()


def curated_manifest(report: AuditReport, workspace_path: str) -> bytes:
    """The manifest of that export: source, every edit in effect, counts before and after (JSON)."""
    curated, log = edits.read_curation(report.dataset, workspace_path)
    return (json.dumps(export.build_manifest(report.dataset, curated, log, "csv"), indent=2) + "\n").encode()


def export_buttons(report: AuditReport) -> None:
    """Two download buttons; each file is built when its button is clicked."""
    home = workspace()
    stem = f"fer2013_curated_{report.dataset.fingerprint[:12]}"
    with st.container(horizontal=True):
        st.download_button("Curated data (CSV)", lambda: curated_csv(report, home), file_name=f"{stem}.csv",
                           mime="text/csv", icon=":material/download:", key="export_csv", on_click="ignore",
                           help="FER-2013's CSV format: emotion, pixels, Usage; dropped images left out, "
                                "relabeled ones with their new emotion.")
        st.download_button("Manifest (JSON)", lambda: curated_manifest(report, home),
                           file_name=f"{stem}.manifest.json", mime="application/json", icon=":material/download:",
                           key="export_manifest", on_click="ignore",
                           help="What made the CSV: the source, every edit in effect, counts before and after.")
