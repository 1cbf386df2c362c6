"""Issue 9, edit flow: each click path a reviewer must be able to trust (items 1-6), in AppTest.

Every test here failed on the app before the fix (fer_core/ui.py): undo took the previous batch,
ticked boxes outlived an action, a box selection was lost, flags ignored the edits, test images
were dropped without a word, every group form showed every field.
"""

from streamlit.testing.v1 import AppTest
from test_pages import button, metrics, open_page, pick_boxes, sample_id, texts, training_boxes

from fer_app.gallery import CHART_SELECTION
from fer_core.curation.edits import read_edits
from fer_core.curation.replay import find_edits_in_effect


def drop_picked(app: AppTest, gallery: str, reason: str) -> AppTest:
    app.text_input(key=f"{gallery}_reason").set_value(reason)
    return button(app, "Drop picked", f"{gallery}_form").click().run()


def test_undo_in_the_edit_message_targets_exactly_that_batch(app):
    """Item 1: relabel → the message's Undo reverses that relabel, not the batch before it."""
    app = open_page(app, "pages/3_Review.py")
    first, second = training_boxes(app, "rev")[:2]
    first.check().run()
    drop_picked(app, "rev", "first batch")
    second = next(box for box in training_boxes(app, "rev") if sample_id(box) == sample_id(second))
    second.check().run()
    app.selectbox(key="rev_emotion").set_value("happy")
    app.text_input(key="rev_reason").set_value("second batch")
    button(app, "Relabel picked", "rev_form").click().run()
    relabel = read_edits()[-1]
    assert relabel.action == "relabel" and relabel.sample_id == sample_id(second)
    assert "Relabeled 1 image(s) to happy" in texts(app)
    app.button(key="undo_last_edit").click().run()
    log = read_edits()
    assert log[-1].action == "undo" and log[-1].undoes == relabel.edit_id
    assert [edit.action for edit in find_edits_in_effect(log)] == ["drop"]  # the first batch is untouched
    assert not any(b.key == "undo_last_edit" for b in app.button)  # offered once


def test_history_undo_twice_walks_back_newest_first(app):
    """Item 1: the history's Undo starts on the newest batch, and after an undo on the next newest."""
    app = open_page(app, "pages/3_Review.py")
    for reason in ("older", "newer"):
        training_boxes(app, "rev")[0].check().run()
        drop_picked(app, "rev", reason)
    app.button(key="undo_button").click().run()
    assert not app.error, [error.value for error in app.error]
    app.button(key="undo_button").click().run()
    assert not app.error, [error.value for error in app.error]
    log = read_edits()
    undone = [edit.undoes for edit in log if edit.action == "undo"]
    newer, older = (next(edit.edit_id for edit in log if edit.reason == reason) for reason in ("newer", "older"))
    assert undone == [newer, older]
    assert "Nothing to undo" in texts(app)


def test_picks_are_cleared_after_an_action_and_only_shown_picks_are_acted_on(app):
    """Item 2: pick → act → pick → act drops exactly what each form showed as picked."""
    app = open_page(app, "pages/3_Review.py")
    training_boxes(app, "rev")[0].check().run()
    training_boxes(app, "rev")[1].check().run()
    first_two = [sample_id(box) for box in training_boxes(app, "rev") if box.value]
    drop_picked(app, "rev", "first two")
    assert not any(box.value for box in pick_boxes(app, "rev"))
    assert "0** image(s) picked" in texts(app)
    third = training_boxes(app, "rev")[0]
    assert sample_id(third) not in first_two
    third.check().run()
    assert "1** image(s) picked" in texts(app)
    drop_picked(app, "rev", "third")
    batches = {}
    for edit in read_edits():
        batches.setdefault(edit.reason, set()).add(edit.sample_id)
    assert batches == {"first two": set(first_two), "third": {sample_id(third)}}


def test_acting_with_nothing_picked_is_refused(app):
    app = open_page(app, "pages/3_Review.py")
    assert button(app, "Drop picked", "rev_form").disabled
    training_boxes(app, "rev")[0].check().run()
    drop_picked(app, "rev", "one")
    assert button(app, "Drop picked", "rev_form").disabled  # picks cleared: acting again needs a new pick
    assert len(read_edits()) == 1


def test_outliers_keep_the_rest_of_a_box_selection(app):
    """Item 3: acting on part of a box selection keeps the rest selected; tiles say score and signals."""
    app = open_page(app, "pages/2_Outliers.py")
    assert len(app.get("plotly_chart")) == 2  # the overall box plot beside the per-emotion one
    rows = [20, 21, 22]  # Training images (the folder loader reads test/ before train/)
    app.session_state[CHART_SELECTION] = rows
    app.run()
    selected = pick_boxes(app, "out_sel")
    assert len(selected) == 3 and "Selected: 3 image(s)" in texts(app)
    assert all("score " in caption.value for caption in app.caption if "·" in caption.value and "score" in caption.value)
    dropped = next(box for box in selected if sample_id(box).startswith("train/"))
    dropped.check().run()
    drop_picked(app, "out_sel", "not a face")
    left = [sample_id(box) for box in pick_boxes(app, "out_sel")]
    assert len(left) == 2 and sample_id(dropped) not in left and "Selected: 2 image(s)" in texts(app)


def test_review_conflict_filter_follows_the_curation(app):
    """Item 4: once a conflicting group is resolved its images leave the 'conflict' filter; the
    Overview counts edits in effect, not undone rows."""
    app = open_page(app, "pages/3_Review.py")
    app.multiselect(key="rev_flags").set_value(["conflict"]).run()
    conflicting = [sample_id(box) for box in pick_boxes(app, "rev")]
    assert len(conflicting) == 2
    for box in pick_boxes(app, "rev"):
        box.check().run()
    app.selectbox(key="rev_emotion").set_value("angry")
    app.text_input(key="rev_reason").set_value("agree")
    button(app, "Relabel picked", "rev_form").click().run()
    assert pick_boxes(app, "rev") == [] and "**0** image(s) match" in texts(app)
    app.button(key="undo_last_edit").click().run()
    app = open_page(app, None)
    assert metrics(app)["Edits in effect"] == "0"


