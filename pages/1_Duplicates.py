"""Duplicates: groups side by side, filters, per-group resolutions and the dataset-wide leak removal."""

import streamlit as st

from fer_app import audit_task, forms, gallery, keyboard, mislabels, session
from fer_core.duplicates.grouping import PAIR_KINDS
from fer_core.duplicates.status import GROUP_KINDS
from fer_core.labels import USAGES
from fer_core.views import duplicate_groups, image_tiles

session.setup("Duplicates")
with st.sidebar:
    kind = st.radio("Groups", GROUP_KINDS, format_func=lambda k: f"{k} duplicates", key="dup_kind")
    audit_task.near_settings()
    conflicting_only = st.checkbox("Conflicting labels only", key="dup_conflicting")
    cross_split_only = st.checkbox("Cross-split only (train and test)", key="dup_cross")
    emotions = st.multiselect("Emotion", audit_task.emotions(), key="dup_emotions")
    usages = st.multiselect("Usage", USAGES, key="dup_usages")
    match_kinds = st.multiselect("How near copies match", PAIR_KINDS, key="dup_match_kinds",
                                 help="Near groups with a pair of this kind: exact, near (re-encoded, brightened), "
                                      "shifted, cropped, mirrored; hash = pHash only (hash mode)")
    open_only = st.checkbox("Open groups only", value=True, key="dup_open",
                            help="Hide groups resolved (one live member left) or marked reviewed. A group you "
                                 "resolve here stays in view, marked, until you leave the page.")
    page_size = st.select_slider("Groups per page", [5, 10, 20, 40], value=10, key="dup_page_size")

report = audit_task.require_audit()
table, _ = audit_task.curation(report)

with st.expander(f"Remove train–test leaks ({len(report.leaks.leaked_test_rows()):,} test image(s) "
                 "have a Training copy in the audit)"):
    forms.leak_removal(report, table)

groups = duplicate_groups.filter_groups(report, table, kind, conflicting_only=conflicting_only, cross_split_only=cross_split_only,
                             emotions=tuple(emotions), usages=tuple(usages), open_only=open_only,
                             keep=forms.resolved_group_ids(kind), match_kinds=tuple(match_kinds))
st.write(f"**{len(groups):,}** {kind}-duplicate group(s) match "
         f"(of {len(report.near_groups if kind == 'near' else report.exact_groups):,}).")
if kind == "near":
    st.caption(duplicate_groups.chain_note(report.config.near_threshold, report.config.near_mode))
suspected = mislabels.latest_result(report)
if keyboard.mode_toggle("dup"):
    keyboard.group_review(report, table, groups, kind)
else:
    for _, group in groups.iloc[gallery.pager(len(groups), page_size, key="dup_page")].iterrows():
        key = f"group_{kind}_{group['group']}"
        members = duplicate_groups.group_members(report, table, group)
        with st.container(border=True, key=f"box_{key}"):
            st.markdown(image_tiles.escape_markdown(duplicate_groups.group_title(group, report)) + duplicate_groups.group_badges(group))
            gallery.member_strip(report, members, table)
            if group["conflicting"]:
                mislabels.group_suggestion_caption(suspected, members["id"].tolist())
            resolved = forms.resolved_batch(key)
            if resolved:
                forms.resolved_marker(key, resolved)
            else:
                forms.group_actions(report, key, members)
