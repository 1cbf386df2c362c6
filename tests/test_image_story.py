"""fer_core.views.image_story: one image's flags with their numbers, copies and what decided each pair, group,
predictions, history; the review tiles' why line; the search by id. On the planted synthetic data."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from synthetic import make_synthetic_near

from fer_core.audit import run_audit
from fer_core.curation import edits
from fer_core.views import audit_table as views
from fer_core.views import image_story


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    dataset, planted, near = make_synthetic_near()
    return run_audit(dataset, workspace=tmp_path_factory.mktemp("story_ws")), planted, near


def table_of(report, workspace=None):
    return views.annotate(report, edits.replay_edits(edits.read_edits(workspace) if workspace else []))


def story(report, sample_id, table=None, **kwargs):
    table = table_of(report) if table is None else table
    return image_story.tell_story(report, table, report.dataset.index_of(sample_id), **kwargs)


def test_a_shifted_copy_says_what_the_pixel_check_found(audited):
    report, planted, near = audited
    original, copy = near.copies["shifted"]
    told = story(report, copy)
    assert told.copies["id"].tolist() == [original]
    decided = told.copies["decided_by"].iloc[0]
    assert decided == "shifted by x +3, y -2 px · pixel similarity 1.000"  # the planted shift (3, -2)
    assert dict(told.flags)["duplicate"].startswith("near group of 2 images; closest: " + original)
    assert sorted(report.dataset.ids[np.asarray(told.group["rows"])]) == sorted([original, copy])


def test_a_member_tied_only_through_another_says_through_which(audited):
    report, _, near = audited
    original, copy = near.copies["shifted"]
    rows = [report.dataset.index_of(sample_id) for sample_id in (original, copy, "face_020")]
    group = int(report.samples["near_group"].iloc[rows[0]])
    pairs = pd.concat([report.near_pairs, pd.DataFrame([{  # face_020 joins the group through the copy only
        "id_a": copy, "id_b": "face_020", "row_a": rows[1], "row_b": rows[2], "kind": "near", "similarity": 0.97,
        "hamming_distance": 4, "shift_x": 0, "shift_y": 0, "scale": 1.0, "mirrored": False}])], ignore_index=True)
    groups = report.near_groups.copy()
    groups["rows"] = [list(members) + [rows[2]] if number == group else members
                      for number, members in zip(groups["group"], groups["rows"])]
    samples = report.samples.copy()
    samples.loc[rows[2], "near_group"] = group
    chained = dataclasses.replace(report, near_pairs=pairs, near_groups=groups, samples=samples)
    copies = image_story.copies_of(chained, rows[0]).set_index("id")
    assert copies.loc["face_020", "kind"] == "chained"
    assert copies.loc["face_020", "decided_by"] == f"via {copy} (re-encoded or brightened · pixel similarity 0.970)"


def test_mirrored_and_exact_copies_and_a_leak(audited):
    report, planted, near = audited
    mirrored = story(report, near.copies["mirrored"][1])
    assert mirrored.copies["kind"].tolist() == ["mirrored"]
    assert mirrored.copies["decided_by"].iloc[0].startswith("mirrored")
    test_image, training_copy = planted.cross_split_copy
    leak = dict(story(report, test_image).flags)
    assert leak["leak"] == f"a test image with a Training copy: {training_copy} (Training)"
    assert story(report, test_image).copies["decided_by"].tolist() == ["identical pixels"]


def test_outlier_flag_carries_its_score_kind_and_evidence(audited):
    report, planted, _ = audited
    flags = dict(story(report, planted.blank).flags)
    score = report.samples.loc[report.dataset.index_of(planted.blank), "outlier_score"]
    assert flags == {"outlier": f"outlier score {score:.1f} · blank · std 0.0"}
    assert story(report, "face_020").flags == ()  # a plain face: no flag, no copy, no group
    assert story(report, "face_020").group is None and story(report, "face_020").copies.empty


def test_conflict_names_the_disagreeing_emotions(audited):
    report, planted, _ = audited
    flags = dict(story(report, planted.conflicting_copy[1]).flags)
    assert flags["conflict"] == "its near group's emotions disagree: happy, sad"


def test_flags_settled_by_the_edits_say_so_and_the_edit_is_told(audited, workspace):
    report, planted, _ = audited
    keep, copy = planted.exact_copy
    edits.drop(report.dataset, [copy], "duplicate", workspace=workspace)
    table = table_of(report, workspace)
    history = edits.history(workspace, sample_id=copy)
    told = story(report, copy, table, history=history)
    flags = dict(told.flags)
    assert told.dropped and flags["edited"] == "dropped"
    assert flags["duplicate"].endswith("(settled by the edits)")
    assert told.history["action"].tolist() == ["drop"] and told.history["sample_id"].tolist() == [copy]
    relabeled = story(report, keep, table_of(report, workspace))
    assert "edited" not in dict(relabeled.flags)


def test_mislabel_score_and_suggestion(audited):
    report, _, _ = audited
    mislabels = pd.DataFrame({"id": ["face_020", "face_021"], "mislabel_score": [0.934, 0.2],
                              "suggested_label": ["happy", "sad"], "suggested_confidence": [0.87, 0.4],
                              "is_label_issue": [True, False]})
    assert dict(story(report, "face_020", mislabels=mislabels).flags)["mislabel"] == \
        "mislabel score 0.93 · the model suggests happy (87% confident)"
    assert dict(story(report, "face_021", mislabels=mislabels).flags)["mislabel"].endswith("; not flagged")


def test_predictions_of_each_run_that_scored_the_image(audited):
    report, _, _ = audited
    sample_id = "face_041"
    row = {"id": sample_id, "usage": "PrivateTest", "label": "neutral", "predicted": "happy",
           **{f"p_{emotion}": 0.0 for emotion in ("angry", "disgust", "fear", "sad", "surprise")},
           "p_happy": 0.7, "p_neutral": 0.3}
    runs = [("run-b", pd.DataFrame([row])), ("run-a", pd.DataFrame([{**row, "predicted": "neutral"}])),
            ("run-c", pd.DataFrame([{**row, "id": "other"}]))]
    told = story(report, sample_id, predictions=runs)
    assert told.predictions["run"].tolist() == ["run-b", "run-a"]  # run-c did not score it
    assert told.predictions["correct"].tolist() == [False, True]
    assert told.predictions["confidence"].tolist() == [0.7, 0.3]
    assert told.predictions["current_label_probability"].tolist() == [0.3, 0.3]


def test_why_lines_name_the_flags_that_put_a_tile_in_the_list(audited):
    report, planted, near = audited
    table = table_of(report)
    rows = [report.dataset.index_of(sample_id) for sample_id in
            (planted.blank, planted.conflicting_copy[1], near.copies["mirrored"][1], "face_020")]
    why = image_story.why_lines(table, rows)
    assert why[rows[0]] == "why: outlier (blank)"
    assert why[rows[1]] == "why: duplicate (exact) · labels disagree"
    assert why[rows[2]] == "why: duplicate (mirrored)"
    assert rows[3] not in why.index  # no flag, no line


def test_find_image_by_id_part_of_it_or_says_why_not(audited):
    report, planted, _ = audited
    ids = report.dataset.ids
    assert image_story.find_image(ids, planted.blank).row == report.dataset.index_of(planted.blank)
    assert image_story.find_image(ids, "  TEXT ").row == report.dataset.index_of(planted.text)
    missing = image_story.find_image(ids, "no_such_image.jpg")
    assert missing.row is None
    assert missing.message == f"No image with id 'no_such_image.jpg' in this data ({len(ids):,} images)."
    several = image_story.find_image(ids, "face_0")
    assert several.row is None and several.message.startswith("42 images match 'face_0': face_000, ")
    assert "\n" not in several.message and image_story.find_image(ids, " ").row is None
