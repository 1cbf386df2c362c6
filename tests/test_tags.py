"""Tags and saved views in a real SQLite workspace: add/remove/list, undo, bad names refused, the
export's manifest carries the tags, views saved, refused over an existing name, reopened, deleted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_edits import make_dataset

from fer_core.curation import edits, export, saved_views, tags
from fer_core.curation.saved_views import ReviewFilters
from fer_core.store import database_path


def test_tag_many_in_one_batch_list_counts_and_images_by_tag(workspace):
    dataset = make_dataset(6)
    ids = dataset.ids.tolist()
    batch = tags.add_tag(dataset, ids[:3], "  blurry ", author="ana")
    assert batch.tag == "blurry" and batch.changed == tuple(ids[:3]) and batch.already == 0
    again = tags.add_tag(dataset, ids[2:4], "blurry", author="ben")
    assert again.changed == (ids[3],) and again.already == 1 and again.batch_id != batch.batch_id
    tags.add_tag(dataset, [ids[0]], "Ask Ana")
    assert tags.list_tags() == [("Ask Ana", 1), ("blurry", 4)]
    assert tags.images_with_tags(["blurry"]) == set(ids[:4])
    assert tags.images_with_tags(["Ask Ana", "nothing"]) == {ids[0]}
    assert tags.tags_by_image()[ids[0]] == ["Ask Ana", "blurry"]
    rows = np.array([5, 3, 1, 0])
    assert tags.keep_tagged_rows(dataset.ids, rows, ["blurry"]).tolist() == [3, 1, 0]
    assert tags.keep_tagged_rows(dataset.ids, rows, []).tolist() == [5, 3, 1, 0]  # no tag chosen: every row
    assert tags.keep_tagged_rows(dataset.ids, rows, ["nothing"]).tolist() == []

    removed = tags.remove_tag(dataset, [ids[0], ids[5]], "blurry", author="cy")
    assert removed.changed == (ids[0],) and removed.already == 1
    assert tags.list_tags() == [("Ask Ana", 1), ("blurry", 3)]
    history = tags.tag_history()
    assert [(event.action, event.sample_id, event.author) for event in history] == [
        ("tag", ids[0], "ana"), ("tag", ids[1], "ana"), ("tag", ids[2], "ana"), ("tag", ids[3], "ben"),
        ("tag", ids[0], history[4].author), ("untag", ids[0], "cy")]
    assert edits.read_edits() == []  # a tag is a note, not an edit of the data


def test_undo_a_tag_batch_once_and_only_what_it_still_holds(workspace):
    dataset = make_dataset(4)
    ids = dataset.ids.tolist()
    batch = tags.add_tag(dataset, ids[:3], "watermark")
    tags.remove_tag(dataset, [ids[1]], "watermark")  # removed by hand since: stays removed
    undone = tags.undo_tag_batch(batch.batch_id, author="ana")
    assert undone.action == tags.UNTAG and set(undone.changed) == {ids[0], ids[2]} and undone.already == 1
    assert tags.list_tags() == []
    with pytest.raises(ValueError, match="already undone"):
        tags.undo_tag_batch(batch.batch_id)
    with pytest.raises(ValueError, match="unknown tag batch 'nope'"):
        tags.undo_tag_batch("nope")
    assert tags.tag_history()[-1].undoes == batch.batch_id


@pytest.mark.parametrize("name, message", [
    ("", "a tag cannot be empty"),
    ("   ", "a tag cannot be empty"),
    ("x" * 65, "65 characters long; at most 64"),
    ("two\nlines", "control character"),
    ("tab\there", "control character"),
    ("nul\x00", "control character"),
])
def test_bad_tag_names_are_one_line_errors_and_write_nothing(workspace, name, message):
    dataset = make_dataset(2)
    with pytest.raises(ValueError, match=message) as error:
        tags.add_tag(dataset, dataset.ids.tolist(), name)
    assert "\n" not in str(error.value)
    assert not database_path(workspace).exists()
    assert tags.check_tag_name("x" * 64) == "x" * 64 and tags.check_tag_name("visage très flou") == "visage très flou"


def test_unknown_ids_no_ids_and_another_dataset_are_refused(workspace):
    dataset = make_dataset(3)
    with pytest.raises(ValueError, match=r"unknown sample id 'nope' and 1 more"):
        tags.add_tag(dataset, ["nope", dataset.ids[0], "other"], "blurry")
    with pytest.raises(ValueError, match="no images given"):
        tags.add_tag(dataset, [], "blurry")
    assert not database_path(workspace).exists()
    tags.add_tag(dataset, [dataset.ids[0]], "blurry")
    assert edits.read_workspace_meta()["dataset_fingerprint"] == dataset.fingerprint
    other = make_dataset(3, seed=9)
    with pytest.raises(ValueError, match="was made for another dataset"):
        tags.add_tag(other, [other.ids[0]], "blurry")
    with pytest.raises(ValueError, match="at most 1,000"):
        tags.add_tag(dataset, [dataset.ids[1]], "blurry", author="a" * 1001)
    assert tags.list_tags() == [("blurry", 1)]


def test_the_manifest_carries_the_tags_of_the_exported_images(workspace, tmp_path):
    dataset = make_dataset(5)
    ids = dataset.ids.tolist()
    tags.add_tag(dataset, ids[:2], "blurry")
    tags.add_tag(dataset, [ids[1]], "Ask Ana")
    tags.add_tag(dataset, [ids[4]], "not a face")
    edits.drop(dataset, [ids[4]], "not a face")  # dropped: not in the export, so not in its tags
    result = export.export_curated(dataset, tmp_path / "curated.csv", "csv")
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["tags"] == {ids[0]: ["blurry"], ids[1]: ["Ask Ana", "blurry"]}
    assert manifest["applied_edits"][0]["sample_id"] == ids[4]  # the fields before it are all still there
    header = result.path.read_text().splitlines()[0]
    assert header == "emotion,pixels,Usage,id"  # no tag column: FER-2013 readers keep their columns


def test_a_saved_view_round_trips_refuses_a_taken_name_and_is_deleted(workspace):
    filters = ReviewFilters(emotions=("happy",), usages=("Training",), flags=("conflict",), tags=("blurry",),
                            suspected_mislabels=False, show_dropped=True)
    saved = saved_views.save_view(" Blurry happy ", filters, author="ana")
    assert saved.name == "Blurry happy"
    assert saved_views.read_view("blurry HAPPY").filters == filters  # any case
    with pytest.raises(ValueError, match=r"a view named 'Blurry happy' exists \(saved by ana"):
        saved_views.save_view("blurry happy", ReviewFilters(), author="ben")
    saved_views.save_view("blurry happy", ReviewFilters(usages=("PublicTest",)), author="ben", replace=True)
    [view] = saved_views.list_views()
    assert view.name == "blurry happy" and view.author == "ben" and view.filters.usages == ("PublicTest",)
    assert saved_views.delete_view("Blurry Happy").name == "blurry happy"
    assert saved_views.list_views() == []
    with pytest.raises(ValueError, match=r"no saved view named 'gone' \(saved views: none yet\)"):
        saved_views.delete_view("gone")
    for bad, message in (("", "cannot be empty"), ("v" * 65, "at most 64"), ("a\rb", "control character")):
        with pytest.raises(ValueError, match=message):
            saved_views.save_view(bad, filters)


def test_a_view_names_what_the_data_no_longer_offers_and_bad_json_is_one_line():
    filters = ReviewFilters(flags=("conflict", "gone_flag"), tags=("blurry", "old"), emotions=("happy",))
    kept, left_out = filters.restricted_to({"emotions": ["happy"], "flags": ["conflict"], "tags": ["blurry"]})
    assert kept == ReviewFilters(flags=("conflict",), tags=("blurry",), emotions=("happy",))
    assert left_out == ["flag gone_flag", "tag old"]
    assert ReviewFilters.from_json('{"tags": ["a"], "future_filter": 3}') == ReviewFilters(tags=("a",))
    for text, message in (("[1]", "not a JSON object"), ('{"tags": "a"}', "tags must be a list"),
                          ('{"show_dropped": 1}', "show_dropped must be true or false"), ("{", "not JSON")):
        with pytest.raises(ValueError, match=message):
            ReviewFilters.from_json(text, "saved view 'x'")
