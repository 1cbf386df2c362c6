"""Report: one self-contained HTML file to send — what was wrong with the data, what was done, what it
changed. The same file as `python -m fer_core report DATA --out report.html`; download it, or read it below."""

import streamlit as st

from fer_app import audit_task, session
from fer_core import report
from fer_core.views import runs as results

session.setup("Report")
audit = audit_task.require_audit()
workspace = session.workspace()
with session.stop_on_error("Cannot read the runs"):
    finished = report.read_finished_runs(workspace)
    default_runs = [record.run_id for record in report.choose_runs(finished)]

labels = {record.run_id: results.describe_run(record) for record in finished}
if finished:
    chosen = st.multiselect("Runs to compare, before first (none chosen: the newest raw and curated runs)",
                            list(labels), default=default_runs, format_func=labels.get, key="report_runs")
else:
    chosen = []
    st.info("No finished training run yet: the report says so in “What it changed”. Train the same model on the "
            "raw and the curated data to show what the cleaning changed.")
    st.page_link("pages/4_Train.py", label="Train a model", icon=":material/model_training:")

with session.stop_on_error("Cannot build the report"), st.spinner("Building the report…"):
    text = report.build_report(audit, workspace=workspace, run_ids=chosen)
data = text.encode("utf-8")
st.download_button("Download the report (HTML)", data, file_name=report.download_name(audit), mime="text/html",
                   icon=":material/download:", type="primary", key="report_download")
st.caption(f"{len(data) / 1e6:.1f} MB, one file: opens offline in any browser, prints one section per page.")
st.iframe(text, height=900)
