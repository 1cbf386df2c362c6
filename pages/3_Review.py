"""Review: browse by emotion, usage, flag and tag (or a saved view); relabel, drop or tag picked images; the edit
history with undo."""

import streamlit as st

from fer_app import audit_task, forms, gallery, keyboard, mislabels, selection, session
from fer_app import review_filters
from fer_core.curation import edits
from fer_core.labels import USAGES
from fer_core.views import audit_table as views

session.setup("Review")
with st.sidebar:
    suspected = st.toggle("Suspected mislabels (model)", key="rev_mislabels",
                          help="The model's doubts about given emotions, most suspect first: accept its "
                               "suggestion or keep the label (computed from the Overview). The filters below "
                               "narrow the queue.")
    emotions = st.multiselect("Emotion (current label)", audit_task.emotions(), key="rev_emotions")
    usages = st.multiselect("Usage", USAGES, key="rev_usages")
    flags = st.multiselect("Flag (any of)", views.flag_names(), key="rev_flags",
                           help="Flags follow the edits: a resolved group's images are no longer "
                                "'duplicate' or 'conflict', a removed leak no longer 'leak'.")
    tags = review_filters.tag_filter()
    # The queue holds live images only: a dropped image has nothing left to decide.
    show_dropped = not suspected and st.checkbox("Show dropped images", key="rev_show_dropped")
    page_size = st.select_slider("Images per page", [12, 24, 48, 96], value=24, key="rev_page_size")
    review_filters.saved_views_panel()

report = audit_task.require_audit()
table, log = audit_task.curation(report)
rows = views.filter_samples(table, emotions=tuple(emotions), usages=tuple(usages), flags=tuple(flags),
                            show_dropped=show_dropped)
rows = review_filters.keep_tagged(table, rows, tags)
rows = selection.narrow_rows(table, rows)  # a selection made on the map (or elsewhere), with a bar to clear it

keyboard_review = keyboard.mode_toggle("rev")
if keyboard_review:
    keyboard.review_page(report, table, rows, suspected)
elif suspected:
    mislabels.review_queue(report, table, page_size, among=rows)
else:
    st.write(f"**{len(rows):,}** image(s) match.")
    gallery.image_grid(report, table, rows[gallery.pager(len(rows), page_size, key="rev_page")], key="rev")
    gallery.bulk_actions(report, "rev")

st.subheader("Edit history")
if keyboard_review:  # its panel reruns alone (fast), so a table here would lag behind its decisions
    st.caption(keyboard.HISTORY_NOTE)
else:
    with session.stop_on_error("Cannot read the edit history"):
        history = edits.history()
    forms.undo_picker(history)
    st.dataframe(history.iloc[::-1].head(500), hide_index=True, key="rev_history",
                 column_order=["edit_id", "action", "sample_id", "old_label", "new_label", "reason", "author",
                               "created_at", "active", "undoes", "batch_id"])
