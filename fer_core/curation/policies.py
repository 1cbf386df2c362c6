"""Curation policies: named rules that turn the audit's findings into edits, previewed before they are applied.

A policy is an ordered list of rules. Each rule plans on the state the rules before it leave (an
image one rule drops is not relabelled by the next), and is written as one batch of the edit log
with the reason `policy <name>: <rule>`, so one undo reverses one rule. A rule with nothing to do
writes nothing. Rules only ever drop or relabel Training images: a PublicTest/PrivateTest image
is what every model is scored on. Images already dropped are left alone, and so are images a
reviewer marked OK (a rejected suggestion, an outlier kept), except that Training copies of test
images are always dropped (they leak into every score).

Planning is pure: it takes the audit (`fer_core.audit.AuditReport`), the log's `CurationState` and,
for the mislabels rule and dedupe's ties, a suspected-mislabel result (`MislabelResult`); those
arrive as arguments because curation sits below the audit and the mislabel layers.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from fer_core.curation.edit_log import Change, check_workspace_dataset, read_state, run_plan
from fer_core.curation.edits import check_no_test_changes, choose_keeper
from fer_core.curation.replay import DROP, RELABEL, UNDO, CurationState, Edit, find_active_edits, find_undoable_batches
from fer_core.labels import EMOTIONS, TRAINING, emotion_index

if TYPE_CHECKING:
    from fer_core.audit import AuditReport
    from fer_core.mislabels.results import MislabelResult

RULE_DESCRIPTIONS = {
    "dedupe": "one copy per exact-duplicate group (the test copy when there is one); disagreeing copies keep "
              "the majority emotion",
    "leaks": "drop the Training copies (exact or near) of test images",
    "non_faces": "drop blank and placeholder images",
    "mislabels": "relabel images the model confidently gives another emotion",
    "conflicting_copies": "drop every Training copy in an exact-duplicate group whose emotions disagree",
    "box_outliers": "drop the box-plot outliers (mean or spread of the pixels)",
}
POLICIES: dict[str, tuple[str, ...]] = {
    "recommended": ("dedupe", "leaks", "non_faces", "mislabels"),
    "study": ("conflicting_copies", "box_outliers"),  # the original study's rules
}
# Outlier kinds dropped without a look: the precise ones on the hand-labelled sample (benchmarks/README.md,
# "Outliers", and RESULTS_outliers.md): blank 0.93, placeholder 0.83. Drawings (0.76) and no usable face
# (0.47) stay for review on the Outliers page.
NON_FACE_KINDS = ("blank", "placeholder")
# From the planted-noise benchmark (benchmarks/README.md, "Suspected mislabels"; RESULTS_mislabels.json,
# `suggestion_precision_by_confidence`): at 0.9 the rule relabels 248 noisy Training images and 0.69 of them
# get their planted emotion back (a lower bound), 0.51 at 0.8, 0.18 at 0.5.
DEFAULT_MISLABEL_THRESHOLD = 0.9
MISLABEL_ACTIONS = ("relabel", "drop")
NO_MISLABEL_RESULT = "the mislabels rule needs a mislabel result: run python -m fer_core mislabels DATA first"
REASON_PREFIX = "policy "


@dataclass(frozen=True)
class PolicyConfig:
    """The knobs of the rules that have one: the mislabels rule's confidence threshold and action."""

    mislabel_threshold: float = DEFAULT_MISLABEL_THRESHOLD
    mislabel_action: str = "relabel"

    def __post_init__(self) -> None:
        if not 0.0 < float(self.mislabel_threshold) <= 1.0:
            raise ValueError(f"mislabel threshold {self.mislabel_threshold} is outside (0, 1]: it is the "
                             "model's probability for its suggestion")
        if self.mislabel_action not in MISLABEL_ACTIONS:
            raise ValueError(f"unknown mislabel action {self.mislabel_action!r}; expected one of "
                             f"{', '.join(MISLABEL_ACTIONS)}")


