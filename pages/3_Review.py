"""Review: browse by emotion, usage and flag; relabel or drop picked images; the edit history with undo."""

import streamlit as st

from fer_core import edits, review, ui
from fer_core.labels import EMOTIONS, USAGES

ui.setup("Review")
with st.sidebar:
    emotions = st.multiselect("Emotion (current label)", EMOTIONS, key="rev_emotions")
    usages = st.multiselect("Usage", USAGES, key="rev_usages")
    flags = st.multiselect("Flag (any of)", review.FLAGS, key="rev_flags")
    show_dropped = st.checkbox("Show dropped images", key="rev_show_dropped")
    page_size = st.select_slider("Images per page", [12, 24, 48, 96], value=24, key="rev_page_size")

report = ui.require_audit()
table, log = ui.curation(report)

rows = review.filter_samples(table, emotions=tuple(emotions), usages=tuple(usages), flags=tuple(flags),
                             show_dropped=show_dropped)
st.write(f"**{len(rows):,}** image(s) match.")
picked = ui.image_grid(report, table, rows[ui.pager(len(rows), page_size, key="rev_page")], key="rev")
ui.bulk_actions(report, "rev", len(picked))

st.subheader("Edit history")
history = edits.history()
ui.undo_picker(history)
st.dataframe(history.iloc[::-1].head(500), hide_index=True, key="rev_history",
             column_order=["edit_id", "action", "sample_id", "old_label", "new_label", "reason", "author",
                           "created_at", "active", "undoes", "batch_id"])
