"""Review page, in AppTest: tag picked images and filter by tag (undo, wrong clicks), save a view and reopen
it, and the author asked once per session and written with every edit and tag."""

from test_pages import button, open_page, pick_boxes, sample_id, texts, training_boxes

from fer_core.curation import saved_views, tags
from fer_core.curation.edits import read_edits


def tag_picked(app, tag: str, label: str = "Tag picked"):
    app.text_input(key="rev_tag").set_value(tag)
    return button(app, label, "rev_tag_form").click().run()


def test_tag_picked_images_filter_by_tag_undo_and_wrong_clicks(app):
    app = open_page(app, "pages/3_Review.py")
    assert button(app, "Tag picked", "rev_tag_form").disabled  # nothing picked yet
    first, second = training_boxes(app, "rev")[:2]
    tagged = {sample_id(first), sample_id(second)}
    first.check().run()
    second.check().run()
    tag_picked(app, "   ")
    assert "Not tagged: a tag cannot be empty" in texts(app) and tags.list_tags() == []
    app = tag_picked(app, " blurry ")
    assert tags.list_tags() == [("blurry", 2)] and tags.images_with_tags(["blurry"]) == tagged
    assert "Tagged 2 image(s) 'blurry'" in texts(app) and not any(box.value for box in pick_boxes(app, "rev"))
    assert read_edits() == []  # a tag is not an edit of the data

    app.multiselect(key="rev_tags").set_value(["blurry"]).run()
    assert {sample_id(box) for box in pick_boxes(app, "rev")} == tagged and "**2** image(s) match" in texts(app)
    pick_boxes(app, "rev")[0].check().run()
    tag_picked(app, "blurry", "Untag picked")
    assert tags.list_tags() == [("blurry", 1)] and "**1** image(s) match" in texts(app)
    app.button(key="rev_tag_undo").click().run()  # the untag undone: both tagged again
    assert tags.list_tags() == [("blurry", 2)] and "**2** image(s) match" in texts(app)
    assert not any(b.key == "rev_tag_undo" for b in app.button)  # offered once

    for box in pick_boxes(app, "rev"):
        box.check().run()
    tag_picked(app, "blurry", "Untag picked")
    assert tags.list_tags() == [] and app.multiselect(key="rev_tags").value == []  # the gone tag left the filter
    assert not app.exception


def test_save_a_view_refuse_its_name_reopen_it_and_delete_it(app):
    app = open_page(app, "pages/3_Review.py")
    app.multiselect(key="rev_emotions").set_value(["happy", "sad"])
    app.multiselect(key="rev_usages").set_value(["Training"])
    app.checkbox(key="rev_show_dropped").check().run()
    app.text_input(key="rev_view_name").set_value("Happy or sad training")
    app.button(key="rev_view_save").click().run()
    assert "Saved view 'Happy or sad training': emotions happy, sad · usages Training · dropped shown" in texts(app)

    app.multiselect(key="rev_emotions").set_value([])
    app.multiselect(key="rev_usages").set_value([])
    app.checkbox(key="rev_show_dropped").uncheck().run()
    app.text_input(key="rev_view_name").set_value("happy or SAD training")
    app.button(key="rev_view_save").click().run()
    assert "View not saved: a view named 'Happy or sad training' exists" in texts(app)
    assert len(saved_views.list_views()) == 1

    app.selectbox(key="rev_view_pick").set_value("Happy or sad training")
    app.button(key="rev_view_open").click().run()
    assert app.multiselect(key="rev_emotions").value == ["happy", "sad"]
    assert app.multiselect(key="rev_usages").value == ["Training"] and app.checkbox(key="rev_show_dropped").value
    assert "Opened view 'Happy or sad training'" in texts(app) and not app.exception

    app.button(key="rev_view_delete").click().run()
    assert saved_views.list_views() == [] and "Deleted view 'Happy or sad training'" in texts(app)
    assert app.button(key="rev_view_open").disabled


def test_author_is_asked_once_and_written_with_edits_tags_and_undo(app, monkeypatch):
    monkeypatch.setenv("FER_AUDIT_AUTHOR", "lab reviewer")
    app = open_page(app, "pages/3_Review.py")
    assert app.text_input(key="author_input").value == "lab reviewer"
    app.text_input(key="author_input").set_value("  Ana   Lima ").run()
    app = open_page(app, None)  # another page keeps the name: asked once per session
    assert app.text_input(key="author_input").value == "Ana Lima"
    app = open_page(app, "pages/3_Review.py")
    training_boxes(app, "rev")[0].check().run()
    app.text_input(key="rev_reason").set_value("not a face")
    button(app, "Drop picked", "rev_form").click().run()
    app.button(key="undo_last_edit").click().run()
    assert [(edit.action, edit.author) for edit in read_edits()] == [("drop", "Ana Lima"), ("undo", "Ana Lima")]
    training_boxes(app, "rev")[0].check().run()
    tag_picked(app, "ask Ana")
    assert [event.author for event in tags.tag_history()] == ["Ana Lima"]
    app.text_input(key="author_input").set_value("").run()  # emptied: back to the default
    assert app.text_input(key="author_input").value == "lab reviewer"