@dataclass(frozen=True)
class RulePlan:
    """One rule's changes (planned `Change`s, or the `Edit`s written), and why it was skipped if it was."""

    rule: str
    changes: tuple[Any, ...] = ()
    skipped: str = ""
    batch_id: str | None = None
    emotions: tuple[str, ...] = EMOTIONS  # the dataset's label set: what a planned change's index means

    def dropped_by_emotion(self) -> dict[str, int]:
        counts = Counter(_label_name(change.old_label, self.emotions) for change in self.changes if change.action == DROP)
        return {emotion: counts[emotion] for emotion in (*self.emotions, *sorted(set(counts) - set(self.emotions)))
                if counts[emotion]}

    def relabelled(self) -> dict[tuple[str, str], int]:
        """(from, to) → how many, most common first."""
        counts = Counter((_label_name(change.old_label, self.emotions), _label_name(change.new_label, self.emotions))
                         for change in self.changes if change.action == RELABEL)
        return dict(counts.most_common())

    def examples(self, count: int = 6) -> list[str]:
        return [change.sample_id for change in self.changes[:count]]

    def describe(self, planned: bool = True) -> str:
        """One line: "dedupe: 1,853 Training images dropped (angry 250, …); 2 relabelled (fear→happy 2)"."""
        if self.skipped:
            return f"{self.rule}: skipped ({self.skipped})"
        drops, relabels = self.dropped_by_emotion(), self.relabelled()
        parts = []
        if drops:
            total = sum(drops.values())
            counts = ", ".join(f"{emotion} {count:,}" for emotion, count in drops.items())
            parts.append(f"{total:,} Training image{'s' if total != 1 else ''} "
                         f"{'to drop' if planned else 'dropped'} ({counts})")
        if relabels:
            total = sum(relabels.values())
            counts = ", ".join(f"{old}→{new} {count:,}" for (old, new), count in relabels.items())
            parts.append(f"{total:,} {'to relabel' if planned else 'relabelled'} ({counts})")
        return f"{self.rule}: " + ("; ".join(parts) if parts else "nothing to do")


# ---------------------------------------------------------------------------------------------
# Choosing rules


