"""Duplicates: groups side by side, filters, per-group resolutions and the dataset-wide leak removal."""

import streamlit as st

from fer_core import review, ui
from fer_core.labels import EMOTIONS, USAGES

ui.setup("Duplicates")
with st.sidebar:
    kind = st.radio("Groups", review.GROUP_KINDS, format_func=lambda k: f"{k} duplicates", key="dup_kind")
    ui.threshold_slider()
    conflicting_only = st.checkbox("Conflicting labels only", key="dup_conflicting")
    cross_split_only = st.checkbox("Cross-split only (train and test)", key="dup_cross")
    emotions = st.multiselect("Emotion", EMOTIONS, key="dup_emotions")
    usages = st.multiselect("Usage", USAGES, key="dup_usages")
    open_only = st.checkbox("Open groups only", value=True, key="dup_open",
                            help="Hide groups resolved (one live member left) or marked reviewed.")
    page_size = st.select_slider("Groups per page", [5, 10, 20, 40], value=10, key="dup_page_size")

report = ui.require_audit()
table, _ = ui.curation(report)

with st.expander(f"Remove train–test leaks ({len(report.leaks.leaked_test_rows()):,} test images "
                 "have a Training copy in the audit)"):
    ui.leak_removal(report, table)

groups = review.filter_groups(report, table, kind, conflicting_only=conflicting_only,
                              cross_split_only=cross_split_only, emotions=tuple(emotions), usages=tuple(usages),
                              open_only=open_only)
st.write(f"**{len(groups):,}** {kind}-duplicate group(s) match "
         f"(of {len(report.near_groups if kind == 'near' else report.exact_groups):,}).")
shown = groups.iloc[ui.pager(len(groups), page_size, key="dup_page")]
for _, group in shown.iterrows():
    members = review.group_members(report, table, group)
    flags = [flag for flag, on in (("conflicting", group["conflicting"]), ("cross-split", group["cross_split"])) if on]
    with st.container(border=True):
        st.markdown(f"**Group {group['group']}** · {group['size']} images"
                    + (f" · max distance {group['max_distance']} bits" if "max_distance" in group else "")
                    + "".join(f" · :red[{flag}]" for flag in flags))
        ui.member_strip(report, members)
        ui.group_actions(report, f"group_{kind}_{group['group']}", members)
