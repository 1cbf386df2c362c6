"""Overview: choose the data, see what the audit found and what is left after the edits."""

import streamlit as st

from fer_app import audit_task, curate, exports, mislabels, session
from fer_core.curation import replay as curation
from fer_core.views import audit_table as views
from fer_core.views import duplicate_groups, figures, image_tiles, overview

session.setup("FER Audit")
path = session.data_path_input()
if not path:
    st.info("Type the path of a FER-2013 folder (train/ and test/) or fer2013.csv above, "
            "or start the app with FER_DATA set.")
    st.stop()

report = audit_task.wait_for_audit(path)
if report is None:
    st.stop()
table, log = audit_task.curation(report)
summary = views.curated_summary(report, table, curation.count_edits_in_effect(log))

st.caption(f"{summary['images']:,} images · fingerprint {report.dataset.fingerprint} · "
           f"{duplicate_groups.near_mode_note(report.config.near_mode, report.config.near_threshold)} · "
           f"workspace {image_tiles.escape_markdown(session.workspace())}")
with st.container(horizontal=True, gap="medium"):
    for card in overview.overview_cards(summary, report.summary):
        st.metric(card.label, f"{card.value:,}", delta=f"{card.change:,}" if card.change else None,
                  delta_color="off" if card.neutral else "inverse", help=card.help, border=True, width=240)
st.markdown(image_tiles.escape_markdown(overview.leak_reconciliation(summary)))
mislabels.overview_card(report, log)

curated = st.toggle("Curated counts (after edits)", value=True, key="overview_curated")
st.plotly_chart(figures.counts_figure(table, curated=curated), key="overview_counts")

st.subheader("Fix the data")
session.page_links(skip="app.py")
curate.curate_panel(report, table, log)

st.subheader("Export the curated data")
st.caption("The same files as `python -m fer_core export DATA --format csv --out curated.csv`: the CSV is written "
           "in the background when you click Prepare (with the time left), then downloaded.")
exports.export_buttons(report)