def choose_rules(policy: str, rules: Sequence[str] | None = None) -> tuple[str, ...]:
    """The policy's rules in the policy's order (all, or the ones named); ValueError naming an unknown one."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {', '.join(POLICIES)}")
    if rules is None:
        return POLICIES[policy]
    named = [rule.strip() for rule in rules if rule.strip()]
    if not named:
        raise ValueError(f"no rules named; policy {policy!r} has {', '.join(POLICIES[policy])}")
    for rule in named:
        if rule not in POLICIES[policy]:
            raise ValueError(f"unknown rule {rule!r} for policy {policy!r}; its rules: {', '.join(POLICIES[policy])}")
    return tuple(rule for rule in POLICIES[policy] if rule in named)


def policy_reason(policy: str, rule: str) -> str:
    return f"{REASON_PREFIX}{policy}: {rule}"


# ---------------------------------------------------------------------------------------------
# Planning (pure) and applying


def plan_policy(report: "AuditReport", state: CurationState, policy: str, rules: Sequence[str] | None = None,
                config: PolicyConfig = PolicyConfig(), mislabels: "MislabelResult | None" = None) -> list[RulePlan]:
    """What each rule would change, each on the state the rules before it leave.

    Without a mislabel result the mislabels rule is skipped with a note, unless it was named in
    `rules`: then it is a ValueError (asked for, and impossible).
    """
    chosen = choose_rules(policy, rules)
    check_mislabel_result(policy, rules, mislabels)
    plans = []
    for rule in chosen:
        if rule == "mislabels" and mislabels is None:
            plans.append(RulePlan(rule, skipped="no mislabel result for this data; run python -m fer_core "
                                                "mislabels DATA to compute one"))
            continue
        changes = plan_rule(rule, report, state, config, mislabels)
        plans.append(RulePlan(rule, tuple(changes), emotions=report.dataset.emotions))
        state = advance(state, changes, report.dataset.emotions)
    return plans


def apply_policy(report: "AuditReport", policy: str, rules: Sequence[str] | None = None,
                 config: PolicyConfig = PolicyConfig(), mislabels: "MislabelResult | None" = None, *,
                 author: str | None = None, workspace: str | os.PathLike | None = None) -> list[RulePlan]:
    """Write each rule with something to do as one batch (reason `policy <name>: <rule>`), in order.

    The whole policy is planned once from a read first, so a bad argument or a log made for other
    data is refused before anything is written. Each rule then plans again inside its own
    transaction, against the state it locked (which holds the previous rule's batch).
    """
    check_workspace_dataset(report.dataset, workspace)
    previews = plan_policy(report, read_state(workspace), policy, rules, config, mislabels)
    applied = []
    for preview in previews:
        if preview.skipped:
            applied.append(preview)
            continue
        planner = _planner(preview.rule, report, config, mislabels)
        written = run_plan(report.dataset, planner, policy_reason(policy, preview.rule), author, workspace, False)
        applied.append(RulePlan(preview.rule, tuple(written), batch_id=written[0].batch_id if written else None,
                                emotions=report.dataset.emotions))
    return applied


def _planner(rule: str, report: "AuditReport", config: PolicyConfig,
             mislabels: "MislabelResult | None") -> Callable[[CurationState, list[Edit]], list[Change]]:
    def plan(state: CurationState, _: list[Edit]) -> list[Change]:
        return plan_rule(rule, report, state, config, mislabels)
    return plan


def check_mislabel_result(policy: str, rules: Sequence[str] | None, mislabels: "MislabelResult | None") -> None:
    """ValueError when the mislabels rule is named but no result exists (a whole policy just skips it)."""
    if rules is not None and "mislabels" in choose_rules(policy, rules) and mislabels is None:
        raise ValueError(NO_MISLABEL_RESULT)


def plan_rule(rule: str, report: "AuditReport", state: CurationState, config: PolicyConfig = PolicyConfig(),
              mislabels: "MislabelResult | None" = None) -> list[Change]:
    """One rule's changes on `state`; never a change to a PublicTest/PrivateTest image."""
    planners = {"dedupe": lambda: _plan_dedupe(report, state, mislabels),
                "leaks": lambda: _plan_leaks(report, state),
                "non_faces": lambda: _drop_flagged(report, state, report.samples["outlier_kind"].isin(NON_FACE_KINDS)),
                "mislabels": lambda: _plan_mislabels(report, state, config, mislabels),
                "conflicting_copies": lambda: _plan_conflicting_copies(report, state),
                "box_outliers": lambda: _drop_flagged(report, state, report.samples["box_outlier"])}
    if rule not in planners:
        raise ValueError(f"unknown rule {rule!r}; expected one of {', '.join(planners)}")
    if rule == "mislabels" and mislabels is None:
        raise ValueError(NO_MISLABEL_RESULT)
    changes = planners[rule]()
    check_no_test_changes(report.dataset, [change.sample_id for change in changes])  # by construction: never
    return changes


def advance(state: CurationState, changes: Sequence[Change], emotions: Sequence[str] = EMOTIONS) -> CurationState:
    """The state after `changes` (drops and relabels), for planning the next rule without writing."""
    labels, dropped = dict(state.labels), set(state.dropped)
    for change in changes:
        if change.action == RELABEL:
            labels[change.sample_id] = _label_name(change.new_label, emotions)
        elif change.action == DROP:
            dropped.add(change.sample_id)
    return CurationState(labels=labels, dropped=frozenset(dropped), reviewed=state.reviewed)


# ---------------------------------------------------------------------------------------------
# The rules


def _plan_dedupe(report: "AuditReport", state: CurationState, mislabels: "MislabelResult | None") -> list[Change]:
    """Per exact group with a live Training copy and another live copy: a live test copy is kept and every
    Training copy dropped; otherwise one Training copy is kept, carrying the group's emotion (the majority;
    on a tie the model's suggestion when there is a result, else the whole group is dropped)."""
    dataset, changes = report.dataset, []
    for members in report.exact_groups["members"]:
        live = [member for member in members if member not in state.dropped]
        training = [member for member in live if _is_training(report, member)]
        if len(live) < 2 or not training:
            continue
        labels = {member: state.label_of(dataset, member) for member in live}
        if len(training) < len(live):  # a test copy stays; its Training copies leak into every score
            changes += [Change(member, DROP, labels[member], None) for member in training]
            continue
        if all(member in state.reviewed for member in live):
            continue  # a reviewer marked the group OK
        emotion = _group_emotion(labels, members, mislabels, len(dataset.emotions))
        if emotion is None:
            changes += [Change(member, DROP, labels[member], None) for member in live]
            continue
        keeper = choose_keeper(dataset, [member for member in live if labels[member] == emotion] or live)
        changes += [Change(member, DROP, labels[member], None) for member in live if member != keeper]
        if labels[keeper] != emotion:
            changes.append(Change(keeper, RELABEL, labels[keeper], emotion))
    return changes


def _group_emotion(labels: dict[str, int], members: Sequence[str], mislabels: "MislabelResult | None",
                   classes: int) -> int | None:
    """The members' most common emotion; on a tie the model's (their mean probabilities), else None."""
    counts = np.bincount(list(labels.values()), minlength=classes)
    winners = np.flatnonzero(counts == counts.max())
    if len(winners) == 1:
        return int(winners[0])
    if mislabels is None:
        return None
    rows = mislabels.table["id"].isin(list(members)).to_numpy()
    if not rows.any():
        return None
    return int(mislabels.probabilities[rows].mean(axis=0).argmax())


def _plan_leaks(report: "AuditReport", state: CurationState) -> list[Change]:
    """The audit's leak pairs (exact and verified near) where both images are still in the data."""
    ids = report.dataset.ids
    leaking = []
    for train_row, test_row in zip(report.leaks.train_rows.tolist(), report.leaks.test_rows.tolist()):
        if ids[train_row] not in state.dropped and ids[test_row] not in state.dropped:
            leaking.append(str(ids[train_row]))
    return [Change(sample_id, DROP, state.label_of(report.dataset, sample_id), None)
            for sample_id in dict.fromkeys(leaking)]


def _drop_flagged(report: "AuditReport", state: CurationState, flagged) -> list[Change]:
    """Drop the flagged Training images still in the data and not marked OK."""
    rows = np.flatnonzero(np.asarray(flagged, dtype=bool) & (report.dataset.usages == TRAINING))
    ids = [str(sample_id) for sample_id in report.dataset.ids[rows]]
    return [Change(sample_id, DROP, state.label_of(report.dataset, sample_id), None) for sample_id in ids
            if sample_id not in state.dropped and sample_id not in state.reviewed]


def _plan_mislabels(report: "AuditReport", state: CurationState, config: PolicyConfig,
                    mislabels: "MislabelResult") -> list[Change]:
    """Training images whose suggestion differs from their label with at least the threshold's confidence.

    Left alone, as in the review queue: images dropped, marked OK (a rejected suggestion) or relabelled
    since the result (by a person or an earlier rule: the model judged another label).
    """
    dataset, changes = report.dataset, []
    table = mislabels.table
    confident = table[table["suggested_confidence"].to_numpy(dtype=np.float64) >= config.mislabel_threshold]
    for sample_id, judged, suggested in zip(confident["id"], confident["label"], confident["suggested_label"]):
        sample_id = str(sample_id)
        if not dataset.has_id(sample_id) or not _is_training(report, sample_id):
            continue
        if sample_id in state.dropped or sample_id in state.reviewed:
            continue
        current = state.label_of(dataset, sample_id)
        target = emotion_index(suggested, dataset.emotions)
        if dataset.emotions[current] != judged or target == current:
            continue
        changes.append(Change(sample_id, DROP, current, None) if config.mislabel_action == "drop"
                       else Change(sample_id, RELABEL, current, target))
    return changes


def _plan_conflicting_copies(report: "AuditReport", state: CurationState) -> list[Change]:
    """The study's rule: drop every live Training member of an exact group whose live members' emotions differ."""
    dataset, changes = report.dataset, []
    for members in report.exact_groups["members"]:
        live = [member for member in members if member not in state.dropped]
        labels = {member: state.label_of(dataset, member) for member in live}
        if len(set(labels.values())) < 2 or all(member in state.reviewed for member in live):
            continue
        changes += [Change(member, DROP, labels[member], None) for member in live if _is_training(report, member)]
    return changes


def _is_training(report: "AuditReport", sample_id: str) -> bool:
    return report.dataset.usages[report.dataset.index_of(sample_id)] == TRAINING


def _label_name(label: int | str | None, emotions: Sequence[str]) -> str | None:
    return emotions[int(label)] if isinstance(label, (int, np.integer)) else label


# ---------------------------------------------------------------------------------------------
# Undo


@dataclass(frozen=True)
class PolicyBatch:
    """One rule's batch still in effect: what Undo offers."""

    batch_id: str
    policy: str
    rule: str
    edit_ids: tuple[int, ...]


def last_policy_batches(edits: Sequence[Edit]) -> list[PolicyBatch]:
    """The batches of the last policy applied that are still in effect, in the order they were written.

    Read from the log, so it works after a CLI run or a reload: the newest batches still in effect
    while they are one policy's and no rule repeats (a repeat is an earlier application).
    """
    active = [edit for edit in find_active_edits(edits) if edit.action != UNDO]
    by_batch: dict[str, list[Edit]] = {}
    for edit in active:
        by_batch.setdefault(edit.batch_id, []).append(edit)
    found: list[PolicyBatch] = []
    for batch_id in find_undoable_batches(edits):
        reason = by_batch[batch_id][0].reason
        if not reason.startswith(REASON_PREFIX) or ": " not in reason:
            break
        policy, rule = reason[len(REASON_PREFIX):].split(": ", 1)
        if found and (policy != found[0].policy or any(batch.rule == rule for batch in found)):
            break
        found.append(PolicyBatch(batch_id, policy, rule, tuple(edit.edit_id for edit in by_batch[batch_id])))
    return found[::-1]
