"""Curation policies (issue 23): each rule changes exactly the planted images, never a test image, is one
batch that undoes alone, and plans on what the rules before it left; the `curate` command's output and
its refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import make_synthetic, write_folders
from test_mislabels import stored_result

from fer_core.audit import AuditConfig, run_audit
from fer_core.cli import main
from fer_core.curation import edits, policies
from fer_core.dataset.loading import Dataset
from fer_core.labels import EMOTIONS, TRAINING
from fer_core.mislabels.results import latest_result

CONFLICTING = {"face_003", "conflicting_copy_of_003"}
DEDUPE_DROPS = {"exact_copy_of_000", "training_copy_of_last"} | CONFLICTING  # the conflicting pair is a tie
NON_FACE_DROPS = {"blank", "text"}  # the drawing stays for review


def with_test_defects() -> Dataset:
    """The synthetic data plus defects in test images that no rule may touch: a blank PublicTest image,
    a PublicTest copy of a Training face with another emotion, and a third, happy copy of face_003."""
    base, _ = make_synthetic()
    face_005 = base.index_of("face_005")
    extra_ids = ["blank_test", "test_copy_of_005", "third_copy_of_003"]
    extra_pixels = [np.full((48, 48), 90, np.uint8), base.pixels[face_005], base.pixels[base.index_of("face_003")]]
    return Dataset(ids=np.concatenate([base.ids, extra_ids]), pixels=np.concatenate([base.pixels, extra_pixels]),
                   labels=np.concatenate([base.labels, [0, (base.labels[face_005] + 2) % 7, 3]]).astype(np.int8),
                   usages=np.concatenate([base.usages, ["PublicTest", "PublicTest", "Training"]]), source="synthetic+")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return run_audit(make_synthetic()[0], AuditConfig(face_stage=False), workspace=tmp_path_factory.mktemp("audit"))


@pytest.fixture(scope="module")
def report_with_test_defects(tmp_path_factory):
    return run_audit(with_test_defects(), AuditConfig(face_stage=False), workspace=tmp_path_factory.mktemp("audit"))


def changed(plans: list[policies.RulePlan]) -> dict[str, set[tuple[str, str]]]:
    return {plan.rule: {(change.sample_id, change.action) for change in plan.changes} for plan in plans}


def drops(ids) -> set[tuple[str, str]]:
    return {(sample_id, "drop") for sample_id in ids}


def test_recommended_changes_exactly_the_planted_images_one_batch_per_rule(workspace, report):
    """dedupe keeps one of each exact group (the test copy of a cross-split one; nothing of a tie), non_faces
    drops blank and placeholder only, leaks finds its one leak already gone; each rule is one batch."""
    preview = policies.plan_policy(report, edits.read_state(), "recommended")
    assert changed(preview) == {"dedupe": drops(DEDUPE_DROPS), "leaks": set(), "non_faces": drops(NON_FACE_DROPS),
                                "mislabels": set()}
    assert preview[3].skipped.startswith("no mislabel result")
    assert edits.read_edits() == []  # a preview writes nothing

    applied = policies.apply_policy(report, "recommended", author="ana")
    assert changed(applied) == changed(preview)
    log = edits.read_edits()
    assert {edit.reason for edit in log} == {"policy recommended: dedupe", "policy recommended: non_faces"}
    assert len({edit.batch_id for edit in log}) == 2  # leaks had nothing to do: no batch
    assert all(report.dataset.usages[report.dataset.index_of(edit.sample_id)] == TRAINING for edit in log)
    assert applied[0].describe(planned=False) == ("dedupe: 4 Training images dropped (angry 1, happy 1, sad 1, "
                                                  "neutral 1)")
    again = policies.plan_policy(report, edits.read_state(), "recommended")
    assert all(not plan.changes for plan in again)  # applied: nothing left to do


def test_no_rule_touches_a_test_image(workspace, report_with_test_defects):
    """A blank test image, a test copy whose emotion differs from its Training copy: the Training side only."""
    report = report_with_test_defects
    plans = policies.plan_policy(report, edits.read_state(), "recommended")
    plans += policies.plan_policy(report, edits.read_state(), "study")
    touched = {change.sample_id for plan in plans for change in plan.changes}
    assert "face_005" in touched and "blank" in touched
    assert not touched & {"blank_test", "test_copy_of_005", "face_041"}


def test_a_majority_keeps_its_emotion_and_a_tie_without_a_result_drops_the_group(workspace, report,
                                                                                 report_with_test_defects):
    """happy, sad, happy: one happy copy stays, unchanged; happy vs sad with no model to ask: both go."""
    [majority] = policies.plan_policy(report_with_test_defects, edits.read_state(), "recommended", ["dedupe"])
    group = {change.sample_id: change.action for change in majority.changes
             if change.sample_id in CONFLICTING | {"third_copy_of_003"}}
    assert group == {"conflicting_copy_of_003": "drop", "third_copy_of_003": "drop"}  # face_003 (happy) stays
    [tie] = policies.plan_policy(report, edits.read_state(), "recommended", ["dedupe"])
    assert CONFLICTING <= {change.sample_id for change in tie.changes if change.action == "drop"}


def test_a_tie_with_a_mislabel_result_keeps_one_copy_with_the_models_emotion(workspace, report):
    """The model (the copies' mean probabilities) breaks the tie: the happy copy stays, nothing relabelled."""
    stored_result(report.dataset, {"conflicting_copy_of_003": (3, 0.03)}, workspace)  # the sad copy looks happy
    [plan] = policies.plan_policy(report, edits.read_state(), "recommended", ["dedupe"],
                                  mislabels=latest_result(report.dataset, workspace))
    assert {(change.sample_id, change.action) for change in plan.changes if change.sample_id in CONFLICTING} == {
        ("conflicting_copy_of_003", "drop")}


def test_a_tie_broken_by_a_third_emotion_relabels_the_copy_kept(workspace, report):
    """Both copies look surprised to the model: one is kept and relabelled, in the same batch as the drop."""
    stored_result(report.dataset, {"face_003": (5, 0.03), "conflicting_copy_of_003": (5, 0.03)}, workspace)
    [plan] = policies.plan_policy(report, edits.read_state(), "recommended", ["dedupe"],
                                  mislabels=latest_result(report.dataset, workspace))
    group = [(change.sample_id, change.action, change.new_label) for change in plan.changes
             if change.sample_id in CONFLICTING]
    assert group == [("conflicting_copy_of_003", "drop", None), ("face_003", "relabel", EMOTIONS.index("surprise"))]


def test_the_mislabels_rule_relabels_confident_training_suggestions_only(workspace, report_with_test_defects):
    """Confidence ≥ the threshold, Training, still live (dedupe's drop comes first), not relabelled since."""
    report = report_with_test_defects
    dataset = report.dataset
    neutral = EMOTIONS.index("neutral")
    suspects = {"face_010": (neutral, 0.03),  # happy, confidently neutral (0.92): relabelled
                "face_011": (neutral, 0.15),  # 0.80: below the threshold
                "exact_copy_of_000": (neutral, 0.03),  # dropped by dedupe first
                "face_035": (neutral, 0.03)}  # PublicTest: never
    stored_result(dataset, suspects, workspace)
    result = latest_result(dataset, workspace)
    plans = policies.plan_policy(report, edits.read_state(), "recommended", mislabels=result)
    assert [(change.sample_id, change.action, change.new_label) for change in plans[3].changes] == [
        ("face_010", "relabel", neutral)]
    assert plans[3].describe() == "mislabels: 1 to relabel (happy→neutral 1)"
    low = policies.PolicyConfig(mislabel_threshold=0.75, mislabel_action="drop")
    [dropping] = policies.plan_policy(report, edits.read_state(), "recommended", ["mislabels"], low, result)
    assert {(change.sample_id, change.action) for change in dropping.changes} == drops(
        {"face_010", "face_011", "exact_copy_of_000"})
    edits.relabel(dataset, "face_010", "sad", "a person looked")
    [after_person] = policies.plan_policy(report, edits.read_state(), "recommended", ["mislabels"], mislabels=result)
    assert [change.sample_id for change in after_person.changes] == ["exact_copy_of_000"]  # face_010: a person's call


def test_the_mislabels_rule_named_without_a_result_is_refused_and_skipped_otherwise(workspace, report):
    with pytest.raises(ValueError, match="^the mislabels rule needs a mislabel result: run python -m fer_core "
                                         "mislabels DATA first$"):
        policies.plan_policy(report, edits.read_state(), "recommended", ["mislabels"])
    assert policies.plan_policy(report, edits.read_state(), "recommended")[3].skipped


def test_each_rule_undoes_alone(workspace, report):
    """undo_batch of one rule's batch restores exactly that rule's changes; the other rule's stay."""
    applied = {plan.rule: plan for plan in policies.apply_policy(report, "study") + policies.apply_policy(
        report, "recommended", ["non_faces"])}
    assert applied["conflicting_copies"].batch_id and applied["box_outliers"].batch_id
    everything = edits.read_state().dropped
    assert everything == CONFLICTING | NON_FACE_DROPS  # box_outliers took `text`; non_faces then only `blank`
    for rule, plan in applied.items():
        undo = edits.undo_batch(plan.batch_id)
        assert edits.read_state().dropped == everything - {change.sample_id for change in plan.changes}, rule
        edits.undo_edits([edit.edit_id for edit in undo])  # redo, for the next rule
        assert edits.read_state().dropped == everything


def test_reviewed_images_are_left_alone_except_training_copies_of_test_images(workspace, report):
    edits.mark_group_reviewed(report.dataset, ["blank", "face_041", "training_copy_of_last"], "fine")
    plans = changed(policies.plan_policy(report, edits.read_state(), "recommended"))
    assert ("blank", "drop") not in plans["non_faces"]
    assert ("training_copy_of_last", "drop") in plans["dedupe"]


def test_last_policy_batches_offer_the_newest_application_still_in_effect(workspace, report):
    applied = policies.apply_policy(report, "recommended")
    batches = policies.last_policy_batches(edits.read_edits())
    assert [(batch.rule, batch.batch_id) for batch in batches] == [
        (plan.rule, plan.batch_id) for plan in applied if plan.batch_id]
    edits.undo_batch(batches[0].batch_id)
    assert [batch.rule for batch in policies.last_policy_batches(edits.read_edits())] == ["non_faces"]
    edits.drop(report.dataset, ["face_001"], "by hand")
    assert policies.last_policy_batches(edits.read_edits()) == []  # a later edit: no policy is the last action


def test_unknown_policy_and_rule_are_named():
    with pytest.raises(ValueError, match="unknown policy 'strict'; expected one of recommended, study"):
        policies.choose_rules("strict")
    with pytest.raises(ValueError, match="unknown rule 'box_outliers' for policy 'recommended'; its rules: dedupe"):
        policies.choose_rules("recommended", ["dedupe", "box_outliers"])
    assert policies.choose_rules("recommended", ["non_faces", "dedupe"]) == ("dedupe", "non_faces")  # policy order


# ---------------------------------------------------------------------------------------------
# The CLI


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory) -> Path:
    return write_folders(make_synthetic()[0], tmp_path_factory.mktemp("policies") / "fer")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_curate_dry_run_writes_nothing_then_applies_per_rule(workspace, data_folder, capsys):
    code, out, _ = run(capsys, "curate", str(data_folder), "--dry-run")
    assert code == 0 and not (workspace / edits.DATABASE_NAME).exists()
    assert "dedupe: 4 Training images to drop (angry 1, happy 1, sad 1, neutral 1)" in out
    assert "non_faces: 2 Training images to drop (happy 1, neutral 1)" in out
    assert "leaks: nothing to do" in out and "mislabels: skipped" in out and "dry run: nothing written" in out

    code, out, _ = run(capsys, "curate", str(data_folder), "--author", "ana")
    assert code == 0 and "dedupe: 4 Training images dropped" in out and "2 batch(es) written" in out
    edits_before = edits.read_edits()
    assert {edit.author for edit in edits_before} == {"ana"}
    code, out, _ = run(capsys, "curate", str(data_folder), "--policy", "study", "--dry-run")
    assert code == 0 and "conflicting_copies: nothing to do" in out  # the dedupe already resolved them
    assert edits.read_edits() == edits_before  # a dry run on a log leaves it as it was
    code, out, _ = run(capsys, "curate", str(data_folder))
    assert code == 0 and out.endswith("nothing to do\n") and edits.read_edits() == edits_before


@pytest.mark.parametrize("argv, message", [
    (["--policy", "strict"], "unknown policy 'strict'; expected one of recommended, study"),
    (["--rules", "dedupe,bogus"], "unknown rule 'bogus' for policy 'recommended'"),
    (["--rules", "mislabels"], "the mislabels rule needs a mislabel result: run python -m fer_core mislabels DATA first"),
    (["--mislabel-action", "keep"], "unknown mislabel action 'keep'; expected one of relabel, drop"),
    (["--mislabel-threshold", "1.5"], "mislabel threshold 1.5 is outside (0, 1]"),
])
def test_curate_bad_input_is_one_line_exit_2_and_writes_nothing(workspace, data_folder, capsys, argv, message):
    code, out, err = run(capsys, "curate", str(data_folder), *argv)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (workspace / edits.DATABASE_NAME).exists()