def test_dropping_test_images_needs_a_confirmation_naming_how_many(app):
    """Item 5: an action that drops or relabels PublicTest/PrivateTest images asks first."""
    app = open_page(app, "pages/3_Review.py")
    app.multiselect(key="rev_usages").set_value(["PrivateTest"]).run()
    box = pick_boxes(app, "rev")[0]
    box.check().run()
    drop_picked(app, "rev", "test drop")
    assert read_edits() == []
    assert "would drop or relabel 1 PublicTest/PrivateTest image(s)" in texts(app)
    app.checkbox(key="rev_confirm_test").check()
    drop_picked(app, "rev", "test drop")
    assert [edit.sample_id for edit in read_edits()] == [sample_id(box)]


def test_group_drop_all_with_a_test_copy_asks_first_keep_one_does_not(app):
    app = open_page(app, "pages/1_Duplicates.py")
    app.checkbox(key="dup_cross").check().run()
    key = next(form for form in (b.proto.form_id for b in app.button if b.label == "Apply")).removesuffix("_form")
    app.segmented_control(key=f"{key}_action").set_value("drop_all").run()
    app.text_input(key=f"{key}_reason").set_value("leak")
    button(app, "Apply", f"{key}_form").click().run()
    assert read_edits() == [] and "would drop or relabel 1 PublicTest/PrivateTest image(s)" in texts(app)
    app.segmented_control(key=f"{key}_action").set_value("keep_one").run()
    assert app.selectbox(key=f"{key}_keep").value.startswith("test/")  # the test copy is suggested
    button(app, "Apply", f"{key}_form").click().run()
    log = read_edits()
    assert len(log) == 1 and log[0].action == "drop" and log[0].sample_id.startswith("train/")


def test_group_form_shows_only_the_fields_its_action_uses(app):
    """Item 6: fields per action, keep one and relabel it, groups numbered from 1, resolved stays in place."""
    app = open_page(app, "pages/1_Duplicates.py")
    assert app.markdown[0].value.startswith("Group 1 ·") or any(m.value.startswith("Group 1 ·") for m in app.markdown)
    assert any("chains them" in caption.value for caption in app.caption)  # why a group spans further
    forms = [b.proto.form_id.removesuffix("_form") for b in app.button if b.label == "Apply"]
    key = next(key for key in forms if not any(box.key == f"{key}_confirm_test" for box in app.checkbox))
    fields = lambda: {box.key for box in app.selectbox if box.key.startswith(key)}  # noqa: E731
    assert fields() == {f"{key}_keep"}
    app.segmented_control(key=f"{key}_action").set_value("drop_all").run()
    assert fields() == set()
    app.segmented_control(key=f"{key}_action").set_value("relabel").run()
    assert fields() == {f"{key}_emotion"}
    app.segmented_control(key=f"{key}_action").set_value("keep_one_relabel").run()
    assert fields() == {f"{key}_keep", f"{key}_emotion"}
    keep = app.selectbox(key=f"{key}_keep").value
    app.selectbox(key=f"{key}_emotion").set_value("fear")
    app.text_input(key=f"{key}_reason").set_value("one face, afraid")
    button(app, "Apply", f"{key}_form").click().run()
    log = read_edits()
    assert {(edit.action, edit.sample_id == keep) for edit in log} == {("drop", False), ("relabel", True)}
    assert len({edit.batch_id for edit in log}) == 1
    assert app.button(key=f"{key}_undo") and not [b for b in app.button if b.proto.form_id == f"{key}_form"]
    app.button(key=f"{key}_undo").click().run()
    assert find_edits_in_effect(read_edits()) == []
    assert [b for b in app.button if b.proto.form_id == f"{key}_form"]  # the form is back, the group in place


def test_the_undo_of_an_action_low_on_a_long_page_is_beside_its_form(app):
    """Issue 24: after an action at the bottom of the Outliers page, its Undo was only in the bar at the top,
    out of view; the message and its Undo are also shown right above the form that acted (and only there)."""
    app = open_page(app, "pages/2_Outliers.py")
    training_boxes(app, "out_rank")[0].check().run()
    drop_picked(app, "out_rank", "bottom of the page")
    dropped = read_edits()[-1]
    elements = list(app.main)  # in page order
    keys = [getattr(element, "key", None) for element in elements]
    here = keys.index("undo_last_edit_out_rank")
    tiles = [index for index, key in enumerate(keys) if key and key.startswith("out_rank_pick_")]
    form = keys.index("FormSubmitter:out_rank_form-Drop picked")
    assert max(tiles) < here < form  # between the gallery and the form that acted (where the form's top was)
    assert "Dropped 1 image" in str(elements[here - 1].value)  # its message, beside it
    assert not any(button.key == "undo_last_edit_out_sel" for button in app.button)  # not beside another form
    app.button(key="undo_last_edit_out_rank").click().run()
    log = read_edits()
    assert log[-1].action == "undo" and log[-1].undoes == dropped.edit_id
    assert not any(b.key.startswith("undo_last_edit") for b in app.button if b.key)
    app = open_page(app, "pages/3_Review.py")
    training_boxes(app, "rev")[0].check().run()
    drop_picked(app, "rev", "the Review page's form too")
    assert any(button.key == "undo_last_edit_rev" for button in app.button)
