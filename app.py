"""Overview: choose the data, see what the audit found and what is left after the edits."""

import streamlit as st

from fer_core import review, ui

ui.setup("FER Audit")
path = ui.data_path_input()
if not path:
    st.info("Type the path of a FER-2013 folder (train/ and test/) or fer2013.csv above, "
            "or start the app with FER_DATA set.")
    st.stop()

report = ui.wait_for_audit(path)
if report is None:
    st.stop()
table, log = ui.curation(report)
summary = review.curated_summary(report, table, len(log))

st.caption(f"{summary['images']:,} images · fingerprint {report.dataset.fingerprint} · "
           f"near threshold {report.config.near_threshold} bits · workspace {review.escape_markdown(ui.workspace())}")
cards = [
    ("Images kept", "images_after", "images", "Images left after drops"),
    ("Exact-copy groups", "exact_groups_after", "exact_groups", "Groups of identical images still open"),
    ("Near-copy groups", "near_groups_after", "near_groups", "Near-copy groups still open"),
    ("Conflicting groups", "conflicting_groups_after", "conflicting_groups", "Open groups whose emotions disagree"),
    ("Leaked test images", "leaked_test_images_after", "leaked_test_images", "Test images with a Training copy"),
    ("Outliers", "outliers_after", "outliers", "Flagged non-faces not yet dropped or reviewed"),
]
with st.container(horizontal=True, gap="medium"):
    for label, after, found, help_text in cards:
        change = summary[after] - summary[found]
        st.metric(label, f"{summary[after]:,}", delta=f"{change:,}" if change else None,
                  delta_color="off" if after == "images_after" else "inverse",
                  help=f"{help_text}; the audit found {summary[found]:,}.", border=True, width=180)
    st.metric("Edits made", f"{summary['edits']:,}", border=True, width=180,
              help=f"Rows in the edit log; {summary['relabeled']:,} relabeled and {summary['dropped']:,} dropped now.")

curated = st.toggle("Curated counts (after edits)", value=True, key="overview_curated")
st.plotly_chart(review.counts_figure(table, curated=curated), key="overview_counts")

st.subheader("Fix the data")
ui.page_links(skip="app.py")
