"""The Overview's Curate panel: choose a policy and its rules, preview what each rule would change (counts per
emotion, a few thumbnails), apply them (one edit batch per rule), and undo the last policy applied, whole
or rule by rule. The same rules as `python -m fer_core curate` (fer_core/curation/policies.py)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from fer_core.audit import AuditReport
from fer_core.curation import edits, policies
from fer_core.curation.replay import Edit, replay_edits

from .author import current_author
from .gallery import image_grid
from .mislabels import latest_result
from .session import call_safely, flash, workspace

POLICY = "curate_policy"
MISLABEL_THRESHOLD = "curate_mislabel_threshold"
MISLABEL_ACTION = "curate_mislabel_action"
APPLY = "curate_apply"
UNDO_ALL = "curate_undo_all"
SHOWN_EXAMPLES = 6
NOTHING_TO_APPLY = "Nothing to apply: the ticked rules have nothing left to change."
AFTER_OTHERS = "(after the rules above)"
POLICY_LABELS = {"recommended": "Recommended: duplicates, leaks, non-faces, confident mislabels",
                 "study": "The original study's: conflicting copies and box-plot outliers"}


def rule_key(policy: str, rule: str) -> str:
    return f"curate_rule_{policy}_{rule}"


def curate_panel(report: AuditReport, table: pd.DataFrame, log: list[Edit]) -> None:
    """Policy, rules, preview, Apply (disabled with nothing to do) and the Undo of the last policy applied."""
    st.subheader("Curate by policy")
    st.caption("Rules that turn the findings into edits of Training images (test images are never changed). "
               "Each rule is one batch in the edit history, so one Undo reverses one rule.")
    result = latest_result(report)
    with st.container(border=True):
        policy = st.selectbox("Policy", tuple(policies.POLICIES), key=POLICY, format_func=POLICY_LABELS.get)
        rules = _rule_checkboxes(policy, result is not None)
        config = _mislabel_options() if "mislabels" in rules else policies.PolicyConfig()
        if not rules:
            st.info("Tick at least one rule to preview it.")
            plans = []
        else:
            plans = call_safely(policies.plan_policy, report, replay_edits(log), policy, rules, config, result,
                                failure="Cannot preview this policy") or []
        for position, plan in enumerate(plans):
            _preview(report, table, plan, after_others=position > 0)
        nothing_to_do = not any(plan.changes for plan in plans)
        with st.container(horizontal=True, vertical_alignment="center"):
            st.button("Apply", key=APPLY, type="primary", on_click=_apply,
                      args=(report, policy, tuple(rules), config), disabled=nothing_to_do,
                      help="Write each rule's changes as one batch of the edit history.")
            if plans and nothing_to_do:  # a greyed-out button says why
                st.caption(NOTHING_TO_APPLY)
    _undo_controls(log)


def _rule_checkboxes(policy: str, has_mislabel_result: bool) -> list[str]:
    chosen = []
    for rule in policies.POLICIES[policy]:
        if rule == "mislabels" and not has_mislabel_result:
            st.caption("mislabels: skipped, no suspected-mislabel result for this data yet (compute it above).")
            continue
        if st.checkbox(f"**{rule}**: {policies.RULE_DESCRIPTIONS[rule]}", value=True, key=rule_key(policy, rule)):
            chosen.append(rule)
    return chosen


def _mislabel_options() -> policies.PolicyConfig:
    with st.container(horizontal=True):
        threshold = st.number_input("Mislabels: model confidence at least", min_value=0.5, max_value=1.0,
                                    value=policies.DEFAULT_MISLABEL_THRESHOLD, step=0.01, key=MISLABEL_THRESHOLD,
                                    width=260, help="The model's probability for its suggested emotion.")
        action = st.radio("Mislabels: then", policies.MISLABEL_ACTIONS, key=MISLABEL_ACTION, horizontal=True)
    return policies.PolicyConfig(mislabel_threshold=float(threshold), mislabel_action=action)


def _preview(report: AuditReport, table: pd.DataFrame, plan: policies.RulePlan, after_others: bool) -> None:
    """The rule's line (counts per emotion) and a few of its images. A rule is planned on what the rules
    above it leave, so "leaks: nothing to do" while the Overview counts a leak says why (dedupe drops it)."""
    if not plan.changes:
        st.markdown(f"**{plan.describe()}**" + (f" {AFTER_OTHERS}" if after_others and not plan.skipped else ""))
        return
    st.markdown(f"**{plan.describe()}**")
    shown = list(plan.changes[:SHOWN_EXAMPLES])
    rows = [report.dataset.index_of(change.sample_id) for change in shown]
    what = ["drop" if change.action == edits.DROP else f"→ {report.dataset.emotions[change.new_label]}" for change in shown]
    image_grid(report, table, rows, key=f"curate_{plan.rule}", selectable=False,
               details=pd.Series(what, index=rows, dtype="object"))
    if len(plan.changes) > SHOWN_EXAMPLES:
        st.caption(f"… and {len(plan.changes) - SHOWN_EXAMPLES:,} more")


def _apply(report: AuditReport, policy: str, rules: tuple[str, ...], config: policies.PolicyConfig) -> None:
    """Callback: apply exactly the rules and options the preview showed."""
    applied = call_safely(policies.apply_policy, report, policy, list(rules), config, latest_result(report),
                          workspace=workspace(), author=current_author(), failure="Not applied")
    if applied is None:
        return
    written = [plan.describe(planned=False) for plan in applied if plan.batch_id]
    flash("ok", f"Policy {policy} applied: " + ("; ".join(written) if written else "nothing to change"))


def _undo(edit_ids: tuple[int, ...], what: str) -> None:
    """Callback: reverse the given edits in one new batch."""
    written = call_safely(edits.undo_edits, list(edit_ids), f"undone in the app: {what}", workspace=workspace(),
                          author=current_author(), failure="Cannot undo")
    if written is not None:
        flash("ok", f"Undone: {what} ({len(written):,} edit{'s' if len(written) != 1 else ''} reversed)")


def _undo_controls(log: list[Edit]) -> None:
    """The last policy applied, while any of its batches is in effect: undo it whole, or one rule."""
    batches = policies.last_policy_batches(log)
    if not batches:
        return
    policy = batches[0].policy
    with st.container(horizontal=True, vertical_alignment="center"):
        st.write(f"Last applied: policy **{policy}** ({', '.join(batch.rule for batch in batches)})")
        every = tuple(edit_id for batch in batches for edit_id in batch.edit_ids)
        st.button("Undo the policy", key=UNDO_ALL, icon=":material/undo:", on_click=_undo,
                  args=(every, f"policy {policy}"))
        for batch in batches:
            st.button(f"Undo {batch.rule} ({len(batch.edit_ids):,})", key=f"curate_undo_{batch.batch_id}",
                      on_click=_undo, args=(batch.edit_ids, f"policy {policy}: {batch.rule}"))
