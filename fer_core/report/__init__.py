"""The stakeholder report: one self-contained HTML file with what was wrong, what was done, what it changed.

Imports `views` and the layers below; never `cli`.

Readers will never open the app, often open the file offline or print it, so the file carries
everything it shows: Plotly's JavaScript once in the head, every figure as a div drawn by it,
every thumbnail as an inline PNG data URI, system fonts only, no request to anywhere. Print CSS
starts each section on a new page and keeps figures whole.

The figures and tables come from the functions the pages use (`fer_core/views/` for the audit and
the runs, `count_samples` of `fer_core/curation/export.py` for before/after counts); this package
only picks the examples, words the findings and assembles the HTML. Every piece of user text
(reasons, authors, file names, paths) goes through `html.escape`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from fer_core.audit import AuditReport
from fer_core.report.appendix import appendix_section, reproduce_commands
from fer_core.report.blocks import REPORT_CSS, escape, section
from fer_core.report.findings import (evidence_section, headline_section, pick_conflicting_groups, pick_leak_pairs,
                                      pick_outliers)
from fer_core.report.inputs import (ReportInputs, ReportSettings, check_output_path, choose_runs, download_name,
                                    gather_inputs, read_finished_runs, read_training_runs, write_report)
from fer_core.report.outcome import changed_section, counts_before_after, done_section, edits_by_reason

__all__ = ["SECTIONS", "ReportInputs", "ReportSettings", "build_report", "check_output_path", "choose_runs",
           "counts_before_after", "download_name", "edits_by_reason", "gather_inputs", "pick_conflicting_groups",
           "pick_leak_pairs", "pick_outliers", "read_finished_runs", "read_training_runs", "render_report",
           "reproduce_commands", "write_report"]

# The report's sections, in order: (id, title, function(inputs, settings) → the section's HTML body).
SECTIONS = (("headline", "Headline", headline_section), ("evidence", "Evidence", evidence_section),
            ("done", "What was done", done_section), ("changed", "What it changed", changed_section),
            ("appendix", "Appendix", appendix_section))


def build_report(audit: AuditReport, workspace: str | os.PathLike | None = None, run_ids: Sequence[str] = (),
                 data_path: str | os.PathLike | None = None, settings: ReportSettings = ReportSettings()) -> str:
    """The whole report as one HTML string."""
    return render_report(gather_inputs(audit, workspace, run_ids, data_path), settings)


def render_report(inputs: ReportInputs, settings: ReportSettings = ReportSettings()) -> str:
    """Assemble the sections into one standalone HTML document."""
    import plotly.offline

    dataset = inputs.audit.dataset
    body = "".join(section(section_id, title, make(inputs, settings)) for section_id, title, make in SECTIONS)
    contents = "".join(f'<li><a href="#{section_id}">{escape(title)}</a></li>' for section_id, title, _ in SECTIONS)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>FER data audit — {escape(Path(inputs.data_path).name or inputs.data_path)}</title>"
        f"<style>{REPORT_CSS}</style>"
        f"<script>{plotly.offline.get_plotlyjs()}</script></head><body><main>"
        f"<header><h1>What was wrong with the data, what was done, what it changed</h1>"
        f"<p class=\"meta\">{escape(inputs.data_path)} · {len(dataset):,} images · fingerprint "
        f"<code>{escape(dataset.fingerprint)}</code> · generated {escape(inputs.generated_at)}</p>"
        f"<nav><ol>{contents}</ol></nav></header>{body}</main></body></html>\n")
