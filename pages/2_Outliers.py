"""Outliers: the average-pixel box plot per emotion (select points to see them) and a ranked gallery."""

import streamlit as st

from fer_core import review, ui

ui.setup("Outliers")
with st.sidebar:
    show_all = st.checkbox("Plot every image (slower)", key="out_all_points",
                           help="By default only images beyond their emotion's whiskers are plotted.")
    flagged_only = st.checkbox("Gallery: flagged images only", value=True, key="out_flagged_only",
                               help="Untick to rank every image by its outlier score.")
    show_reviewed = st.checkbox("Gallery: include reviewed images", key="out_show_reviewed")
    page_size = st.select_slider("Gallery images per page", [12, 24, 48, 96], value=24, key="out_page_size")

report = ui.require_audit()
table, _ = ui.curation(report)

st.caption("Drag a box or lasso around points (or click one) to see those images. "
           "Red points are flagged by the outlier score; grey ones only lie beyond the whiskers.")
event = st.plotly_chart(review.box_plot_figure(table, show_all_points=show_all), key="out_box",
                        on_select="rerun", selection_mode=("points", "box", "lasso"))
picked_rows = review.selected_rows(event.selection.points) if event else []
if picked_rows:
    st.subheader(f"Selected: {len(picked_rows):,} image(s)")
    rows = picked_rows[:128]
    if len(picked_rows) > len(rows):
        st.caption(f"Showing the first {len(rows)}; select fewer points to see the rest.")
    picked = ui.image_grid(report, table, rows, key="out_sel")
    ui.bulk_actions(report, "out_sel", len(picked))

st.subheader("Ranked by outlier score")
ranked = review.rank_outliers(table, flagged_only=flagged_only, show_reviewed=show_reviewed)
st.caption(f"{int(table['outlier'].sum()):,} images flagged by the audit; highest score (least face-like) first.")
picked = ui.image_grid(report, table, ranked[ui.pager(len(ranked), page_size, key="out_page")], key="out_rank")
ui.bulk_actions(report, "out_rank", len(picked))
