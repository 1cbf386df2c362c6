"""Outliers: the study's box plots (overall and per emotion; select points to see them) and a ranked gallery."""

import streamlit as st

from fer_app import audit_task, gallery, keyboard, session
from fer_core.views import figures, outlier_list

session.setup("Outliers")
with st.sidebar:
    show_all = st.checkbox("Plot every image (slower)", key="out_all_points",
                           help="By default only images beyond the whiskers are plotted.")
    flagged_only = st.checkbox("Gallery: flagged images only", value=True, key="out_flagged_only",
                               help="Untick to rank every image by its outlier score.")
    show_reviewed = st.checkbox("Gallery: include reviewed images", key="out_show_reviewed")
    page_size = st.select_slider("Gallery images per page", [12, 24, 48, 96], value=24, key="out_page_size")

report = audit_task.require_audit()
table, _ = audit_task.curation(report)
kinds = outlier_list.outlier_kind_options()
with st.sidebar:
    kind = st.selectbox("Gallery: outlier kind", list(kinds), format_func=kinds.get, key="out_kind",
                        help="blank frames; placeholders (text, icons, cards); drawings (comics, line art, cartoons); "
                             "no usable face (the face stage found no upright, framed face)")

st.caption("Drag a box or lasso around points (or click one) to see those images; click an image to pick it. "
           "Red points are flagged by the outlier score; grey ones only lie beyond the whiskers.")
left, right = st.columns([1, 3])
left.plotly_chart(figures.overall_box_figure(table, show_all_points=show_all), key=gallery.OVERALL_CHART,
                  on_select=gallery.keep_chart_selection(gallery.OVERALL_CHART),
                  selection_mode=("points", "box", "lasso"))
right.plotly_chart(figures.box_plot_figure(table, show_all_points=show_all), key=gallery.EMOTION_CHART,
                   on_select=gallery.keep_chart_selection(gallery.EMOTION_CHART),
                   selection_mode=("points", "box", "lasso"))
selected = gallery.chart_selection(table)
if selected:
    st.subheader(f"Selected: {len(selected):,} image(s)")
    shown = selected[:gallery.MAX_SELECTED_SHOWN]
    if len(selected) > len(shown):
        st.caption(f"Showing the first {len(shown)}; select fewer points to see the rest.")
    gallery.image_grid(report, table, shown, key="out_sel", details=outlier_list.outlier_details(table, shown))
    gallery.bulk_actions(report, "out_sel")
    st.button("Clear the selection", key="out_clear_selection", on_click=gallery.clear_chart_selection)

st.subheader("Ranked by outlier score")
ranked = outlier_list.rank_outliers(table, flagged_only=flagged_only, show_reviewed=show_reviewed, kind=kind)
st.caption(f"{int(table['outlier'].sum()):,} images flagged by the audit ({outlier_list.outlier_kind_counts(table)}); "
           "highest score (least face-like) first. "
           "Under each image: its kind and the evidence, its score and the signals that raised it.")
if keyboard.mode_toggle("out"):
    keyboard.outlier_review(report, table, ranked, kind)
else:
    page = ranked[gallery.pager(len(ranked), page_size, key="out_page")]
    gallery.image_grid(report, table, page, key="out_rank", details=outlier_list.outlier_details(table, page))
    gallery.bulk_actions(report, "out_rank")
